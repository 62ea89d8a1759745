// Secure by default, through inject() on MemoryKV and the memory Storage twin: no coercion of any
// request, tokens and their roles (admin, provisioner, host, read-only), revocation, tenant limits and their
// usage, records read back from etcd checked against their schema. The same against the real
// etcd, Ceph and binaries: test/integration/security.test.ts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import Fastify from 'fastify';
import { createApp, volmasterApp, type App } from '../../src/master/app.js';
import { ROUTE_ACCESS } from '../../src/master/access.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { tokenHash } from '../../src/state/tokens.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { issuePolicy, volumeRecord } from '../helpers/fixtures.js';

const MiB = 1024 * 1024;
const ADMIN = 'bootstrap-admin-token';

let kv: MemoryKV;
let store: StateStore;
let storage: MemoryStorage;
let app: App;
const apps: App[] = [];

async function makeApp(options: { token?: string | null; tokenCacheMs?: number; store?: StateStore } = {}): Promise<App> {
  const a = await createApp({
    store: options.store ?? store,
    storage,
    token: options.token === undefined ? ADMIN : options.token,
    tokenCacheMs: options.tokenCacheMs,
    janitorIntervalMs: 0,
    lockTtlSeconds: 2,
    lockWaitMs: 5_000,
    cephTimeoutMs: 1_000,
  });
  await a.ready();
  apps.push(a);
  return a;
}

beforeEach(async () => {
  kv = new MemoryKV();
  store = new StateStore(kv, { owner: 'test-master:1' });
  storage = memoryStorage();
  app = await makeApp();
});

afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

type Json = Record<string, unknown>;
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

function call(method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE', url: string, token: string | null = ADMIN, payload?: unknown, a: App = app) {
  return a.inject({ method, url, headers: token ? auth(token) : {}, ...(payload === undefined ? {} : { payload: payload as Json }) });
}

function expectError(res: LightMyRequestResponse, status: number, code: string, message?: RegExp, field?: string) {
  expect(res.statusCode, res.body).toBe(status);
  const b = res.json() as Json;
  expect(b.code, res.body).toBe(code);
  if (message) expect(b.message).toMatch(message);
  if (field !== undefined) expect(b.field).toBe(field);
}

async function upload(tenant: string, policy: unknown) {
  const res = await call('PUT', `/v1/tenants/${tenant}`, ADMIN, policy);
  expect(res.statusCode, res.body).toBeLessThan(300);
}

async function newToken(name: string, role: string): Promise<string> {
  const res = await call('POST', '/v1/tokens', ADMIN, { name, role });
  expect(res.statusCode, res.body).toBe(201);
  const b = res.json() as { token: string; name: string; role: string; createdBy: string };
  expect(b).toMatchObject({ name, role, createdBy: 'bootstrap' });
  return b.token;
}

