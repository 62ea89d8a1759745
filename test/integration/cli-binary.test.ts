// volcli as a newcomer runs it: the real binaries (dist/cli/main.js against dist/master/main.js) on
// real etcd and Ceph, with a bearer token. Upload the README's tenant, create, list, get and remove
// volumes and see the images in `rbd ls`; every bad input gets its one-line error and writes
// nothing; with --etcd, volcli reads and writes records while no master runs.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import { repoRoot, testBackend as backend } from '../helpers/sandbox.js';
import { freePort, rbdLs as rbdLsOf } from '../helpers/net.js';

const exec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const etcdUrl = process.env.VOLPLUGIN_TEST_ETCD;
const cephConf = process.env.CEPH_CONF;
const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const masterBin = path.join(repoRoot, 'dist/master/main.js');
const cliBin = path.join(repoRoot, 'dist/cli/main.js');
const readmeTenant = readFileSync(path.join(repoRoot, 'examples/tenant1.json'), 'utf8');


const rbdLs = () => rbdLsOf(cephConf!, pool);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe(`volcli binary against a volmaster binary (${backend} backend)`, () => {
  const id = randomUUID().slice(0, 8);
  const prefix = `/it-cli-${id}`;
  const tenant = `cli${id}`;
  let master: ChildProcess | null = null;
  let masterAddress = '';
  let masterLog = '';
  let tokenFile = '';
  let env: NodeJS.ProcessEnv = {};

  function volcli(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cliBin, ...args], {
        env: { PATH: process.env.PATH, ...env, ...options.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      child.stdin.end(options.stdin ?? '');
    });
  }

  const ok = async (args: string[], stdin?: string) => {
    const r = await volcli(args, { stdin });
    expect(r.stderr, `volcli ${args.join(' ')}`).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  };

  /** ok() for a command that follows an operation: stderr (no terminal here) has only its progress lines. */
  const okWithProgress = async (args: string[]) => {
    const r = await volcli(args);
    for (const line of r.stderr.split('\n').filter(Boolean)) expect(line, `volcli ${args.join(' ')}`).toMatch(/^(remove|resize|copy) \S+: /);
    expect(r.code).toBe(0);
    return r.stdout;
  };

  const refused = async (args: string[], code: number, message: RegExp, stdin?: string) => {
    const r = await volcli(args, { stdin });
    expect(r.code, `volcli ${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trimEnd().split('\n'), 'one line').toHaveLength(1);
    expect(r.stdout).toBe('');
  };

  beforeAll(async () => {
    if (!etcdUrl || !cephConf) throw new Error('VOLPLUGIN_TEST_ETCD and CEPH_CONF must be set (test/helpers/global-setup.ts sets them)');
    for (const bin of [masterBin, cliBin]) if (!existsSync(bin)) throw new Error(`${bin} is missing: build first (pnpm build:ts, or make test)`);
    const dir = mkdtempSync(path.join(tmpdir(), 'volcli-it-'));
    tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, `${randomUUID()}\n`, { mode: 0o600 });
    const port = await freePort();
    masterAddress = `127.0.0.1:${port}`;
    master = spawn(
      process.execPath,
      [masterBin, '--listen', masterAddress, '--etcd', etcdUrl, '--prefix', prefix, '--backend', backend, '--ceph-conf', cephConf, '--token-file', tokenFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    master.stdout!.on('data', (d: Buffer) => (masterLog += d.toString()));
    master.stderr!.on('data', (d: Buffer) => (masterLog += d.toString()));
    env = { VOLPLUGIN_MASTER: masterAddress, VOLPLUGIN_TOKEN_FILE: tokenFile };
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await fetch(`http://${masterAddress}/v1/health`).catch(() => null);
      if (r?.ok) break;
      if (Date.now() > deadline || master.exitCode !== null) throw new Error(`volmaster did not start: ${masterLog}`);
      await sleep(200);
    }
  });

  afterAll(async () => {
    master?.kill('SIGKILL');
    for (const image of (await rbdLs().catch(() => [] as string[])).filter((i) => i.startsWith(tenant))) {
      await exec('rbd', ['-c', cephConf!, 'rm', '--no-progress', `${pool}/${image}`]).catch(() => undefined);
    }
  });

  it('a newcomer uploads the README tenant, creates, lists, gets and removes volumes, and sees them in rbd ls', async () => {
    expect(await ok(['tenant', 'upload', tenant], readmeTenant)).toBe(`uploaded tenant ${tenant} (revision 1)\n`);
    expect(await ok(['tenant', 'list'])).toMatch(new RegExp(`\\n${tenant}\\s+1\\s`));
    expect(JSON.parse(await ok(['tenant', 'get', tenant]))).toEqual(JSON.parse(readmeTenant));

    expect(await ok(['volume', 'create', `${tenant}/foo`])).toMatch(new RegExp(`^created ${tenant}/foo: 100MB ext4 in ${pool}/${tenant}.foo`));
    expect(await ok(['volume', 'create', `${tenant}/bar`, '--opt', 'size=20', '--opt', 'filesystem=xfs'])).toMatch(/20MB xfs/);
    expect(await ok(['volume', 'create', `${tenant}/foo`])).toMatch(/^exists with these options/);
    expect(await rbdLs()).toEqual(expect.arrayContaining([`${tenant}.foo`, `${tenant}.bar`]));
    const info = await exec('rbd', ['-c', cephConf!, 'info', '--format', 'json', `${pool}/${tenant}.foo`], { timeout: 60_000 });
    expect((JSON.parse(info.stdout) as { features: string[] }).features.sort()).toEqual(
      ['exclusive-lock', 'fast-diff', 'layering', 'object-map'], // object-map: removes delete only written objects
    );

    const list = await ok(['volume', 'list', tenant]);
    expect(list).toMatch(/\nbar\s/);
    expect(list).toMatch(/\nfoo\s/);
    expect(await ok(['volume', 'list-all'])).toMatch(new RegExp(`${tenant}/foo`));
    expect(await ok(['volume', 'get', `${tenant}/bar`])).toMatch(/size:\s+20MB/);
    expect((JSON.parse(await ok(['--json', 'volume', 'get', `${tenant}/foo`])) as { image: string }).image).toBe(`${tenant}.foo`);
    expect(await ok(['mount', 'list'])).toBe('');

    expect(await okWithProgress(['volume', 'remove', `${tenant}/foo`])).toBe(`removed ${tenant}/foo\n`);
    expect(await rbdLs()).not.toContain(`${tenant}.foo`);
    expect(await ok(['volume', 'force-remove', `${tenant}/bar`])).toMatch(/image was left alone/);
    expect(await rbdLs()).toContain(`${tenant}.bar`);
    // The force-removed volume's image is taken over by a create of the same size.
    expect(await ok(['volume', 'create', `${tenant}/bar`, '--opt', 'size=20', '--opt', 'filesystem=xfs'])).toMatch(/^created/);
    expect(await okWithProgress(['volume', 'remove', `${tenant}/bar`])).toBe(`removed ${tenant}/bar\n`);
    expect((await rbdLs()).filter((i) => i.startsWith(`${tenant}.`))).toEqual([]);
  });

  const t = `${tenant}b`;

  it('every bad policy gets a clear error and uploads nothing', async () => {
    await ok(['tenant', 'upload', t], readmeTenant);
    const before = await ok(['--json', 'tenant', 'history', t]);
    const bad = (o: object) => JSON.stringify({ 'default-options': { pool, ...o } });
    await refused(['tenant', 'upload', t], 1, /invalid JSON in the policy on stdin at line 3, column 1/, '{\n "default-options": {"pool": "rbd"},\n}');
    await refused(['tenant', 'upload', t], 1, /default-options.colour: unknown key/, bad({ colour: 'red' }));
    await refused(['tenant', 'upload', t], 1, /default-options.pool: is required/, '{"default-options": {"size": "1GB"}}');
    await refused(['tenant', 'upload', t], 1, /default-options.size: .*has no unit/, bad({ size: '10' }));
    await refused(['tenant', 'upload', t], 1, /unknown size unit "PB"/, bad({ size: '10PB' }));
    await refused(['tenant', 'upload', t], 1, /default-options.snapshot.keep: must be at least 1, got -5/, bad({ snapshot: { keep: -5 } }));
    await refused(['tenant', 'upload', t], 1, /default-options.snapshot.frequency: .*not a duration/, bad({ snapshot: { frequency: 'weekly' } }));
    await refused(['tenant', 'upload', t], 1, /filesystems.ext4: .*has no "%"/, JSON.stringify({ 'default-options': { pool }, filesystems: { ext4: 'mkfs.ext4' } }));
    await refused(['tenant', 'upload', t], 1, /"zfs" is not in filesystems/, bad({ filesystem: 'zfs' }));
    expect(await ok(['--json', 'tenant', 'history', t])).toBe(before);
  });

  it('every bad name gets a clear error and creates nothing', async () => {
    await refused(['volume', 'create', `${t}/`], 2, /volume name is empty/);
    await refused(['volume', 'create', `/v`], 2, /tenant name is empty/);
    await refused(['volume', 'create', `${t}/${'v'.repeat(65)}`], 2, /limit is 64/);
    await refused(['volume', 'create', `${t}/a/b`], 2, /contains "\/"/);
    await refused(['volume', 'create', `${t}/a..b`], 2, /contains "\.\."/);
    await refused(['volume', 'create', `${t}/a b`], 2, /whitespace/);
    await refused(['volume', 'create', `${t}/a;reboot`], 2, /contains ";"/);
    await refused(['volume', 'create', `${t}/$(id)`], 2, /contains "\$"/);
    await refused(['volume', 'create', `${t}/naïve`], 2, /non-ASCII/);
    await refused(['tenant', 'upload', ''], 2, /tenant name is empty/, readmeTenant);
    expect((await rbdLs()).filter((i) => i.startsWith(`${t}.`))).toEqual([]); // the pool is shared: look at ours only
  });

  it('every bad option gets a clear error and creates nothing', async () => {
    await refused(['volume', 'create', `${t}/v`, '--opt', 'colour=red'], 2, /unknown option "colour"/);
    await refused(['volume', 'create', `${t}/v`, '--opt', 'snapshots=maybe'], 2, /snapshots: "maybe" is not a boolean/);
    await refused(['volume', 'create', `${t}/v`, '--opt', 'size=ten'], 2, /size: "ten" is not a size/);
    await refused(['volume', 'create', `${t}/v`, '--opt', 'filesystem=zfs'], 1, /"zfs" is not one of the tenant's filesystems/);
    await refused(['volume', 'create', `nobody${id}/v`], 1, /tenant nobody.* does not exist/);
    expect((await rbdLs()).filter((i) => i.startsWith(`${t}.`))).toEqual([]);
    expect(JSON.parse(await ok(['--json', 'volume', 'list', t]))).toEqual([]);
  });

  it('says what to do without the token and when the master is down', async () => {
    const noToken = await volcli(['tenant', 'list'], { env: { VOLPLUGIN_TOKEN_FILE: '' } });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/requires a bearer token: give volcli or volplugin --token-file/);
    const down = await volcli(['--master', '127.0.0.1:1', 'tenant', 'list']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach volmaster at http:\/\/127.0.0.1:1/);
  });

  it('reads and writes records in etcd directly with --etcd, master or no master', async () => {
    const direct = ['--etcd', etcdUrl!, '--prefix', prefix];
    await ok(['tenant', 'upload', `${tenant}c`], readmeTenant);
    expect(await ok([...direct, 'tenant', 'list'])).toMatch(new RegExp(`${tenant}c`));
    await ok(['volume', 'create', `${tenant}c/direct`, '--opt', 'size=8']);
    master!.kill('SIGTERM');
    await new Promise((resolve) => (master!.exitCode !== null ? resolve(null) : master!.on('exit', resolve)));
    expect(await ok([...direct, 'volume', 'get', `${tenant}c/direct`])).toMatch(/size:\s+8MB/);
    expect(await ok([...direct, 'volume', 'list-all'])).toMatch(new RegExp(`${tenant}c/direct`));
    expect(await ok([...direct, 'mount', 'list'])).toBe('');
    expect(await ok([...direct, 'volume', 'runtime', 'get', `${tenant}c/direct`])).toMatch(/snapshots.keep:\s+20/);
    expect(await ok([...direct, 'tenant', 'upload', `${tenant}d`], readmeTenant)).toMatch(/revision 1/);
    await refused([...direct, 'tenant', 'upload', `${tenant}d`], 1, /line 1, column 2/, '{,}');
    expect(await ok([...direct, 'volume', 'force-remove', `${tenant}c/direct`])).toMatch(/records/);
    await refused([...direct, 'volume', 'get', `${tenant}c/direct`], 1, /does not exist/);
    await refused(['volume', 'remove', `${tenant}c/direct`], 1, /cannot reach volmaster/);
    // Changes made in etcd directly are in the audit trail too, named by the etcd user (none here: "etcd").
    const kv = new EtcdKV({ endpoints: [etcdUrl!] });
    try {
      const trail = await new StateStore(kv, { prefix }).listAudit({ since: new Date(Date.now() - 600_000) });
      const direct = trail.filter((e) => e.who.via === 'etcd').map((e) => [e.method, e.path, e.outcome, e.code ?? '']);
      expect(direct).toEqual([
        ['PUT', `/v1/tenants/${tenant}d`, 'ok', ''],
        // (the malformed policy was refused by volcli before it reached etcd: nothing to record)
        ['DELETE', `/v1/volumes/${tenant}c/direct`, 'ok', ''],
      ]);
    } finally {
      await kv.close();
    }
  });
});
