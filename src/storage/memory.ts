// An in-memory Storage for the unit tests of the layers above (master, plugin, supervisor). It
// keeps the contract's rules — the same validation, the same RbdError codes for the same mistakes —
// but no Ceph: integration tests always run the real backends. Tests can add watchers and pools,
// which only a real cluster would otherwise produce.

import { RbdError, type RbdErrorFields } from './errors.js';
import type {
  ClusterConfig,
  CreateImageOptions,
  ImageFeature,
  ImageInfo,
  ImageLock,
  ParentRef,
  QosLimits,
  SnapshotInfo,
  Storage,
  StorageStats,
  Watcher,
} from './types.js';
import {
  DEFAULT_ORDER,
  applyQos,
  checkAddress,
  checkBoolean,
  checkCreateOptions,
  checkImageOptions,
  checkLock,
  checkName,
  checkParent,
  checkQos,
  checkSize,
  checkText,
  closedError,
  qosFromMetadata,
} from './validate.js';

const ERRNO = { ENOENT: 2, EBUSY: 16, EEXIST: 17, EINVAL: 22, ENOTEMPTY: 39 } as const;

interface MemSnapshot {
  id: number;
  size: number;
  protected: boolean;
  createdAt: Date;
}

interface MemImage {
  size: number;
  order: number;
  features: ImageFeature[];
  dataPool: string | null;
  parent: ParentRef | null;
  snapshots: Map<string, MemSnapshot>;
  metadata: Map<string, string>;
  watchers: Watcher[];
  locks: { exclusive: boolean; tag: string; holders: { owner: string; cookie: string }[] };
}

export interface MemoryStorageOptions {
  /** Pools that exist at start (default: ["rbd"]). */
  pools?: string[];
  /** The fsid and mon addresses clusterInfo() returns. */
  fsid?: string;
  monAddresses?: string[];
}

export class MemoryStorage implements Storage {
  readonly kind = 'memory' as const;
  /** The address this fake client has, as lock owners and watchers would show it. */
  readonly clientAddress = '127.0.0.1:0/1';
  readonly clientName = 'client.1';
  /** Addresses blocklisted and until when (ms since the epoch). */
  readonly blocklist = new Map<string, number>();

  private readonly pools = new Map<string, Map<string, MemImage>>();
  private readonly fsid: string;
  private readonly monAddresses: string[];
  private nextSnapId = 1;
  private closed = false;

  constructor(_config: ClusterConfig = {}, options: MemoryStorageOptions = {}) {
    for (const pool of options.pools ?? ['rbd']) this.pools.set(pool, new Map());
    this.fsid = options.fsid ?? '00000000-0000-4000-8000-000000000000';
    this.monAddresses = options.monAddresses ?? ['127.0.0.1:6789'];
  }

  // --- test helpers (not part of Storage) ---

  createPool(name: string): void {
    if (!this.pools.has(name)) this.pools.set(name, new Map());
  }

  /** Simulates a client (rbd-fuse, krbd) having the image open. */
  addWatcher(pool: string, image: string, watcher: Watcher): void {
    this.image('addWatcher', pool, image).watchers.push({ ...watcher });
  }

  removeWatcher(pool: string, image: string, address: string): void {
    const img = this.image('removeWatcher', pool, image);
    img.watchers = img.watchers.filter((w) => w.address !== address);
  }

  // --- Storage ---

  async close(): Promise<void> {
    this.closed = true;
  }

  stats(): StorageStats {
    return { pending: 0, openImages: 0, pools: this.closed ? 0 : this.pools.size };
  }

  async createImage(pool: string, name: string, options: CreateImageOptions): Promise<void> {
    this.enter('createImage');
    checkName('pool', pool);
    checkName('name', name);
    const opts = checkCreateOptions(options);
    const images = this.pool(pool, name);
    if (opts.dataPool !== null) this.pool(opts.dataPool, name, 'rbd_create4');
    if (images.has(name)) throw this.err('EEXIST', { op: 'rbd_create4', pool, image: name });
    images.set(name, this.newImage(opts.size, opts.features, opts.order, opts.dataPool, null));
  }