describe('no coercion: the TypeBox schemas validate every request', () => {
  it.each([
    ['"write-iops": true', { 'rate-limit': { 'write-iops': true } }, 'default-options.rate-limit.write-iops', /must be a whole number, got true/],
    ['"pool": 5', { pool: 5 }, 'default-options.pool', /must be a string, got the number 5/],
    ['"snapshots": "true"', { snapshots: 'true' }, 'default-options.snapshots', /must be true or false, got the string "true"/],
    ['"keep": "20"', { snapshot: { keep: '20' } }, 'default-options.snapshot.keep', /whole number/],
    ['an unknown key', { colour: 'red' }, 'default-options.colour', /unknown key "colour"/],
  ])('a tenant policy with %s is a 400 naming the field, and nothing is stored', async (_what, options, field, message) => {
    const policy = { 'default-options': { pool: 'rbd', ...options } };
    expectError(await call('PUT', '/v1/tenants/t1', ADMIN, policy), 400, 'INVALID_POLICY', message, field);
    expect(await store.getTenant('t1')).toBeNull();
  });

  it('refuses driver options of the wrong JSON type, naming the option, and creates nothing', async () => {
    await upload('t1', issuePolicy);
    expectError(await call('PUT', '/v1/volumes/t1/v', ADMIN, { options: { pool: 5 } }), 400, 'INVALID_OPTION', /pool: must be a string/, 'pool');
    expectError(await call('PUT', '/v1/volumes/t1/v', ADMIN, { options: { 'rate-limit.write.iops': true } }), 400, 'INVALID_OPTION', /whole number.*got true/, 'rate-limit.write.iops');
    expectError(await call('PUT', '/v1/volumes/t1/v', ADMIN, { options: { sise: '1GB' } }), 400, 'INVALID_OPTION', /did you mean "size"/, 'sise');
    expect(storage.images.size).toBe(0);
    expect(await store.listVolumes()).toEqual([]);
  });

  it('takes query flags and path numbers as text: ?force=1 and revision "x" are 400s', async () => {
    await upload('t1', issuePolicy);
    expect((await call('PUT', '/v1/volumes/t1/v', ADMIN, {})).statusCode).toBe(201);
    expectError(await call('DELETE', '/v1/volumes/t1/v?force=1'), 400, 'INVALID_REQUEST', /query force: must be "true" or "false"/, 'force');
    expectError(await call('DELETE', '/v1/volumes/t1/v?colour=red'), 400, 'INVALID_REQUEST', /unknown key "colour"/);
    expect(await store.getVolume('t1', 'v')).not.toBeNull();
    expectError(await call('GET', '/v1/tenants/t1/history/x'), 400, 'INVALID_REQUEST', /revision: must be a revision number/);
    expect((await call('GET', '/v1/tenants/t1/history/1')).statusCode).toBe(200);
  });

  it('answers an empty body with INVALID_JSON and a body that is not an object with INVALID_REQUEST', async () => {
    expectError(await app.inject({ method: 'PUT', url: '/v1/tenants/t1', headers: { ...auth(ADMIN), 'content-type': 'application/json' }, payload: '' }), 400, 'INVALID_JSON');
    expectError(await app.inject({ method: 'PUT', url: '/v1/tenants/t1', headers: { ...auth(ADMIN), 'content-type': 'application/json' }, payload: '[1]' }), 400, 'INVALID_REQUEST', /the body must be an object/);
  });
});

