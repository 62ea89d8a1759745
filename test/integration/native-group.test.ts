// Consistency groups through the addon (native/group_ops.cc) on the test cluster: a group
// snapshot is one snapshot of every member, visible on each member image (`rbd snap ls --all`)
// and rolled back together; errors carry the group and the usual codes.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Addon from '../../native/volplugin_rbd.js';
import { RbdError } from '../../src/storage/errors.js';
import { addonCandidates } from '../../src/storage/native.js';
import { diffStream, imageDigest, random, rbd, rbdImportDiff, snapsAll } from '../helpers/rbd-diff.js';

const CONF = process.env.CEPH_CONF;
if (!CONF) throw new Error('CEPH_CONF is not set: this suite needs a real cluster (test/helpers/global-setup.ts starts one)');
const POOL = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const REPO = path.resolve(import.meta.dirname, '../..');
const ADDON = addonCandidates().find((f) => existsSync(f)) ?? path.join(REPO, 'build/Release/volplugin_rbd.node');
const addon = createRequire(import.meta.url)(ADDON) as typeof Addon;
addon.init(RbdError);

const MiB = 1 << 20;
const tag = `${process.pid}-${Date.now().toString(36)}`;
const GROUP = `grp-${tag}`;
const members = [0, 1, 2].map((i) => `grp-img-${i}-${tag}`);
const outsider = `grp-out-${tag}`;

let c: Addon.Cluster;

beforeAll(async () => {
  c = new addon.Cluster();
  await c.connect(CONF, null, null, {});
  for (const name of [...members, outsider]) await c.createImage(POOL, name, 8 * MiB, 1 | 4, 22, null);
});

afterAll(async () => {
  await c.removeGroup(POOL, GROUP).catch(() => undefined);
  for (const name of [...members, outsider]) {
    await rbd('snap', 'purge', '--no-progress', `${POOL}/${name}`).catch(() => undefined);
    await c.removeImage(POOL, name).catch(() => undefined);
  }
  await c.close();
});

