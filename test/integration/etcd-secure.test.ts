// Every component against an etcd with TLS (certificates made by scripts/sandbox.sh with openssl),
// client certificates and users: the KV contract as the volplugin user; volmaster (user volplugin)
// and volplugin (user volplugin-host, which may only write its locks and reports) serving a mount;
// volcli --etcd; and every way of getting it wrong refused with what to do about it.
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEtcd } from '../../src/common/etcd.js';
import type { EtcdSecurity } from '../../src/common/flags.js';
import { EtcdKV, EtcdRefusedError } from '../../src/state/etcd.js';
import { StateUnavailableError } from '../../src/state/kv.js';
import { createVolume, startMaster, TestPlugin, testPolicy, uniq, type TestMaster } from '../helpers/plugin-harness.js';
import { repoRoot, secureEtcd, testRoot, type SecureEtcd, type SecureEtcdUser } from '../helpers/sandbox.js';
import { kvContract } from '../unit/state-kv.contract.js';

const exec = promisify(execFile);
let etcd: SecureEtcd;
let root: Etcd3;
let scratch: string;

const security = (user: SecureEtcdUser | null, change: Partial<EtcdSecurity> = {}): EtcdSecurity => ({
  ca: etcd.ca,
  cert: etcd.cert,
  key: etcd.key,
  user,
  passwordFile: user ? etcd.passwordFile(user) : null,
  ...change,
});
const open = (user: SecureEtcdUser | null, change: Partial<EtcdSecurity> = {}, timeoutMs = 15_000) =>
  openEtcd({ etcd: [etcd.url], etcdSecurity: security(user, change) }, timeoutMs);
const failure = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as Error);

beforeAll(async () => {
  etcd = await secureEtcd();
  const read = (f: string) => readFile(f);
  root = new Etcd3({
    hosts: [etcd.url],
    credentials: { rootCertificate: await read(etcd.ca), certChain: await read(etcd.cert), privateKey: await read(etcd.key) },
    auth: { username: 'root', password: (await readFile(etcd.passwordFile('root'), 'utf8')).trim() },
  });
  scratch = await mkdtemp(path.join(tmpdir(), 'etcd-secure-'));
}, 60_000);

