// The storage seam: everything above this file (master, plugin, supervisor, bench) talks to Ceph
// through `Storage`, never to librbd or the `rbd` CLI directly. Two real implementations exist
// (`native`: the C++ addon; `cli`: execa + `rbd --format json`) and one in-memory twin for unit
// tests of the layers above. openStorage (index.ts) puts each behind the same decorators:
// checked.ts (argument checks) and, given a bound, timed.ts. One contract suite
// (test/integration/storage-contract.test.ts) runs against every implementation so that they
// cannot drift apart.

/** How to reach the cluster. Every field is optional: librados' own defaults apply. */
export interface ClusterConfig {
  /** Path of ceph.conf (CEPH_CONF when unset). */
  confPath?: string;
  /** Path of the keyring; else what ceph.conf says. */
  keyring?: string;
  /** The cephx client id without "client." (default "admin"). */
  clientId?: string;
}

export type BackendKind = 'native' | 'cli' | 'memory';

/** librbd feature names as `rbd info` prints them. */
export type ImageFeature =
  | 'layering'
  | 'striping'
  | 'exclusive-lock'
  | 'object-map'
  | 'fast-diff'
  | 'deep-flatten'
  | 'journaling'
  | 'data-pool';

export interface CreateImageOptions {
  /** Size in bytes (> 0). */
  size: number;
  /** Default: layering, exclusive-lock (what a krbd of any age can map). */
  features?: ImageFeature[];
  /** Object size as a power of two (12..25); default 22 (4 MiB). */
  order?: number;
  /** Put the image's data objects in another (e.g. erasure-coded) pool. */
  dataPool?: string;
  /**
   * Image metadata (`rbd image-meta`) the new image has when createImage resolves: the addon writes
   * it with the create, without opening the image (setMetadata opens it, takes its exclusive lock and
   * notifies its watchers, once per key). Of the conf_* keys only the QoS limits are admitted, with
   * unsigned integer values. When the metadata cannot be set, the image is removed again and that
   * error (op rbd_metadata_set) is thrown.
   */
  metadata?: Record<string, string>;
}

/** What a clone may choose: the create options but size (the parent's) and metadata (copied from the parent). */
export type CloneImageOptions = Omit<CreateImageOptions, 'size' | 'metadata'>;

export interface ParentRef {
  pool: string;
  image: string;
  snapshot: string;
}

export interface ImageInfo {
  pool: string;
  name: string;
  /** Size in bytes. */
  size: number;
  order: number;
  objectSize: number;
  features: ImageFeature[];
  /** Set when the image is a clone that has not been flattened. */
  parent: ParentRef | null;
  /** Snapshots of every namespace: user, group, and trash (a snapshot removal that died leaves one there). */
  snapshotCount: number;
  /** The consistency group the image is in, or null. */
  group: { pool: string; name: string } | null;
}

export interface SnapshotInfo {
  id: number;
  name: string;
  /** Size of the image when the snapshot was taken, in bytes. */
  size: number;
  protected: boolean;
  /** Creation time (librbd keeps it since Mimic). */
  createdAt: Date | null;
}

/** An image in a consistency group. */
export interface GroupMember {
  pool: string;
  image: string;
}

export interface GroupSnapshotInfo {
  name: string;
  /** False when its creation was interrupted: it holds no usable instant (remove it, take another). */
  complete: boolean;
}

/**
 * A member image's part of a group snapshot: a snapshot in the group namespace, known by its id
 * (librbd names it itself, and names of that namespace open nothing by name).
 */
export interface MemberSnapshotInfo {
  id: number;
  /** Size of the image when the group snapshot was taken, in bytes. */
  size: number;
  createdAt: Date | null;
  /** The group snapshot it is part of. */
  group: { pool: string; group: string; snapshot: string };
}

/** A snapshot chosen by id (of any namespace: a group member's part too). */
export interface SnapshotIdRef {
  pool: string;
  image: string;
  snapshotId: number;
}

/** A client that has the image open (rbd-fuse, krbd, librbd user). */
export interface Watcher {
  /** The client's address as the OSDs see it, e.g. "127.0.0.1:0/3141592653": what blocklisting takes. */
  address: string;
  /** rados client id (the N in client.N). */
  clientId: number;
  cookie: number;
}

export interface ImageLock {
  /** The locker entity, e.g. "client.4123". */
  owner: string;
  cookie: string;
  tag: string;
  exclusive: boolean;
  address: string;
}

/** librbd QoS limits, per image, in operations or bytes per second; 0 or absent = unlimited. */
export interface QosLimits {
  iops?: number;
  bps?: number;
  readIops?: number;
  writeIops?: number;
  readBps?: number;
  writeBps?: number;
}