describe('tokens and roles', () => {
  it('stores only the SHA-256 of a token, and the token works at once', async () => {
    const token = await newToken('host1', 'host');
    expect(token).toMatch(/^vpt_[A-Za-z0-9_-]{43}$/);
    const entries = await kv.list(store.keys.prefix);
    expect(entries.map((e) => e.value).join('\n')).not.toContain(token);
    expect((await store.findToken(tokenHash(token)))?.name).toBe('host1');
    expect((await call('GET', '/v1/whoami', token)).json()).toEqual({ name: 'host1', role: 'host' });
    const list = (await call('GET', '/v1/tokens')).json() as { tokens: Json[] };
    expect(list.tokens).toEqual([{ name: 'host1', role: 'host', createdAt: expect.any(String), createdBy: 'bootstrap' }]);
  });

  it('refuses a second token of one name (409), a bad role or name (400), and the reserved names', async () => {
    await newToken('host1', 'host');
    expectError(await call('POST', '/v1/tokens', ADMIN, { name: 'host1', role: 'host' }), 409, 'TOKEN_EXISTS', /revoke it first/, 'name');
    expectError(await call('POST', '/v1/tokens', ADMIN, { name: 'host2', role: 'root' }), 400, 'INVALID_REQUEST', /role: must be one of admin, provisioner, host, read-only/, 'role');
    expectError(await call('POST', '/v1/tokens', ADMIN, { name: 'a/b', role: 'host' }), 400, 'INVALID_REQUEST', /name: must be a token name/, 'name');
    expectError(await call('POST', '/v1/tokens', ADMIN, { name: 'bootstrap', role: 'admin' }), 400, 'INVALID_NAME');
    expect((await store.listTokens()).map((t) => t.name)).toEqual(['host1']);
  });

  it('a host token does what Docker needs and nothing that deletes data or changes policy', async () => {
    await upload('t1', issuePolicy);
    const host = await newToken('host1', 'host');
    // create (with driver options), get, list, mounts and hosts: allowed
    expect((await call('PUT', '/v1/volumes/t1/keep', host, { options: { size: '20MB' } })).statusCode).toBe(201);
    expect((await call('PUT', '/v1/volumes/t1/eph', host, { options: { ephemeral: 'true' } })).statusCode).toBe(201);
    for (const url of ['/v1/volumes/t1/keep', '/v1/volumes', '/v1/volumes/t1', '/v1/mounts', '/v1/hosts', '/v1/tenants/t1']) {
      expect((await call('GET', url, host)).statusCode, url).toBe(200);
    }
    // removing a volume with its data: only an ephemeral one; force never; keep-image (docker volume rm) yes
    expectError(await call('DELETE', '/v1/volumes/t1/keep', host), 403, 'FORBIDDEN', /host1 \(role host\) may not remove t1\/keep with its data.*keep-image=true/);
    expect(storage.images.has('rbd/t1.keep')).toBe(true);
    expect(await store.getVolume('t1', 'keep')).not.toBeNull();
    expectError(await call('DELETE', '/v1/volumes/t1/keep?force=true', host), 403, 'FORBIDDEN', /may not force-remove/);
    expect(await store.getVolume('t1', 'keep')).not.toBeNull();
    expect((await call('DELETE', '/v1/volumes/t1/eph', host)).statusCode).toBe(204);
    expect(storage.images.has('rbd/t1.eph')).toBe(false);
    expect((await call('DELETE', '/v1/volumes/t1/keep?keep-image=true', host)).statusCode).toBe(204);
    expect(storage.images.has('rbd/t1.keep')).toBe(true);
    // the rest is the admin's
    expect((await call('PUT', '/v1/volumes/t1/again', host, {})).statusCode).toBe(201);
    const refused: Array<[Parameters<typeof call>[0], string, unknown?]> = [
      ['PUT', '/v1/tenants/t2', issuePolicy],
      ['DELETE', '/v1/tenants/t1'],
      ['PATCH', '/v1/volumes/t1/again/runtime', { options: { 'snapshots.keep': '5' } }],
      ['POST', '/v1/volumes/t1/again/snapshots', {}],
      ['POST', '/v1/volumes/t1/again/snapshots/s1/rollback'],
      ['POST', '/v1/volumes/t1/again/snapshots/s1/copy', { tenant: 't1', volume: 'c' }],
      ['DELETE', '/v1/mounts/t1/again'],
      ['GET', '/v1/tokens'],
      ['POST', '/v1/tokens', { name: 'mine', role: 'admin' }],
      ['DELETE', '/v1/tokens/host1'],
    ];
    for (const [method, url, payload] of refused) {
      expectError(await call(method, url, host, payload), 403, 'FORBIDDEN', /role host/);
    }
    expect(await store.getTenant('t2')).toBeNull();
    expect((await store.getVolume('t1', 'again'))!.runtime.snapshot.keep).toBe(20);
    expect(await storage.listSnapshots('rbd', 't1.again')).toEqual([]);
  });

  it('a read-only token reads everything but the tokens, and changes nothing', async () => {
    await upload('t1', issuePolicy);
    await call('PUT', '/v1/volumes/t1/v', ADMIN, {});
    const ro = await newToken('monitor', 'read-only');
    for (const url of ['/v1/ready', '/v1/volumes', '/v1/tenants', '/v1/tenants/t1/history', '/v1/tenants/t1/usage', '/v1/volumes/t1/v/snapshots', '/v1/openapi.json']) {
      expect((await call('GET', url, ro)).statusCode, url).not.toBe(403);
    }
    expectError(await call('GET', '/v1/tokens', ro), 403, 'FORBIDDEN');
    expectError(await call('PUT', '/v1/volumes/t1/w', ro, {}), 403, 'FORBIDDEN', /needs a token of role host/);
    expectError(await call('DELETE', '/v1/volumes/t1/v?keep-image=true', ro), 403, 'FORBIDDEN');
    expect((await store.listVolumes()).map((v) => v.volume)).toEqual(['v']);
  });

  it('the access table names every route, and only routes that exist (a new route is admin-only until someone decides)', async () => {
    const registered: string[] = [];
    const bare = Fastify();
    bare.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) if (method !== 'HEAD') registered.push(`${method} ${route.url}`);
    });
    await bare.register(volmasterApp, { store, storage, token: ADMIN, janitorIntervalMs: 0 });
    await bare.ready();
    await bare.close();
    expect(registered.sort()).toEqual(Object.keys(ROUTE_ACCESS).sort());
  });

  it('refuses an unknown token with 401 and a revoked one at once on the master that revoked it', async () => {
    const token = await newToken('host1', 'host');
    expectError(await call('GET', '/v1/volumes', 'vpt_not-a-token'), 401, 'UNAUTHORIZED', /not known to this volmaster/);
    expect((await call('GET', '/v1/volumes', token)).statusCode).toBe(200);
    expect((await call('DELETE', '/v1/tokens/host1')).json()).toMatchObject({ name: 'host1', role: 'host' });
    expectError(await call('GET', '/v1/volumes', token), 401, 'UNAUTHORIZED', /wrong, or revoked/);
    expectError(await call('DELETE', '/v1/tokens/host1'), 404, 'TOKEN_NOT_FOUND');
  });

  it('another master refuses a revoked token once its cache entry expires (the bound it promises)', async () => {
    const other = await makeApp({ store: new StateStore(kv, { owner: 'other:2' }), tokenCacheMs: 200 });
    const token = await newToken('host1', 'host');
    expect((await call('GET', '/v1/volumes', token, undefined, other)).statusCode).toBe(200); // cached there now
    await call('DELETE', '/v1/tokens/host1');
    const deadline = Date.now() + 5_000;
    let status = 200;
    while (Date.now() < deadline && status !== 401) {
      status = (await call('GET', '/v1/volumes', token, undefined, other)).statusCode;
      if (status !== 401) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(401);
  });

  it('an open API (no token file, loopback) takes every caller for the admin "anonymous"', async () => {
    const open = await makeApp({ token: null });
    expect((await open.inject({ url: '/v1/whoami' })).json()).toEqual({ name: 'anonymous', role: 'admin' });
  });
});

