// The backup routes of volmaster (src/master/routes/backups.ts) through inject() on the memory
// twins, with a real directory target in a temp dir.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/master/app.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { IMAGE_OWNER_KEY } from '../../src/storage/conventions.js';
import { mountRecord } from '../helpers/fixtures.js';
import { run, type CliIO } from '../../src/cli/program.js';

type Json = Record<string, unknown>;

let kv: MemoryKV;
let store: StateStore;
let storage: MemoryStorage;
let app: App;
let root: string;

const policy = (target: unknown) => ({ 'default-options': { pool: 'rbd', size: '4MB', filesystem: 'ext4', backup: { keep: 5, target } } });
const post = (url: string, payload?: Json) => app.inject({ method: 'POST', url, ...(payload ? { payload } : {}) });
const put = (url: string, payload: unknown) => app.inject({ method: 'PUT', url, payload: payload as Json });
const json = (res: LightMyRequestResponse) => res.json() as Json;

function expectError(res: LightMyRequestResponse, status: number, code: string, message?: RegExp) {
  expect(res.statusCode, res.body).toBe(status);
  expect(json(res).code).toBe(code);
  if (message) expect(json(res).message).toMatch(message);
}

beforeEach(async () => {
  kv = new MemoryKV();
  store = new StateStore(kv, { owner: 'test-master:1' });
  storage = memoryStorage();
  root = await mkdtemp(path.join(tmpdir(), 'volplugin-master-backups-'));
  await mkdir(path.join(root, 'b'));
  app = await createApp({
    store,
    storage,
    janitorIntervalMs: 0,
    lockTtlSeconds: 2,
    lockWaitMs: 2_000,
    cephTimeoutMs: 1_000,
    backups: { allow: [root], hookAllow: [], hookTimeoutMs: 1_000, stagingDir: path.join(root, 'staging') },
  });
  await app.ready();
  expect((await put('/v1/tenants/t1', policy({ directory: path.join(root, 'b') }))).statusCode).toBe(201);
  expect((await put('/v1/volumes/t1/db', { options: {} })).statusCode).toBe(201);
});

afterEach(async () => {
  await app.close();
  await rm(root, { recursive: true, force: true });
});

describe('backup routes', () => {
  it('take, list, verify, and restore into a new volume with its own owner mark', async () => {
    storage.writeData('rbd', 't1.db', 0, Buffer.alloc(4096, 3));
    const taken = await post('/v1/volumes/t1/db/backups');
    expect(taken.statusCode, taken.body).toBe(201);
    expect(json(taken)).toMatchObject({ kind: 'full', parent: null, sizeBytes: 4 * 1024 * 1024 });
    const list = await app.inject({ method: 'GET', url: '/v1/volumes/t1/db/backups' });
    expect(json(list)).toMatchObject({ tenant: 't1', volume: 'db', target: `directory ${path.join(root, 'b')}`, backups: [{ name: json(taken).name }] });
    expect(json(await post('/v1/volumes/t1/db/backups/verify'))).toMatchObject({ ok: true, backups: [{ ok: true }] });
    const restored = await post('/v1/volumes/t1/db/backups/restore', { into: { tenant: 't1', volume: 'copy' } });
    expect(restored.statusCode, restored.body).toBe(200);
    expect(json(restored)).toMatchObject({ created: true, volume: 'copy', backup: json(taken).name });
    expect(storage.readData('rbd', 't1.copy').subarray(0, 4096).equals(Buffer.alloc(4096, 3))).toBe(true);
    expect((await storage.getMetadata('rbd', 't1.copy'))[IMAGE_OWNER_KEY]).toBe('t1/copy');
    expect((await store.getVolume('t1', 'copy'))?.options.sizeBytes).toBe(4 * 1024 * 1024);
  });

  it('restore into the volume is refused while mounted (409) and works once unmounted', async () => {
    const b = json(await post('/v1/volumes/t1/db/backups'));
    const lease = await kv.lease(30);
    const mount = mountRecord('t1', 'db', { lease: lease.id });
    expect((await store.acquireMount(mount, lease)).ok).toBe(true);
    expectError(await post('/v1/volumes/t1/db/backups/restore'), 409, 'VOLUME_MOUNTED', /is mounted on host host-a.*--into/);
    await store.releaseMount('t1', 'db', { hostId: mount.hostId, lease: lease.id });
    const res = await post('/v1/volumes/t1/db/backups/restore', { backup: b.name as string });
    expect(json(res)).toMatchObject({ created: false, backup: b.name });
  });

  it('answers with the catalogue: no target 409, unknown backup 404, bad time 400, missing directory 503', async () => {
    expect((await put('/v1/tenants/t2', { 'default-options': { pool: 'rbd', size: '4MB' } })).statusCode).toBe(201);
    expect((await put('/v1/volumes/t2/v', { options: {} })).statusCode).toBe(201);
    expectError(await post('/v1/volumes/t2/v/backups'), 409, 'BACKUPS_NOT_CONFIGURED', /default-options\.backup\.target/);
    await post('/v1/volumes/t1/db/backups');
    expectError(await post('/v1/volumes/t1/db/backups/restore', { backup: 'vb-nope' }), 404, 'BACKUP_NOT_FOUND');
    expectError(await post('/v1/volumes/t1/db/backups/restore', { at: 'yesterday' }), 400, 'INVALID_REQUEST');
    expectError(await post('/v1/volumes/t1/db/backups/restore', { into: { tenant: 't1', volume: 'db' } }), 409, 'VOLUME_EXISTS');
    expectError(await post('/v1/volumes/t1/nope/backups'), 404, 'VOLUME_NOT_FOUND');
    await rm(path.join(root, 'b'), { recursive: true });
    expectError(await post('/v1/volumes/t1/db/backups'), 503, 'BACKUP_TARGET_UNAVAILABLE', /does not exist/);
  });

  it('a volume set to back up on schedule takes its options from the policy and the driver options', async () => {
    const res = await put('/v1/volumes/t1/sched', { options: { backups: 'true', 'backups.frequency': '1h' } });
    expect(res.statusCode, res.body).toBe(201);
    expect(json(res)).toMatchObject({ runtime: { backups: true, backup: { frequency: '1h', keep: 5 } } });
  });
});

