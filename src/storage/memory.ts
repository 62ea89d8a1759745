// Over 400 lines: one method per Storage call, each a thin door to memory-pools/memory-groups; the faults are memory-faults.ts, the diffs memory-diff.ts.
// An in-memory Storage for the unit tests of the layers above (master, plugin, supervisor, CLI). It
// keeps the contract's rules (the same RbdError codes for the same situations; argument checks are
// checked.ts's, in front of it as in front of every backend: openStorage('memory') or
// memoryStorage()) but no Ceph: integration tests always run the real backends. Tests can add
// watchers and pools, which only a real cluster would otherwise produce, look at the images, and
// make calls fail, hang or find the cluster unreachable (memory-faults.ts).
//
// Like librbd without deep-flatten, a snapshot taken of a clone keeps the clone's parent: flattening
// the clone does not detach it, and the clone stays a child of the parent snapshot until that
// snapshot is removed.

import { checked } from './checked.js';
import { FaultHooks, callError } from './memory-faults.js';
import { MemoryPools, type MemImage, type MemoryImage } from './memory-pools.js';
import { readBlocks, truncateBlocks, writeBlocks } from './memory-data.js';
import { applyMemoryDiff, exportMemoryDiff } from './memory-diff.js';
import { inspectDiffFile } from './diff-format.js';
import { MemoryGroups } from './memory-groups.js';
import type {
  ClusterConfig,
  CloneImageOptions,
  CreateImageOptions,
  DiffExport,
  DiffOptions,
  DiffSummary,
  ExportDiffOptions,
  GroupMember,
  GroupSnapshotInfo,
  MemberSnapshotInfo,
  SnapshotIdRef,
  ImageInfo,
  ImageLock,
  ParentRef,
  ProgressOptions,
  QosLimits,
  SnapshotInfo,
  Storage,
  StorageStats,
  Watcher,
} from './types.js';
import { applyQos, cloneSpec, createSpec, qosFromMetadata } from './validate.js';

export type { Hang } from './memory-faults.js';
export type { MemoryImage } from './memory-pools.js';

export interface MemoryStorageOptions {
  /** Pools that exist at start (default: ["rbd"]). */
  pools?: string[];
  /** The fsid and mon addresses clusterInfo() returns. */
  fsid?: string;
  monAddresses?: string[];
  /** The clock snapshots' creation times come from (default: Date.now). */
  now?: () => number;
}

/** A memory twin behind the same argument checks as every backend (what unit tests should use). */
export function memoryStorage(options: MemoryStorageOptions = {}): MemoryStorage {
  return checked(new MemoryStorage({}, options));
}

/** A long call's progress as librbd reports it: the image's objects, none done and then all. */
function reportObjects(options: ProgressOptions, img: { size: number; order: number }): void {
  const total = Math.max(1, Math.ceil(img.size / 2 ** img.order));
  options.onProgress?.(0, total);
  options.onProgress?.(total, total);
}

export class MemoryStorage extends FaultHooks implements Storage {
  readonly kind = 'memory' as const;
  /** The address this fake client has, as lock owners and watchers would show it. */
  readonly clientAddress = '127.0.0.1:0/1';
  readonly clientName = 'client.1';
  /** Addresses blocklisted and until when (ms since the epoch). */
  readonly blocklist = new Map<string, number>();
  /** The clock of snapshots' creation times (tests may set theirs). */
  now: () => number;

  private readonly pools: MemoryPools;
  private readonly fsid: string;
  private readonly monAddresses: string[];
  private readonly groups: MemoryGroups;
  private nextSnapId = 1;
  private closed = false;

  constructor(_config: ClusterConfig = {}, options: MemoryStorageOptions = {}) {
    super();
    this.pools = new MemoryPools(options.pools ?? ['rbd']);
    this.groups = new MemoryGroups(this.pools, { nextId: () => this.nextSnapId++, now: () => this.now() });
    this.fsid = options.fsid ?? '00000000-0000-4000-8000-000000000000';
    this.monAddresses = options.monAddresses ?? ['127.0.0.1:6789'];
    this.now = options.now ?? Date.now;
  }

