// fsfreeze-consistent snapshots on the real cluster, with real volmaster and volplugin processes: a
// volume with snapshots.consistency=fsfreeze, mounted and written to without pause, is snapshotted
// through the master's API with its filesystem frozen (the snapshot's ext4 needs no journal
// recovery, unlike a crash-consistent one of the same volume), and the writer goes on afterwards;
// when the asking master is killed while the volume is frozen, volplugin thaws it by itself at the
// bound, and when volplugin is killed too, its watchdog process does.
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpRun, rbd } from '../helpers/plugin-ceph.js';
import { createVolume, startMaster, TestPlugin, testPolicy, testRun, waitFor, type TestMaster } from '../helpers/plugin-harness.js';

const exec = promisify(execFile);
const { run, tenant, root, pool } = testRun('fz', 'snapshots-freeze');
const FSFREEZE = { snapshots: 'true', 'snapshots.frequency': '1h', 'snapshots.keep': '3', 'snapshots.consistency': 'fsfreeze' };

let master: TestMaster;
let plugin: TestPlugin;
const writers: ChildProcess[] = [];

/** A process appending a line to `file` without pause (a database that never stops writing). */
function startWriter(file: string): ChildProcess {
  const p = spawn('sh', ['-c', 'i=0; while :; do i=$((i+1)); echo "line $i" >> "$1"; done', 'writer', file], { stdio: 'ignore' });
  writers.push(p);
  return p;
}

const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

/** One 4 KiB write of `file` in `dir` in its own process: false when it did not finish within `ms` (a frozen filesystem; it finishes at the thaw). */
function writes(dir: string, file: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('dd', ['if=/dev/zero', `of=${path.join(dir, file)}`, 'bs=4k', 'count=1', 'conv=notrunc'], { stdio: 'ignore' });
    const timer = setTimeout(() => resolve(false), ms);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}

async function sizeOf(file: string): Promise<number> {
  return (await stat(file)).size;
}

/** Whether the ext4 in snapshot `snap` of the volume needs journal recovery (was snapshotted mid-write). */
async function needsRecovery(volume: string, snap: string): Promise<boolean> {
  const image = (await master.api.getVolume(tenant, volume)).image;
  const file = path.join(root, `${volume}-${snap}.img`);
  await rbd('export', '--no-progress', `${pool}/${image}@${snap}`, file);
  try {
    const { stdout } = await exec('dumpe2fs', ['-h', file], { timeout: 30_000 });
    const features = /^Filesystem features:\s*(.*)$/m.exec(stdout)?.[1] ?? '';
    expect(features).toMatch(/has_journal/);
    return /needs_recovery/.test(features);
  } finally {
    await rm(file, { force: true });
  }
}

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  await master.api.uploadTenant(tenant, testPolicy());
  plugin = await TestPlugin.start({ label: 'fzhost', root, master });
});

afterAll(async () => {
  for (const w of writers) w.kill('SIGKILL');
  await plugin?.stop();
  await master?.stop();
  for (const group of (await rbd('group', 'list', pool)).split('\n').filter((g) => g.startsWith(`${tenant}.`))) {
    await rbd('group', 'rm', `${pool}/${group}`).catch(() => undefined);
  }
  for (const image of (await rbd('ls', pool)).split('\n').filter((i) => i.startsWith(tenant))) {
    await rbd('snap', 'purge', '--no-progress', `${pool}/${image}`).catch(() => undefined);
  }
  expect(await cleanUpRun({ tenant, root, pool })).toEqual([]);
});