describe('tenant limits', () => {
  const limited = {
    'default-options': { pool: 'rbd', size: '10MB' },
    limits: { size: '40MB', 'total-size': '64MB', volumes: 3, snapshots: 2, pools: ['rbd'], 'rate-limit': { 'write-iops': 500 } },
  };

  it('refuses options beyond the limits with 422 naming the option and the limit, creating nothing', async () => {
    await upload('t1', limited);
    expectError(await call('PUT', '/v1/volumes/t1/v', ADMIN, { options: { size: '8000TB' } }), 422, 'LIMIT_EXCEEDED', /largest volume, 40MB \(limits.size\)/, 'size');
    expectError(await call('PUT', '/v1/volumes/t1/v', ADMIN, { options: { 'rate-limit.write.iops': '0' } }), 422, 'LIMIT_EXCEEDED', /0 means unlimited.*ceiling of 500 \(limits.rate-limit.write-iops\)/, 'rate-limit.write.iops');
    expectError(await call('PUT', '/v1/volumes/t1/v', ADMIN, { options: { 'rate-limit.write.iops': '501' } }), 422, 'LIMIT_EXCEEDED', /give at most 500/);
    expectError(await call('PUT', '/v1/volumes/t1/v', ADMIN, { options: { pool: 'ssd' } }), 422, 'LIMIT_EXCEEDED', /not one of the tenant's pools/, 'pool');
    expectError(await call('PUT', '/v1/volumes/t1/v', ADMIN, { options: { 'snapshots.keep': '3' } }), 422, 'LIMIT_EXCEEDED', /limit of 2 snapshots per volume/, 'snapshots.keep');
    expect(storage.images.size).toBe(0);
    expect((await store.getUsage('t1')).volumes).toBe(0);
  });

  it('gives volumes the ceiling when the policy sets no default rate, and keeps runtime changes under it', async () => {
    await upload('t1', limited);
    const res = await call('PUT', '/v1/volumes/t1/v', ADMIN, {});
    expect(res.statusCode, res.body).toBe(201);
    expect((res.json() as { runtime: { rateLimit: { writeIops: number }; snapshot: { keep: number } } }).runtime).toMatchObject({ rateLimit: { writeIops: 500 }, snapshot: { keep: 2 } });
    expectError(await call('PATCH', '/v1/volumes/t1/v/runtime', ADMIN, { options: { 'rate-limit.write.iops': '0' } }), 422, 'LIMIT_EXCEEDED', /ceiling/);
    expect((await store.getVolume('t1', 'v'))!.runtime.rateLimit.writeIops).toBe(500);
    expect((await call('PATCH', '/v1/volumes/t1/v/runtime', ADMIN, { options: { 'rate-limit.write.iops': '100' } })).statusCode).toBe(200);
  });

  it('refuses a policy whose own defaults break its limits, naming the default', async () => {
    const bad = { ...limited, 'default-options': { pool: 'rbd', size: '1GB' } };
    expectError(await call('PUT', '/v1/tenants/t1', ADMIN, bad), 400, 'INVALID_POLICY', /default-options.size: 1GB is larger than the tenant's largest volume/, 'default-options.size');
    const zero = { ...limited, 'default-options': { pool: 'rbd', 'rate-limit': { 'write-iops': 0 } } };
    expectError(await call('PUT', '/v1/tenants/t1', ADMIN, zero), 400, 'INVALID_POLICY', /0 means unlimited/, 'default-options.rate-limit.write-iops');
    const other = { ...limited, 'default-options': { pool: 'ssd' } };
    expectError(await call('PUT', '/v1/tenants/t1', ADMIN, other), 400, 'INVALID_POLICY', /not one of the tenant's pools/, 'default-options.pool');
    expect(await store.getTenant('t1')).toBeNull();
  });

  it('counts volumes and bytes: the quota refuses with 409, a remove gives it back, usage is reported', async () => {
    await upload('t1', limited);
    for (const v of ['a', 'b']) expect((await call('PUT', `/v1/volumes/t1/${v}`, ADMIN, { options: { size: '30MB' } })).statusCode).toBe(201);
    expectError(await call('PUT', '/v1/volumes/t1/c', ADMIN, { options: { size: '10MB' } }), 409, 'QUOTA_EXCEEDED', /uses 60MB of its 64MB.*ask for at most 4MB/, 'limits.total-size');
    expect((await call('PUT', '/v1/volumes/t1/c', ADMIN, { options: { size: '4MB' } })).statusCode).toBe(201);
    expectError(await call('PUT', '/v1/volumes/t1/d', ADMIN, { options: { size: '1MB' } }), 409, 'QUOTA_EXCEEDED', /3 volume\(s\).*limit of 3 \(limits.volumes\)/, 'limits.volumes');
    expect(storage.images.has('rbd/t1.d')).toBe(false);
    expect((await call('GET', '/v1/tenants/t1/usage')).json()).toEqual({
      tenant: 't1',
      volumes: 3,
      bytes: 64 * MiB,
      limits: { volumes: 3, bytes: 64 * MiB, sizeBytes: 40 * MiB, snapshots: 2, pools: ['rbd'] },
    });
    expect((await call('DELETE', '/v1/volumes/t1/a')).statusCode).toBe(204);
    expect((await call('PUT', '/v1/volumes/t1/d', ADMIN, { options: { size: '1MB' } })).statusCode).toBe(201);
    expect(await store.getUsage('t1')).toEqual({ tenant: 't1', volumes: 3, bytes: 35 * MiB });
    // force-remove gives the share back too (the record goes)
    expect((await call('DELETE', '/v1/volumes/t1/d?force=true')).statusCode).toBe(204);
    expect(await store.getUsage('t1')).toEqual({ tenant: 't1', volumes: 2, bytes: 34 * MiB });
  });

  it('parallel creates stop at the quota (the race on the real etcd, where it can interleave: test/integration/security.test.ts)', async () => {
    await upload('t1', { ...limited, limits: { volumes: 3 } });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => call('PUT', `/v1/volumes/t1/p${i}`, ADMIN, {})));
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(3);
    for (const r of results.filter((r) => r.statusCode !== 201)) expectError(r, 409, 'QUOTA_EXCEEDED');
    expect(await store.listVolumes('t1')).toHaveLength(3);
    expect([...storage.images.keys()].filter((k) => k.startsWith('rbd/t1.'))).toHaveLength(3);
    expect((await store.getUsage('t1')).volumes).toBe(3);
  });

  it('refuses a manual snapshot beyond limits.snapshots, and a copy beyond the target tenant limits', async () => {
    await upload('t1', { 'default-options': { pool: 'rbd', size: '10MB' }, limits: { snapshots: 2 } });
    await upload('t2', { 'default-options': { pool: 'rbd', size: '1MB' }, limits: { size: '5MB' } });
    await call('PUT', '/v1/volumes/t1/v', ADMIN, {});
    for (const name of ['s1', 's2']) expect((await call('POST', '/v1/volumes/t1/v/snapshots', ADMIN, { name })).statusCode).toBe(201);
    expectError(await call('POST', '/v1/volumes/t1/v/snapshots', ADMIN, { name: 's3' }), 409, 'SNAPSHOT_LIMIT', /has 2 snapshots, its tenant's limit/);
    expect((await storage.listSnapshots('rbd', 't1.v')).map((s) => s.name)).toEqual(['s1', 's2']);
    expectError(await call('POST', '/v1/volumes/t1/v/snapshots/s1/copy', ADMIN, { tenant: 't2', volume: 'c' }), 422, 'LIMIT_EXCEEDED', /10MB is larger than the tenant's largest volume, 5MB/);
    expect(await store.getVolume('t2', 'c')).toBeNull();
    expect((await store.getUsage('t2')).volumes).toBe(0);
  });

  it('counts volumes made before usage was counted, from their records', async () => {
    await upload('t1', { ...limited, limits: { volumes: 2 } });
    await kv.put(store.keys.volume('t1', 'old'), JSON.stringify(volumeRecord('t1', 'old'))); // no usage key yet
    expect((await call('PUT', '/v1/volumes/t1/new', ADMIN, {})).statusCode).toBe(201);
    expectError(await call('PUT', '/v1/volumes/t1/third', ADMIN, {}), 409, 'QUOTA_EXCEEDED');
    expect(await store.getUsage('t1')).toEqual({ tenant: 't1', volumes: 2, bytes: 20 * MiB });
  });
});

describe('records read back from etcd are checked against their schema', () => {
  it('a hand-written record of the wrong shape is STATE_CORRUPT naming the key and the field', async () => {
    await upload('t1', issuePolicy);
    const bad = volumeRecord('t1', 'v');
    await kv.put(store.keys.volume('t1', 'v'), JSON.stringify({ ...bad, formatCommand: 5 }));
    expectError(await call('GET', '/v1/volumes/t1/v'), 500, 'STATE_CORRUPT', /volumes\/t1\/v .*formatCommand: must be a string, got the number 5/);
    await kv.put(store.keys.volume('t1', 'w'), JSON.stringify({ ...volumeRecord('t1', 'w'), extra: true }));
    expectError(await call('GET', '/v1/volumes/t1/w'), 500, 'STATE_CORRUPT', /unknown key "extra"/);
  });

  it('a tenant policy written into etcd by hand passes the same rules as an upload, or is refused', async () => {
    const record = { name: 't9', policy: { 'default-options': { pool: 'rbd', 'rate-limit': { 'write-iops': true } }, filesystems: { ext4: 'mkfs.ext4 %' } }, revision: 1, uploadedAt: new Date().toISOString() };
    await kv.put(store.keys.tenant('t9'), JSON.stringify(record));
    expectError(await call('GET', '/v1/tenants/t9'), 500, 'STATE_CORRUPT', /policy.default-options.rate-limit.write-iops: must be a whole number, got true/);
    expectError(await call('PUT', '/v1/volumes/t9/v', ADMIN, {}), 500, 'STATE_CORRUPT');
    expect(storage.images.size).toBe(0);
  });
});
