// volmaster as users run it: the real binary (dist/master/main.js), several at once on one etcd and
// one Ceph cluster. Two masters race creates of one name, a master is killed in the middle of a
// create (no orphan image), the bearer token closes the API, an open API warns, SIGTERM stops it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import { ApiError } from '../../src/api/errors.js';
import { repoRoot, testBackend as backend } from '../helpers/sandbox.js';
import { freePort, rbdLs as rbdLsOf } from '../helpers/net.js';

const exec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const etcdUrl = process.env.VOLPLUGIN_TEST_ETCD;
const cephConf = process.env.CEPH_CONF;
const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const masterBin = path.join(repoRoot, 'dist/master/main.js');


const rbdLs = () => rbdLsOf(cephConf!, pool);

async function waitFor(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

interface Master {
  proc: ChildProcess;
  address: string;
  logs: () => string;
  api: (token?: string) => ApiClient;
  exited: Promise<number | null>;
}

const started: Master[] = [];

async function startMaster(options: { prefix: string; args?: string[]; env?: NodeJS.ProcessEnv; listenHost?: string; token?: string }): Promise<Master> {
  const port = await freePort();
  const host = options.listenHost ?? '127.0.0.1';
  const args = [
    masterBin,
    '--listen', `${host}:${port}`,
    '--etcd', etcdUrl!,
    '--prefix', options.prefix,
    '--backend', backend,
    '--ceph-conf', cephConf!,
    '--janitor-seconds', '1',
    ...(options.args ?? []),
  ];
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const address = `127.0.0.1:${port}`;
  const master: Master = { proc, address, logs: () => output, api: (token) => new ApiClient({ master: address, token: token ?? options.token, timeoutMs: 60_000 }), exited };
  started.push(master);
  await waitFor(
    `volmaster on ${address} (log: ${output.slice(-800)})`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`volmaster exited with ${proc.exitCode}: ${output}`);
      return (await master.api().health()).status === 'ok';
    },
    30_000,
  );
  return master;
}

const policy = {
  'default-options': { pool, size: '16MB', snapshots: false, filesystem: 'ext4' },
  filesystems: { ext4: 'mkfs.ext4 -q -m0 %' },
};