describe('fsfreeze-consistent snapshots (real volplugin, Ceph, ext4)', () => {
  it('freezes a mounted volume with a busy writer for the snapshot: a clean filesystem, the writer goes on', async () => {
    const name = `${tenant}/db`;
    await createVolume(plugin, name, FSFREEZE);
    expect((await plugin.mount(name, 'c1')).Err).toBe('');
    const file = path.join(plugin.mountpointOf(name), 'journal.log');
    startWriter(file);
    await waitFor('the writer to write', async () => (await sizeOf(file)) > 10_000, 20_000);

    const snap = await master.api.takeSnapshot(tenant, 'db', 'frozen');
    expect(snap.name).toBe('frozen');
    const logs = await plugin.logs();
    expect(logs).toMatch(/filesystem frozen for a snapshot/);
    expect(logs).toMatch(/filesystem thawed/);
    // The writer was held, not stopped: it goes on after the thaw.
    const after = await sizeOf(file);
    await waitFor('the writer to go on after the thaw', async () => (await sizeOf(file)) > after + 10_000, 20_000);
    expect(await needsRecovery('db', 'frozen')).toBe(false);

    // The same volume, crash-consistent: its snapshot is of a mounted ext4 mid-write.
    await master.api.setRuntime(tenant, 'db', { 'snapshots.consistency': 'crash' });
    await master.api.takeSnapshot(tenant, 'db', 'crash');
    expect(await needsRecovery('db', 'crash')).toBe(true);
    expect((await master.api.listSnapshots(tenant, 'db')).map((s) => s.name).sort()).toEqual(['crash', 'frozen']);
    for (const w of writers.splice(0)) w.kill('SIGKILL');
    expect((await plugin.unmount(name, 'c1')).Err).toBe('');
  }, 120_000);

  it('an unmounted fsfreeze volume is snapshotted without asking any host', async () => {
    const name = `${tenant}/idle`;
    await createVolume(plugin, name, FSFREEZE);
    const before = (await plugin.logs()).length;
    await master.api.takeSnapshot(tenant, 'idle', 'cold');
    expect((await plugin.logs()).slice(before)).not.toMatch(/freeze/);
    expect((await master.api.listSnapshots(tenant, 'idle')).map((s) => s.name)).toEqual(['cold']);
  });

  it('thaws by itself when the master dies mid-snapshot, and through its watchdog when volplugin dies too', async () => {
    // One volume per round: the killed master's operation lock on it stays until its lease ends.
    for (const killPlugin of [false, true]) {
      const volume = killPlugin ? 'orphan2' : 'orphan1';
      const name = `${tenant}/${volume}`;
      await createVolume(plugin, name, FSFREEZE);
      expect((await plugin.mount(name, 'o1')).Err).toBe('');
      const dir = plugin.mountpointOf(name);
      // A second master (same etcd prefix) that stops for a minute once the holder froze the volume.
      const paused = await startMaster(path.join(root, `paused-${killPlugin}`), master.prefix, { env: { VOLMASTER_FAILPOINTS: 'after-freeze=60000' } });
      const frozenBefore = count(await plugin.logs(), /filesystem frozen for a snapshot/g);
      const taking = paused.api.takeSnapshot(tenant, volume, 'never').catch((err: unknown) => err);
      await waitFor('the holder to freeze the volume', async () => count(await plugin.logs(), /filesystem frozen for a snapshot/g) > frozenBefore, 60_000);
      expect(await writes(dir, 'blocked', 1_000)).toBe(false);
      // The asker dies holding the freeze (and, the second time, volplugin with it).
      await paused.proc.kill9();
      expect(await taking).toBeInstanceOf(Error);
      if (killPlugin) await plugin.kill9();
      // Unblocked by the host alone, at the bound (10 s) or, with volplugin dead, a second later.
      await waitFor('the volume to thaw by itself', () => writes(dir, 'probe', 2_000), 30_000, 0);
      if (killPlugin) {
        await plugin.start();
      } else {
        await waitFor('volplugin to say it thawed by itself', async () => /freeze ran out: thawed by itself/.test(await plugin.logs()), 10_000);
      }
      expect(await master.api.listSnapshots(tenant, volume)).toEqual([]);
      // The write blocked by the freeze went through after it.
      await waitFor('the blocked write to finish', async () => (await sizeOf(path.join(dir, 'blocked'))) === 4096, 10_000);
      expect((await plugin.unmount(name, 'o1')).Err).toBe('');
    }
  }, 180_000);
});

