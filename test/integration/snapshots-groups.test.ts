// Group snapshots on the real cluster, with real volmaster and volplugin processes: the members of
// a group snapshot match each other. A writer puts sequence number k into a file on each of three
// mounted volumes in turn (v1, then v2, then v3, each write direct and synced before the next), all
// the time; a group snapshot taken meanwhile must show, for every member pair, numbers of one
// instant (v1 >= v2 >= v3 >= v1 - 1). Each member's part is read back through a copy made by the
// master (the rbd CLI cannot read a group member's snapshot). The same check on snapshots taken one
// volume after the other finds the mismatch it is there to find. Then the group's rollback:
// refused while any member is mounted, and through volcli once none is; and the bad input of both.

import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationRecord } from '../../src/state/records.js';
import { cleanUpRun, rbd } from '../helpers/plugin-ceph.js';
import { createVolume, startMaster, TestPlugin, testPolicy, testRun, waitFor, type TestMaster } from '../helpers/plugin-harness.js';
import { repoRoot } from '../helpers/sandbox.js';

const exec = promisify(execFile);
const { run, tenant, root, pool } = testRun('gr', 'snapshots-groups');
const MEMBERS = ['v1', 'v2', 'v3'] as const;

let master: TestMaster;
let plugin: TestPlugin;
let writer: ChildProcess | null = null;

/** The sequence file on a mounted member. */
const seqFile = (volume: string) => path.join(plugin.mountpointOf(`${tenant}/${volume}`), 'seq');

/** Writes 0 into each file and then k = 1, 2, ... into each in turn, every write O_DIRECT and synced. */
function startWriter(files: string[]): ChildProcess {
  const script = 'i=0; while :; do i=$((i+1)); for f in "$@"; do printf "%-4095s\\n" "$i" | dd of="$f" bs=4096 count=1 oflag=direct,dsync conv=notrunc status=none || exit 1; done; done';
  return spawn('sh', ['-c', script, 'writer', ...files], { stdio: 'ignore' });
}

const live = async (volume: string) => Number.parseInt((await readFile(seqFile(volume), 'utf8')).trim(), 10);

/** The sequence number in the ext4 of image `spec` (POOL/IMAGE[@SNAP]): exported, its journal replayed by e2fsck, read with debugfs. */
async function seqIn(spec: string, label: string): Promise<number> {
  const file = path.join(root, `${label}.img`);
  await rbd('export', '--no-progress', spec, file);
  try {
    // 0: clean, 1: errors corrected (the journal replayed): both leave a readable filesystem.
    await exec('e2fsck', ['-fy', file], { timeout: 60_000 }).catch((err: { code?: number }) => {
      if (err.code !== 1) throw err;
    });
    const { stdout } = await exec('debugfs', ['-R', 'cat /seq', file], { timeout: 30_000 });
    const n = Number.parseInt(stdout.trim(), 10);
    if (Number.isNaN(n)) throw new Error(`no sequence number in /seq of ${spec}: ${JSON.stringify(stdout.slice(0, 80))}`);
    return n;
  } finally {
    await rm(file, { force: true });
  }
}

/** Every member pair of one instant: written in order v1, v2, v3, so v1 >= v2 >= v3 >= v1 - 1. */
function consistent(seq: readonly number[]): boolean {
  const [a, b, c] = seq as [number, number, number];
  return a >= b && b >= c && c >= a - 1;
}

const image = async (volume: string) => `${pool}/${(await master.api.getVolume(tenant, volume)).image}`;

async function ended(id: string): Promise<OperationRecord> {
  let op = await master.api.getOperation(id);
  await waitFor(`operation ${id} to end`, async () => (op = await master.api.getOperation(id)).state !== 'running', 120_000, 200);
  return op;
}