afterAll(async () => {
  root?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

// The contract's keys go under /volplugin/, where the volplugin user may read and write.
kvContract('EtcdKV with TLS and the volplugin user', () => ({
  open: () => open('volplugin'),
  expire: async (_kv, leaseId) => {
    await root.leaseClient.leaseRevoke({ ID: BigInt(`0x${leaseId}`).toString(10) });
  },
  crash: async (kv) => kv.close(),
  ttlSeconds: 3,
  expiryMs: 8_000,
  noticeMs: 4_000,
  keyPrefix: '/volplugin/test',
}));

describe('etcd with TLS and users: what each credential can do', () => {
  it('the volplugin-host user writes its locks and reports and reads volumes, but changes no volume, tenant or token', async () => {
    const admin = await open('volplugin');
    const host = await open('volplugin-host');
    try {
      const id = randomUUID();
      await admin.put(`/volplugin/volumes/t${id}/v`, '{"formatCommand":"mkfs.ext4 %"}');
      await host.put(`/volplugin/mounts/t${id}/v`, 'lock');
      await host.put(`/volplugin/hosts/h${id}`, 'report');
      expect((await host.get(`/volplugin/volumes/t${id}/v`))?.value).toContain('mkfs.ext4');
      for (const key of [`/volplugin/volumes/t${id}/v`, `/volplugin/tenants/t${id}`, `/volplugin/tokens/${id}`]) {
        const err = await failure(host.put(key, '{"formatCommand":"sh -c reboot %"}'));
        expect(err).toBeInstanceOf(EtcdRefusedError);
        expect(err!.message).toMatch(new RegExp(`denied put ${key}: the user volplugin-host may not do this`));
      }
      expect((await admin.get(`/volplugin/volumes/t${id}/v`))?.value).toBe('{"formatCommand":"mkfs.ext4 %"}');
      // Outside /volplugin/ the volplugin user has nothing either.
      expect(await failure(admin.get('/elsewhere'))).toBeInstanceOf(EtcdRefusedError);
      for (const key of [`/volplugin/volumes/t${id}/v`, `/volplugin/mounts/t${id}/v`, `/volplugin/hosts/h${id}`]) await admin.delete(key);
    } finally {
      await admin.close();
      await host.close();
    }
  });

  it('a wrong password is refused at open, naming the user and the flags to check', async () => {
    const wrong = path.join(scratch, 'wrong.password');
    await writeFile(wrong, 'not-the-password\n', { mode: 0o600 });
    const err = await failure(open('volplugin', { passwordFile: wrong }));
    expect(err).toBeInstanceOf(EtcdRefusedError);
    expect(err!.message).toMatch(/refused the user volplugin: wrong user name or password .*check --etcd-user and --etcd-password-file/);
  });

  it('a password file others can read, or an empty one, is refused before etcd is asked', async () => {
    const loose = path.join(scratch, 'loose.password');
    await copyFile(etcd.passwordFile('volplugin'), loose);
    await chmod(loose, 0o644);
    expect((await failure(open('volplugin', { passwordFile: loose })))!.message).toMatch(/can be read by its group or others \(mode 0644\).*chmod 600/);
    const empty = path.join(scratch, 'empty.password');
    await writeFile(empty, '\n', { mode: 0o600 });
    expect((await failure(open('volplugin', { passwordFile: empty })))!.message).toMatch(/password file .* is empty/);
  });

  it('the client certificate alone gets nothing: no user, no access', async () => {
    const kv = await open(null);
    try {
      const err = await failure(kv.get('/volplugin/x'));
      expect(err).toBeInstanceOf(EtcdRefusedError);
      expect(err!.message).toMatch(/etcd has authentication enabled: give --etcd-user and --etcd-password-file/);
    } finally {
      await kv.close();
    }
  });

  it('without a client certificate, with another CA, or over plain http, etcd cannot be reached, and the error says what to check', async () => {
    const otherCa = path.join(scratch, 'other-ca.pem');
    const otherKey = path.join(scratch, 'other-ca-key.pem');
    await exec('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', otherKey, '-out', otherCa, '-days', '1', '-subj', '/CN=other']);
    // An etcd that cannot be reached is no error at open (components start while it is down): the first call fails.
    for (const change of [{ cert: null, key: null }, { ca: otherCa }]) {
      const kv = await open('volplugin', change, 2_000);
      try {
        const err = await failure(kv.get('/volplugin/x'));
        expect(err).toBeInstanceOf(StateUnavailableError);
        expect(err!.message).toMatch(/check that etcd is running and reachable, and that --etcd-ca, --etcd-cert and --etcd-key match its certificates/);
      } finally {
        await kv.close();
      }
    }
    const plain = new EtcdKV({ endpoints: [etcd.url.replace('https://', 'http://')], timeoutMs: 2_000 });
    try {
      const err = await failure(plain.get('/volplugin/x'));
      expect(err).toBeInstanceOf(StateUnavailableError);
      expect(err!.message).toMatch(/if etcd serves TLS, use https:\/\/ URLs with --etcd-ca/);
    } finally {
      await plain.close();
    }
  });
});

describe('the components on the secure etcd', () => {
  const run = uniq();
  const tenant = `sec${run}`;
  const dir = path.join(testRoot, `etcd-secure-${run}`);
  let master: TestMaster;
  let plugin: TestPlugin;

  beforeAll(async () => {
    // The host role is granted /volplugin/mounts/, /volplugin/hosts/ and /volplugin/volumes/: the
    // components use the default prefix here (a tenant of its own keeps runs apart).
    master = await startMaster(dir, '/volplugin', { etcd: etcd.flags('volplugin') });
    plugin = await TestPlugin.start({ label: 'sec', root: dir, master, etcd: etcd.flags('volplugin-host') });
  }, 120_000);

  afterAll(async () => {
    await plugin?.stop();
    await master?.stop();
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  });

  it('volmaster (user volplugin) and volplugin (user volplugin-host) create, mount and remove a volume', async () => {
    await master.api.uploadTenant(tenant, testPolicy());
    await createVolume(plugin, `${tenant}/v`);
    const mount = await plugin.mount(`${tenant}/v`, 'm1');
    expect(mount.Err ?? '').toBe('');
    expect(mount.Mountpoint).toBe(plugin.mountpointOf(`${tenant}/v`));
    expect((await master.api.getMount(tenant, 'v')).host).toBe('sec');
    expect((await plugin.unmount(`${tenant}/v`, 'm1')).Err ?? '').toBe('');
    await master.api.removeVolume(tenant, 'v');
    await master.api.deleteTenant(tenant);
  });

  it('volcli --etcd reads and writes records with the flags or the environment', async () => {
    const cli = path.join(repoRoot, 'dist/cli/main.js');
    const volcli = (args: string[], env: NodeJS.ProcessEnv = {}, stdin = '') =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH, ...env } });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
        child.stdin.end(stdin);
      });
    const policy = JSON.stringify(testPolicy());
    const flags = etcd.flags('volplugin').filter((f) => f !== '--etcd' && f !== etcd.url);
    const uploaded = await volcli(['--etcd', etcd.url, ...flags, 'tenant', 'upload', `${tenant}c`], {}, policy);
    expect(uploaded).toMatchObject({ code: 0, stderr: '' });
    const env = {
      VOLPLUGIN_ETCD_CA: etcd.ca,
      VOLPLUGIN_ETCD_CERT: etcd.cert,
      VOLPLUGIN_ETCD_KEY: etcd.key,
      VOLPLUGIN_ETCD_USER: 'volplugin',
      VOLPLUGIN_ETCD_PASSWORD_FILE: etcd.passwordFile('volplugin'),
    };
    const listed = await volcli(['--etcd', etcd.url, 'tenant', 'list'], env);
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    expect(listed.stdout).toContain(`${tenant}c`);
    // The host's user may not upload tenants.
    const host = await volcli(['--etcd', etcd.url, 'tenant', 'upload', `${tenant}d`], { ...env, VOLPLUGIN_ETCD_USER: 'volplugin-host', VOLPLUGIN_ETCD_PASSWORD_FILE: etcd.passwordFile('volplugin-host') }, policy);
    expect(host.code).toBe(1);
    expect(host.stderr).toMatch(/^volcli: etcd at https:\/\/localhost:\d+ denied .*the user volplugin-host may not do this/);
    const usage = await volcli(['--etcd', etcd.url, '--etcd-user', 'volplugin', 'tenant', 'list']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^volcli: --etcd-user needs --etcd-password-file/);
    expect((await volcli(['--etcd', etcd.url, 'tenant', 'delete', `${tenant}c`], env)).code).toBe(0);
  });

  it('a daemon whose etcd password is wrong exits 1 at start with one line naming the user', async () => {
    const wrong = path.join(scratch, 'daemon-wrong.password');
    await writeFile(wrong, 'nope\n', { mode: 0o600 });
    const flags = etcd.flags('volplugin').map((f) => (f === etcd.passwordFile('volplugin') ? wrong : f));
    const result = await exec(process.execPath, [path.join(repoRoot, 'bin/volsupervisor.cjs'), ...flags, '--backend', 'cli', '--ceph-conf', process.env.CEPH_CONF!], {
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^volsupervisor: etcd at https:\/\/localhost:\d+ refused the user volplugin: wrong user name or password/m);
  });
});
