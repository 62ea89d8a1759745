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
  /** Snapshots of every namespace (user and group snapshots: an image with any cannot be removed). */
  snapshotCount: number;
  /** The consistency group the image is in (rbd_get_group), or null. */
  group: { pool: string; name: string } | null;
}

/**
 * What a diff stream (`rbd export-diff` format v1) holds: exportDiff, applyDiff and inspectDiff all
 * answer with it. Sizes in bytes.
 */
export interface NativeDiffSummary {
  /** The snapshot the diff starts from ('f' record); null: from the beginning (a full export). */
  fromSnapshot: string | null;
  /** The snapshot it ends at ('t' record), which applyDiff creates; null: the head. */
  toSnapshot: string | null;
  /** The image size at the end ('s' record). */
  size: number;
  /** Bytes of the stream itself (what the file holds). */
  streamBytes: number;
  /** Image data carried in 'w' records. */
  dataBytes: number;
  /** Image bytes that read as zeros, in 'z' records (no data in the stream). */
  zeroBytes: number;
  writeRecords: number;
  zeroRecords: number;
}

export interface NativeDiffExport extends NativeDiffSummary {
  /** Extents librbd's diff reported (before splitting and merging into records). */
  extents: number;
  /** Whether whole-object diffing was used (asked for, and the image has a valid fast-diff map). */
  wholeObject: boolean;
}

/**
 * Progress of a long call, on the JS thread, at most every 100 ms and once at the end: `done` of
 * `total`. exportDiff: image bytes walked of the image size. applyDiff from a file: stream bytes
 * read of the file size; from a pipe: the end of the last data record of the image size. Returning
 * `false` cancels the call (it rejects with ECANCELED); a throw is an uncaught exception.
 */
export type NativeProgress = (done: number, total: number) => boolean | void;

export interface NativeGroupImage {
  pool: string;
  image: string;
  /** 'incomplete' while being added or removed. */
  state: 'attached' | 'incomplete';
}

export interface NativeGroupSnapshot {
  name: string;
  /** 'incomplete' when its creation was interrupted (remove it and take another). */
  state: 'complete' | 'incomplete';
}

export interface NativeMemberSnapshot {
  id: number;
  size: number;
  /** Seconds since the epoch, or null. */
  timestamp: number | null;
  /** The group snapshot it is part of: its group's pool and name, and its name. */
  groupPool: string;
  group: string;
  groupSnapshot: string;
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

  /**
   * With `metadata`, the new image gets those keys (written to its header directly, without opening
   * it: see image_ops.cc); when they cannot be set, the image is removed again and that error
   * reported (op rbd_metadata_set). Values are not checked by librbd: the caller checks them.
   */
  createImage(pool: string, name: string, size: number, features: number, order: number, dataPool: string | null, metadata?: Array<[string, string]> | null): Promise<void>;
  /** Refuses (EBUSY) while a non-librbd (advisory) lock is held: librbd's remove would spin forever. */
  /** rbd_remove_with_progress; `onProgress`: data objects removed of the image's object count. */
  removeImage(pool: string, name: string, onProgress?: NativeProgress): Promise<void>;
  /** rbd_resize2; `onProgress`: objects trimmed (a shrink) or the object map grown (a grow). */
  resizeImage(pool: string, name: string, size: number, allowShrink: boolean, onProgress?: NativeProgress): Promise<void>;
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
  /** rbd_flatten_with_progress; `onProgress`: objects copied from the parent of the overlap's object count. */
  flattenImage(pool: string, name: string, onProgress?: NativeProgress): Promise<void>;

  listWatchers(pool: string, image: string): Promise<NativeWatcher[]>;
  addLock(pool: string, image: string, cookie: string, tag: string, exclusive: boolean): Promise<void>;
  listLocks(pool: string, image: string): Promise<NativeLockers>;
  breakLock(pool: string, image: string, owner: string, cookie: string): Promise<void>;

  getMetadata(pool: string, image: string): Promise<Record<string, string>>;
  setMetadata(pool: string, image: string, key: string, value: string): Promise<void>;
  removeMetadata(pool: string, image: string, key: string): Promise<void>;

  // --- incremental backups: `rbd export-diff` streams (format v1, what `rbd import-diff` reads) ---