/** volcli (dist/cli/main.js) against the test master. */
function volcli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'dist/cli/main.js'), '--master', master.address, '--token-file', master.tokenFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  await master.api.uploadTenant(tenant, testPolicy());
  plugin = await TestPlugin.start({ label: 'grhost', root, master });
  for (const v of MEMBERS) {
    await createVolume(plugin, `${tenant}/${v}`, null);
    expect((await plugin.mount(`${tenant}/${v}`, 'w')).Err).toBe('');
  }
}, 120_000);

afterAll(async () => {
  writer?.kill('SIGKILL');
  await plugin?.stop();
  await master?.stop();
  for (const group of (await rbd('group', 'list', pool)).split('\n').filter((g) => g.startsWith(`${tenant}.`))) {
    await rbd('group', 'rm', `${pool}/${group}`).catch(() => undefined);
  }
  for (const name of (await rbd('ls', pool)).split('\n').filter((i) => i.startsWith(tenant))) {
    await rbd('snap', 'purge', '--no-progress', `${pool}/${name}`).catch(() => undefined);
  }
  expect(await cleanUpRun({ tenant, root, pool })).toEqual([]);
}, 120_000);

describe('group snapshots: members match, rollback, copy (real volplugin, Ceph, ext4)', () => {
  it('a group snapshot taken while a writer runs holds one instant of every member; snapshots one after the other do not', async () => {
    writer = startWriter(MEMBERS.map(seqFile));
    await waitFor('the writer to get going', async () => (await live('v3').catch(() => 0)) >= 20, 30_000);

    // Three group snapshots while it writes (g1 stays for the rollback below; g2 and g3 go again).
    for (const snap of ['g1', 'g2', 'g3']) {
      await master.api.takeGroupSnapshot(tenant, 'app', [...MEMBERS], snap);
      // The writer goes on through it (librbd took each member's lock from rbd-fuse and gave it back).
      const after = await live('v3');
      await waitFor('the writer to go on after the group snapshot', async () => (await live('v3')) >= after + 5, 30_000);
    }
    for (const snap of ['g1', 'g2', 'g3']) {
      // Each member's part, read back through a copy the master makes.
      const group: number[] = [];
      for (const v of MEMBERS) {
        const op = await master.api.startGroupMemberCopy(tenant, 'app', snap, v, { tenant, volume: `${v}-${snap}` });
        expect(op).toMatchObject({ kind: 'copy', state: 'running', volume: v, target: { tenant, volume: `${v}-${snap}` } });
        const done = await ended(op.id);
        expect(done).toMatchObject({ state: 'done', message: `${tenant}/${v}-${snap} is a copy of ${tenant}/${v} as of app@${snap}` });
        expect(await master.api.getVolume(tenant, `${v}-${snap}`)).toMatchObject({ source: { tenant, volume: v, snapshot: `app@${snap}` } });
        group.push(await seqIn(await image(`${v}-${snap}`), `${v}-${snap}`));
      }
      expect(group[0]).toBeGreaterThanOrEqual(20);
      expect({ snap, group, consistent: consistent(group) }).toEqual({ snap, group, consistent: true });
      if (snap !== 'g1') {
        for (const v of MEMBERS) await master.api.removeVolume(tenant, `${v}-${snap}`);
        await master.api.removeGroupSnapshot(tenant, 'app', snap);
      }
    }

    // The control: one snapshot per volume, the writer going on in between, fails the same check.
    const single: number[] = [];
    for (const v of MEMBERS) {
      const before = await live('v3');
      await master.api.takeSnapshot(tenant, v, 's1');
      single.push(await seqIn(`${await image(v)}@s1`, `${v}-s1`));
      await waitFor('the writer to move on', async () => (await live('v3')) >= before + 5, 30_000);
    }
    expect({ single, consistent: consistent(single) }).toEqual({ single, consistent: false });
    writer.kill('SIGKILL');
    writer = null;
  }, 300_000);

  it('a rollback is refused while any member is mounted, with nothing changed; volcli rolls all back once none is', async () => {
    // v2 and v3 let go; v1 stays mounted (a container uses it).
    for (const v of ['v2', 'v3']) expect((await plugin.unmount(`${tenant}/${v}`, 'w')).Err).toBe('');
    const refused = await master.api.startGroupRollback(tenant, 'app', 'g1').catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'VOLUME_MOUNTED', message: expect.stringMatching(new RegExp(`volume ${tenant}/v1 of the group is mounted on .*no volume was changed`)) });
    // Nothing held: v2 mounts again at once, and is where the writer left it.
    const left = await live('v1');
    expect((await plugin.mount(`${tenant}/v2`, 'w')).Err).toBe('');
    expect(await live('v2')).toBeGreaterThan(0);
    const viaCli = await volcli(['volume', 'snapshot', 'group', 'rollback', `${tenant}/app`, 'g1']);
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr).toMatch(/VOLUME_MOUNTED|is mounted on/);
    expect(await live('v1')).toBe(left);

    for (const v of ['v1', 'v2']) expect((await plugin.unmount(`${tenant}/${v}`, 'w')).Err).toBe('');
    // A volume unmounted a moment ago may still be kept idle by its host: the rollback asks it to let go.
    const rolled = await volcli(['volume', 'snapshot', 'group', 'rollback', `${tenant}/app`, 'g1']);
    expect(rolled.stderr.split('\n').filter((l) => /error/i.test(l))).toEqual([]);
    expect(rolled.code).toBe(0);
    expect(rolled.stdout).toContain(`${tenant}/v1, ${tenant}/v2, ${tenant}/v3 rolled back to app@g1`);
    // The heads are the group snapshot's instant again: the same numbers as its copies.
    const heads2: number[] = [];
    for (const v of MEMBERS) heads2.push(await seqIn(await image(v), `${v}-head`));
    const copies: number[] = [];
    for (const v of MEMBERS) copies.push(await seqIn(await image(`${v}-g1`), `${v}-g1b`));
    expect(heads2).toEqual(copies);
    // The audit trail has it, with its operation.
    const audit = await master.api.listAudit({ tenant });
    expect(audit.some((e) => e.route === '/v1/groups/:tenant/:group/snapshots/:snapshot/rollback' && e.outcome === 'ok' && e.operation)).toBe(true);
    // And mounts work again.
    expect((await plugin.mount(`${tenant}/v1`, 'w')).Err).toBe('');
    expect(await live('v1')).toBe(copies[0]);
    expect((await plugin.unmount(`${tenant}/v1`, 'w')).Err).toBe('');
  }, 240_000);

  it('a master killed mid-rollback keeps the members unmountable for its lease only; nothing was rolled back', async () => {
    // v2's head moves away from g1, so that a rollback would show.
    expect((await plugin.mount(`${tenant}/v2`, 'k')).Err).toBe('');
    await exec('sh', ['-c', 'printf "%-4095s\\n" 999999 | dd of="$1" bs=4096 count=1 oflag=direct,dsync conv=notrunc status=none', 'w', seqFile('v2')]);
    expect((await plugin.unmount(`${tenant}/v2`, 'k')).Err).toBe('');
    // A second master (same etcd) that stops for a minute once its rollback excluded the mounts.
    const paused = await startMaster(path.join(root, 'paused'), master.prefix, { env: { VOLMASTER_FAILPOINTS: 'before-group-rollback=60000' } });
    const op = await paused.api.startGroupRollback(tenant, 'app', 'g1');
    expect(op).toMatchObject({ kind: 'group-rollback', state: 'running', volume: 'app' });
    expect((await plugin.mount(`${tenant}/v1`, 'k')).Err).toMatch(/group snapshot rollback/);
    await paused.proc.kill9();
    // Its exclusion and locks go with its leases (10 s): v1 mounts again, the operation reads interrupted.
    await waitFor('a member to mount again', async () => (await plugin.mount(`${tenant}/v1`, 'k')).Err === '', 60_000, 1_000);
    await waitFor('the operation to read interrupted', async () => (await master.api.getOperation(op.id)).state === 'interrupted', 30_000, 500);
    expect((await plugin.mount(`${tenant}/v2`, 'k')).Err).toBe('');
    expect(await live('v2')).toBe(999999);
    for (const v of ['v1', 'v2']) expect((await plugin.unmount(`${tenant}/${v}`, 'k')).Err).toBe('');
    // And the next rollback runs (no lock of the dead master left).
    const next = await master.api.startGroupRollback(tenant, 'app', 'g1');
    expect(await ended(next.id)).toMatchObject({ state: 'done' });
    expect(await seqIn(await image('v2'), 'v2-after')).toBe(await seqIn(await image('v2-g1'), 'v2-g1c'));
  }, 180_000);

  it('bad input: unknown group, unknown snapshot, a volume not in the group, a removed member, a taken name', async () => {
    await expect(master.api.startGroupRollback(tenant, 'nope', 'g1')).rejects.toMatchObject({ code: 'GROUP_NOT_FOUND', status: 404 });
    await expect(master.api.startGroupRollback(tenant, 'app', 'nope')).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND', status: 404 });
    await expect(master.api.startGroupMemberCopy(tenant, 'app', 'nope', 'v1', { tenant, volume: 'x' })).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
    await expect(master.api.startGroupMemberCopy(tenant, 'app', 'g1', 'v1-g1', { tenant, volume: 'x' })).rejects.toMatchObject({
      code: 'SNAPSHOT_NOT_FOUND',
      status: 404,
      message: expect.stringMatching(/v1-g1 is not in group snapshot .*its volumes are v1, v2, v3/),
    });
    await expect(master.api.startGroupMemberCopy(tenant, 'app', 'g1', 'gone', { tenant, volume: 'x' })).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND', status: 404 });
    await expect(master.api.startGroupMemberCopy(tenant, 'app', 'g1', 'v1', { tenant, volume: 'v1-g1' })).rejects.toMatchObject({ code: 'VOLUME_EXISTS', status: 409 });
    await expect(master.api.startGroupMemberCopy(tenant, 'app', 'g1', 'v1', { tenant, volume: 'bad/name' })).rejects.toMatchObject({ status: 400 });
    const cli = await volcli(['volume', 'snapshot', 'group', 'copy', `${tenant}/nope`, 'g1', 'v1', `${tenant}/x`]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/has no snapshots/);
    // A member is not removed while its group has a snapshot of it: the group's snapshot goes first.
    await expect(master.api.removeVolume(tenant, 'v3')).rejects.toMatchObject({ code: 'VOLUME_IN_GROUP' });
    // Nothing was made by the refusals.
    expect((await master.api.listVolumes(tenant)).map((v) => v.volume).sort()).toEqual(
      ['v1', 'v1-g1', 'v2', 'v2-g1', 'v3', 'v3-g1'],
    );
    // A member whose record was removed behind volplugin's back (force-remove: the image stays in the
    // group): the group is not rolled back, that member not copied, and nothing is held.
    expect((await volcli(['volume', 'force-remove', `${tenant}/v3`])).code).toBe(0);
    await expect(master.api.startGroupRollback(tenant, 'app', 'g1')).rejects.toMatchObject({
      code: 'VOLUME_NOT_FOUND',
      status: 404,
      message: expect.stringMatching(new RegExp(`holds volume ${tenant}/v3, which has no record any more`)),
    });
    await expect(master.api.startGroupMemberCopy(tenant, 'app', 'g1', 'v3', { tenant, volume: 'x' })).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    expect((await plugin.mount(`${tenant}/v1`, 'w')).Err).toBe(''); // not excluded
    expect((await plugin.unmount(`${tenant}/v1`, 'w')).Err).toBe('');
    await master.api.removeGroupSnapshot(tenant, 'app', 'g1');
    await expect(master.api.startGroupRollback(tenant, 'app', 'g1')).rejects.toMatchObject({ code: 'GROUP_NOT_FOUND' });
  }, 120_000);
});
