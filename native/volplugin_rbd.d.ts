// Hand-written types of build/Release/volplugin_rbd.node (native/*.cc). The addon takes positional,
// already-validated arguments: src/storage/native.ts checks them and is the only caller. Every
// method that can block returns a promise and runs on the Cluster's own threads (native/pool.h, not
// libuv's pool); failures reject with the RbdError class handed to init().

export interface NativeStats {
  /** Operations queued or running. */
  pending: number;
  /** rbd_image_t handles open right now. */
  openImages: number;
  /** Cached pool contexts (rados_ioctx_t). */
  pools: number;
}

/** The Cluster's worker threads (native/pool.h) and where its calls' time went. */
export interface NativeThreadStats {
  /** Threads started and not yet ended (they start when calls queue and none is idle; an idle one ends after 60 s). */
  threads: number;
  /** Threads running a call. */
  busy: number;
  /** Calls waiting for a thread (only when `threads` has reached `maxThreads`). */
  queued: number;
  /** The limit: ClusterOptions.threads. */
  maxThreads: number;
  /** Calls that have run, and the totals of their time (milliseconds) from being queued to starting on a
   * thread, running there, and being settled on the JS thread. */
  completed: number;
  queueWaitMs: number;
  runMs: number;
  deliverWaitMs: number;
}

export interface ClusterOptions {
  /**
   * Most threads this connection runs librbd/librados calls on at once (1..4096, default 256). Calls that
   * wait for a monitor commit (snapshots: about 1 s with Ceph's default paxos interval) occupy a thread
   * each, and the monitor commits whatever is in flight together: this is the number of such calls in
   * flight, and so the snapshot throughput. Calls beyond it queue.
   */
  threads?: number;
}

export interface NativeImageInfo {
  size: number;
  order: number;
  objectSize: number;
  /** librbd feature bits. */
  features: number;
  parent: { pool: string; image: string; snapshot: string } | null;
  snapshotCount: number;
}

export interface NativeSnapshot {
  id: number;
  name: string;
  size: number;
  protected: boolean;
  /** Seconds since the epoch (whole seconds), or null when librbd has none. */
  timestamp: number | null;
}

export interface NativeWatcher {
  address: string;
  id: number;
  cookie: number;
}

export interface NativeLockers {
  exclusive: boolean;
  tag: string;
  lockers: { owner: string; cookie: string; address: string }[];
}

export declare class Cluster {
  constructor(options?: ClusterOptions);
  /** rados_create2, rados_conf_read_file, rados_conf_parse_env, rados_conf_set, rados_connect. */
  connect(confPath: string | null, keyring: string | null, clientId: string | null, options: Record<string, string>): Promise<void>;
  /** Idempotent; waits for pending operations, then rados_ioctx_destroy for each pool and rados_shutdown. */
  close(): Promise<void>;
  stats(): NativeStats;
  threadStats(): NativeThreadStats;

  createImage(pool: string, name: string, size: number, features: number, order: number, dataPool: string | null): Promise<void>;
  /** Refuses (EBUSY) while a non-librbd (advisory) lock is held: librbd's remove would spin forever. */
  removeImage(pool: string, name: string): Promise<void>;
  resizeImage(pool: string, name: string, size: number, allowShrink: boolean): Promise<void>;
  renameImage(pool: string, from: string, to: string): Promise<void>;
  imageInfo(pool: string, name: string): Promise<NativeImageInfo>;
  listImages(pool: string): Promise<string[]>;
  imageExists(pool: string, name: string): Promise<boolean>;

  createSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  listSnapshots(pool: string, image: string): Promise<NativeSnapshot[]>;
  removeSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  protectSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  cloneSnapshot(
    parentPool: string,
    parentImage: string,
    parentSnapshot: string,
    pool: string,
    name: string,
    features: number | null,
    order: number | null,
    dataPool: string | null,
  ): Promise<void>;
  /** "pool/image" of each clone of the snapshot (not those in the trash). */
  listChildren(pool: string, image: string, snapshot: string): Promise<string[]>;
  flattenImage(pool: string, name: string): Promise<void>;

  listWatchers(pool: string, image: string): Promise<NativeWatcher[]>;
  addLock(pool: string, image: string, cookie: string, tag: string, exclusive: boolean): Promise<void>;
  listLocks(pool: string, image: string): Promise<NativeLockers>;
  breakLock(pool: string, image: string, owner: string, cookie: string): Promise<void>;

  getMetadata(pool: string, image: string): Promise<Record<string, string>>;
  setMetadata(pool: string, image: string, key: string, value: string): Promise<void>;
  removeMetadata(pool: string, image: string, key: string): Promise<void>;

  /** rados_mon_command with one JSON command; resolves with the output buffer and status string. */
  monCommand(command: string): Promise<{ out: string; status: string }>;
  /** rados_cluster_fsid. */
  fsid(): Promise<string>;
}

/** Hands the addon the error class it builds every failure from. Call once, before anything else. */
export declare function init(errorClass: new (fields: {
  errno: number;
  op: string;
  pool?: string;
  image?: string;
  snapshot?: string;
  detail?: string;
}) => Error): void;

/** open(2) O_WRONLY + one write(2) + close(2) off the JS thread: sysfs and cgroup files. */
export declare function writeFile(path: string, data: string): Promise<void>;

/** The library versions the addon runs with (rados_version, rbd_version). */
export declare function versions(): { rados: string; rbd: string };