  async removeImage(pool: string, name: string): Promise<void> {
    this.enter('removeImage');
    checkName('pool', pool);
    checkName('name', name);
    const img = this.image('rbd_remove', pool, name);
    if (img.watchers.length > 0) {
      throw this.err('EBUSY', { op: 'rbd_remove', pool, image: name, detail: 'image has watchers' });
    }
    if (img.locks.holders.length > 0) {
      throw this.err('EBUSY', { op: 'rbd_remove', pool, image: name, detail: 'image has advisory locks' });
    }
    if (img.snapshots.size > 0) {
      throw this.err('ENOTEMPTY', { op: 'rbd_remove', pool, image: name, detail: 'image has snapshots' });
    }
    for (const images of this.pools.values()) {
      for (const other of images.values()) {
        if (other.parent?.pool === pool && other.parent.image === name) {
          throw this.err('EBUSY', { op: 'rbd_remove', pool, image: name, detail: 'image has clones' });
        }
      }
    }
    this.pool(pool, name).delete(name);
  }

  async resizeImage(pool: string, name: string, size: number, options: { allowShrink?: boolean } = {}): Promise<void> {
    this.enter('resizeImage');
    checkName('pool', pool);
    checkName('name', name);
    checkSize('size', size);
    const allowShrink = options.allowShrink === undefined ? false : checkBoolean('options.allowShrink', options.allowShrink);
    const img = this.image('rbd_open', pool, name);
    if (size < img.size && !allowShrink) {
      throw this.err('EINVAL', { op: 'rbd_resize2', pool, image: name, detail: 'shrinking needs allowShrink' });
    }
    img.size = size;
  }

  async renameImage(pool: string, from: string, to: string): Promise<void> {
    this.enter('renameImage');
    checkName('pool', pool);
    checkName('from', from);
    checkName('to', to);
    const images = this.pool(pool, from);
    const img = images.get(from);
    if (!img) throw this.err('ENOENT', { op: 'rbd_rename', pool, image: from });
    if (images.has(to)) throw this.err('EEXIST', { op: 'rbd_rename', pool, image: to });
    images.delete(from);
    images.set(to, img);
    for (const imgs of this.pools.values()) {
      for (const other of imgs.values()) {
        if (other.parent?.pool === pool && other.parent.image === from) other.parent = { ...other.parent, image: to };
      }
    }
  }

