// Secure by default, with the real binaries on the real etcd and Ceph: two volmasters serving TLS
// with certificates made here by openssl, tokens created with volcli and used on the other master,
// a revoked token refused by every master within seconds, a host token that cannot delete data,
// parallel creates that never overshoot a tenant's limits, and one strict schema on every path
// (the API, volcli --etcd, records read back from etcd).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import { ApiError } from '../../src/api/errors.js';
import { repoRoot, testBackend as backend } from '../helpers/sandbox.js';
import { freePort, rbdLs } from '../helpers/net.js';
import { waitFor } from '../helpers/plugin-harness.js';
import { makeCertificates } from '../helpers/tls.js';

const exec = promisify(execFile);
const etcdUrl = process.env.VOLPLUGIN_TEST_ETCD!;
const cephConf = process.env.CEPH_CONF!;
const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const masterBin = path.join(repoRoot, 'dist/master/main.js');
const volcliBin = path.join(repoRoot, 'dist/cli/main.js');

const id = randomUUID().slice(0, 8);
const prefix = `/sec-${id}`;
const dir = mkdtempSync(path.join(tmpdir(), 'volplugin-security-'));
const caFile = path.join(dir, 'ca.pem');
const certFile = path.join(dir, 'master.pem');
const keyFile = path.join(dir, 'master.key');
const adminFile = path.join(dir, 'admin-token');

interface Master {
  proc: ChildProcess;
  address: string;
  logs: () => string;
  exited: Promise<number | null>;
}
const masters: Master[] = [];

