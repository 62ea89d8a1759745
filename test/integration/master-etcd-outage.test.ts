// volmaster while etcd is down: a private etcd (own ports and data dir) under a real volmaster
// binary is killed and restarted. Requests that need etcd answer 503 STATE_UNAVAILABLE at once,
// readiness says etcd, health stays 200, and everything works again (records intact) once etcd is back.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import { repoRoot, testBackend as backend } from '../helpers/sandbox.js';
import { freePort } from '../helpers/net.js';

const exec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cephConf = process.env.CEPH_CONF;
const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const masterBin = path.join(repoRoot, 'dist/master/main.js');


async function waitFor(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

describe(`volmaster through an etcd outage (${backend} backend)`, () => {
  const id = randomUUID().slice(0, 8);
  const tenant = `eo${id}`;
  let dir = '';
  let clientUrl = '';
  let peerUrl = '';
  let etcd: ChildProcess | null = null;
  let master: ChildProcess | null = null;
  let masterLog = '';
  let api: ApiClient;

  async function startEtcd(): Promise<void> {
    const child = spawn(
      'etcd',
      ['--name', 'mo', '--data-dir', path.join(dir, 'data'), '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `mo=${peerUrl}`],
      { stdio: 'ignore' },
    );
    etcd = child;
    await waitFor(`etcd at ${clientUrl}`, async () => {
      const { stdout, stderr } = await exec('etcdctl', ['--endpoints', clientUrl, 'endpoint', 'health'], { timeout: 5_000 });
      return `${stdout}${stderr}`.includes('is healthy');
    }, 20_000);
  }

  async function killEtcd(): Promise<void> {
    const child = etcd;
    etcd = null;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  }

  beforeAll(async () => {
    if (!cephConf) throw new Error('CEPH_CONF must be set (test/helpers/global-setup.ts sets it)');
    if (!existsSync(masterBin)) throw new Error(`${masterBin} is missing: build first (pnpm build:ts, or make test)`);
    dir = await mkdtemp(path.join(tmpdir(), 'volmaster-outage-'));
    clientUrl = `http://127.0.0.1:${await freePort()}`;
    peerUrl = `http://127.0.0.1:${await freePort()}`;
    await startEtcd();
    const port = await freePort();
    master = spawn(
      process.execPath,
      [masterBin, '--listen', `127.0.0.1:${port}`, '--etcd', clientUrl, '--backend', backend, '--ceph-conf', cephConf],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    master.stdout!.on('data', (d: Buffer) => (masterLog += d.toString()));
    master.stderr!.on('data', (d: Buffer) => (masterLog += d.toString()));
    api = new ApiClient({ master: `127.0.0.1:${port}`, timeoutMs: 30_000 });
    await waitFor(`volmaster (log: ${masterLog.slice(-500)})`, async () => (await api.health()).status === 'ok', 30_000);
    await api.uploadTenant(tenant, { 'default-options': { pool, size: '8MB' } });
    expect((await api.createVolume(tenant, 'before')).created).toBe(true);
  });

  afterAll(async () => {
    if (!etcd) await startEtcd().catch(() => undefined);
    await api.removeVolume(tenant, 'before').catch(() => undefined);
    await api.removeVolume(tenant, 'after').catch(() => undefined);
    master?.kill('SIGKILL');
    await killEtcd();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers 503 while etcd is down, then recovers when it returns', async () => {
    await killEtcd();

    const started = Date.now();
    await expect(api.listVolumes()).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE', status: 503 });
    await expect(api.getVolume(tenant, 'before')).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE', status: 503 });
    await expect(api.createVolume(tenant, 'after')).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE', status: 503 });
    await expect(api.listMounts()).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE' });
    await expect(api.uploadTenant(tenant, { 'default-options': { pool } })).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE' });
    expect(Date.now() - started).toBeLessThan(40_000); // each answer within the etcd deadline, no hang
    const ready = await api.ready();
    expect(ready).toMatchObject({ ready: false, checks: { etcd: { ok: false }, ceph: { ok: true } } });
    expect((await api.health()).status).toBe('ok');
    // The refused create made nothing in Ceph.
    const { stdout } = await exec('rbd', ['-c', cephConf!, 'ls', '--format', 'json', pool]);
    expect(JSON.parse(stdout)).not.toContain(`${tenant}.after`);

    await startEtcd();
    await waitFor('the master to answer again', async () => (await api.listVolumes()).length >= 1, 30_000);
    expect((await api.ready()).ready).toBe(true);
    expect((await api.getVolume(tenant, 'before')).image).toBe(`${tenant}.before`);
    expect((await api.createVolume(tenant, 'after')).created).toBe(true);
  });
});