/** Polls an operation until it is no longer running. */
async function ended(id: string): Promise<Json> {
  for (let i = 0; i < 500; i++) {
    const op = json(await app.inject({ method: 'GET', url: `/v1/operations/${id}` }));
    if (op.state !== 'running') return op;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`operation ${id} still running`);
}

/** Waits until no operation runs (one started with ?wait=false ends on its own). */
async function waitForOperations(): Promise<void> {
  const { operations } = json(await app.inject({ method: 'GET', url: '/v1/operations' })) as { operations: Json[] };
  for (const op of operations) await ended(op.id as string);
}

describe('backup and restore as operations', () => {
  it('?wait=false answers 202 with the operation; it ends done with the backup, its bytes counted, and the audit names it', async () => {
    storage.writeData('rbd', 't1.db', 0, Buffer.alloc(65_536, 7));
    const res = await post('/v1/volumes/t1/db/backups?wait=false');
    expect(res.statusCode, res.body).toBe(202);
    const op = json(res);
    expect(op).toMatchObject({ kind: 'backup', tenant: 't1', volume: 'db', state: 'running' });
    expect(res.headers.location).toBe(`/v1/operations/${op.id as string}`);
    const done = await ended(op.id as string);
    expect(done).toMatchObject({ state: 'done', unit: 'bytes', result: { kind: 'full', parent: null }, message: expect.stringMatching(/^took full backup vb-\S+ of t1\/db: \d+ bytes/) });
    expect(done.total as number).toBeGreaterThan(0);
    expect(done.done).toBe(done.total);
    const list = json(await app.inject({ method: 'GET', url: '/v1/volumes/t1/db/backups' })) as { backups: Json[] };
    expect(list.backups.map((b) => b.name)).toEqual([(done.result as Json).name]);
    await waitForAudit(op.id as string, { method: 'POST', route: '/v1/volumes/:tenant/:volume/backups', status: 202, outcome: 'ok' });

    const restore = await post('/v1/volumes/t1/db/backups/restore?wait=false', { into: { tenant: 't1', volume: 'back' } });
    expect(restore.statusCode, restore.body).toBe(202);
    expect(json(restore)).toMatchObject({ kind: 'restore', tenant: 't1', volume: 'db', target: { tenant: 't1', volume: 'back' } });
    const restored = await ended(json(restore).id as string);
    expect(restored).toMatchObject({ state: 'done', result: { created: true, tenant: 't1', volume: 'back', backup: (done.result as Json).name } });
    expect(storage.readData('rbd', 't1.back').subarray(0, 65_536).equals(Buffer.alloc(65_536, 7))).toBe(true);
  });

  it('a failure after the volume is locked ends the operation with the error; a waiting request answers it and its audit names the operation', async () => {
    await rm(path.join(root, 'b'), { recursive: true });
    const res = await post('/v1/volumes/t1/db/backups?wait=false');
    expect(res.statusCode, res.body).toBe(202);
    const failed = await ended(json(res).id as string);
    expect(failed).toMatchObject({ state: 'failed', error: { code: 'BACKUP_TARGET_UNAVAILABLE', message: expect.stringMatching(/does not exist/) } });
    const waited = await post('/v1/volumes/t1/db/backups');
    expectError(waited, 503, 'BACKUP_TARGET_UNAVAILABLE');
    const entry = await waitForAudit(null, { method: 'POST', status: 503, outcome: 'failed' });
    expect(json(await app.inject({ method: 'GET', url: `/v1/operations/${entry.operation as string}` }))).toMatchObject({ kind: 'backup', state: 'failed' });
    // A refusal before the lock (no such volume) is an answer without an operation.
    const before = (json(await app.inject({ method: 'GET', url: '/v1/operations' })) as { operations: Json[] }).operations.length;
    expectError(await post('/v1/volumes/t1/nope/backups?wait=false'), 404, 'VOLUME_NOT_FOUND');
    expect((json(await app.inject({ method: 'GET', url: '/v1/operations' })) as { operations: Json[] }).operations).toHaveLength(before);
  });
});

