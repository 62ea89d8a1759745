// The memory twin's cluster: pools of images with their snapshots, clones, metadata, watchers and
// locks, and the lookups that fail as librbd does (ENOENT naming the missing pool, image or
// snapshot). memory.ts puts the Storage calls on top of it.

import { RbdError, type RbdErrorFields } from './errors.js';
import type { BlockMap } from './memory-data.js';
import type { ImageFeature, ParentRef, QosLimits, Watcher } from './types.js';
import { qosFromMetadata } from './validate.js';

const ERRNO = { ENOENT: 2, EBUSY: 16, EEXIST: 17, EINVAL: 22, EMLINK: 31, ENOTEMPTY: 39, ECANCELED: 125 } as const;

export type ErrnoName = keyof typeof ERRNO;

export interface MemSnapshot {
  id: number;
  size: number;
  protected: boolean;
  createdAt: Date;
  /** The image's parent when the snapshot was taken. */
  parent: ParentRef | null;
  /** The image's contents then (memory-data.ts). */
  data: BlockMap;
}

export interface MemImage {
  size: number;
  order: number;
  features: ImageFeature[];
  dataPool: string | null;
  parent: ParentRef | null;
  snapshots: Map<string, MemSnapshot>;
  /** Snapshots in the trash namespace (a removal that died): counted, not listed, removed with the image. */
  trashed: number;
  metadata: Map<string, string>;
  watchers: Watcher[];
  locks: { exclusive: boolean; tag: string; holders: { owner: string; cookie: string }[] };
  /** The head's contents (memory-data.ts). */
  data: BlockMap;
}

/** An image as a test sees it: a copy, changing it changes nothing. */
export interface MemoryImage {
  size: number;
  features: ImageFeature[];
  parent: ParentRef | null;
  /** Snapshot names, oldest first. */
  snapshots: string[];
  metadata: Record<string, string>;
  /** The QoS limits its metadata sets (as getQos() reads them). */
  qos: QosLimits;
  watchers: Watcher[];
}

export class MemoryPools {
  private readonly pools = new Map<string, Map<string, MemImage>>();

  constructor(names: readonly string[]) {
    for (const name of names) this.create(name);
  }

  get size(): number {
    return this.pools.size;
  }

  create(name: string): void {
    if (!this.pools.has(name)) this.pools.set(name, new Map());
  }

  /** Forgets every image; the pools stay. */
  dropImages(): void {
    for (const images of this.pools.values()) images.clear();
  }

  newImage(size: number, features: ImageFeature[], order: number, dataPool: string | null, parent: ParentRef | null): MemImage {
    return {
      size,
      order,
      features,
      dataPool,
      parent,
      snapshots: new Map(),
      trashed: 0,
      metadata: new Map(),
      watchers: [],
      locks: { exclusive: false, tag: '', holders: [] },
      data: new Map(),
    };
  }

  err(code: ErrnoName, fields: Omit<RbdErrorFields, 'errno'>): RbdError {
    return new RbdError({ errno: -ERRNO[code], ...fields });
  }

  /** The images of a pool (ENOENT from `op` when there is no such pool). */
  pool(pool: string, image?: string, op = 'rados_ioctx_create'): Map<string, MemImage> {
    const images = this.pools.get(pool);
    if (!images) throw this.err('ENOENT', { op, pool, image, detail: `pool ${pool} does not exist` });
    return images;
  }

  image(op: string, pool: string, name: string): MemImage {
    const img = this.pool(pool, name).get(name);
    if (!img) throw this.err('ENOENT', { op, pool, image: name });
    return img;
  }

  snap(img: MemImage, op: string, pool: string, image: string, snapshot: string): MemSnapshot {
    const snap = img.snapshots.get(snapshot);
    if (!snap) throw this.err('ENOENT', { op, pool, image, snapshot });
    return snap;
  }

  metadataOf(pool: string, image: string): Record<string, string> {
    const img = this.image('rbd_open', pool, image);
    return Object.fromEntries([...img.metadata.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  setKey(pool: string, image: string, key: string, value: string): void {
    const img = this.image('rbd_open', pool, image);
    // librbd checks conf_* keys against its config schema; the QoS ones take unsigned integers.
    if (key.startsWith('conf_rbd_qos_') && !/^\d+$/.test(value)) {
      throw this.err('EINVAL', { op: 'rbd_metadata_set', pool, image, detail: `invalid value for ${key}` });
    }
    img.metadata.set(key, value);
  }

  removeKey(pool: string, image: string, key: string): void {
    const img = this.image('rbd_open', pool, image);
    if (!img.metadata.delete(key)) throw this.err('ENOENT', { op: 'rbd_metadata_remove', pool, image, detail: `no key ${key}` });
  }

  /** The parent of every clone and of every snapshot taken of a clone (the objects themselves). */
  everyParent(): ParentRef[] {
    const out: ParentRef[] = [];
    for (const images of this.pools.values()) {
      for (const img of images.values()) {
        if (img.parent) out.push(img.parent);
        for (const snap of img.snapshots.values()) if (snap.parent) out.push(snap.parent);
      }
    }
    return out;
  }

  /** "pool/name" of the images whose head or one of whose snapshots has `p` as parent. */
  children(p: ParentRef): string[] {
    const same = (q: ParentRef | null) => q !== null && q.pool === p.pool && q.image === p.image && q.snapshot === p.snapshot;
    const out: string[] = [];
    for (const [pool, images] of this.pools) {
      for (const [name, img] of images) {
        if (same(img.parent) || [...img.snapshots.values()].some((s) => same(s.parent))) out.push(`${pool}/${name}`);
      }
    }
    return out;
  }

  /** Every image, by "pool/name", as tests see them. */
  view(): Map<string, MemoryImage> {
    const out = new Map<string, MemoryImage>();
    for (const [pool, images] of this.pools) {
      for (const [name, img] of images) {
        const metadata = Object.fromEntries(img.metadata);
        out.set(`${pool}/${name}`, {
          size: img.size,
          features: [...img.features],
          parent: img.parent ? { ...img.parent } : null,
          snapshots: [...img.snapshots.keys()],
          metadata,
          qos: qosFromMetadata(metadata),
          watchers: img.watchers.map((w) => ({ ...w })),
        });
      }
    }
    return out;
  }
}
