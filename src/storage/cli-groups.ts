// The CLI backend's consistency-group calls: `rbd group ...` (cli.ts delegates here). Quirks of
// `rbd` 16: `group image list` and `group snap list` of a group that does not exist print an empty
// list and exit 0, and `group rm` of one does not return, so the group is looked up first (ENOENT
// as the native backend gives it); and adding
// an image that is in this group already succeeds, while another group's member is EEXIST.

import { CliRunner, ERRNO } from './cli-run.js';
import { RbdError } from './errors.js';
import type { GroupMember, GroupSnapshotInfo, MemberSnapshotInfo } from './types.js';

const spec = (pool: string, group: string) => [`--pool=${pool}`, `--group=${group}`];

export class CliGroups {
  constructor(private readonly run: CliRunner) {}

  async create(pool: string, group: string): Promise<void> {
    await this.run.rbd(['group', 'create', ...spec(pool, group)], { op: 'rbd_group_create', pool, image: group });
  }

  async remove(pool: string, group: string): Promise<void> {
    // `rbd group rm` of a group that does not exist does not return (seen with rbd 16.2.15).
    await this.exists('rbd_group_remove', pool, group);
    await this.run.rbd(['group', 'rm', ...spec(pool, group)], { op: 'rbd_group_remove', pool, image: group });
  }

  async add(pool: string, group: string, member: GroupMember): Promise<void> {
    const args = ['group', 'image', 'add', `--group-pool=${pool}`, `--group=${group}`, `--image-pool=${member.pool}`, `--image=${member.image}`];
    await this.run.rbd(args, { op: 'rbd_group_image_add', pool: member.pool, image: member.image });
  }

  async members(pool: string, group: string): Promise<GroupMember[]> {
    await this.exists('rbd_group_image_list', pool, group);
    const list = await this.run.rbdJson<Array<{ pool: string; image: string }>>(['group', 'image', 'list', ...spec(pool, group)], { op: 'rbd_group_image_list', pool, image: group });
    return list.map((m) => ({ pool: m.pool, image: m.image }));
  }

  async snap(pool: string, group: string, snapshot: string): Promise<void> {
    await this.run.rbd(['group', 'snap', 'create', ...spec(pool, group), `--snap=${snapshot}`], { op: 'rbd_group_snap_create', pool, image: group, snapshot });
  }

  async snapshots(pool: string, group: string): Promise<GroupSnapshotInfo[]> {
    await this.exists('rbd_group_snap_list', pool, group);
    const list = await this.run.rbdJson<Array<{ snapshot: string; state: string }>>(['group', 'snap', 'list', ...spec(pool, group)], { op: 'rbd_group_snap_list', pool, image: group });
    return list.map((s) => ({ name: s.snapshot, complete: s.state === 'ok' }));
  }

  async removeSnap(pool: string, group: string, snapshot: string): Promise<void> {
    await this.run.rbd(['group', 'snap', 'rm', ...spec(pool, group), `--snap=${snapshot}`], { op: 'rbd_group_snap_remove', pool, image: group, snapshot });
  }

  /** `rbd group snap rollback`; `onStderr` reads its percentages. */
  async rollback(pool: string, group: string, snapshot: string, progress: boolean, onStderr?: (text: string) => void): Promise<void> {
    await this.exists('rbd_group_snap_rollback', pool, group);
    const args = ['group', 'snap', 'rollback', ...spec(pool, group), `--snap=${snapshot}`, ...(progress ? [] : ['--no-progress'])];
    await this.run.exec('rbd', args, { op: 'rbd_group_snap_rollback', pool, image: group, snapshot }, { onStderr });
  }

  /** `rbd snap ls --all`, the group namespace's entries. */
  async memberSnapshots(pool: string, image: string): Promise<MemberSnapshotInfo[]> {
    type Listed = { id: number; size: number; timestamp?: string; namespace?: { type?: string; pool?: string; group?: string; 'group snap'?: string } };
    const list = await this.run.rbdJson<Listed[]>(['snap', 'ls', '--all', `--pool=${pool}`, `--image=${image}`], { op: 'rbd_snap_list', pool, image });
    return list
      .filter((s) => s.namespace?.type === 'group')
      .sort((a, b) => a.id - b.id)
      .map((s) => {
        const at = s.timestamp ? Date.parse(s.timestamp) : NaN;
        return {
          id: s.id,
          size: s.size,
          createdAt: Number.isNaN(at) ? null : new Date(at),
          group: { pool: s.namespace!.pool ?? pool, group: s.namespace!.group ?? '', snapshot: s.namespace!['group snap'] ?? '' },
        };
      });
  }

  private async exists(op: string, pool: string, group: string): Promise<void> {
    const groups = await this.run.rbdJson<string[]>(['group', 'list', `--pool=${pool}`], { op, pool, image: group });
    if (!Array.isArray(groups) || !groups.includes(group)) {
      throw new RbdError({ errno: -ERRNO.ENOENT!, op, pool, image: group, detail: `group ${pool}/${group} does not exist` });
    }
  }
}
