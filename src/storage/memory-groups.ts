// The memory twin's consistency groups (librbd groups): which images each group holds and its
// snapshots, with librbd's refusals (a group or snapshot that exists or does not, an image in
// another group). A group snapshot keeps the members it was taken of; memory.ts refuses to remove
// an image that is in a group (EMLINK) or has group snapshots (ENOTEMPTY), as librbd does.

import type { MemoryPools } from './memory-pools.js';
import type { GroupMember, GroupSnapshotInfo } from './types.js';

interface MemGroup {
  members: GroupMember[];
  /** Snapshot name -> the members it was taken of. */
  snapshots: Map<string, GroupMember[]>;
}

const same = (a: GroupMember, b: GroupMember) => a.pool === b.pool && a.image === b.image;

export class MemoryGroups {
  private readonly groups = new Map<string, MemGroup>();

  constructor(private readonly pools: MemoryPools) {}

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
    g.snapshots.set(snapshot, g.members.map((m) => ({ ...m })));
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
    for (const g of this.groups.values()) for (const members of g.snapshots.values()) if (members.some((m) => same(m, image))) n++;
    return n;
  }

  private group(op: string, pool: string, group: string): MemGroup {
    this.pools.pool(pool, group, op);
    const g = this.groups.get(`${pool}/${group}`);
    if (!g) throw this.pools.err('ENOENT', { op, pool, image: group, detail: `group ${pool}/${group} does not exist` });
    return g;
  }
}