describe(`volmaster binaries on real etcd and Ceph (${backend} backend)`, () => {
  const id = randomUUID().slice(0, 8);
  const prefix = `/it-master-${id}`;
  const tenant = `mc${id}`;
  let a: Master;
  let b: Master;

  beforeAll(async () => {
    if (!etcdUrl || !cephConf) throw new Error('VOLPLUGIN_TEST_ETCD and CEPH_CONF must be set (test/helpers/global-setup.ts sets them)');
    if (!existsSync(masterBin)) throw new Error(`${masterBin} is missing: build first (pnpm build:ts, or make test)`);
    [a, b] = await Promise.all([startMaster({ prefix }), startMaster({ prefix })]);
    await a.api().uploadTenant(tenant, policy);
  });

  afterAll(async () => {
    for (const m of started) if (m.proc.exitCode === null) m.proc.kill('SIGKILL');
    const leftovers = (await rbdLs().catch(() => [] as string[])).filter((i) => i.startsWith(`${tenant}.`));
    for (const image of leftovers) await exec('rbd', ['-c', cephConf!, 'rm', '--no-progress', `${pool}/${image}`]).catch(() => undefined);
  });

  it('is ready when etcd and Ceph answer', async () => {
    expect(await a.api().ready()).toMatchObject({ ready: true, checks: { etcd: { ok: true }, ceph: { ok: true } } });
  });

  it('two masters, concurrent creates of one name: exactly one image', async () => {
    const results = await Promise.allSettled([
      ...Array.from({ length: 5 }, () => a.api().createVolume(tenant, 'race')),
      ...Array.from({ length: 5 }, () => b.api().createVolume(tenant, 'race')),
    ]);
    const failures = results.filter((r) => r.status === 'rejected');
    expect(failures, JSON.stringify(failures)).toEqual([]);
    const created = results.filter((r) => r.status === 'fulfilled' && r.value.created);
    expect(created).toHaveLength(1);
    expect((await rbdLs()).filter((i) => i === `${tenant}.race`)).toHaveLength(1);
    const record = await b.api().getVolume(tenant, 'race');
    expect(record).toMatchObject({ pool, image: `${tenant}.race`, options: { sizeBytes: 16 * 1024 * 1024 } });
    // The same create again through either master returns it; other options conflict.
    expect((await a.api().createVolume(tenant, 'race', { size: '16' })).created).toBe(false);
    await expect(b.api().createVolume(tenant, 'race', { size: '32' })).rejects.toMatchObject({ code: 'VOLUME_EXISTS', status: 409 });
    await a.api().removeVolume(tenant, 'race');
    expect(await rbdLs()).not.toContain(`${tenant}.race`);
  });

  it('a read through one master after a write through the other sees the write, also among many concurrent reads', async () => {
    // Reads of one master are sent to etcd together (src/state/etcd-reads.ts): the reads that
    // follow each write here land among a stream of others, so that they join batches.
    await a.api().createVolume(tenant, 'raw');
    const reader = b.api();
    let stop = false;
    const background = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) await reader.getVolume(tenant, 'raw');
      }),
    );
    try {
      for (let keep = 1; keep <= 10; keep++) {
        await a.api().setRuntime(tenant, 'raw', { 'snapshots.keep': keep });
        const seen = await Promise.all([reader.getVolume(tenant, 'raw'), reader.getVolume(tenant, 'raw')]);
        expect(seen.map((v) => v.runtime.snapshot.keep)).toEqual([keep, keep]);
      }
      // A create through one master is there for the other at once, a remove is gone at once.
      await b.api().createVolume(tenant, 'raw2');
      expect((await a.api().getVolume(tenant, 'raw2')).image).toBe(`${tenant}.raw2`);
      await a.api().removeVolume(tenant, 'raw2');
      await expect(reader.getVolume(tenant, 'raw2')).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    } finally {
      stop = true;
      await background;
    }
    await b.api().removeVolume(tenant, 'raw');
  });

  it('a failed create leaves no image and no record', async () => {
    await expect(a.api().createVolume(tenant, 'nopool', { pool: `nopool${id}` })).rejects.toMatchObject({ code: 'POOL_NOT_FOUND', status: 400 });
    await expect(a.api().createVolume(tenant, 'badopt', { colour: 'red' })).rejects.toMatchObject({ code: 'INVALID_OPTION', field: 'colour' });
    await expect(a.api().getVolume(tenant, 'nopool')).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    expect((await rbdLs()).filter((i) => i.startsWith(`${tenant}.`))).toEqual([]);
  });

  it('a master killed mid-create leaves no orphan: the janitor removes the image', async () => {
    const doomed = await startMaster({ prefix, env: { VOLMASTER_FAILPOINTS: 'after-image-create=60000' } });
    const request = doomed.api().createVolume(tenant, 'killed').catch((err: unknown) => err);
    await waitFor('the image of the doomed create', async () => (await rbdLs()).includes(`${tenant}.killed`), 30_000);
    doomed.proc.kill('SIGKILL');
    expect(await request).toBeInstanceOf(ApiError);
    await expect(a.api().getVolume(tenant, 'killed')).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    // The dead master's operation lock expires with its lease (10 s), then a janitor cleans up.
    await waitFor('the janitor to remove the orphan image', async () => !(await rbdLs()).includes(`${tenant}.killed`), 60_000);
    await expect(a.api().getVolume(tenant, 'killed')).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    expect((await a.api().createVolume(tenant, 'killed')).created).toBe(true);
    expect((await rbdLs()).filter((i) => i === `${tenant}.killed`)).toHaveLength(1);
    await a.api().removeVolume(tenant, 'killed');
  });

  it('a master killed mid-create: the next create waits for its lock and recreates cleanly', async () => {
    const doomed = await startMaster({ prefix, args: ['--janitor-seconds', '0'], env: { VOLMASTER_FAILPOINTS: 'after-image-create=60000' } });
    const request = doomed.api().createVolume(tenant, 'retry', { size: '32' }).catch((err: unknown) => err);
    await waitFor('the image of the doomed create', async () => (await rbdLs()).includes(`${tenant}.retry`), 30_000);
    doomed.proc.kill('SIGKILL');
    await request;
    const retried = await b.api().createVolume(tenant, 'retry');
    expect(retried.created).toBe(true);
    expect(retried.volume.options.sizeBytes).toBe(16 * 1024 * 1024);
    const { stdout } = await exec('rbd', ['-c', cephConf!, 'info', '--format', 'json', `${pool}/${tenant}.retry`]);
    expect((JSON.parse(stdout) as { size: number }).size).toBe(16 * 1024 * 1024);
    await b.api().removeVolume(tenant, 'retry');
  });

  it('with --token-file every request but health needs the token', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'volmaster-token-'));
    const file = path.join(dir, 'token');
    writeFileSync(file, 'integration-token\n', { mode: 0o600 });
    const closed = await startMaster({ prefix, args: ['--token-file', file], listenHost: '0.0.0.0', token: 'integration-token' });
    expect((await closed.api('').health()).status).toBe('ok');
    await expect(new ApiClient({ master: closed.address }).listTenants()).rejects.toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    await expect(new ApiClient({ master: closed.address, token: 'wrong' }).listTenants()).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    expect((await closed.api().listTenants()).map((t) => t.name)).toContain(tenant);
    expect(closed.logs()).not.toMatch(/the API is open/);
    expect(closed.logs()).toMatch(/tokens cross the network in clear: give --tls-cert and --tls-key/);
  });

  it('with --insecure beyond loopback, warns at start that the API is open (without it, it refuses: security.test.ts)', async () => {
    const open = await startMaster({ prefix, listenHost: '0.0.0.0', args: ['--insecure'] });
    expect(open.logs()).toMatch(/"level":40.*--insecure: the API is open/);
    const local = await startMaster({ prefix });
    expect(local.logs()).not.toMatch(/"level":40.*the API is open/);
  });

  it('stops gracefully on SIGTERM', async () => {
    const m = await startMaster({ prefix });
    m.proc.kill('SIGTERM');
    expect(await m.exited).toBe(0);
    expect(m.logs()).toMatch(/stopped/);
  });

  it('exits 2 with one line on bad flags', async () => {
    const run = await exec(process.execPath, [masterBin, '--listen', 'nowhere'], { timeout: 30_000 }).catch((e: { code: number; stderr: string }) => e);
    expect((run as { code: number }).code).toBe(2);
    expect((run as { stderr: string }).stderr).toMatch(/not HOST:PORT/);
  });
});