  /**
   * Writes the changes of `image` from `fromSnapshot` (null: from the beginning) to `toSnapshot`
   * (null: the head) as an `rbd export-diff` stream (rbd_diff_iterate2, then rbd_aio_read2 of what
   * changed, in offset order; ranges that are gone or read as zeros become 'z' records). `target`
   * is a path, created (O_EXCL, mode 0600) and fsync'ed, and removed again when the call fails; or
   * a file descriptor the caller keeps open until the promise settles, written from its current
   * position (a pipe streams). `wholeObject`: diff whole objects from the fast-diff map, faster to
   * walk, larger streams; ignored without a valid fast-diff map. ENOENT (snapshot named) when
   * either snapshot is missing, EEXIST when the path exists.
   */
  exportDiff(
    pool: string,
    image: string,
    fromSnapshot: string | null,
    toSnapshot: string | null,
    target: string | number,
    wholeObject: boolean,
    onProgress: NativeProgress | null,
  ): Promise<NativeDiffExport>;
  /**
   * Applies an `rbd export-diff` stream to `image`'s head, as `rbd import-diff` does: the start
   * snapshot must exist on the image (ENOENT), the end snapshot must not (EEXIST); the image is
   * resized to the stream's size, written, flushed, and the end snapshot created, so that a chain
   * of diffs restores snapshot by snapshot. A file (`source` a path, or a descriptor of a regular
   * file) is checked whole first: a corrupt or truncated one is refused (EBADMSG, op 'rbd_diff_v1',
   * the detail says what and where) with nothing changed. From a pipe it can only be checked as it
   * is applied: a bad record then stops it with the head partly written (the detail says so) and
   * no end snapshot made. A v2 stream is EPROTONOSUPPORT.
   */
  applyDiff(pool: string, image: string, source: string | number, onProgress: NativeProgress | null): Promise<NativeDiffSummary>;
  /** Reads a whole stream and checks it as applyDiff would, without touching an image. */
  inspectDiff(source: string | number): Promise<NativeDiffSummary>;

  // --- consistency groups (errors name the group in `pool`/`image`) ---

  /** rbd_group_create. */
  createGroup(pool: string, group: string): Promise<void>;
  /** rbd_group_remove: detaches the members and removes the group's snapshots. */
  removeGroup(pool: string, group: string): Promise<void>;
  /** rbd_group_list. */
  listGroups(pool: string): Promise<string[]>;
  /** rbd_group_image_add: EEXIST when the image is in a group already. */
  addGroupImage(groupPool: string, group: string, imagePool: string, image: string): Promise<void>;
  /** rbd_group_image_remove. */
  removeGroupImage(groupPool: string, group: string, imagePool: string, image: string): Promise<void>;
  /** rbd_group_image_list. */
  listGroupImages(pool: string, group: string): Promise<NativeGroupImage[]>;
  /**
   * rbd_group_snap_create: one crash-consistent snapshot of every member at one instant. On each
   * member it is a snapshot in the group namespace (`rbd snap ls --all`; listSnapshots shows user
   * snapshots only, imageInfo's snapshotCount counts it).
   */
  createGroupSnapshot(pool: string, group: string, snapshot: string): Promise<void>;
  /** rbd_group_snap_remove: the members' snapshots of it go too. */
  removeGroupSnapshot(pool: string, group: string, snapshot: string): Promise<void>;
  /**
   * rbd_group_snap_rollback_with_progress: every member's head back to the group snapshot.
   * `onProgress`: librbd's count of the rollback's steps (members rolled back of the members).
   */
  rollbackGroupSnapshot(pool: string, group: string, snapshot: string, onProgress?: NativeProgress | null): Promise<void>;
  /**
   * The image's snapshots in the group namespace (its part of each group snapshot taken of it),
   * with their ids: rbd_snap_list, rbd_snap_get_namespace_type, rbd_snap_get_group_namespace.
   */
  listMemberSnapshots(pool: string, image: string): Promise<NativeMemberSnapshot[]>;
  /**
   * A full copy of sourcePool/sourceImage as it was at snapshot `snapshotId` (any namespace: a
   * group member's snapshot too; rbd_snap_set_by_id) into the new image pool/name
   * (rbd_copy_with_progress4, sparse). features/order null: librbd's defaults. ENOENT naming the
   * source (detail "snapshot id N") when the source or its snapshot is missing, EEXIST naming the
   * new image when it exists. A failure midway can leave a partial new image: the caller removes
   * it. `onProgress`: objects copied of the source's object count.
   */
  copySnapshot(
    sourcePool: string,
    sourceImage: string,
    snapshotId: number,
    pool: string,
    name: string,
    features: number | null,
    order: number | null,
    dataPool: string | null,
    onProgress?: NativeProgress | null,
  ): Promise<void>;
  /** rbd_group_snap_list. */
  listGroupSnapshots(pool: string, group: string): Promise<NativeGroupSnapshot[]>;

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