describe('native consistency groups', () => {
  it('1 creates a group, adds images and lists them; each image names its group', async () => {
    await c.createGroup(POOL, GROUP);
    expect(await c.listGroups(POOL)).toContain(GROUP);
    for (const name of members) await c.addGroupImage(POOL, GROUP, POOL, name);
    const listed = await c.listGroupImages(POOL, GROUP);
    expect(listed.map((m) => m.image).sort()).toEqual([...members].sort());
    expect(listed.every((m) => m.pool === POOL && m.state === 'attached')).toBe(true);
    expect((await c.imageInfo(POOL, members[0]!)).group).toEqual({ pool: POOL, name: GROUP });
    expect((await c.imageInfo(POOL, outsider)).group).toBeNull();
  });

  it('2 a group snapshot appears on every member image, in the group namespace', async () => {
    await c.createGroupSnapshot(POOL, GROUP, 'gs1');
    expect(await c.listGroupSnapshots(POOL, GROUP)).toEqual([{ name: 'gs1', state: 'complete' }]);
    for (const name of members) {
      const snaps = await snapsAll(`${POOL}/${name}`);
      expect(snaps).toHaveLength(1);
      expect(snaps[0]!.namespace).toMatchObject({ type: 'group', group: GROUP, 'group snap': 'gs1' });
      // A user-namespace listing does not show it; the image's snapshot count does.
      expect(await c.listSnapshots(POOL, name)).toEqual([]);
      expect((await c.imageInfo(POOL, name)).snapshotCount).toBe(1);
    }
    expect(await snapsAll(`${POOL}/${outsider}`)).toEqual([]);
  });

  it('3 a rollback brings every member back to the group snapshot at once, with progress', async () => {
    const before = await Promise.all(members.map((m) => imageDigest(`${POOL}/${m}`)));
    for (const m of members) await rbdImportDiff(diffStream({ size: 8 * MiB, records: [{ w: [MiB, random(64 * 1024)] }] }), `${POOL}/${m}`);
    const changed = await Promise.all(members.map((m) => imageDigest(`${POOL}/${m}`)));
    expect(changed).not.toEqual(before);
    const reports: Array<[number, number]> = [];
    await c.rollbackGroupSnapshot(POOL, GROUP, 'gs1', (done, total) => void reports.push([done, total]));
    expect(await Promise.all(members.map((m) => imageDigest(`${POOL}/${m}`)))).toEqual(before);
    const last = reports.at(-1);
    expect(last && last[0] === last[1] && last[1] > 0).toBe(true);
  });

  it('3b each member lists its part of the group snapshot by id; a copy at that id holds the instant', async () => {
    // The heads changed since gs1 (written, then rolled back, then written again below).
    const atSnapshot = await Promise.all(members.map((m) => imageDigest(`${POOL}/${m}`)));
    for (const m of members) await rbdImportDiff(diffStream({ size: 8 * MiB, records: [{ w: [2 * MiB, random(4096)] }] }), `${POOL}/${m}`);
    const copy = `grp-copy-${tag}`;
    for (const [i, m] of members.entries()) {
      const listed = await c.listMemberSnapshots(POOL, m);
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({ groupPool: POOL, group: GROUP, groupSnapshot: 'gs1', size: 8 * MiB });
      expect(listed[0]!.id).toBe((await snapsAll(`${POOL}/${m}`))[0]!.id);
      const reports: number[] = [];
      await c.copySnapshot(POOL, m, listed[0]!.id, POOL, copy, null, null, null, (done) => void reports.push(done));
      try {
        expect(await imageDigest(`${POOL}/${copy}`)).toBe(atSnapshot[i]);
        expect(reports.length).toBeGreaterThan(0);
      } finally {
        await c.removeImage(POOL, copy);
      }
    }
    expect(await c.listMemberSnapshots(POOL, outsider)).toEqual([]);
    await expect(c.copySnapshot(POOL, members[0]!, 987654, POOL, copy, null, null, null)).rejects.toMatchObject({
      code: 'ENOENT',
      op: 'rbd_snap_set_by_id',
      image: members[0],
    });
    await expect(c.copySnapshot(POOL, members[0]!, (await c.listMemberSnapshots(POOL, members[0]!))[0]!.id, POOL, members[1]!, null, null, null)).rejects.toMatchObject({
      code: 'EEXIST',
      image: members[1],
    });
    expect(await c.imageExists(POOL, copy)).toBe(false);
  });

  it('4 errors name the group and carry the usual codes', async () => {
    const missing = await c.createGroupSnapshot(POOL, `nope-${tag}`, 'x').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(RbdError);
    expect(missing).toMatchObject({ code: 'ENOENT', op: 'rbd_group_snap_create', pool: POOL, image: `nope-${tag}`, snapshot: 'x' });
    await expect(c.createGroup(POOL, GROUP)).rejects.toMatchObject({ code: 'EEXIST', op: 'rbd_group_create' });
    await expect(c.createGroupSnapshot(POOL, GROUP, 'gs1')).rejects.toMatchObject({ code: 'EEXIST' });
    // An image is in at most one group (adding it to its own group again is a no-op).
    await c.addGroupImage(POOL, GROUP, POOL, members[0]!);
    const other = `${GROUP}-other`;
    await c.createGroup(POOL, other);
    try {
      const again = await c.addGroupImage(POOL, other, POOL, members[0]!).catch((e: unknown) => e);
      expect(again).toMatchObject({ code: 'EEXIST', op: 'rbd_group_image_add', image: other });
      expect((again as RbdError).message).toContain(`${POOL}/${members[0]}`);
    } finally {
      await c.removeGroup(POOL, other);
    }
    await expect(c.addGroupImage(POOL, GROUP, POOL, `nope-${tag}`)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(c.addGroupImage(POOL, GROUP, `nopool-${tag}`, members[0]!)).rejects.toMatchObject({ code: 'ENOENT', op: 'rados_ioctx_create' });
    await expect(c.removeGroupSnapshot(POOL, GROUP, 'nope')).rejects.toMatchObject({ code: 'ENOENT' });
    // A member with a group snapshot cannot be removed.
    await expect(c.removeImage(POOL, members[0]!)).rejects.toMatchObject({ code: 'ENOTEMPTY' });
  });

  it('5 removing the group snapshot removes it from the members; members leave; the group goes', async () => {
    await c.createGroupSnapshot(POOL, GROUP, 'gs2');
    await c.removeGroupSnapshot(POOL, GROUP, 'gs1');
    expect((await c.listGroupSnapshots(POOL, GROUP)).map((s) => s.name)).toEqual(['gs2']);
    for (const name of members) expect((await snapsAll(`${POOL}/${name}`)).map((s) => s.namespace['group snap'])).toEqual(['gs2']);
    await c.removeGroupImage(POOL, GROUP, POOL, members[2]!);
    expect((await c.listGroupImages(POOL, GROUP)).map((m) => m.image).sort()).toEqual([members[0], members[1]].sort());
    expect((await c.imageInfo(POOL, members[2]!)).group).toBeNull();
    await c.removeGroup(POOL, GROUP);
    expect(await c.listGroups(POOL)).not.toContain(GROUP);
    for (const name of members) expect(await snapsAll(`${POOL}/${name}`)).toEqual([]);
    expect(c.stats()).toMatchObject({ pending: 0, openImages: 0 });
  });
});
