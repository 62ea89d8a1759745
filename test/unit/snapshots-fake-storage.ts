// A small in-memory Storage for the unit tests of src/snapshots and src/supervisor: images with
// snapshots, protection, clones and watchers, plus a call log and failure injection (which
// src/storage/memory.ts does not have). Only what those layers use is modelled; the rest throws.
// Like librbd without deep-flatten, a snapshot of a clone keeps the clone's parent: flattening the
// clone does not detach it, and the clone stays a child of the parent snapshot until it is removed.

import type { ImageInfo, ParentRef, SnapshotInfo, Storage, Watcher } from '../../src/storage/types.js';
import { RbdError } from '../../src/storage/errors.js';

interface Image {
  size: number;
  snapshots: Map<string, { id: number; size: number; protected: boolean; createdAt: Date; parent: ParentRef | null }>;
  parent: ParentRef | null;
  metadata: Map<string, string>;
  watchers: Watcher[];
}

const errnos: Record<string, number> = { ENOENT: 2, EEXIST: 17, EBUSY: 16, EINVAL: 22, ENOTEMPTY: 39, EIO: 5, ETIMEDOUT: 110 };

export class FakeStorage implements Storage {
  readonly kind = 'memory' as const;
  readonly images = new Map<string, Image>();
  readonly calls: string[] = [];
  private nextId = 1;
  private failures: Array<{ op: string; code: string }> = [];
  /** Called with the time a snapshot is created (tests pass their clock). */
  now: () => number = () => Date.now();

  /** The next call of `op` fails with `code`. */
  failNext(op: string, code: string): void {
    this.failures.push({ op, code });
  }

  private enter(op: string, pool: string, image?: string, snapshot?: string): void {
    this.calls.push([op, pool, image, snapshot].filter(Boolean).join(' '));
    const i = this.failures.findIndex((f) => f.op === op);
    if (i >= 0) {
      const [f] = this.failures.splice(i, 1);
      throw this.err(f!.code, op, pool, image, snapshot);
    }
  }

  private err(code: string, op: string, pool?: string, image?: string, snapshot?: string): RbdError {
    return new RbdError({ errno: -(errnos[code] ?? 5), op, pool, image, snapshot });
  }

  private image(op: string, pool: string, name: string): Image {
    const img = this.images.get(`${pool}/${name}`);
    if (!img) throw this.err('ENOENT', op, pool, name);
    return img;
  }

  snapshotNames(pool: string, name: string): string[] {
    return [...(this.images.get(`${pool}/${name}`)?.snapshots.keys() ?? [])];
  }

  async close(): Promise<void> {}
  stats() {
    return { pending: 0, openImages: 0, pools: 0 };
  }

  async createImage(pool: string, name: string, options: { size: number }): Promise<void> {
    this.enter('createImage', pool, name);
    if (this.images.has(`${pool}/${name}`)) throw this.err('EEXIST', 'rbd_create', pool, name);
    this.images.set(`${pool}/${name}`, { size: options.size, snapshots: new Map(), parent: null, metadata: new Map(), watchers: [] });
  }

  async removeImage(pool: string, name: string): Promise<void> {
    this.enter('removeImage', pool, name);
    const img = this.image('rbd_remove', pool, name);
    if (img.watchers.length > 0) throw this.err('EBUSY', 'rbd_remove', pool, name);
    if (img.snapshots.size > 0) throw this.err('ENOTEMPTY', 'rbd_remove', pool, name);
    this.images.delete(`${pool}/${name}`);
  }

  async imageInfo(pool: string, name: string): Promise<ImageInfo> {
    this.enter('imageInfo', pool, name);
    const img = this.image('rbd_stat', pool, name);
    return { pool, name, size: img.size, order: 22, objectSize: 4 << 20, features: ['layering', 'exclusive-lock'], parent: img.parent, snapshotCount: img.snapshots.size };
  }

  async listImages(pool: string): Promise<string[]> {
    return [...this.images.keys()].filter((k) => k.startsWith(`${pool}/`)).map((k) => k.slice(pool.length + 1));
  }

  async imageExists(pool: string, name: string): Promise<boolean> {
    this.enter('imageExists', pool, name);
    return this.images.has(`${pool}/${name}`);
  }

