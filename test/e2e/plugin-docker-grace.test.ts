// `docker run` with the unmount grace (issue 14.1), with the real dockerd: containers run one after
// another on a volume map it once (Docker's two Mount/Unmount pairs per run and the next run take
// the idle volume as it is), each sees what the last one wrote, the volume is reported idle between
// runs, and `docker volume rm` of an idle volume lets go of it and leaves nothing behind.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import { cleanUpRun, leftoversBelow, testPool } from '../helpers/plugin-ceph.js';
import { startMaster, TestPlugin, testPolicy, uniq, type TestMaster } from '../helpers/plugin-harness.js';

const exec = promisify(execFile);
const run = uniq();
const tenant = `eg${run}`;
const root = path.join(process.env.VOLPLUGIN_TEST_ROOT ?? '/tmp', `plugin-e2e-grace-${run}`);
const dockerHost = () => {
  const host = process.env.VOLPLUGIN_TEST_DOCKER;
  if (!host) throw new Error('VOLPLUGIN_TEST_DOCKER is not set: run through vitest (the global setup starts dockerd)');
  return host;
};

let master: TestMaster;
let plugin: TestPlugin;
let kv: EtcdKV;
let store: StateStore;
let removed = false;

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await exec('docker', ['-H', dockerHost(), ...args], { timeout: 180_000, maxBuffer: 16 << 20 });
  return stdout;
}

/** The `op` of every Docker request volplugin logged for `volume`, in order. */
async function opsOf(volume: string): Promise<string[]> {
  return (await plugin.logs())
    .split('\n')
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; volume?: string; op?: string };
        return entry.msg === 'Docker request done' && entry.volume === volume && entry.op ? [entry.op] : [];
      } catch {
        return [];
      }
    });
}

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  await master.api.uploadTenant(tenant, testPolicy());
  // A grace longer than the test: only `docker volume rm` lets go here.
  plugin = await TestPlugin.start({ label: 'e2eg', root, master, docker: dockerHost(), unmountGrace: 600 });
  kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
  store = new StateStore(kv, { prefix: master.prefix });
});

afterAll(async () => {
  await docker('volume', 'rm', '-f', `${tenant}/copy`).catch(() => undefined);
  if (!removed) await docker('volume', 'rm', '-f', `${tenant}/vol`).catch(() => undefined);
  await plugin?.stop();
  await master?.stop();
  await kv?.close();
  expect(await cleanUpRun({ tenant, root, pool: testPool() })).toEqual([]);
});

describe('docker run with the unmount grace', () => {
  it('containers run one after another map the volume once, see each other\'s data, and docker volume rm lets go of it', async () => {
    const name = `${tenant}/vol`;
    await docker('volume', 'create', '-d', plugin.pluginName, '--name', name);
    await docker('run', '--rm', '--network', 'none', '-v', `${name}:/mnt`, 'busybox', 'sh', '-c', 'echo one > /mnt/f');
    const report = await store.getHostReport(await plugin.hostId());
    expect(report?.idle?.map((i) => `${i.tenant}/${i.volume}`)).toEqual([name]);
    expect(report?.mounts).toEqual([]);
    const out = await docker('run', '--rm', '--network', 'none', '-v', `${name}:/mnt`, 'busybox', 'sh', '-c', 'cat /mnt/f; echo two >> /mnt/f');
    expect(out.trim()).toBe('one');

    // Two runs, two Mount/Unmount pairs each: mapped and mounted once, every later Mount a reuse.
    const ops = await opsOf(name);
    expect(ops.filter((op) => op === 'mount')).toHaveLength(1);
    expect(ops.filter((op) => op === 'reuse')).toHaveLength(3);
    expect(ops.filter((op) => op === 'idle')).toHaveLength(4);
    expect(ops).not.toContain('unmount');

    // A snapshot taken right after the run (the volume idle, still mounted on the host) has what
    // the container wrote: volplugin wrote the filesystem to its device at the last Unmount.
    await master.api.takeSnapshot(tenant, 'vol', 'after-run');
    await master.api.copySnapshot(tenant, 'vol', 'after-run', { tenant, volume: 'copy' });
    const copied = await docker('run', '--rm', '--network', 'none', '-v', `${tenant}/copy:/mnt`, 'busybox', 'cat', '/mnt/f');
    expect(copied.trim().split('\n')).toEqual(['one', 'two']);
    await docker('volume', 'rm', `${tenant}/copy`);

    await docker('volume', 'rm', name);
    removed = true;
    expect(await store.getMount(tenant, 'vol')).toBeNull();
    expect(await leftoversBelow(path.join(root, 'e2eg'))).toEqual([]);
  });
});
