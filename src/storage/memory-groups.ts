// The memory twin's consistency groups (librbd groups): which images each group holds and its
// snapshots, with librbd's refusals (a group or snapshot that exists or does not, an image in
// another group). A group snapshot keeps each member's part (its id, size and contents, as the
// member's group-namespace snapshot in librbd); memory.ts refuses to remove an image that is in a
// group (EMLINK) or has group snapshots (ENOTEMPTY), as librbd does.

import type { BlockMap } from './memory-data.js';
import type { MemoryPools } from './memory-pools.js';
import type { GroupMember, GroupSnapshotInfo, MemberSnapshotInfo, ProgressOptions } from './types.js';

/** A member's part of a group snapshot. */
export interface MemberSnap {
  member: GroupMember;
  id: number;
  size: number;
  createdAt: Date;
  data: BlockMap;
}

interface MemGroup {
  members: GroupMember[];
  /** Snapshot name -> each member's part of it. */
  snapshots: Map<string, MemberSnap[]>;
}

/** Where snapshot ids (shared with the images' own snapshots) and creation times come from. */
export interface SnapClock {
  nextId(): number;
  now(): number;
}

const same = (a: GroupMember, b: GroupMember) => a.pool === b.pool && a.image === b.image;

/** "pool/group" -> [pool, group] (pool names have no "/"). */
function splitKey(key: string): [string, string] {
  const at = key.indexOf('/');
  return [key.slice(0, at), key.slice(at + 1)];
}

export class MemoryGroups {
  private readonly groups = new Map<string, MemGroup>();

  constructor(
    private readonly pools: MemoryPools,
    private readonly clock: SnapClock,
  ) {}

  create(pool: string, group: string): void {
    this.pools.pool(pool, group, 'rbd_group_create');
    if (this.groups.has(`${pool}/${group}`)) throw this.pools.err('EEXIST', { op: 'rbd_group_create', pool, image: group });
    this.groups.set(`${pool}/${group}`, { members: [], snapshots: new Map() });
  }

  remove(pool: string, group: string): void {
    this.group('rbd_group_remove', pool, group);
    this.groups.delete(`${pool}/${group}`);
  }

  add(pool: string, group: string, member: GroupMember): void {
    const g = this.group('rbd_group_image_add', pool, group);
    this.pools.image('rbd_group_image_add', member.pool, member.image);
    const holder = this.groupOf(member);
    if (holder === `${pool}/${group}`) return;
    if (holder) throw this.pools.err('EEXIST', { op: 'rbd_group_image_add', pool: member.pool, image: member.image, detail: `image is in group ${holder}` });
    g.members.push({ ...member });
  }

  members(pool: string, group: string): GroupMember[] {
    return this.group('rbd_group_image_list', pool, group).members.map((m) => ({ ...m }));
  }

  snap(pool: string, group: string, snapshot: string): void {
    const g = this.group('rbd_group_snap_create', pool, group);
    if (g.snapshots.has(snapshot)) throw this.pools.err('EEXIST', { op: 'rbd_group_snap_create', pool, image: group, snapshot });
    const createdAt = new Date(Math.floor(this.clock.now() / 1000) * 1000);
    g.snapshots.set(
      snapshot,
      g.members.map((m) => {
        const img = this.pools.image('rbd_group_snap_create', m.pool, m.image);
        return { member: { ...m }, id: this.clock.nextId(), size: img.size, createdAt, data: new Map(img.data) };
      }),
    );
  }

  /** Every member's head back to its part of the snapshot; progress: members done of the members. */
  rollback(pool: string, group: string, snapshot: string, options: ProgressOptions = {}): void {
    const parts = this.group('rbd_group_snap_rollback', pool, group).snapshots.get(snapshot);
    if (!parts) throw this.pools.err('ENOENT', { op: 'rbd_group_snap_rollback', pool, image: group, snapshot });
    options.onProgress?.(0, parts.length);
    for (const [i, part] of parts.entries()) {
      const img = this.pools.image('rbd_group_snap_rollback', part.member.pool, part.member.image);
      img.size = part.size;
      img.data = new Map(part.data);
      options.onProgress?.(i + 1, parts.length);
    }
  }

  /** The image's parts of group snapshots, by id. */
  memberSnapshots(image: GroupMember): MemberSnapshotInfo[] {
    const out: MemberSnapshotInfo[] = [];
    for (const [key, g] of this.groups) {
      const [pool, group] = splitKey(key);
      for (const [snapshot, parts] of g.snapshots) {
        const part = parts.find((p) => same(p.member, image));
        if (part) out.push({ id: part.id, size: part.size, createdAt: new Date(part.createdAt), group: { pool, group, snapshot } });
      }
    }
    return out.sort((a, b) => a.id - b.id);
  }

  /** The image's part of a group snapshot with that id, or undefined. */
  memberSnapshot(image: GroupMember, id: number): MemberSnap | undefined {
    for (const g of this.groups.values()) for (const parts of g.snapshots.values()) for (const p of parts) if (p.id === id && same(p.member, image)) return p;
    return undefined;
  }

  snapshots(pool: string, group: string): GroupSnapshotInfo[] {
    return [...this.group('rbd_group_snap_list', pool, group).snapshots.keys()].map((name) => ({ name, complete: true }));
  }

  removeSnap(pool: string, group: string, snapshot: string): void {
    const g = this.group('rbd_group_snap_remove', pool, group);
    if (!g.snapshots.delete(snapshot)) throw this.pools.err('ENOENT', { op: 'rbd_group_snap_remove', pool, image: group, snapshot });
  }

  /** "pool/group" of the group `image` is in, or null. */
  groupOf(image: GroupMember): string | null {
    for (const [key, g] of this.groups) if (g.members.some((m) => same(m, image))) return key;
    return null;
  }

  /** How many group snapshots were taken of `image` (it cannot be removed while there are any). */
  snapshotsOf(image: GroupMember): number {
    let n = 0;
    for (const g of this.groups.values()) for (const parts of g.snapshots.values()) if (parts.some((p) => same(p.member, image))) n++;
    return n;
  }

  private group(op: string, pool: string, group: string): MemGroup {
    this.pools.pool(pool, group, op);
    const g = this.groups.get(`${pool}/${group}`);
    if (!g) throw this.pools.err('ENOENT', { op, pool, image: group, detail: `group ${pool}/${group} does not exist` });
    return g;
  }
}