/**
 * What an `rbd export-diff` stream (format v1, what `rbd import-diff` reads) holds: exportDiff,
 * applyDiff and inspectDiff all answer with it. Sizes in bytes.
 */
export interface DiffSummary {
  /** The snapshot the diff starts from; null: from the beginning (a full export). */
  fromSnapshot: string | null;
  /** The snapshot it ends at, which applyDiff creates; null: none (the head). */
  toSnapshot: string | null;
  /** The image size at the end. */
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

export interface DiffExport extends DiffSummary {
  /** Whether whole-object diffing was used (asked for, and the image has a fast-diff map). */
  wholeObject: boolean;
}

/**
 * Progress of a diff call, in bytes (export: image bytes walked of the image size; apply: stream
 * bytes read of the file size). Called now and then and once at the end.
 */
export type DiffProgress = ProgressListener;

export interface DiffOptions extends ProgressOptions {
  /** Aborting it cancels the call: it rejects with ECANCELED (an export removes its file). */
  signal?: AbortSignal;
}

export interface ExportDiffOptions extends DiffOptions {
  /** Diff whole objects from the fast-diff map: faster to walk, larger streams. Default false. */
  wholeObject?: boolean;
}

/**
 * Progress of a long call (remove, resize, flatten): `done` of `total` in the call's own unit
 * (librbd's objects for the native backend, percent for the CLI backend), at most every 100 ms and
 * once at the end. A listener must not throw.
 */
export type ProgressListener = (done: number, total: number) => void;

export interface ProgressOptions {
  onProgress?: ProgressListener;
}

/** Counters for metrics and back-pressure. */
export interface StorageStats {
  /** Operations queued or running right now. */
  pending: number;
  /** Calls running in Ceph now: on the addon's threads (native), as rbd/ceph processes (cli). */
  running: number;
  /** Calls waiting for an addon thread (native) or a process slot (cli) because all are busy. */
  queued: number;
  /** Image handles open right now (0 when idle: a leak check). */
  openImages: number;
  /** Pool contexts cached. */
  pools: number;
}

export interface Storage {
  readonly kind: BackendKind;

  /** Idempotent. Waits for pending operations, then releases images, pool contexts and the connection. */
  close(): Promise<void>;
  stats(): StorageStats;

  // Images
  createImage(pool: string, name: string, options: CreateImageOptions): Promise<void>;
  /** Fails with EBUSY while watched, ENOTEMPTY while it has snapshots. */
  removeImage(pool: string, name: string, options?: ProgressOptions): Promise<void>;
  /** `size` in bytes; shrinking is allowed only with `allowShrink`. */
  resizeImage(pool: string, name: string, size: number, options?: { allowShrink?: boolean } & ProgressOptions): Promise<void>;
  renameImage(pool: string, from: string, to: string): Promise<void>;
  imageInfo(pool: string, name: string): Promise<ImageInfo>;
  listImages(pool: string): Promise<string[]>;
  imageExists(pool: string, name: string): Promise<boolean>;

  // Snapshots
  createSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  listSnapshots(pool: string, image: string): Promise<SnapshotInfo[]>;
  removeSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  protectSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void>;
  /** Clone a protected snapshot into a new image (layering). */
  cloneSnapshot(parent: ParentRef, pool: string, name: string, options?: CloneImageOptions): Promise<void>;
  /** Names of the images cloned from a snapshot ("pool/image"). */
  listChildren(parent: ParentRef): Promise<string[]>;
  flattenImage(pool: string, name: string, options?: ProgressOptions): Promise<void>;

  // Consistency groups (librbd groups). An image is in at most one group; a member cannot be
  // removed (EMLINK) until it leaves its group, nor while it has group snapshots (ENOTEMPTY). A
  // group snapshot is one crash-consistent instant of every member, in the members' group
  // namespace: listSnapshots does not show it.
  createGroup(pool: string, group: string): Promise<void>;
  /** Removes the group's snapshots and lets its members go. */
  removeGroup(pool: string, group: string): Promise<void>;
  /** EEXIST when the image is in another group; nothing when it is in this one already. */
  addGroupImage(pool: string, group: string, member: GroupMember): Promise<void>;
  listGroupImages(pool: string, group: string): Promise<GroupMember[]>;
  createGroupSnapshot(pool: string, group: string, snapshot: string): Promise<void>;
  /** Oldest first. */
  listGroupSnapshots(pool: string, group: string): Promise<GroupSnapshotInfo[]>;
  removeGroupSnapshot(pool: string, group: string, snapshot: string): Promise<void>;
  /**
   * Every member's head back to the group snapshot (librbd takes each member's exclusive lock in
   * turn: the caller makes sure nobody has a member open). Progress: librbd's steps (members).
   */
  rollbackGroupSnapshot(pool: string, group: string, snapshot: string, options?: ProgressOptions): Promise<void>;
  /** The image's parts of group snapshots (its group-namespace snapshots), oldest first. */
  listMemberSnapshots(pool: string, image: string): Promise<MemberSnapshotInfo[]>;
  /**
   * A full, independent copy of an image as it was at a snapshot chosen by id (a group member's
   * part of a group snapshot: those cannot be cloned) into the new image `name`. EEXIST when it
   * exists; ENOENT naming the source when it or its snapshot is missing. A failure can leave a
   * partial new image: the caller removes it. The CLI backend cannot (rbd 16 opens snapshots by
   * name in the user namespace only): EOPNOTSUPP. Progress: objects copied.
   */
  copySnapshot(source: SnapshotIdRef, pool: string, name: string, options?: CloneImageOptions & ProgressOptions): Promise<void>;