  async imageInfo(pool: string, name: string): Promise<ImageInfo> {
    this.enter('imageInfo');
    checkName('pool', pool);
    checkName('name', name);
    const img = this.image('rbd_open', pool, name);
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
      snapshotCount: img.snapshots.size,
    };
  }

  async listImages(pool: string): Promise<string[]> {
    this.enter('listImages');
    checkName('pool', pool);
    return [...this.pool(pool).keys()].sort();
  }

  async imageExists(pool: string, name: string): Promise<boolean> {
    this.enter('imageExists');
    checkName('pool', pool);
    checkName('name', name);
    return this.pool(pool, name).has(name);
  }

  async createSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('createSnapshot');
    this.checkSnapArgs(pool, image, snapshot);
    const img = this.image('rbd_open', pool, image);
    if (img.snapshots.has(snapshot)) throw this.err('EEXIST', { op: 'rbd_snap_create', pool, image, snapshot });
    img.snapshots.set(snapshot, {
      id: this.nextSnapId++,
      size: img.size,
      protected: false,
      createdAt: new Date(Math.floor(Date.now() / 1000) * 1000),
    });
  }

  async listSnapshots(pool: string, image: string): Promise<SnapshotInfo[]> {
    this.enter('listSnapshots');
    checkName('pool', pool);
    checkName('image', image);
    const img = this.image('rbd_open', pool, image);
    return [...img.snapshots.entries()]
      .map(([name, s]) => ({ id: s.id, name, size: s.size, protected: s.protected, createdAt: new Date(s.createdAt) }))
      .sort((a, b) => a.id - b.id);
  }

  async removeSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('removeSnapshot');
    this.checkSnapArgs(pool, image, snapshot);
    const img = this.image('rbd_open', pool, image);
    const snap = this.snap(img, 'rbd_snap_remove', pool, image, snapshot);
    if (snap.protected) throw this.err('EBUSY', { op: 'rbd_snap_remove', pool, image, snapshot, detail: 'snapshot is protected' });
    img.snapshots.delete(snapshot);
  }

  async rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('rollbackSnapshot');
    this.checkSnapArgs(pool, image, snapshot);
    const img = this.image('rbd_open', pool, image);
    const snap = this.snap(img, 'rbd_snap_rollback', pool, image, snapshot);
    img.size = snap.size;
  }

  async protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('protectSnapshot');
    this.checkSnapArgs(pool, image, snapshot);
    const img = this.image('rbd_open', pool, image);
    const snap = this.snap(img, 'rbd_snap_protect', pool, image, snapshot);
    if (snap.protected) throw this.err('EBUSY', { op: 'rbd_snap_protect', pool, image, snapshot, detail: 'already protected' });
    snap.protected = true;
  }

  async unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('unprotectSnapshot');
    this.checkSnapArgs(pool, image, snapshot);
    const img = this.image('rbd_open', pool, image);
    const snap = this.snap(img, 'rbd_snap_unprotect', pool, image, snapshot);
    if (!snap.protected) throw this.err('EINVAL', { op: 'rbd_snap_unprotect', pool, image, snapshot, detail: 'not protected' });
    if (this.children({ pool, image, snapshot }).length > 0) {
      throw this.err('EBUSY', { op: 'rbd_snap_unprotect', pool, image, snapshot, detail: 'snapshot has clones' });
    }
    snap.protected = false;
  }

  async cloneSnapshot(parent: ParentRef, pool: string, name: string, options?: Omit<CreateImageOptions, 'size'>): Promise<void> {
    this.enter('cloneSnapshot');
    const p = checkParent(parent);
    checkName('pool', pool);
    checkName('name', name);
    const opts = checkImageOptions(options, { features: null });
    const src = this.image('rbd_open', p.pool, p.image);
    const snap = this.snap(src, 'rbd_clone3', p.pool, p.image, p.snapshot);
    if (!snap.protected) {
      throw this.err('EINVAL', { op: 'rbd_clone3', pool: p.pool, image: p.image, snapshot: p.snapshot, detail: 'parent snapshot must be protected' });
    }
    const images = this.pool(pool, name, 'rbd_clone3');
    if (opts.dataPool !== null) this.pool(opts.dataPool, name, 'rbd_clone3');
    if (images.has(name)) throw this.err('EEXIST', { op: 'rbd_clone3', pool, image: name });
    const features = opts.features ?? src.features.filter((f) => f !== 'data-pool');
    images.set(name, this.newImage(snap.size, features, opts.order ?? src.order, opts.dataPool, { ...p }));
  }

  async listChildren(parent: ParentRef): Promise<string[]> {
    this.enter('listChildren');
    const p = checkParent(parent);
    const src = this.image('rbd_open', p.pool, p.image);
    this.snap(src, 'rbd_open', p.pool, p.image, p.snapshot);
    return this.children(p).sort();
  }

  async flattenImage(pool: string, name: string): Promise<void> {
    this.enter('flattenImage');
    checkName('pool', pool);
    checkName('name', name);
    const img = this.image('rbd_open', pool, name);
    if (!img.parent) throw this.err('EINVAL', { op: 'rbd_flatten', pool, image: name, detail: 'image has no parent' });
    img.parent = null;
  }

  async listWatchers(pool: string, image: string): Promise<Watcher[]> {
    this.enter('listWatchers');
    checkName('pool', pool);
    checkName('image', image);
    return this.image('rbd_open', pool, image).watchers.map((w) => ({ ...w }));
  }

  async addLock(pool: string, image: string, lock: { cookie: string; tag?: string; exclusive: boolean }): Promise<void> {
    this.enter('addLock');
    checkName('pool', pool);
    checkName('image', image);
    const { cookie, tag, exclusive } = checkLock(lock);
    const img = this.image('rbd_open', pool, image);
    const op = exclusive ? 'rbd_lock_exclusive' : 'rbd_lock_shared';
    const { holders } = img.locks;
    if (holders.some((h) => h.owner === this.clientName && h.cookie === cookie)) {
      throw this.err('EEXIST', { op, pool, image, detail: 'lock already held by this client' });
    }
    if (holders.length > 0 && (exclusive || img.locks.exclusive || img.locks.tag !== tag)) {
      throw this.err('EBUSY', { op, pool, image, detail: 'lock is held by someone else' });
    }
    img.locks = { exclusive, tag, holders: [...holders, { owner: this.clientName, cookie }] };
  }

  async listLocks(pool: string, image: string): Promise<ImageLock[]> {
    this.enter('listLocks');
    checkName('pool', pool);
    checkName('image', image);
    const { locks } = this.image('rbd_open', pool, image);
    return locks.holders.map((h) => ({ owner: h.owner, cookie: h.cookie, tag: locks.tag, exclusive: locks.exclusive, address: this.clientAddress }));
  }

  async breakLock(pool: string, image: string, lock: { owner: string; cookie: string }): Promise<void> {
    this.enter('breakLock');
    checkName('pool', pool);
    checkName('image', image);
    const owner = checkText('lock.owner', lock.owner);
    const cookie = checkText('lock.cookie', lock.cookie);
    const img = this.image('rbd_open', pool, image);
    const i = img.locks.holders.findIndex((h) => h.owner === owner && h.cookie === cookie);
    if (i < 0) throw this.err('ENOENT', { op: 'rbd_break_lock', pool, image, detail: 'no such lock' });
    img.locks.holders.splice(i, 1);
  }

  async blocklistAdd(address: string, seconds: number): Promise<void> {
    this.enter('blocklistAdd');
    checkAddress('address', address);
    checkSize('seconds', seconds, { min: 1 });
    this.blocklist.set(address, Date.now() + seconds * 1000);
  }

  async blocklistRemove(address: string): Promise<void> {
    this.enter('blocklistRemove');
    checkAddress('address', address);
    this.blocklist.delete(address);
  }

  async getMetadata(pool: string, image: string): Promise<Record<string, string>> {
    this.enter('getMetadata');
    checkName('pool', pool);
    checkName('image', image);
    const img = this.image('rbd_open', pool, image);
    return Object.fromEntries([...img.metadata.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async setMetadata(pool: string, image: string, key: string, value: string): Promise<void> {
    this.enter('setMetadata');
    checkName('pool', pool);
    checkName('image', image);
    checkText('key', key);
    checkText('value', value);
    const img = this.image('rbd_open', pool, image);
    // librbd checks conf_* keys against its config schema; the QoS ones take unsigned integers.
    if (key.startsWith('conf_rbd_qos_') && !/^\d+$/.test(value)) {
      throw this.err('EINVAL', { op: 'rbd_metadata_set', pool, image, detail: `invalid value for ${key}` });
    }
    img.metadata.set(key, value);
  }

  async removeMetadata(pool: string, image: string, key: string): Promise<void> {
    this.enter('removeMetadata');
    checkName('pool', pool);
    checkName('image', image);
    checkText('key', key);
    const img = this.image('rbd_open', pool, image);
    if (!img.metadata.delete(key)) throw this.err('ENOENT', { op: 'rbd_metadata_remove', pool, image, detail: `no key ${key}` });
  }

  async getQos(pool: string, image: string): Promise<QosLimits> {
    return qosFromMetadata(await this.getMetadata(pool, image));
  }

  async setQos(pool: string, image: string, limits: QosLimits): Promise<void> {
    this.enter('setQos');
    checkName('pool', pool);
    checkName('image', image);
    await applyQos(this, pool, image, checkQos(limits));
  }

  async clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }> {
    this.enter('clusterInfo');
    return { fsid: this.fsid, monAddresses: [...this.monAddresses] };
  }

  // --- internals ---

  private enter(op: string): void {
    if (this.closed) throw closedError(op);
  }

  private checkSnapArgs(pool: string, image: string, snapshot: string): void {
    checkName('pool', pool);
    checkName('image', image);
    checkName('snapshot', snapshot);
  }

  private newImage(size: number, features: ImageFeature[], order: number | null, dataPool: string | null, parent: ParentRef | null): MemImage {
    return {
      size,
      order: order ?? DEFAULT_ORDER,
      features,
      dataPool,
      parent,
      snapshots: new Map(),
      metadata: new Map(),
      watchers: [],
      locks: { exclusive: false, tag: '', holders: [] },
    };
  }

  private err(code: keyof typeof ERRNO, fields: Omit<RbdErrorFields, 'errno'>): RbdError {
    return new RbdError({ errno: -ERRNO[code], ...fields });
  }

  private pool(pool: string, image?: string, op = 'rados_ioctx_create'): Map<string, MemImage> {
    const images = this.pools.get(pool);
    if (!images) throw this.err('ENOENT', { op, pool, image, detail: `pool ${pool} does not exist` });
    return images;
  }

  private image(op: string, pool: string, name: string): MemImage {
    const img = this.pool(pool, name).get(name);
    if (!img) throw this.err('ENOENT', { op, pool, image: name });
    return img;
  }

  private snap(img: MemImage, op: string, pool: string, image: string, snapshot: string): MemSnapshot {
    const snap = img.snapshots.get(snapshot);
    if (!snap) throw this.err('ENOENT', { op, pool, image, snapshot });
    return snap;
  }

  private children(p: ParentRef): string[] {
    const out: string[] = [];
    for (const [pool, images] of this.pools) {
      for (const [name, img] of images) {
        if (img.parent?.pool === p.pool && img.parent.image === p.image && img.parent.snapshot === p.snapshot) out.push(`${pool}/${name}`);
      }
    }
    return out;
  }
}