describe('group snapshots (real Ceph consistency groups)', () => {
  it('snapshots several volumes at one instant, freezing the mounted fsfreeze one; the group holds them until its last snapshot goes', async () => {
    await createVolume(plugin, `${tenant}/app-db`, FSFREEZE);
    await createVolume(plugin, `${tenant}/app-files`, null);
    expect((await plugin.mount(`${tenant}/app-db`, 'g1')).Err).toBe('');
    const frozenBefore = count(await plugin.logs(), /filesystem frozen for a snapshot/g);
    const snap = await master.api.takeGroupSnapshot(tenant, 'app', ['app-files', 'app-db'], 'g1');
    expect(snap).toEqual({ tenant, group: 'app', name: 'g1', volumes: ['app-db', 'app-files'], complete: true });
    expect(count(await plugin.logs(), /filesystem frozen for a snapshot/g)).toBe(frozenBefore + 1);
    // In Ceph: one group, and on each member a snapshot in the group namespace (not a user snapshot).
    for (const v of ['app-db', 'app-files']) {
      const image = (await master.api.getVolume(tenant, v)).image;
      const all = JSON.parse(await rbd('snap', 'ls', '--all', '--format', 'json', `${pool}/${image}`)) as Array<{ namespace: Record<string, string> }>;
      expect(all.map((s) => s.namespace)).toEqual([{ type: 'group', pool, group: `${tenant}.app`, 'group snap': 'g1' }]);
      expect(await master.api.listSnapshots(tenant, v)).toEqual([]);
    }
    const second = await master.api.takeGroupSnapshot(tenant, 'app', ['app-db', 'app-files']);
    expect((await master.api.listGroupSnapshots(tenant, 'app')).map((s) => s.name).sort()).toEqual(['g1', second.name].sort());
    // A member cannot join another group, nor the group be taken without all of its volumes.
    await createVolume(plugin, `${tenant}/other`, null);
    await expect(master.api.takeGroupSnapshot(tenant, 'other-group', ['app-db', 'other'])).rejects.toMatchObject({ code: 'BUSY', message: expect.stringMatching(/app-db is in another consistency group/) });
    await expect(master.api.takeGroupSnapshot(tenant, 'app', ['app-db'])).rejects.toMatchObject({ code: 'BUSY', message: expect.stringMatching(/also holds app-files/) });
    expect((await rbd('group', 'list', pool)).split('\n')).not.toContain(`${tenant}.other-group`);
    // A member is not removed while its group has snapshots of it.
    await rbd('snap', 'create', `${pool}/${(await master.api.getVolume(tenant, 'app-files')).image}@mine`);
    await expect(master.api.removeVolume(tenant, 'app-files')).rejects.toMatchObject({ code: 'VOLUME_IN_GROUP', message: expect.stringMatching(/2 group snapshot\(s\) of it; remove the group's snapshots first/) });
    expect((await master.api.listSnapshots(tenant, 'app-files')).map((s) => s.name)).toEqual(['mine']); // nothing half-done
    expect((await master.api.getVolume(tenant, 'app-files')).volume).toBe('app-files');
    // The last snapshot's removal removes the group: its volumes are free again.
    await master.api.removeGroupSnapshot(tenant, 'app', 'g1');
    await master.api.removeGroupSnapshot(tenant, 'app', second.name);
    await expect(master.api.listGroupSnapshots(tenant, 'app')).rejects.toMatchObject({ code: 'GROUP_NOT_FOUND' });
    expect((await rbd('group', 'list', pool)).split('\n')).not.toContain(`${tenant}.app`);
    expect((await plugin.unmount(`${tenant}/app-db`, 'g1')).Err).toBe('');
    await master.api.removeVolume(tenant, 'app-files');
  }, 120_000);
});