  // Watchers, locks, fencing
  listWatchers(pool: string, image: string): Promise<Watcher[]>;
  addLock(pool: string, image: string, lock: { cookie: string; tag?: string; exclusive: boolean }): Promise<void>;
  listLocks(pool: string, image: string): Promise<ImageLock[]>;
  breakLock(pool: string, image: string, lock: { owner: string; cookie: string }): Promise<void>;
  /** `ceph osd blocklist add ADDRESS SECONDS` as a mon command. */
  blocklistAdd(address: string, seconds: number): Promise<void>;
  blocklistRemove(address: string): Promise<void>;

  // Image metadata and QoS (rbd image-meta conf_rbd_qos_*_limit)
  getMetadata(pool: string, image: string): Promise<Record<string, string>>;
  setMetadata(pool: string, image: string, key: string, value: string): Promise<void>;
  removeMetadata(pool: string, image: string, key: string): Promise<void>;
  getQos(pool: string, image: string): Promise<QosLimits>;
  /** Keys present in `limits` are set (0 removes the limit); absent keys are left alone. */
  setQos(pool: string, image: string, limits: QosLimits): Promise<void>;

  /** The mon addresses and fsid, for krbd's sysfs string. */
  clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }>;

  // Backups: `rbd export-diff` streams (format v1) in files
  /**
   * Writes what changed in `image` from snapshot `range.from` (null: from the beginning, a full
   * export) to snapshot `range.to` into `file` (an absolute path, created, never overwritten:
   * EEXIST; mode 0600; fsync'ed; removed again when the call fails). ENOENT naming the snapshot
   * when either is missing.
   */
  exportDiff(pool: string, image: string, range: { from: string | null; to: string }, file: string, options?: ExportDiffOptions): Promise<DiffExport>;
  /**
   * Applies a stream from `file` to `image`'s head, as `rbd import-diff` does: the start snapshot
   * must exist (ENOENT), the end snapshot must not (EEXIST); the image is resized to the stream's
   * size, written and the end snapshot created. The file is checked whole first: a corrupt or
   * truncated one is refused (EBADMSG, op rbd_diff_v1) with nothing changed.
   */
  applyDiff(pool: string, image: string, file: string, options?: DiffOptions): Promise<DiffSummary>;
  /** Reads a whole stream and checks it as applyDiff would, touching no image. */
  inspectDiff(file: string): Promise<DiffSummary>;
}

/** The calls of Storage that reach the cluster (everything but `kind`, `close` and `stats`). */
export type StorageCall = Exclude<keyof Storage, 'kind' | 'close' | 'stats'>;

// A record over StorageCall: the compiler refuses this list when a call is added to Storage and
// not here, so the decorators (checked.ts, timed.ts) and the memory twin's hooks see every call.
const CALLS: Record<StorageCall, true> = {
  createImage: true,
  removeImage: true,
  resizeImage: true,
  renameImage: true,
  imageInfo: true,
  listImages: true,
  imageExists: true,
  createSnapshot: true,
  listSnapshots: true,
  removeSnapshot: true,
  rollbackSnapshot: true,
  protectSnapshot: true,
  unprotectSnapshot: true,
  cloneSnapshot: true,
  listChildren: true,
  flattenImage: true,
  createGroup: true,
  removeGroup: true,
  addGroupImage: true,
  listGroupImages: true,
  createGroupSnapshot: true,
  listGroupSnapshots: true,
  removeGroupSnapshot: true,
  rollbackGroupSnapshot: true,
  listMemberSnapshots: true,
  copySnapshot: true,
  listWatchers: true,
  addLock: true,
  listLocks: true,
  breakLock: true,
  blocklistAdd: true,
  blocklistRemove: true,
  getMetadata: true,
  setMetadata: true,
  removeMetadata: true,
  getQos: true,
  setQos: true,
  clusterInfo: true,
  exportDiff: true,
  applyDiff: true,
  inspectDiff: true,
};

export const STORAGE_CALLS = Object.keys(CALLS) as readonly StorageCall[];
