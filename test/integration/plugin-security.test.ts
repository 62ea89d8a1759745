// What a Docker host protects itself from: a tenant's filesystem command never reaches a shell (it
// is refused at upload, and volplugin refuses a record with a bad one that someone wrote into etcd
// directly, before running anything), only the programs of the host's --mkfs-allow run, volumes
// are mounted nosuid,nodev, and the plugin socket is root's only.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/api/errors.js';
import { EtcdKV } from '../../src/state/etcd.js';
import { keys } from '../../src/state/keys.js';
import { StateStore } from '../../src/state/store.js';
import { cleanUpRun, imageMeta, leftoversBelow, rbd, testPool, watchers } from '../helpers/plugin-ceph.js';
import { createVolume, startMaster, TestPlugin, testPolicy, uniq, type TestMaster } from '../helpers/plugin-harness.js';

const run = uniq();
const tenant = `ps${run}`;
const root = path.join(process.env.VOLPLUGIN_TEST_ROOT ?? '/tmp', `plugin-security-${run}`);
const pool = testPool();
/** A file the refused commands would create if anything ran them. */
const marker = path.join(root, 'ran');

let master: TestMaster;
let plugin: TestPlugin;
let kv: EtcdKV;
let store: StateStore;

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  // mkfs.xfs passes upload (the default allowlist) but this host allows only mkfs.ext4.
  await master.api.uploadTenant(tenant, testPolicy({ filesystems: { ext4: 'mkfs.ext4 -q -m0 %', xfs: 'mkfs.xfs -q %' } }));
  plugin = await TestPlugin.start({ label: 'a', root, master, extraArgs: ['--mkfs-allow', 'mkfs.ext4'] });
  kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
  store = new StateStore(kv, { prefix: master.prefix });
});

afterAll(async () => {
  await plugin?.stop();
  await master?.stop();
  await kv?.close();
  expect(await cleanUpRun({ tenant, root, pool: testPool() })).toEqual([]);
});

/** What a refused mount must leave: nothing locked, mapped, noted or mounted, and nothing run. */
async function nothingLeft(volume: string): Promise<void> {
  expect(await leftoversBelow(path.join(root, 'a'))).toEqual([]);
  expect(await store.getMount(tenant, volume)).toBeNull();
  expect(await watchers(pool, `${tenant}.${volume}`)).toEqual([]);
  expect((await imageMeta(pool, `${tenant}.${volume}`))['volplugin.holder']).toBeUndefined();
  expect(existsSync(marker)).toBe(false);
}

describe('no shell from data', () => {
  it('a policy whose filesystem command has shell syntax or another program is refused at upload, naming the command', async () => {
    for (const [command, reason] of [
      ['mkfs.ext4 %; rm -rf /', /the command "mkfs.ext4 %; rm -rf \/" contains ";"/],
      ["sh -c reboot %", /runs "sh", which is not an allowed program; allowed programs: mkfs.ext4, mkfs.xfs, mkfs.btrfs/],
      ['mkfs.btrfs -f /dev/sda %', /contains "\/"/],
    ] as const) {
      const err = (await master.api.uploadTenant(`${tenant}x`, testPolicy({ filesystems: { ext4: command } })).catch((e: unknown) => e)) as ApiError;
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ status: 400, field: 'filesystems.ext4' });
      expect(err.message).toMatch(reason);
    }
    await expect(master.api.getTenant(`${tenant}x`)).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' });
  });

  it('a volume record written into etcd with a bad command is refused at mount, before anything runs, and nothing is left', async () => {
    await createVolume(plugin, `${tenant}/forged`);
    const key = keys(master.prefix).volume(tenant, 'forged');
    const record = JSON.parse((await kv.get(key))!.value) as { formatCommand: string };
    for (const [forged, reason] of [
      [`mkfs.ext4 -q %; touch ${marker}`, /"mkfs.ext4 -q %; touch .*" contains ";"/],
      [`sh -c touch${marker.replace(/\//g, '')} %`, /runs "sh", which is not an allowed program; allowed programs: mkfs.ext4/],
    ] as const) {
      await kv.put(key, JSON.stringify({ ...record, formatCommand: forged }));
      const answer = await plugin.mount(`${tenant}/forged`, 'f1');
      expect(answer.Err).toMatch(reason);
      expect(answer.Err).toMatch(/This host refuses to run it \(volplugin --mkfs-allow\)/);
      await nothingLeft('forged');
    }
    expect((await rbd('info', `${pool}/${tenant}.forged`)).length).toBeGreaterThan(0); // the image itself stays
    await master.api.removeVolume(tenant, 'forged');
  });

  it("a program upload allows but this host's --mkfs-allow does not is refused at mount, naming what the host allows", async () => {
    await createVolume(plugin, `${tenant}/x`, { filesystem: 'xfs' });
    const answer = await plugin.mount(`${tenant}/x`, 'x1');
    expect(answer.Err).toMatch(/the filesystem command "mkfs.xfs -q %" runs "mkfs.xfs", which is not an allowed program; allowed programs: mkfs.ext4\b/);
    await nothingLeft('x');
    await master.api.removeVolume(tenant, 'x');
  });
});

describe('the mount and the socket', () => {
  it('a volume is formatted by its command and mounted nosuid,nodev', async () => {
    await createVolume(plugin, `${tenant}/ok`);
    const answer = await plugin.mount(`${tenant}/ok`, 'o1');
    expect(answer.Err ?? '').toBe('');
    const mountpoint = plugin.mountpointOf(`${tenant}/ok`);
    const line = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === mountpoint);
    expect(line).toBeDefined();
    const options = line!.split(' ')[5]!.split(',');
    expect(options).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    expect(line).toMatch(/ - ext4 /);
    expect((await plugin.unmount(`${tenant}/ok`, 'o1')).Err ?? '').toBe('');
    await master.api.removeVolume(tenant, 'ok');
  });

  it('the plugin socket is a socket only root may use (mode 0600)', async () => {
    const s = await stat(plugin.socket);
    expect(s.isSocket()).toBe(true);
    expect((s.mode & 0o777).toString(8)).toBe('600');
    expect(s.uid).toBe(0);
  });
});
