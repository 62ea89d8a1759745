// Leases, lock acquisitions and watches (issue 12, rules 2, 7 and 8) with the real binary, master,
// etcd and Ceph. A volplugin reaches etcd through a TCP proxy that a test can cut: a holder cut off
// stops writing before its lease can expire at etcd; a host never takes back a lock another host
// held meanwhile; a watch that etcd cancels (its revision compacted) is set up again.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import { cleanUpRun, directWrite, leftoversBelow } from '../helpers/plugin-ceph.js';
import { createVolume, startMaster, TestPlugin, testPolicy, testRun, waitFor, type TestMaster } from '../helpers/plugin-harness.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const exec = promisify(execFile);
const { run, tenant, root, pool } = testRun('pl', 'plugin-leases');
const etcdUrl = () => process.env.VOLPLUGIN_TEST_ETCD!;

let master: TestMaster;
let kv: EtcdKV;
let store: StateStore;
const plugins: TestPlugin[] = [];
const proxies: TcpProxy[] = [];
const fenced: string[] = [];

async function plugin(label: string, options: Partial<ConstructorParameters<typeof TestPlugin>[0]> = {}): Promise<TestPlugin> {
  const p = await TestPlugin.start({ label, root, master, lockTtl: 4, convergeSeconds: 1, ...options });
  plugins.push(p);
  return p;
}

async function proxy(): Promise<TcpProxy> {
  const p = await startTcpProxy(etcdUrl());
  proxies.push(p);
  return p;
}

async function problemsOf(p: TestPlugin): Promise<string[]> {
  return (await store.getHostReport(await p.hostId()))?.problems ?? [];
}

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  await master.api.uploadTenant(tenant, testPolicy());
  kv = new EtcdKV({ endpoints: [etcdUrl()] });
  store = new StateStore(kv, { prefix: master.prefix });
});

afterAll(async () => {
  for (const p of proxies) p.restore();
  for (const p of plugins) {
    p.proc.signal('SIGCONT');
    await p.stop();
  }
  for (const p of proxies) await p.close();
  await master?.stop();
  await kv?.close();
  const left = await cleanUpRun({ tenant, root, pool, fenced });
  expect(left).toEqual([]);
});

describe('lease timing (rule 7)', () => {
  it('a holder cut off from etcd stops writing while its lock still exists there: before anyone can take it over', async () => {
    const cut = await proxy();
    const h = await plugin('cut', { etcd: ['--etcd', cut.url], lockTtl: 10 });
    const name = `${tenant}/cut`;
    await createVolume(h, name, null);
    expect((await h.mount(name, 'c1')).Err).toBe('');
    expect(await directWrite(h.mountpointOf(name))).toBe(true);
    fenced.push((await store.getMount(tenant, 'cut'))!.clientAddress!); // the holder fences its own client once cut off
    let lockGone = false;
    const watch = await kv.watch(store.keys.mount(tenant, 'cut'), (e) => {
      if (e.type === 'delete') lockGone = true;
    });
    try {
      cut.cut();
      await waitFor('the cut-off holder\'s writes to fail', async () => !(await directWrite(h.mountpointOf(name))), 30_000, 50);
      // The lock is bound to the holder's lease: still there means nobody else could have it yet.
      expect(lockGone).toBe(false);
      expect(await store.getMount(tenant, 'cut')).not.toBeNull();
      await waitFor('the lease to expire at etcd', async () => lockGone, 30_000);
    } finally {
      await watch.close();
      cut.restore();
    }
    await waitFor('the holder to report the volume lost', async () => (await problemsOf(h)).some((p) => p.startsWith(`${name}: lost to this host`)), 30_000);
    expect((await h.mount(name, 'c2')).Err).toMatch(/is lost to this host .*host lease was not renewed in time/);
    expect(await store.getMount(tenant, 'cut')).toBeNull();
    expect((await h.unmount(name, 'c1')).Err).toBe('');
    expect(await leftoversBelow(path.join(root, 'cut'))).toEqual([]);
  });
});

describe('taking a lock back (rule 2)', () => {
  it('a host whose lock another host took and released meanwhile does not take it back: it reports the volume lost and blocks nobody', async () => {
    const a = await plugin('owner', { lockTtl: 30 });
    const b = await plugin('other');
    const name = `${tenant}/retake`;
    await createVolume(a, name, null);
    expect((await a.mount(name, 'a1')).Err).toBe('');
    const held = (await store.getMount(tenant, 'retake'))!;
    // While the owner's volplugin is frozen (within its lease), an operator force-removes its lock
    // and another host mounts the volume (fencing the owner's client) and lets it go again.
    a.proc.signal('SIGSTOP');
    try {
      await master.api.forceRemoveMount(tenant, 'retake');
      expect((await b.mount(name, 'b1')).Err).toBe('');
      fenced.push(held.clientAddress!);
      expect((await b.unmount(name, 'b1')).Err).toBe('');
    } finally {
      a.proc.signal('SIGCONT');
    }
    await waitFor('the owner to report the volume lost', async () => (await problemsOf(a)).some((p) => p.startsWith(`${name}: lost to this host`)), 30_000);
    expect(await store.getMount(tenant, 'retake')).toBeNull();
    expect((await b.mount(name, 'b2')).Err).toBe('');
    expect((await a.mount(name, 'a2')).Err).toMatch(/is lost to this host .*other .*took it at/);
    expect((await b.unmount(name, 'b2')).Err).toBe('');
    expect((await a.unmount(name, 'a1')).Err).toBe('');
    expect(await leftoversBelow(path.join(root, 'owner'))).toEqual([]);
  });
});

describe('watches (rule 8)', () => {
  it('a watch etcd cancels (its revision compacted while the host was cut off) is set up again: run-time changes still arrive', async () => {
    const cut = await proxy();
    // No periodic round: only etcd events (and a dead watch) make the host converge.
    const h = await plugin('watcher', { etcd: ['--etcd', cut.url], lockTtl: 30, convergeSeconds: 3600 });
    const name = `${tenant}/watched`;
    await createVolume(h, name, null);
    expect((await h.mount(name, 'w1')).Err).toBe('');
    const applied = async () =>
      (JSON.parse(await readFile(path.join(h.stateDir, 'mounts.json'), 'utf8')) as { volumes: Array<{ appliedLimits: { writeIops: number } | null }> }).volumes[0]
        ?.appliedLimits?.writeIops;
    cut.cut();
    try {
      await master.api.setRuntime(tenant, 'watched', { 'rate-limit.write.iops': 200 });
      const { stdout } = await exec('etcdctl', ['--endpoints', etcdUrl(), 'put', `/volplugin-test-${run}-compact`, 'x', '-w', 'json']);
      const revision = (JSON.parse(stdout) as { header: { revision: number } }).header.revision;
      await exec('etcdctl', ['--endpoints', etcdUrl(), 'compact', String(revision)]);
    } finally {
      cut.restore();
    }
    await waitFor('the change made while cut off to be applied', async () => (await applied()) === 200, 30_000);
    // The watch set up again delivers the next change.
    await master.api.setRuntime(tenant, 'watched', { 'rate-limit.write.iops': 300 });
    await waitFor('the next change to be applied', async () => (await applied()) === 300, 30_000);
    expect((await h.unmount(name, 'w1')).Err).toBe('');
  });
});