function spawnMaster(args: string[]): Master {
  const proc = spawn(process.execPath, [masterBin, '--etcd', etcdUrl, '--prefix', prefix, '--backend', backend, '--ceph-conf', cephConf, '--janitor-seconds', '1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const master = { proc, address: '', logs: () => output, exited };
  masters.push(master);
  return master;
}

/** A volmaster serving HTTPS with the bootstrap admin token, listening on `host`. */
async function startTlsMaster(host: string): Promise<Master> {
  const port = await freePort();
  const master = spawnMaster(['--listen', `${host}:${port}`, '--tls-cert', certFile, '--tls-key', keyFile, '--token-file', adminFile]);
  master.address = `127.0.0.1:${port}`;
  const probe = new ApiClient({ master: master.address, ca: readFileSync(caFile, 'utf8'), timeoutMs: 5_000 });
  await waitFor(`volmaster on ${master.address} (log: ${master.logs().slice(-800)})`, async () => {
    if (master.proc.exitCode !== null) throw new Error(`volmaster exited with ${master.proc.exitCode}: ${master.logs()}`);
    return (await probe.health()).status === 'ok';
  }, 30_000);
  await probe.close();
  return master;
}

async function volcli(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [volcliBin, ...args], { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(options.stdin ?? '');
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

let a: Master;
let b: Master;
/** volcli through master `m` over TLS with the admin token (or `tokenFile`). */
const cli = (m: Master, args: string[], tokenFile = adminFile, stdin?: string) =>
  volcli(['--master', m.address, '--tls-ca', caFile, '--token-file', tokenFile, ...args], { stdin });
const admin = (m: Master) => new ApiClient({ master: m.address, ca: readFileSync(caFile, 'utf8'), token: readFileSync(adminFile, 'utf8').trim(), timeoutMs: 120_000 });

const tenants: string[] = [];
const tenant = (name: string) => {
  const t = `${name}${id}`;
  tenants.push(t);
  return t;
};

beforeAll(async () => {
  if (!existsSync(masterBin) || !existsSync(volcliBin)) throw new Error('dist/ is missing: build first (make build)');
  await makeCertificates(dir);
  writeFileSync(adminFile, `${randomUUID()}${randomUUID()}\n`, { mode: 0o600 });
  // A master beyond loopback (it has a token, so it may) and one on loopback: one etcd, one Ceph.
  [a, b] = await Promise.all([startTlsMaster('0.0.0.0'), startTlsMaster('127.0.0.1')]);
}, 120_000);

afterAll(async () => {
  if (a) {
    const api = admin(a);
    for (const t of tenants) {
      for (const v of await api.listVolumes(t).catch(() => [])) await api.removeVolume(t, v.volume).catch(() => undefined);
    }
    await api.close();
  }
  for (const m of masters) {
    if (m.proc.exitCode === null) {
      m.proc.kill('SIGTERM');
      await m.exited;
    }
  }
  await exec('etcdctl', ['--endpoints', etcdUrl, 'del', '--prefix', `${prefix}/`]).catch(() => undefined);
}, 120_000);

describe(`secure by default, real binaries on real etcd and Ceph (${backend} backend)`, () => {
  it('serves TLS: volcli with --tls-ca works, without it is told which flag to give', async () => {
    const policy = JSON.stringify({ 'default-options': { pool, size: '8MB' } });
    const t = tenant('tls');
    const up = await cli(a, ['tenant', 'upload', t], adminFile, policy);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(new RegExp(`uploaded tenant ${t} \\(revision 1\\)`));
    const untrusted = await volcli(['--master', `https://${a.address}`, '--token-file', adminFile, 'tenant', 'list']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/cannot trust volmaster at https:\/\/127.0.0.1:\d+ \(.*\): give the CA that signed its certificate with --tls-ca/);
    const plain = await volcli(['--master', `http://${a.address}`, '--token-file', adminFile, 'tenant', 'list']);
    expect(plain.code).toBe(1);
    // The env file of `make up` sets VOLPLUGIN_TLS_CA and VOLPLUGIN_TOKEN_FILE: the same, without flags.
    const viaEnv = await volcli(['--master', b.address, 'tenant', 'list'], { env: { VOLPLUGIN_TLS_CA: caFile, VOLPLUGIN_TOKEN_FILE: adminFile } });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(viaEnv.stdout).toContain(t);
  });

  it('refuses to listen beyond loopback without a token (exit 2, naming the fix); --insecure warns', async () => {
    const port = await freePort();
    const open = spawnMaster(['--listen', `0.0.0.0:${port}`]);
    expect(await open.exited).toBe(2);
    expect(open.logs()).toMatch(/--listen 0.0.0.0:\d+ reaches beyond this machine and no --token-file is given.*--insecure/);
    const insecure = spawnMaster(['--listen', `0.0.0.0:${port}`, '--insecure']);
    await waitFor('the --insecure master to listen', async () => insecure.logs().includes('volmaster listening'), 30_000);
    expect(insecure.logs()).toMatch(/"level":40.*--insecure: the API is open/);
    insecure.proc.kill('SIGTERM');
    expect(await insecure.exited).toBe(0);
  });

  it('a token file others can read is refused at start, with the chmod that fixes it', async () => {
    const loose = path.join(dir, 'loose-token');
    writeFileSync(loose, 'x'.repeat(40), { mode: 0o644 });
    await exec('chmod', ['644', loose]);
    const m = spawnMaster(['--listen', `127.0.0.1:${await freePort()}`, '--token-file', loose]);
    expect(await m.exited).toBe(1);
    expect(m.logs()).toMatch(new RegExp(`the token file ${loose} can be read by its group or others \\(mode 0644\\).*chmod 600 ${loose}`));
  });

  it('a host token made on one master works on the other, cannot delete data, and is refused everywhere soon after its revocation', async () => {
    const t = tenant('host');
    expect((await cli(a, ['tenant', 'upload', t], adminFile, JSON.stringify({ 'default-options': { pool, size: '8MB' } }))).code).toBe(0);
    const hostFile = path.join(dir, `host-${id}`);
    const made = await cli(a, ['token', 'create', '--role', 'host', '--name', `node-${id}`, '--file', hostFile]);
    expect(made.code, made.stderr).toBe(0);
    const who = await cli(b, ['--json', 'token', 'whoami'], hostFile);
    expect(JSON.parse(who.stdout)).toEqual({ name: `node-${id}`, role: 'host' });
    // What volplugin does for docker volume create: allowed. Deleting the data of a non-ephemeral volume: refused.
    expect((await cli(b, ['volume', 'create', `${t}/data`], hostFile)).code).toBe(0);
    const refused = await cli(b, ['volume', 'remove', `${t}/data`], hostFile);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`token node-${id} \\(role host\\) may not remove ${t}/data with its data`));
    expect(await rbdLs(cephConf, pool)).toContain(`${t}.data`);
    const forced = await cli(b, ['volume', 'force-remove', `${t}/data`], hostFile);
    expect(forced.stderr).toMatch(/may not force-remove/);
    // Revoked on master A: A refuses at once, B within its 5 s cache bound.
    expect((await cli(a, ['token', 'revoke', `node-${id}`])).code).toBe(0);
    expect((await cli(a, ['volume', 'list-all'], hostFile)).stderr).toMatch(/not known to this volmaster/);
    await waitFor('master B to refuse the revoked token', async () => (await cli(b, ['volume', 'list-all'], hostFile)).code === 1, 15_000);
    expect((await cli(b, ['volume', 'list-all'], hostFile)).stderr).toMatch(/wrong, or revoked/);
  });

  it('parallel creates on two masters never overshoot a tenant limits (counted in etcd transactions)', async () => {
    const byCount = tenant('cnt');
    const bySize = tenant('size');
    const api = [admin(a), admin(b)];
    await api[0]!.uploadTenant(byCount, { 'default-options': { pool, size: '4MB' }, limits: { volumes: 4, size: '1GB' } });
    await api[0]!.uploadTenant(bySize, { 'default-options': { pool, size: '8MB' }, limits: { 'total-size': '40MB' } });
    const attempt = (t: string, i: number) =>
      api[i % 2]!.createVolume(t, `p${i}`).then(
        () => 'created',
        (err: unknown) => (err instanceof ApiError ? err.code : String(err)),
      );
    const [counts, sizes] = await Promise.all([
      Promise.all(Array.from({ length: 12 }, (_, i) => attempt(byCount, i))),
      Promise.all(Array.from({ length: 10 }, (_, i) => attempt(bySize, i))),
    ]);
    expect(counts.filter((r) => r === 'created')).toHaveLength(4);
    expect(counts.filter((r) => r !== 'created').every((r) => r === 'QUOTA_EXCEEDED')).toBe(true);
    expect(sizes.filter((r) => r === 'created')).toHaveLength(5);
    expect(sizes.filter((r) => r !== 'created').every((r) => r === 'QUOTA_EXCEEDED')).toBe(true);
    const images = await rbdLs(cephConf, pool);
    expect(images.filter((i) => i.startsWith(`${byCount}.`))).toHaveLength(4);
    expect(images.filter((i) => i.startsWith(`${bySize}.`))).toHaveLength(5);
    const usage = await cli(b, ['--json', 'tenant', 'usage', bySize]);
    expect(JSON.parse(usage.stdout)).toMatchObject({ volumes: 5, bytes: 40 * 1024 * 1024, limits: { bytes: 40 * 1024 * 1024 } });
    const human = await cli(a, ['tenant', 'usage', byCount]);
    expect(human.stdout).toMatch(/volumes:\s+4 of 4\n/);
    // Options beyond the limits: 422, named; nothing made.
    const big = await cli(a, ['volume', 'create', `${byCount}/big`, '--opt', 'size=8000TB']);
    expect(big.code).toBe(1);
    expect(big.stderr).toMatch(/size: 8000TB is larger than the tenant's largest volume, 1GB \(limits.size\)/);
    for (const c of api) await c.close();
  }, 180_000);

  it('one strict schema on every path: the API, volcli --etcd, and records read back from etcd', async () => {
    const t = tenant('schema');
    const coerced = JSON.stringify({ 'default-options': { pool, 'rate-limit': { 'write-iops': true } } });
    const viaApi = await cli(a, ['--json', 'tenant', 'upload', t], adminFile, coerced);
    expect(viaApi.code).toBe(1);
    expect(JSON.parse(viaApi.stderr)).toMatchObject({ code: 'INVALID_POLICY', field: 'default-options.rate-limit.write-iops' });
    const viaEtcd = await volcli(['--etcd', etcdUrl, '--prefix', prefix, '--json', 'tenant', 'upload', t], { stdin: coerced });
    expect(viaEtcd.code).toBe(1);
    expect(JSON.parse(viaEtcd.stderr)).toMatchObject({ code: 'INVALID_POLICY', field: 'default-options.rate-limit.write-iops' });
    const raw = await admin(a).request<unknown>('PUT', `/v1/tenants/${t}`, { body: { 'default-options': { pool: 5 } } }).catch((e: ApiError) => e);
    expect(raw).toMatchObject({ code: 'INVALID_POLICY', field: 'default-options.pool', status: 400 });
    // A record written into etcd by hand, with the type the API would have coerced, is refused on read.
    const record = { name: t, policy: { 'default-options': { pool, 'rate-limit': { 'write-iops': true } }, filesystems: { ext4: 'mkfs.ext4 %' } }, revision: 1, uploadedAt: new Date().toISOString() };
    await exec('etcdctl', ['--endpoints', etcdUrl, 'put', `${prefix}/tenants/${t}`, JSON.stringify(record)]);
    const read = await volcli(['--etcd', etcdUrl, '--prefix', prefix, 'tenant', 'get', t]);
    expect(read.code).toBe(1);
    expect(read.stderr).toMatch(/tenants\/.* does not hold a valid volplugin record .*policy.default-options.rate-limit.write-iops: must be a whole number, got true/);
    const create = await cli(b, ['--json', 'volume', 'create', `${t}/v`]);
    expect(JSON.parse(create.stderr)).toMatchObject({ code: 'STATE_CORRUPT' });
    expect((await rbdLs(cephConf, pool)).filter((i) => i.startsWith(`${t}.`))).toEqual([]);
  });
});