  async createSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('createSnapshot', pool, image, snapshot);
    const img = this.image('rbd_snap_create', pool, image);
    if (img.snapshots.has(snapshot)) throw this.err('EEXIST', 'rbd_snap_create', pool, image, snapshot);
    img.snapshots.set(snapshot, { id: this.nextId++, size: img.size, protected: false, createdAt: new Date(this.now()), parent: img.parent });
  }

  async listSnapshots(pool: string, image: string): Promise<SnapshotInfo[]> {
    this.enter('listSnapshots', pool, image);
    const img = this.image('rbd_snap_list', pool, image);
    return [...img.snapshots.entries()].map(([name, s]) => ({ name, id: s.id, size: s.size, protected: s.protected, createdAt: s.createdAt }));
  }

  private snap(op: string, pool: string, image: string, snapshot: string) {
    const s = this.image(op, pool, image).snapshots.get(snapshot);
    if (!s) throw this.err('ENOENT', op, pool, image, snapshot);
    return s;
  }

  async removeSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('removeSnapshot', pool, image, snapshot);
    const s = this.snap('rbd_snap_remove', pool, image, snapshot);
    if (s.protected) throw this.err('EBUSY', 'rbd_snap_remove', pool, image, snapshot);
    this.image('rbd_snap_remove', pool, image).snapshots.delete(snapshot);
  }

  async rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('rollbackSnapshot', pool, image, snapshot);
    this.snap('rbd_snap_rollback', pool, image, snapshot);
  }

  async protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('protectSnapshot', pool, image, snapshot);
    const s = this.snap('rbd_snap_protect', pool, image, snapshot);
    if (s.protected) throw this.err('EBUSY', 'rbd_snap_protect', pool, image, snapshot);
    s.protected = true;
  }

  async unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    this.enter('unprotectSnapshot', pool, image, snapshot);
    const s = this.snap('rbd_snap_unprotect', pool, image, snapshot);
    if (!s.protected) throw this.err('EINVAL', 'rbd_snap_unprotect', pool, image, snapshot);
    if ((await this.listChildren({ pool, image, snapshot })).length > 0) throw this.err('EBUSY', 'rbd_snap_unprotect', pool, image, snapshot);
    s.protected = false;
  }

  async cloneSnapshot(parent: ParentRef, pool: string, name: string): Promise<void> {
    this.enter('cloneSnapshot', pool, name);
    const s = this.snap('rbd_clone', parent.pool, parent.image, parent.snapshot);
    if (!s.protected) throw this.err('EINVAL', 'rbd_clone', parent.pool, parent.image, parent.snapshot);
    if (this.images.has(`${pool}/${name}`)) throw this.err('EEXIST', 'rbd_clone', pool, name);
    const meta = new Map(this.image('rbd_clone', parent.pool, parent.image).metadata);
    this.images.set(`${pool}/${name}`, { size: s.size, snapshots: new Map(), parent: { ...parent }, metadata: meta, watchers: [] });
  }

  async listChildren(parent: ParentRef): Promise<string[]> {
    this.calls.push(`listChildren ${parent.pool} ${parent.image} ${parent.snapshot}`);
    const same = (p: ParentRef | null) => p !== null && p.pool === parent.pool && p.image === parent.image && p.snapshot === parent.snapshot;
    return [...this.images.entries()]
      .filter(([, img]) => same(img.parent) || [...img.snapshots.values()].some((s) => same(s.parent)))
      .map(([k]) => k);
  }

  async flattenImage(pool: string, name: string): Promise<void> {
    this.enter('flattenImage', pool, name);
    const img = this.image('rbd_flatten', pool, name);
    if (!img.parent) throw this.err('EINVAL', 'rbd_flatten', pool, name);
    img.parent = null;
  }

  async listWatchers(pool: string, image: string): Promise<Watcher[]> {
    this.enter('listWatchers', pool, image);
    return [...this.image('rbd_watchers', pool, image).watchers];
  }

  async getMetadata(pool: string, image: string): Promise<Record<string, string>> {
    return Object.fromEntries(this.image('rbd_metadata_list', pool, image).metadata);
  }
  async setMetadata(pool: string, image: string, key: string, value: string): Promise<void> {
    this.image('rbd_metadata_set', pool, image).metadata.set(key, value);
  }
  async removeMetadata(pool: string, image: string, key: string): Promise<void> {
    this.image('rbd_metadata_remove', pool, image).metadata.delete(key);
  }

  private unsupported(op: string): never {
    throw new Error(`FakeStorage does not model ${op}`);
  }
  async resizeImage(): Promise<void> {
    this.unsupported('resizeImage');
  }
  async renameImage(): Promise<void> {
    this.unsupported('renameImage');
  }
  async addLock(): Promise<void> {
    this.unsupported('addLock');
  }
  async listLocks(): Promise<never[]> {
    this.unsupported('listLocks');
  }
  async breakLock(): Promise<void> {
    this.unsupported('breakLock');
  }
  async blocklistAdd(): Promise<void> {
    this.unsupported('blocklistAdd');
  }
  async blocklistRemove(): Promise<void> {
    this.unsupported('blocklistRemove');
  }
  async getQos(): Promise<Record<string, number>> {
    return {};
  }
  async setQos(): Promise<void> {}
  async clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }> {
    return { fsid: 'fake', monAddresses: [] };
  }
}