  // --- test helpers (not part of Storage; no hooks, no call log) ---

  createPool(name: string): void {
    this.pools.create(name);
  }

  /** Simulates a client (rbd-fuse, krbd) having the image open. */
  addWatcher(pool: string, image: string, watcher: Watcher): void {
    this.pools.image('addWatcher', pool, image).watchers.push({ ...watcher });
  }

  removeWatcher(pool: string, image: string, address: string): void {
    const img = this.pools.image('removeWatcher', pool, image);
    img.watchers = img.watchers.filter((w) => w.address !== address);
  }

  /** Moves a snapshot to the trash namespace, as a snapshot removal that died half-way leaves it. */
  trashSnapshot(pool: string, image: string, snapshot: string): void {
    const img = this.pools.image('trashSnapshot', pool, image);
    this.pools.snap(img, 'trashSnapshot', pool, image, snapshot);
    img.snapshots.delete(snapshot);
    img.trashed++;
  }

  /** Removes every image at once, whatever holds it (a twin shared by several tests starts each empty). */
  dropImages(): void {
    this.pools.dropImages();
  }

  /** Every image there is now, by "pool/name". */
  get images(): ReadonlyMap<string, MemoryImage> {
    return this.pools.view();
  }

  /** Writes `data` into the image's head at `offset` (what a mounted volume's writes would do). */
  writeData(pool: string, image: string, offset: number, data: Buffer): void {
    const img = this.pools.image('writeData', pool, image);
    if (offset + data.length > img.size) throw new RangeError(`writeData: ${data.length} bytes at ${offset} are beyond the image size ${img.size}`);
    writeBlocks(img.data, offset, data);
  }

  /** What the image's head (or a snapshot) reads as, whole: for small test images. */
  readData(pool: string, image: string, snapshot?: string): Buffer {
    const img = this.pools.image('readData', pool, image);
    if (snapshot === undefined) return readBlocks(img.data, img.size);
    const snap = this.pools.snap(img, 'readData', pool, image, snapshot);
    return readBlocks(snap.data, snap.size);
  }

  /** The snapshot names of an image, oldest first ([] when there is no such image). */
  snapshotNames(pool: string, image: string): string[] {
    return this.pools.view().get(`${pool}/${image}`)?.snapshots ?? [];
  }

  // --- Storage ---

  async close(): Promise<void> {
    this.closed = true;
  }

  stats(): StorageStats {
    return { pending: this.pending, running: this.pending, queued: 0, openImages: 0, pools: this.closed ? 0 : this.pools.size };
  }

  createImage(pool: string, name: string, options: CreateImageOptions): Promise<void> {
    return this.call('createImage', [pool, name, options], () => {
      const spec = createSpec(options);
      const images = this.pools.pool(pool, name);
      if (spec.dataPool !== null) this.pools.pool(spec.dataPool, name, 'rbd_create4');
      if (images.has(name)) throw this.pools.err('EEXIST', { op: 'rbd_create4', pool, image: name });
      images.set(name, this.pools.newImage(spec.size, spec.features, spec.order, spec.dataPool, null));
      if (spec.metadata.length === 0) return;
      try {
        // As setMetadata would: failNext('setMetadata') fails this step too.
        const errno = this.takeFailure('setMetadata');
        if (errno !== null) throw callError('setMetadata', [pool, name], errno);
        for (const [key, value] of spec.metadata) this.pools.setKey(pool, name, key, value);
      } catch (err) {
        images.delete(name); // as the real backends do: no image whose metadata could not be set
        throw err;
      }
    });
  }

