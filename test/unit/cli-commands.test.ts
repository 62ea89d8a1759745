// volcli's commands in-process (run(argv, io)) against a real volmaster app listening on a random
// port, on MemoryKV and the memory Storage twin. The binary itself is exercised by
// test/integration/cli-binary.test.ts.
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { run, type CliIO } from '../../src/cli/program.js';
import { createApp, type App } from '../../src/master/app.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { mountRecord } from '../helpers/fixtures.js';

const MiB = 1024 * 1024;

const policy = JSON.stringify({
  'default-options': { pool: 'rbd', size: '10MB', snapshots: true, snapshot: { frequency: '30m', keep: 20 }, filesystem: 'ext4' },
  filesystems: { ext4: 'mkfs.ext4 -m0 %', xfs: 'mkfs.xfs %' },
});

let kv: MemoryKV;
let store: StateStore;
let storage: MemoryStorage;
let app: App;
let closedApp: App;
let master: string;
let closedMaster: string;
let tokenFile: string;

beforeAll(async () => {
  kv = new MemoryKV();
  store = new StateStore(kv);
  storage = memoryStorage();
  app = await createApp({ store, storage, janitorIntervalMs: 0 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  master = `127.0.0.1:${(app.server.address() as { port: number }).port}`;
  closedApp = await createApp({ store, storage, janitorIntervalMs: 0, token: 'tok-123' });
  await closedApp.listen({ host: '127.0.0.1', port: 0 });
  closedMaster = `127.0.0.1:${(closedApp.server.address() as { port: number }).port}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'volcli-'));
  tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, 'tok-123\n', { mode: 0o600 });
});

afterAll(async () => {
  await app.close();
  await closedApp.close();
});

beforeEach(async () => {
  for (const e of await kv.list('/')) await kv.delete(e.key);
  storage.dropImages();
});

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function volcli(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv; master?: string } = {}): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    readStdin: async () => options.stdin ?? '',
    stdinIsTTY: options.stdin === undefined,
    env: options.env ?? {},
  };
  const code = await run(['--master', options.master ?? master, ...args], io);
  return { code, stdout, stderr };
}

function ok(r: Result) {
  expect(r.stderr, r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/** ok() for a command that follows an operation: its progress lines (not a terminal) on stderr, each naming it. */
function okWithProgress(r: Result, operation: RegExp) {
  for (const line of r.stderr.split('\n').filter(Boolean)) expect(line).toMatch(operation);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

function failed(r: Result, code: number, message: RegExp) {
  expect(r.code, `${r.stdout}${r.stderr}`).toBe(code);
  expect(r.stderr).toMatch(message);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr.startsWith('volcli: ') || r.stderr.startsWith('{')).toBe(true);
}

describe('help and usage', () => {
  it('volcli help, help COMMAND, COMMAND help SUBCOMMAND and --help everywhere exit 0', async () => {
    expect(ok(await volcli(['help']))).toMatch(/Commands:[\s\S]*tenant[\s\S]*volume[\s\S]*mount/);
    expect(ok(await volcli(['help', 'volume']))).toMatch(/create[\s\S]*list-all[\s\S]*force-remove[\s\S]*runtime[\s\S]*snapshot/);
    expect(ok(await volcli(['volume', 'help', 'create']))).toMatch(/Usage: volcli volume create \[options\] <tenant\/volume>[\s\S]*size/);
    expect(ok(await volcli(['tenant', 'help', 'upload']))).toMatch(/stdin/);
    expect(ok(await volcli(['mount', 'force-remove', '--help']))).toMatch(/without unmounting/);
    expect(ok(await volcli(['volume', 'snapshot', 'help', 'copy']))).toMatch(/new-tenant\/new-volume/);
    expect(ok(await volcli(['--help']))).toMatch(/Exit codes: 0 ok, 1 error, 2 usage/);
    expect(ok(await volcli(['--version']))).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('a group without a subcommand prints its help and exits 2', async () => {
    const r = await volcli(['tenant']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/upload[\s\S]*delete[\s\S]*get[\s\S]*list/);
  });

  it.each([
    [['frob'], /unknown command 'frob'; see volcli --help/],
    [['volume', 'frob'], /unknown command 'frob'; see volcli volume --help/],
    [['help', 'frob'], /^volcli: unknown command 'frob'; see volcli --help\n$/],
    [['volume', 'help', 'frob'], /^volcli: unknown command 'frob'; see volcli volume --help\n$/],
    [['volume', 'get'], /missing required argument 'tenant\/volume'; see volcli volume get --help/],
    [['volume', 'get', 'a/b', 'c'], /too many arguments/],
    [['--frob', 'tenant', 'list'], /unknown option '--frob'/],
    [['volume', 'get', 'novolume'], /"novolume" is not TENANT\/VOLUME/],
    [['volume', 'get', 'a/b/c'], /contains "\/"/],
    [['volume', 'get', 'a/b c'], /whitespace/],
    [['volume', 'get', 'a/b;rm'], /contains ";"/],
    [['volume', 'get', 'a/'], /volume name is empty/],
    [['volume', 'get', `a/${'x'.repeat(65)}`], /limit is 64/],
    [['volume', 'get', 'a/café'], /non-ASCII/],
    [['volume', 'get', 'a/b..c'], /contains "\.\."/],
    [['tenant', 'get', 'ten.ant'], /contains "\."/],
    [['volume', 'create', 'a/b', '--opt', 'size'], /not KEY=VALUE/],
    [['volume', 'create', 'a/b', '--opt', 'colour=red'], /unknown option "colour"/],
    [['volume', 'create', 'a/b', '--opt', 'snapshot.keep=3'], /did you mean "snapshots.keep"/],
    [['volume', 'create', 'a/b', '--opt', 'size=10XB'], /unknown size unit/],
    [['volume', 'create', 'a/b', '--opt', 'snapshots=yes'], /not a boolean/],
    [['volume', 'create', 'a/b', '--opt', 'snapshots.keep=-2'], /negative/],
    [['volume', 'create', 'a/b', '--opt', 'snapshots.frequency=often'], /not a duration/],
    [['volume', 'runtime', 'set', 'a/b'], /at least one --opt/],
    [['volume', 'runtime', 'set', 'a/b', 'size=10'], /unknown runtime option "size"/],
    [['tenant', 'get', 't', '--revision', 'x'], /--revision must be a revision number/],
    [['--timeout', '0', 'tenant', 'list'], /--timeout must be a positive number/],
    [['volume', 'snapshot', 'take', 'a/b', 'a/c'], /several volumes are snapshotted together only as a group: add --group NAME/],
    [['volume', 'snapshot', 'take', 'a/b', 'x/c', '--group', 'g'], /the volumes of a group are of one tenant; got a, x/],
    [['volume', 'snapshot', 'take', 'a/b', '--group', 'g;x'], /--group: group name "g;x" contains ";"/],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    failed(await volcli(args), 2, message);
    expect(await store.listVolumes()).toEqual([]);
  });

  it('tenant upload needs JSON piped into stdin', async () => {
    failed(await volcli(['tenant', 'upload', 'tenant1']), 2, /pipe the policy JSON into stdin: volcli tenant upload tenant1 < policy.json/);
  });
});

describe('tenants', () => {
  it('upload, list, get, history, delete', async () => {
    expect(ok(await volcli(['tenant', 'upload', 'tenant1'], { stdin: policy }))).toBe('uploaded tenant tenant1 (revision 1)\n');
    expect(ok(await volcli(['tenant', 'upload', 'tenant1'], { stdin: policy }))).toMatch(/revision 2/);
    expect(ok(await volcli(['tenant', 'list']))).toMatch(/^NAME\s+REVISION\s+UPLOADED\ntenant1\s+2\s+\S+\n$/);
    expect(JSON.parse(ok(await volcli(['tenant', 'get', 'tenant1'])))).toEqual(JSON.parse(policy));
    expect(JSON.parse(ok(await volcli(['tenant', 'get', 'tenant1', '--revision', '1', '--json'])))).toMatchObject({ revision: 1 });
    expect(ok(await volcli(['tenant', 'history', 'tenant1']))).toMatch(/REVISION[\s\S]*\n1 [\s\S]*\n2 /);
    expect(JSON.parse(ok(await volcli(['--json', 'tenant', 'list'])))).toEqual([{ name: 'tenant1', revision: 2, uploadedAt: expect.any(String) }]);
    expect(ok(await volcli(['tenant', 'delete', 'tenant1']))).toBe('deleted tenant tenant1\n');
    failed(await volcli(['tenant', 'get', 'tenant1']), 1, /tenant tenant1 does not exist; upload it with volcli tenant upload tenant1/);
    failed(await volcli(['tenant', 'delete', 'tenant1']), 1, /does not exist/);
  });

  it.each([
    ['invalid JSON', '{\n  "default-options": {"pool": "rbd",}\n}', /invalid JSON in the policy on stdin at line 2, column 37: trailing comma/],
    ['an unknown key', '{"default-options": {"pool": "rbd", "colour": 1}}', /default-options.colour: unknown key/],
    ['no pool', '{"default-options": {}}', /default-options.pool: is required/],
    ['a size without unit', '{"default-options": {"pool": "rbd", "size": "10"}}', /no unit/],
    ['a size with a unit that does not exist', '{"default-options": {"pool": "rbd", "size": "10ZB"}}', /unknown size unit "ZB"/],
    ['a negative keep', '{"default-options": {"pool": "rbd", "snapshot": {"keep": -1}}}', /snapshot.keep: must be at least 1, got -1/],
    ['a frequency that does not parse', '{"default-options": {"pool": "rbd", "snapshot": {"frequency": "1 hour"}}}', /not a duration/],
    ['a filesystem command without %', '{"default-options": {"pool": "rbd"}, "filesystems": {"ext4": "mkfs.ext4"}}', /filesystems.ext4: the command "mkfs.ext4" has no "%"/],
    ['a filesystem not in the map', '{"default-options": {"pool": "rbd", "filesystem": "zfs"}}', /"zfs" is not in filesystems/],
  ])('refuses a policy with %s (exit 1), uploading nothing', async (_what, text, message) => {
    failed(await volcli(['tenant', 'upload', 'tenant1'], { stdin: text }), 1, message);
    expect(await store.listTenants()).toEqual([]);
  });

  it('prints errors as JSON with --json', async () => {
    const r = await volcli(['--json', 'tenant', 'get', 'nobody']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stderr)).toMatchObject({ code: 'TENANT_NOT_FOUND', message: expect.stringMatching(/nobody/) });
  });
});

describe('volumes', () => {
  beforeEach(async () => {
    ok(await volcli(['tenant', 'upload', 'tenant1'], { stdin: policy }));
    ok(await volcli(['tenant', 'upload', 'tenant2'], { stdin: policy }));
  });

  it('create, get, list, list-all, remove', async () => {
    expect(ok(await volcli(['volume', 'create', 'tenant1/foo', '--opt', 'size=20', '--opt', 'filesystem=xfs']))).toBe(
      'created tenant1/foo: 20MB xfs in rbd/tenant1.foo\n',
    );
    expect(storage.images.get('rbd/tenant1.foo')!.size).toBe(20 * MiB);
    expect(ok(await volcli(['volume', 'create', 'tenant1/foo']))).toMatch(/^exists with these options: tenant1\/foo/);
    failed(await volcli(['volume', 'create', 'tenant1/foo', '--opt', 'size=30']), 1, /exists with other options \(size\)/);
    ok(await volcli(['volume', 'create', 'tenant2/bar']));

    const get = ok(await volcli(['volume', 'get', 'tenant1/foo']));
    expect(get).toMatch(/volume:\s+tenant1\/foo/);
    expect(get).toMatch(/image:\s+rbd\/tenant1.foo/);
    expect(get).toMatch(/size:\s+20MB/);
    expect(get).toMatch(/filesystem:\s+xfs \(mkfs.xfs %\)/);
    expect(JSON.parse(ok(await volcli(['volume', 'get', 'tenant1/foo', '--json'])))).toMatchObject({ options: { sizeBytes: 20 * MiB } });

    expect(ok(await volcli(['volume', 'list', 'tenant1']))).toMatch(/^NAME\s+IMAGE\s+SIZE[\s\S]*\nfoo\s+rbd\/tenant1.foo\s+20MB/);
    const all = ok(await volcli(['volume', 'list-all']));
    expect(all).toMatch(/tenant1\/foo/);
    expect(all).toMatch(/tenant2\/bar/);
    expect((JSON.parse(ok(await volcli(['--json', 'volume', 'list-all']))) as unknown[]).length).toBe(2);
    failed(await volcli(['volume', 'list', 'nobody']), 1, /tenant nobody does not exist/);

    const removed = await volcli(['volume', 'remove', 'tenant1/foo']);
    expect(okWithProgress(removed, /^remove tenant1\/foo: /)).toBe('removed tenant1/foo\n');
    expect(removed.stderr).toMatch(/^remove tenant1\/foo: removing rbd\/tenant1.foo/);
    expect(storage.images.has('rbd/tenant1.foo')).toBe(false);
    failed(await volcli(['volume', 'get', 'tenant1/foo']), 1, /does not exist/);
    failed(await volcli(['volume', 'remove', 'tenant1/foo']), 1, /does not exist/);
  });

  it('server-side refusals exit 1 and write nothing', async () => {
    failed(await volcli(['volume', 'create', 'nobody/foo']), 1, /tenant nobody does not exist/);
    failed(await volcli(['volume', 'create', 'tenant1/foo', '--opt', 'filesystem=zfs']), 1, /"zfs" is not one of the tenant's filesystems/);
    failed(await volcli(['volume', 'create', 'tenant1/foo', '--opt', 'pool=nopool']), 1, /no pool "nopool"/);
    expect(storage.images.size).toBe(0);
  });

  it('remove refuses while mounted, naming the host; force-remove keeps the image', async () => {
    ok(await volcli(['volume', 'create', 'tenant1/foo']));
    const lease = await kv.lease(30);
    await store.acquireMount(
      mountRecord('tenant1', 'foo', { host: 'node3', hostId: 'h3', lease: lease.id, since: '2026-01-01T00:00:00Z' }),
      lease,
    );
    failed(await volcli(['volume', 'remove', 'tenant1/foo']), 1, /mounted on host node3.*volcli mount force-remove tenant1\/foo/);
    expect(ok(await volcli(['mount', 'list']))).toMatch(/^VOLUME\s+HOST[\s\S]*tenant1\/foo\s+node3\s+\/dev\/rbd0\s+\/mnt\/ceph\/tenant1\/foo/);
    expect(ok(await volcli(['mount', 'get', 'tenant1/foo']))).toMatch(/host:\s+node3 \(h3\)/);
    expect(ok(await volcli(['volume', 'force-remove', 'tenant1/foo']))).toMatch(/image was left alone/);
    expect(storage.images.has('rbd/tenant1.foo')).toBe(true);
    expect(await store.getMount('tenant1', 'foo')).toBeNull();
    failed(await volcli(['volume', 'force-remove', 'tenant1/foo']), 1, /no records/);
  });

  it('mount force-remove', async () => {
    ok(await volcli(['volume', 'create', 'tenant1/foo']));
    const lease = await kv.lease(30);
    await store.acquireMount(
      mountRecord('tenant1', 'foo', { host: 'gone', hostId: 'g', lease: lease.id, mountpoint: '/m', since: '' }),
      lease,
    );
    expect(ok(await volcli(['mount', 'force-remove', 'tenant1/foo']))).toBe('removed the mount record of tenant1/foo (held by gone)\n');
    failed(await volcli(['mount', 'get', 'tenant1/foo']), 1, /not mounted anywhere/);
    failed(await volcli(['mount', 'force-remove', 'tenant1/foo']), 1, /no mount record/);
    expect(ok(await volcli(['mount', 'list']))).toBe('');
    expect(JSON.parse(ok(await volcli(['--json', 'mount', 'list'])))).toEqual({ mounts: [], problems: [] });
  });

  it('mount list joins the locks with what the hosts report; host list and get show the reports', async () => {
    ok(await volcli(['volume', 'create', 'tenant1/foo']));
    ok(await volcli(['volume', 'create', 'tenant1/bar']));
    ok(await volcli(['volume', 'create', 'tenant1/gone']));
    const lease = await kv.lease(30);
    const lock = (volume: string, host: string, hostId: string) =>
      store.acquireMount(
        mountRecord('tenant1', volume, { host, hostId, lease: lease.id, mountpoint: `/var/lib/volplugin/mnt/tenant1/${volume}` }),
        lease,
      );
    await lock('foo', 'node3', 'h3');
    await lock('gone', 'node8', 'h8'); // node8 sends no report
    await store.putHostReport(
      {
        hostId: 'h3',
        host: 'node3',
        pid: 7,
        version: '0.1.0',
        reportedAt: '2026-11-22T12:05:00.000Z',
        mounts: [
          { tenant: 'tenant1', volume: 'foo', device: '/dev/rbd4', mountpoint: '/var/lib/volplugin/mnt/tenant1/foo', mapper: 'krbd', references: 2 },
          { tenant: 'tenant1', volume: 'bar', device: '/dev/rbd5', mountpoint: '/var/lib/volplugin/mnt/tenant1/bar', mapper: 'krbd', references: 1 },
        ],
        problems: ['tenant1/bar: the lock is gone and could not be taken back'],
      },
      lease,
    );

    const lines = ok(await volcli(['mount', 'list'])).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^VOLUME\s+HOST\s+DEVICE\s+MOUNTPOINT\s+REFS\s+SINCE$/);
    expect(lines[1]).toMatch(/^tenant1\/bar\s+node3 \(no lock\)\s+\/dev\/rbd5\s+\/var\/lib\/volplugin\/mnt\/tenant1\/bar\s+1\s+-$/);
    expect(lines[2]).toMatch(/^tenant1\/foo\s+node3\s+\/dev\/rbd4\s+\/var\/lib\/volplugin\/mnt\/tenant1\/foo\s+2\s+2026-11-22T12:00:00.000Z$/);
    expect(lines[3]).toMatch(/^tenant1\/gone\s+node8\s+\/dev\/rbd0\s+\/var\/lib\/volplugin\/mnt\/tenant1\/gone\s+-\s+2026-11-22T12:00:00.000Z$/);
    expect(lines.slice(4)).toEqual([
      'warning: tenant1/bar: host node3 reports it mounted at /var/lib/volplugin/mnt/tenant1/bar, but nobody holds its lock',
      'warning: tenant1/gone: its lock is held by host node8 (h8), which sends no report: its volplugin is down or the host is dead; if it is gone for good: volcli mount force-remove tenant1/gone',
      'problem on host node3: tenant1/bar: the lock is gone and could not be taken back',
    ]);

    const listing = JSON.parse(ok(await volcli(['--json', 'mount', 'list']))) as {
      mounts: Array<Record<string, unknown>>;
      problems: unknown[];
    };
    expect(listing.mounts.map((m) => [m.volume, m.host, m.hostReporting])).toEqual([
      ['bar', 'node3', true],
      ['foo', 'node3', true],
      ['gone', 'node8', false],
    ]);
    expect(listing.mounts[0]).toMatchObject({ lock: null, report: { device: '/dev/rbd5', references: 1 } });
    expect(listing.mounts[1]).toMatchObject({ lock: { hostId: 'h3', device: '/dev/rbd0' }, report: { device: '/dev/rbd4', references: 2, reportedAt: '2026-11-22T12:05:00.000Z' } });
    expect(listing.mounts[2]).toMatchObject({ lock: { hostId: 'h8' }, report: null });
    expect(listing.problems).toEqual([{ host: 'node3', hostId: 'h3', problem: 'tenant1/bar: the lock is gone and could not be taken back' }]);

    expect(ok(await volcli(['host', 'list']))).toMatch(/^HOST\s+HOST ID\s+MOUNTS\s+PROBLEMS\s+REPORTED\s+VERSION\nnode3\s+h3\s+2\s+1\s+2026-11-22T12:05:00.000Z\s+0.1.0\n$/);
    expect(ok(await volcli(['host', 'get', 'h3']))).toMatch(/host:\s+node3 \(h3\)[\s\S]*tenant1\/foo at \/var\/lib\/volplugin\/mnt\/tenant1\/foo \(\/dev\/rbd4, krbd, 2 refs\)/);
    expect((JSON.parse(ok(await volcli(['--json', 'host', 'list']))) as unknown[]).length).toBe(1);
    failed(await volcli(['host', 'get', 'h8']), 1, /no volplugin with host id h8 reports/);
    await lease.revoke();
  });

  it('runtime get and set', async () => {
    ok(await volcli(['volume', 'create', 'tenant1/foo']));
    expect(ok(await volcli(['volume', 'runtime', 'get', 'tenant1/foo']))).toMatch(/snapshots:\s+true\nsnapshots.frequency:\s+30m\nsnapshots.keep:\s+20\n/);
    const set = ok(await volcli(['volume', 'runtime', 'set', 'tenant1/foo', 'snapshots.keep=5', '--opt', 'rate-limit.write.iops=100']));
    expect(set).toMatch(/snapshots.keep:\s+5/);
    expect(set).toMatch(/rate-limit.write.iops:\s+100/);
    expect((await store.getVolume('tenant1', 'foo'))!.runtime.snapshot.keep).toBe(5);
    failed(await volcli(['volume', 'runtime', 'set', 'tenant1/nope', 'snapshots.keep=5']), 1, /does not exist/);
  });

  it('snapshots: take, list, copy, rollback, remove', async () => {
    ok(await volcli(['volume', 'create', 'tenant1/foo']));
    expect(ok(await volcli(['volume', 'snapshot', 'take', 'tenant1/foo', '--name', 'before']))).toBe('took snapshot before of tenant1/foo\n');
    expect(ok(await volcli(['volume', 'snapshot', 'take', 'tenant1/foo']))).toMatch(/^took snapshot manual-/);
    expect(ok(await volcli(['volume', 'snapshot', 'list', 'tenant1/foo']))).toMatch(/^NAME\s+ORIGIN[\s\S]*\nbefore\s+other/m);
    expect(ok(await volcli(['volume', 'snapshot', 'rollback', 'tenant1/foo', 'before']))).toBe('rolled tenant1/foo back to before\n');
    // A copy is a clone at once; volcli then follows its flatten (an operation), after which the snapshot has no clones.
    const copied = okWithProgress(await volcli(['volume', 'snapshot', 'copy', 'tenant1/foo', 'before', 'tenant2/copy']), /^copy tenant1\/foo: /);
    expect(copied).toMatch(/copied tenant1\/foo@before to tenant2\/copy \(rbd\/tenant2.copy\); tenant2\/copy is a copy of tenant1\/foo@before, flattened/);
    expect((await store.getVolume('tenant2', 'copy'))!.source).toEqual({ tenant: 'tenant1', volume: 'foo', snapshot: 'before' });
    // --no-wait returns with the clone; the flatten goes on.
    expect(ok(await volcli(['volume', 'snapshot', 'copy', 'tenant1/foo', 'before', 'tenant2/copy2', '--no-wait']))).toMatch(/copied .* \(rbd\/tenant2.copy2\); flattening: operation \d{8}T/);
    failed(await volcli(['volume', 'snapshot', 'remove', 'tenant1/foo', 'nothing']), 1, /no snapshot "nothing"/);
    failed(await volcli(['volume', 'snapshot', 'copy', 'tenant1/foo', 'before', 'badref']), 2, /not TENANT\/VOLUME/);
  });

  it('group snapshots: take, rollback, copy a member, with their refusals', async () => {
    ok(await volcli(['volume', 'create', 'tenant1/db']));
    ok(await volcli(['volume', 'create', 'tenant1/files']));
    expect(ok(await volcli(['volume', 'snapshot', 'take', 'tenant1/db', 'tenant1/files', '--group', 'app', '--name', 'g1']))).toBe('took group snapshot g1 of tenant1/app: tenant1/db tenant1/files\n');
    const rolled = okWithProgress(await volcli(['volume', 'snapshot', 'group', 'rollback', 'tenant1/app', 'g1']), /^group-rollback tenant1\/app: /);
    expect(rolled).toBe('tenant1/db, tenant1/files rolled back to app@g1\n');
    expect(ok(await volcli(['volume', 'snapshot', 'group', 'rollback', 'tenant1/app', 'g1', '--no-wait']))).toMatch(/^group-rollback of tenant1\/app is under way: operation \d{8}T/);
    const copied = okWithProgress(await volcli(['volume', 'snapshot', 'group', 'copy', 'tenant1/app', 'g1', 'files', 'tenant2/then']), /^copy tenant1\/files: /);
    expect(copied).toBe('tenant2/then is a copy of tenant1/files as of app@g1\n');
    expect((await store.getVolume('tenant2', 'then'))!.source).toEqual({ tenant: 'tenant1', volume: 'files', snapshot: 'app@g1' });
    failed(await volcli(['volume', 'snapshot', 'group', 'rollback', 'tenant1/app', 'nope']), 1, /group tenant1\/app has no snapshot nope/);
    failed(await volcli(['volume', 'snapshot', 'group', 'rollback', 'tenant1/other', 'g1']), 1, /group tenant1\/other has no snapshots/);
    ok(await volcli(['volume', 'create', 'tenant1/foo']));
    failed(await volcli(['volume', 'snapshot', 'group', 'copy', 'tenant1/app', 'g1', 'foo', 'tenant2/x']), 1, /not in group snapshot tenant1\/app@g1; its volumes are db, files/);
    failed(await volcli(['volume', 'snapshot', 'group', 'copy', 'tenant1/app', 'g1', 'fi;les', 'tenant2/x']), 2, /contains ";"/);
    failed(await volcli(['volume', 'snapshot', 'group', 'rollback', 'tenant1/a;pp', 'g1']), 2, /group name "a;pp" contains ";"/);
  });
});

describe('resize, operations and the audit trail', () => {
  beforeEach(async () => {
    ok(await volcli(['tenant', 'upload', 'tenant1'], { stdin: policy }));
  });

  it('volume resize grows the volume and prints what became of the filesystem; bad sizes change nothing', async () => {
    ok(await volcli(['volume', 'create', 'tenant1/foo']));
    const grown = okWithProgress(await volcli(['volume', 'resize', 'tenant1/foo', '30MB']), /^resize tenant1\/foo: /);
    expect(grown).toBe('tenant1/foo is 30MB; it is not mounted: its filesystem grows when it is next mounted\n');
    expect((await store.getVolume('tenant1', 'foo'))!.options.sizeBytes).toBe(30 * MiB);
    expect((await storage.imageInfo('rbd', 'tenant1.foo')).size).toBe(30 * MiB);
    failed(await volcli(['volume', 'resize', 'tenant1/foo', '20MB']), 1, /size: 20MB is smaller than tenant1\/foo's 30MB; volumes only grow/);
    failed(await volcli(['volume', 'resize', 'tenant1/foo', '40XB']), 1, /size/);
    failed(await volcli(['volume', 'resize', 'tenant1/nope', '40MB']), 1, /tenant1\/nope does not exist/);
    failed(await volcli(['volume', 'resize', 'tenant1', '40MB']), 2, /not TENANT\/VOLUME/);
    expect((await store.getVolume('tenant1', 'foo'))!.options.sizeBytes).toBe(30 * MiB);
    expect((await storage.imageInfo('rbd', 'tenant1.foo')).size).toBe(30 * MiB);

    const json = JSON.parse(ok(await volcli(['--json', 'volume', 'resize', 'tenant1/foo', '40MB']))) as { id: string; state: string; result: { sizeBytes: number } };
    expect(json).toMatchObject({ kind: 'resize', state: 'done', result: { sizeBytes: 40 * MiB, filesystem: 'not-mounted' } });
    const started = ok(await volcli(['volume', 'resize', 'tenant1/foo', '50MB', '--no-wait']));
    const id = /operation (\S+) \(volcli operation show/.exec(started)?.[1];
    expect(id, started).toBeDefined();
    expect(ok(await volcli(['operation', 'show', id!, '--follow']))).toMatch(/operation:\s+\S+ \(resize\)[\s\S]*state:\s+done/);
    expect(ok(await volcli(['operation', 'list']))).toMatch(/^ID\s+KIND\s+VOLUME\s+STATE[\s\S]*resize\s+tenant1\/foo\s+done/);
    failed(await volcli(['operation', 'show', 'nope']), 1, /no operation has the id "nope"/);
    failed(await volcli(['operation', 'list', '--limit', '0']), 2, /--limit must be a number from 1 to 9999/);
  });

  it('audit lists every change with who made it and how it ended, refusals included; --json is the entries', async () => {
    ok(await volcli(['volume', 'create', 'tenant1/foo']));
    failed(await volcli(['volume', 'resize', 'tenant1/foo', '1MB']), 1, /volumes only grow/);
    const text = ok(await volcli(['audit']));
    expect(text).toMatch(/^TIME\s+WHO\s+ROLE\s+REQUEST\s+OUTCOME\n/);
    expect(text).toMatch(/PUT \/v1\/tenants\/tenant1\s+ok 20\d/);
    expect(text).toMatch(/PUT \/v1\/volumes\/tenant1\/foo.*\s+ok 201/);
    expect(text).toMatch(/POST \/v1\/volumes\/tenant1\/foo\/resize\?wait=false \{"size":"1MB"\}\s+refused 422 SHRINK_REFUSED/);
    const entries = JSON.parse(ok(await volcli(['--json', 'audit', '--tenant', 'tenant1', '--limit', '2']))) as Array<{ method: string; outcome: string }>;
    expect(entries.map((e) => [e.method, e.outcome])).toEqual([
      ['PUT', 'ok'],
      ['POST', 'refused'],
    ]);
    failed(await volcli(['audit', '--since', 'yesterday']), 1, /since/);
  });
});

describe('reaching the master', () => {
  it('says what to do when the master is unreachable', async () => {
    failed(await volcli(['tenant', 'list'], { master: '127.0.0.1:1' }), 1, /cannot reach volmaster at http:\/\/127.0.0.1:1.*--master/);
  });

  it('uses VOLPLUGIN_MASTER when --master is not given', async () => {
    let stderr = '';
    const code = await run(['tenant', 'list'], {
      stdout: () => undefined,
      stderr: (t) => {
        stderr += t;
      },
      readStdin: async () => '',
      stdinIsTTY: true,
      env: { VOLPLUGIN_MASTER: '127.0.0.1:2' },
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(/127.0.0.1:2/);
  });

  it('sends the bearer token from --token-file or VOLPLUGIN_TOKEN_FILE', async () => {
    failed(await volcli(['tenant', 'list'], { master: closedMaster }), 1, /requires a bearer token: give volcli or volplugin --token-file/);
    ok(await volcli(['--token-file', tokenFile, 'tenant', 'list'], { master: closedMaster }));
    ok(await volcli(['tenant', 'list'], { master: closedMaster, env: { VOLPLUGIN_TOKEN_FILE: tokenFile } }));
    failed(await volcli(['--token-file', '/nonexistent/token', 'tenant', 'list'], { master: closedMaster }), 1, /cannot read the token file \/nonexistent\/token \(ENOENT\)/);
    // A token file others can read is refused before anything is sent, naming the fix.
    const open = path.join(path.dirname(tokenFile), 'open-token');
    writeFileSync(open, 'tok-123\n', { mode: 0o644 });
    chmodSync(open, 0o644);
    failed(await volcli(['--token-file', open, 'tenant', 'list'], { master: closedMaster }), 1, new RegExp(`token file ${open} can be read by its group or others \\(mode 0644\\).*chmod 600 ${open}`));
  });
});

describe('tokens and tenant usage', () => {
  const withAdmin = (args: string[]) => volcli(['--token-file', tokenFile, ...args], { master: closedMaster });

  it('creates a host token into a new mode-600 file, lists it, and revokes it', async () => {
    const file = path.join(path.dirname(tokenFile), `host-${Date.now()}`);
    const created = await withAdmin(['token', 'create', '--role', 'host', '--name', 'node3', '--file', file]);
    ok(created);
    expect(created.stdout).toBe(`created token node3 (role host) in ${file} (mode 600)\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const token = readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^vpt_/);
    const who = await volcli(['--token-file', file, '--json', 'token', 'whoami'], { master: closedMaster });
    expect(JSON.parse(who.stdout)).toEqual({ name: 'node3', role: 'host' });
    // the file is never overwritten, and nothing is created when it exists
    failed(await withAdmin(['token', 'create', '--role', 'host', '--name', 'node4', '--file', file]), 2, /--file .* exists; remove it or choose another path/);
    expect((await store.listTokens()).map((t) => t.name)).toEqual(['node3']);
    const list = await withAdmin(['token', 'list']);
    expect(list.stdout).toMatch(/^NAME\s+ROLE\s+CREATED\s+BY\nnode3\s+host\s+\S+\s+bootstrap\n$/);
    ok(await withAdmin(['token', 'revoke', 'node3']));
    failed(await volcli(['--token-file', file, 'volume', 'list-all'], { master: closedMaster }), 1, /not known to this volmaster \(wrong, or revoked\)/);
    failed(await withAdmin(['token', 'revoke', 'node3']), 1, /no token is named node3/);
  });

  it('prints a new token once without --file, and refuses bad roles and names before sending anything', async () => {
    const r = await withAdmin(['token', 'create', '--role', 'read-only', '--name', 'grafana']);
    ok(r);
    expect(r.stdout).toMatch(/^created token grafana \(role read-only\); it is shown only this once:\nvpt_[A-Za-z0-9_-]{43}\n$/);
    failed(await withAdmin(['token', 'create', '--role', 'root', '--name', 'x']), 2, /Allowed choices are admin, provisioner, host, read-only/);
    failed(await withAdmin(['token', 'create', '--role', 'host', '--name', 'a b']), 2, /--name: must be a token name/);
    failed(await withAdmin(['token', 'create', '--role', 'host']), 2, /required option '--name <name>'/);
  });

  it('a host token cannot upload a tenant: 403 naming its role, exit 1', async () => {
    const created = JSON.parse((await withAdmin(['--json', 'token', 'create', '--role', 'host', '--name', 'h1'])).stdout) as { token: string };
    const file = path.join(path.dirname(tokenFile), `h1-${Date.now()}`);
    writeFileSync(file, `${created.token}\n`, { mode: 0o600 });
    failed(await volcli(['--token-file', file, 'tenant', 'upload', 't1'], { master: closedMaster, stdin: policy }), 1, /token h1 \(role host\) may not PUT \/v1\/tenants\/:tenant/);
    expect(await store.getTenant('t1')).toBeNull();
  });

  it('shows a tenant usage beside its limits', async () => {
    const limited = JSON.stringify({ 'default-options': { pool: 'rbd', size: '10MB' }, limits: { volumes: 5, 'total-size': '1GB', pools: ['rbd'] } });
    ok(await volcli(['--token-file', tokenFile, 'tenant', 'upload', 't1'], { master: closedMaster, stdin: limited }));
    ok(await withAdmin(['volume', 'create', 't1/a']));
    const r = await withAdmin(['tenant', 'usage', 't1']);
    ok(r);
    expect(r.stdout).toBe(
      ['tenant:               t1', 'volumes:              1 of 5', 'total size:           10MB of 1GB', 'largest volume:       no limit', 'snapshots per volume: no limit', 'pools:                rbd', ''].join('\n'),
    );
    failed(await withAdmin(['volume', 'create', 't1/b', '--opt', 'pool=ssd']), 1, /pool: "ssd" is not one of the tenant's pools/);
    failed(await withAdmin(['tenant', 'usage', 'nobody']), 1, /tenant nobody does not exist/);
  });
});