/** The newest audit entry of the operation `id` (null: any) once it is complete and matches `fields`. */
async function waitForAudit(id: string | null, fields: Json): Promise<Json> {
  for (let i = 0; i < 200; i++) {
    const { entries } = json(await app.inject({ method: 'GET', url: '/v1/audit' })) as { entries: Json[] };
    const found = entries.find((e) => (id === null ? e.operation !== undefined : e.operation === id) && Object.entries(fields).every(([k, v]) => e[k] === v));
    if (found) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no audit entry ${JSON.stringify(fields)} for operation ${id}`);
}

describe('volcli volume backup', () => {
  async function volcli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const address = app.server.address();
    if (address === null || typeof address === 'string') await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    let stdout = '';
    let stderr = '';
    const io: CliIO = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), readStdin: async () => '', stdinIsTTY: true, env: {} };
    const code = await run(['--master', `127.0.0.1:${port}`, ...args], io);
    return { code, stdout, stderr };
  }

  it('takes, lists, verifies and restores; verify exits 1 on a broken chain', async () => {
    const take = await volcli(['volume', 'backup', 'take', 't1/db']);
    expect(take.code, take.stderr).toBe(0);
    expect(take.stderr, 'progress lines of the operation (not a terminal)').toMatch(/^backup t1\/db: /);
    expect(take.stdout).toMatch(/^took full backup vb-\d{8}T\d{6}Z of t1\/db: \d+ bytes/);
    const noWait = await volcli(['volume', 'backup', 'take', 't1/db', '--no-wait']);
    expect(noWait.stdout).toMatch(/^backup of t1\/db is under way: operation (\S+) \(volcli operation show \1 --follow\)/);
    const list = await volcli(['volume', 'backup', 'list', 't1/db']);
    expect(list.stdout).toMatch(/target: directory .*\nNAME +KIND +PARENT/);
    expect(list.stdout).toMatch(/vb-\S+ +full +- /);
    await waitForOperations();
    expect((await volcli(['volume', 'backup', 'verify', 't1/db'])).stdout).toMatch(/all 2 backups are good/);
    const restore = await volcli(['volume', 'backup', 'restore', 't1/db', '--into', 't1/db2']);
    expect(restore.stdout).toMatch(/restored backup vb-\S+ of t1\/db into new volume t1\/db2/);
    expect((await volcli(['volume', 'backup', 'restore', 't1/db', '--at', 'noon'])).stderr).toMatch(/--at must be an ISO time/);
    const dir = path.join(root, 'b', 't1', 'db');
    const diff = (await readdir(dir)).find((f) => f.endsWith('.diff'))!; // the full one: both need it
    await writeFile(path.join(dir, diff), 'rbd diff v1\n');
    const verify = await volcli(['volume', 'backup', 'verify', 't1/db']);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/BROKEN +vb-\S+: its file .* has \d+ bytes, the manifest says/);
  });

  it('documents every subcommand in --help', async () => {
    const help = await volcli(['volume', 'backup', 'restore', '--help']);
    expect(help.stdout).toMatch(/--backup <name>/);
    expect(help.stdout).toMatch(/--at <time>/);
    expect(help.stdout).toMatch(/--into <tenant\/volume>/);
  });
});