  removeImage(pool: string, name: string, options: ProgressOptions = {}): Promise<void> {
    return this.call('removeImage', [pool, name], () => {
      const img = this.pools.image('rbd_remove', pool, name);
      if (img.watchers.length > 0) {
        throw this.pools.err('EBUSY', { op: 'rbd_remove', pool, image: name, detail: 'image has watchers' });
      }
      if (img.locks.holders.length > 0) {
        throw this.pools.err('EBUSY', { op: 'rbd_remove', pool, image: name, detail: 'image has advisory locks' });
      }
      if (img.snapshots.size > 0 || this.groups.snapshotsOf({ pool, image: name }) > 0) {
        throw this.pools.err('ENOTEMPTY', { op: 'rbd_remove', pool, image: name, detail: 'image has snapshots' });
      }
      const group = this.groups.groupOf({ pool, image: name });
      if (group) throw this.pools.err('EMLINK', { op: 'rbd_remove', pool, image: name, detail: `image belongs to group ${group}` });
      if (this.pools.everyParent().some((p) => p.pool === pool && p.image === name)) {
        throw this.pools.err('EBUSY', { op: 'rbd_remove', pool, image: name, detail: 'image has clones' });
      }
      reportObjects(options, img);
      this.pools.pool(pool, name).delete(name);
    });
  }

  resizeImage(pool: string, name: string, size: number, options: { allowShrink?: boolean } & ProgressOptions = {}): Promise<void> {
    return this.call('resizeImage', [pool, name, size, options], () => {
      const img = this.pools.image('rbd_open', pool, name);
      if (size < img.size && !options.allowShrink) {
        throw this.pools.err('EINVAL', { op: 'rbd_resize2', pool, image: name, detail: 'shrinking needs allowShrink' });
      }
      truncateBlocks(img.data, size);
      img.size = size;
      reportObjects(options, img);
    });
  }

  renameImage(pool: string, from: string, to: string): Promise<void> {
    return this.call('renameImage', [pool, from, to], () => {
      const images = this.pools.pool(pool, from);
      const img = images.get(from);
      if (!img) throw this.pools.err('ENOENT', { op: 'rbd_rename', pool, image: from });
      if (images.has(to)) throw this.pools.err('EEXIST', { op: 'rbd_rename', pool, image: to });
      images.delete(from);
      images.set(to, img);
      for (const parent of this.pools.everyParent()) {
        if (parent.pool === pool && parent.image === from) parent.image = to;
      }
    });
  }

  imageInfo(pool: string, name: string): Promise<ImageInfo> {
    return this.call('imageInfo', [pool, name], () => {
      const img = this.pools.image('rbd_open', pool, name);
      const features = [...img.features];
      if (img.dataPool !== null && !features.includes('data-pool')) features.push('data-pool');
      return {
        pool,
        name,
        size: img.size,
        order: img.order,
        objectSize: 2 ** img.order,
        features,
        parent: img.parent ? { ...img.parent } : null,
        snapshotCount: img.snapshots.size + img.trashed + this.groups.snapshotsOf({ pool, image: name }),
        group: groupSpec(this.groups.groupOf({ pool, image: name })),
      };
    });
  }

  listImages(pool: string): Promise<string[]> {
    return this.call('listImages', [pool], () => [...this.pools.pool(pool).keys()].sort());
  }

  imageExists(pool: string, name: string): Promise<boolean> {
    return this.call('imageExists', [pool, name], () => this.pools.pool(pool, name).has(name));
  }

  createSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.call('createSnapshot', [pool, image, snapshot], () => {
      const img = this.pools.image('rbd_open', pool, image);
      if (img.snapshots.has(snapshot)) throw this.pools.err('EEXIST', { op: 'rbd_snap_create', pool, image, snapshot });
      this.snapshotOf(img, snapshot);
    });
  }

  /** Takes snapshot `name` of the image's head (the name is free: the caller checked). */
  private snapshotOf(img: MemImage, name: string): void {
    img.snapshots.set(name, {
      id: this.nextSnapId++,
      size: img.size,
      protected: false,
      createdAt: new Date(Math.floor(this.now() / 1000) * 1000),
      parent: img.parent ? { ...img.parent } : null,
      data: new Map(img.data),
    });
  }

  listSnapshots(pool: string, image: string): Promise<SnapshotInfo[]> {
    return this.call('listSnapshots', [pool, image], () => {
      const img = this.pools.image('rbd_open', pool, image);
      return [...img.snapshots.entries()]
        .map(([name, s]) => ({ id: s.id, name, size: s.size, protected: s.protected, createdAt: new Date(s.createdAt) }))
        .sort((a, b) => a.id - b.id);
    });
  }

  removeSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.call('removeSnapshot', [pool, image, snapshot], () => {
      const img = this.pools.image('rbd_open', pool, image);
      const snap = this.pools.snap(img, 'rbd_snap_remove', pool, image, snapshot);
      if (snap.protected) throw this.pools.err('EBUSY', { op: 'rbd_snap_remove', pool, image, snapshot, detail: 'snapshot is protected' });
      img.snapshots.delete(snapshot);
    });
  }

  rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.call('rollbackSnapshot', [pool, image, snapshot], () => {
      const img = this.pools.image('rbd_open', pool, image);
      const snap = this.pools.snap(img, 'rbd_snap_rollback', pool, image, snapshot);
      img.size = snap.size;
      img.data = new Map(snap.data);
    });
  }

  protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.call('protectSnapshot', [pool, image, snapshot], () => {
      const snap = this.pools.snap(this.pools.image('rbd_open', pool, image), 'rbd_snap_protect', pool, image, snapshot);
      if (snap.protected) throw this.pools.err('EBUSY', { op: 'rbd_snap_protect', pool, image, snapshot, detail: 'already protected' });
      snap.protected = true;
    });
  }

  unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.call('unprotectSnapshot', [pool, image, snapshot], () => {
      const snap = this.pools.snap(this.pools.image('rbd_open', pool, image), 'rbd_snap_unprotect', pool, image, snapshot);
      if (!snap.protected) throw this.pools.err('EINVAL', { op: 'rbd_snap_unprotect', pool, image, snapshot, detail: 'not protected' });
      if (this.pools.children({ pool, image, snapshot }).length > 0) {
        throw this.pools.err('EBUSY', { op: 'rbd_snap_unprotect', pool, image, snapshot, detail: 'snapshot has clones' });
      }
      snap.protected = false;
    });
  }

  cloneSnapshot(parent: ParentRef, pool: string, name: string, options?: CloneImageOptions): Promise<void> {
    return this.call('cloneSnapshot', [parent, pool, name, options], () => {
      const p = { pool: parent.pool, image: parent.image, snapshot: parent.snapshot };
      const spec = cloneSpec(options);
      const src = this.pools.image('rbd_open', p.pool, p.image);
      const snap = this.pools.snap(src, 'rbd_clone3', p.pool, p.image, p.snapshot);
      if (!snap.protected) {
        throw this.pools.err('EINVAL', { op: 'rbd_clone3', ...p, detail: 'parent snapshot must be protected' });
      }
      const images = this.pools.pool(pool, name, 'rbd_clone3');
      if (spec.dataPool !== null) this.pools.pool(spec.dataPool, name, 'rbd_clone3');
      if (images.has(name)) throw this.pools.err('EEXIST', { op: 'rbd_clone3', pool, image: name });
      const features = spec.features ?? src.features.filter((f) => f !== 'data-pool');
      const clone = this.pools.newImage(snap.size, features, spec.order ?? src.order, spec.dataPool, p);
      // librbd copies the parent's image metadata into the clone.
      clone.metadata = new Map(src.metadata);
      clone.data = new Map(snap.data);
      images.set(name, clone);
    });
  }

  listChildren(parent: ParentRef): Promise<string[]> {
    return this.call('listChildren', [parent], () => {
      const src = this.pools.image('rbd_open', parent.pool, parent.image);
      this.pools.snap(src, 'rbd_open', parent.pool, parent.image, parent.snapshot);
      return this.pools.children(parent).sort();
    });
  }

  flattenImage(pool: string, name: string, options: ProgressOptions = {}): Promise<void> {
    return this.call('flattenImage', [pool, name], () => {
      const img = this.pools.image('rbd_open', pool, name);
      if (!img.parent) throw this.pools.err('EINVAL', { op: 'rbd_flatten', pool, image: name, detail: 'image has no parent' });
      reportObjects(options, img);
      img.parent = null;
      if (img.features.includes('deep-flatten')) for (const snap of img.snapshots.values()) snap.parent = null;
    });
  }

  createGroup(pool: string, group: string): Promise<void> {
    return this.call('createGroup', [pool, group], () => this.groups.create(pool, group));
  }

  removeGroup(pool: string, group: string): Promise<void> {
    return this.call('removeGroup', [pool, group], () => this.groups.remove(pool, group));
  }

  addGroupImage(pool: string, group: string, member: GroupMember): Promise<void> {
    return this.call('addGroupImage', [pool, group, member], () => this.groups.add(pool, group, member));
  }

  listGroupImages(pool: string, group: string): Promise<GroupMember[]> {
    return this.call('listGroupImages', [pool, group], () => this.groups.members(pool, group));
  }

  createGroupSnapshot(pool: string, group: string, snapshot: string): Promise<void> {
    return this.call('createGroupSnapshot', [pool, group, snapshot], () => this.groups.snap(pool, group, snapshot));
  }

  listGroupSnapshots(pool: string, group: string): Promise<GroupSnapshotInfo[]> {
    return this.call('listGroupSnapshots', [pool, group], () => this.groups.snapshots(pool, group));
  }

  removeGroupSnapshot(pool: string, group: string, snapshot: string): Promise<void> {
    return this.call('removeGroupSnapshot', [pool, group, snapshot], () => this.groups.removeSnap(pool, group, snapshot));
  }

  rollbackGroupSnapshot(pool: string, group: string, snapshot: string, options: ProgressOptions = {}): Promise<void> {
    return this.call('rollbackGroupSnapshot', [pool, group, snapshot, options], () => this.groups.rollback(pool, group, snapshot, options));
  }

  listMemberSnapshots(pool: string, image: string): Promise<MemberSnapshotInfo[]> {
    return this.call('listMemberSnapshots', [pool, image], () => {
      this.pools.image('rbd_open', pool, image);
      return this.groups.memberSnapshots({ pool, image });
    });
  }

  copySnapshot(source: SnapshotIdRef, pool: string, name: string, options: CloneImageOptions & ProgressOptions = {}): Promise<void> {
    return this.call('copySnapshot', [source, pool, name, options], () => {
      const src = this.pools.image('rbd_open_read_only', source.pool, source.image);
      const snap =
        [...src.snapshots.values()].find((s) => s.id === source.snapshotId) ?? this.groups.memberSnapshot({ pool: source.pool, image: source.image }, source.snapshotId);
      if (!snap) {
        throw this.pools.err('ENOENT', { op: 'rbd_snap_set_by_id', pool: source.pool, image: source.image, detail: `no snapshot id ${source.snapshotId}` });
      }
      const spec = cloneSpec(options);
      const images = this.pools.pool(pool, name, 'rbd_copy_with_progress4');
      if (spec.dataPool !== null) this.pools.pool(spec.dataPool, name, 'rbd_copy_with_progress4');
      if (images.has(name)) throw this.pools.err('EEXIST', { op: 'rbd_copy_with_progress4', pool, image: name });
      const copy = this.pools.newImage(snap.size, spec.features ?? src.features.filter((f) => f !== 'data-pool'), spec.order ?? src.order, spec.dataPool, null);
      // librbd's copy takes the source's image metadata along, as a clone does.
      copy.metadata = new Map(src.metadata);
      copy.data = new Map(snap.data);
      images.set(name, copy);
      reportObjects(options, copy);
    });
  }

  listWatchers(pool: string, image: string): Promise<Watcher[]> {
    return this.call('listWatchers', [pool, image], () => this.pools.image('rbd_open', pool, image).watchers.map((w) => ({ ...w })));
  }

  addLock(pool: string, image: string, lock: { cookie: string; tag?: string; exclusive: boolean }): Promise<void> {
    return this.call('addLock', [pool, image, lock], () => {
      const { cookie, tag = '', exclusive } = lock;
      const img = this.pools.image('rbd_open', pool, image);
      const op = exclusive ? 'rbd_lock_exclusive' : 'rbd_lock_shared';
      const { holders } = img.locks;
      if (holders.some((h) => h.owner === this.clientName && h.cookie === cookie)) {
        throw this.pools.err('EEXIST', { op, pool, image, detail: 'lock already held by this client' });
      }
      if (holders.length > 0 && (exclusive || img.locks.exclusive || img.locks.tag !== tag)) {
        throw this.pools.err('EBUSY', { op, pool, image, detail: 'lock is held by someone else' });
      }
      img.locks = { exclusive, tag, holders: [...holders, { owner: this.clientName, cookie }] };
    });
  }

  listLocks(pool: string, image: string): Promise<ImageLock[]> {
    return this.call('listLocks', [pool, image], () => {
      const { locks } = this.pools.image('rbd_open', pool, image);
      return locks.holders.map((h) => ({ owner: h.owner, cookie: h.cookie, tag: locks.tag, exclusive: locks.exclusive, address: this.clientAddress }));
    });
  }

  breakLock(pool: string, image: string, lock: { owner: string; cookie: string }): Promise<void> {
    return this.call('breakLock', [pool, image, lock], () => {
      const img = this.pools.image('rbd_open', pool, image);
      const i = img.locks.holders.findIndex((h) => h.owner === lock.owner && h.cookie === lock.cookie);
      if (i < 0) throw this.pools.err('ENOENT', { op: 'rbd_break_lock', pool, image, detail: 'no such lock' });
      img.locks.holders.splice(i, 1);
    });
  }

  blocklistAdd(address: string, seconds: number): Promise<void> {
    return this.call('blocklistAdd', [address, seconds], () => {
      this.blocklist.set(address, Date.now() + seconds * 1000);
    });
  }

  blocklistRemove(address: string): Promise<void> {
    return this.call('blocklistRemove', [address], () => {
      this.blocklist.delete(address);
    });
  }

  getMetadata(pool: string, image: string): Promise<Record<string, string>> {
    return this.call('getMetadata', [pool, image], () => this.pools.metadataOf(pool, image));
  }

  setMetadata(pool: string, image: string, key: string, value: string): Promise<void> {
    return this.call('setMetadata', [pool, image, key, value], () => this.pools.setKey(pool, image, key, value));
  }

  removeMetadata(pool: string, image: string, key: string): Promise<void> {
    return this.call('removeMetadata', [pool, image, key], () => this.pools.removeKey(pool, image, key));
  }

  getQos(pool: string, image: string): Promise<QosLimits> {
    return this.call('getQos', [pool, image], () => qosFromMetadata(this.pools.metadataOf(pool, image)));
  }

  setQos(pool: string, image: string, limits: QosLimits): Promise<void> {
    return this.call('setQos', [pool, image, limits], () =>
      applyQos(
        {
          setMetadata: async (p, i, key, value) => this.pools.setKey(p, i, key, value),
          removeMetadata: async (p, i, key) => this.pools.removeKey(p, i, key),
        },
        pool,
        image,
        limits,
      ),
    );
  }

  clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }> {
    return this.call('clusterInfo', [], () => ({ fsid: this.fsid, monAddresses: [...this.monAddresses] }));
  }

  exportDiff(pool: string, image: string, range: { from: string | null; to: string }, file: string, options: ExportDiffOptions = {}): Promise<DiffExport> {
    return this.call('exportDiff', [pool, image, range, file, options], () => exportMemoryDiff(this.pools, pool, image, range, file, options));
  }

  applyDiff(pool: string, image: string, file: string, options: DiffOptions = {}): Promise<DiffSummary> {
    return this.call('applyDiff', [pool, image, file, options], () =>
      applyMemoryDiff(this.pools, pool, image, file, options, (img, name) => this.snapshotOf(img, name)),
    );
  }

  inspectDiff(file: string): Promise<DiffSummary> {
    return this.call('inspectDiff', [file], () => inspectDiffFile(file));
  }
}

/** A group's "pool/name" key as ImageInfo has it. */
function groupSpec(key: string | null): ImageInfo['group'] {
  if (!key) return null;
  const at = key.indexOf('/');
  return { pool: key.slice(0, at), name: key.slice(at + 1) };
}
