// Every route of volmaster and every error it answers, through inject() on MemoryKV and the memory
// Storage twin (its fault hooks make Ceph unreachable, fail one operation or stop answering).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { createApp, type App } from '../../src/master/app.js';
import { IMAGE_OWNER_KEY } from '../../src/storage/conventions.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import type { MountRecord, VolumeRecord } from '../../src/state/records.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { issuePolicy, mountRecord } from '../helpers/fixtures.js';

const MiB = 1024 * 1024;

const readmePolicy = issuePolicy;

let kv: MemoryKV;
let store: StateStore;
let storage: MemoryStorage;
let app: App;
const extraApps: App[] = [];

async function makeApp(options: { token?: string; kv?: MemoryKV; owner?: string } = {}): Promise<App> {
  const s = options.kv ? new StateStore(options.kv, { owner: options.owner }) : store;
  const a = await createApp({ store: s, storage, token: options.token, janitorIntervalMs: 0, lockTtlSeconds: 2, lockWaitMs: 5_000, cephTimeoutMs: 1_000 });
  await a.ready();
  return a;
}

beforeEach(async () => {
  kv = new MemoryKV();
  store = new StateStore(kv, { owner: 'test-master:1' });
  storage = memoryStorage();
  app = await makeApp();
});

afterEach(async () => {
  await app.close();
  for (const a of extraApps.splice(0)) await a.close();
});

type Json = Record<string, unknown>;
const body = (res: LightMyRequestResponse) => res.json() as Json;

function expectError(res: LightMyRequestResponse, status: number, code: string, message?: RegExp, field?: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/application\/json/);
  const b = body(res);
  expect(b.code).toBe(code);
  expect(typeof b.message).toBe('string');
  if (message) expect(b.message).toMatch(message);
  if (field !== undefined) expect(b.field).toBe(field);
}

const put = (url: string, payload: unknown, a: App = app) => a.inject({ method: 'PUT', url, payload: payload as Json });
const putRaw = (url: string, payload: string) => app.inject({ method: 'PUT', url, payload, headers: { 'content-type': 'application/json' } });
const get = (url: string) => app.inject({ method: 'GET', url });
const del = (url: string) => app.inject({ method: 'DELETE', url });

async function uploadReadme(tenant = 'tenant1') {
  const res = await put(`/v1/tenants/${tenant}`, readmePolicy);
  expect(res.statusCode, res.body).toBe(201);
}

async function createVolume(name = 'tenant1/foo', options: Json = {}, a: App = app) {
  return put(`/v1/volumes/${name}`, { options }, a);
}

/** Polls an operation (by its URL) until it is no longer running. */
async function operationEnd(url: string): Promise<Json> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode, res.body).toBe(200);
    if (body(res).state !== 'running') return body(res);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`operation ${url} still running`);
}

async function mount(tenant: string, volume: string, host = 'host-a'): Promise<MountRecord> {
  const lease = await kv.lease(30);
  const record = mountRecord(tenant, volume, {
    host,
    lease: lease.id,
    device: '/dev/loop3',
    mountpoint: `/mnt/${tenant}/${volume}`,
    mapper: 'fuse',
    clientAddress: '127.0.0.1:0/42',
    since: new Date().toISOString(),
  });
  const result = await store.acquireMount(record, lease);
  if (!result.ok) throw new Error(`mount lock not taken: ${result.reason}`);
  return result.record;
}

// ---------------------------------------------------------------------------------------------

describe('service routes', () => {
  it('GET /v1/health answers without dependencies', async () => {
    kv.setUnavailable(true);
    storage.unreachable = true;
    const res = await get('/v1/health');
    expect(res.statusCode).toBe(200);
    expect(body(res)).toMatchObject({ status: 'ok' });
  });

  it('GET /v1/ready is 200 when etcd and Ceph answer', async () => {
    const res = await get('/v1/ready');
    expect(res.statusCode).toBe(200);
    expect(body(res)).toMatchObject({ ready: true, checks: { etcd: { ok: true }, ceph: { ok: true } } });
  });

  it('GET /v1/ready is 503 naming etcd when etcd is down', async () => {
    kv.setUnavailable(true);
    const res = await get('/v1/ready');
    expect(res.statusCode).toBe(503);
    expect(body(res)).toMatchObject({ ready: false, checks: { etcd: { ok: false }, ceph: { ok: true } } });
  });

  it('GET /v1/ready is 503 naming Ceph when Ceph is down', async () => {
    storage.unreachable = true;
    const res = await get('/v1/ready');
    expect(res.statusCode).toBe(503);
    expect(body(res)).toMatchObject({ ready: false, checks: { etcd: { ok: true }, ceph: { ok: false } } });
  });

  it('GET /v1/openapi.json documents every route', async () => {
    const res = await get('/v1/openapi.json');
    expect(res.statusCode).toBe(200);
    const doc = body(res) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    const routes = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    for (const route of [
      'GET /v1/health',
      'GET /v1/ready',
      'GET /v1/tenants',
      'PUT /v1/tenants/{tenant}',
      'GET /v1/tenants/{tenant}',
      'DELETE /v1/tenants/{tenant}',
      'GET /v1/tenants/{tenant}/history',
      'GET /v1/tenants/{tenant}/history/{revision}',
      'GET /v1/volumes',
      'GET /v1/volumes/{tenant}',
      'PUT /v1/volumes/{tenant}/{volume}',
      'GET /v1/volumes/{tenant}/{volume}',
      'DELETE /v1/volumes/{tenant}/{volume}',
      'GET /v1/volumes/{tenant}/{volume}/runtime',
      'PATCH /v1/volumes/{tenant}/{volume}/runtime',
      'GET /v1/mounts',
      'GET /v1/mounts/{tenant}/{volume}',
      'DELETE /v1/mounts/{tenant}/{volume}',
      'GET /v1/hosts',
      'GET /v1/hosts/{hostId}',
      'GET /v1/volumes/{tenant}/{volume}/snapshots',
      'POST /v1/volumes/{tenant}/{volume}/snapshots',
      'DELETE /v1/volumes/{tenant}/{volume}/snapshots/{snapshot}',
      'POST /v1/volumes/{tenant}/{volume}/snapshots/{snapshot}/copy',
      'POST /v1/volumes/{tenant}/{volume}/snapshots/{snapshot}/rollback',
    ]) {
      expect(routes).toContain(route);
    }
  });

  it('answers unknown routes with NOT_FOUND', async () => {
    expectError(await get('/v2/volumes'), 404, 'NOT_FOUND', /under \/v1/);
    expectError(await get('/volumes/create'), 404, 'NOT_FOUND');
  });
});

describe('bearer token', () => {
  let closed: App;
  beforeEach(async () => {
    closed = await makeApp({ token: 's3cret-token' });
    extraApps.push(closed);
  });

  it('is not needed for health', async () => {
    expect((await closed.inject({ url: '/v1/health' })).statusCode).toBe(200);
  });

  it('is needed for everything else', async () => {
    for (const url of ['/v1/ready', '/v1/tenants', '/v1/volumes', '/v1/mounts', '/v1/openapi.json', '/v1/health/../tenants']) {
      const res = await closed.inject({ url });
      expectError(res, 401, 'UNAUTHORIZED', /--token-file/);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    expectError(await closed.inject({ method: 'PUT', url: '/v1/tenants/t', payload: readmePolicy }), 401, 'UNAUTHORIZED');
    expect(await store.listTenants()).toEqual([]);
  });

  it('must be the right one', async () => {
    expectError(await closed.inject({ url: '/v1/tenants', headers: { authorization: 'Bearer wrong' } }), 401, 'UNAUTHORIZED', /wrong/);
    expectError(await closed.inject({ url: '/v1/tenants', headers: { authorization: 'Basic czNjcmV0' } }), 401, 'UNAUTHORIZED');
    expectError(await closed.inject({ url: '/v1/tenants', headers: { authorization: 'Bearer s3cret-token-and-more' } }), 401, 'UNAUTHORIZED');
    const ok = await closed.inject({ url: '/v1/tenants', headers: { authorization: 'Bearer s3cret-token' } });
    expect(ok.statusCode).toBe(200);
  });
});

describe('tenants', () => {
  it('uploads, gets, lists, keeps the history and deletes', async () => {
    const first = await put('/v1/tenants/tenant1', readmePolicy);
    expect(first.statusCode).toBe(201);
    expect(body(first)).toMatchObject({ name: 'tenant1', revision: 1, policy: readmePolicy });

    const changed = { ...readmePolicy, 'default-options': { ...readmePolicy['default-options'], size: '20MB' } };
    const second = await put('/v1/tenants/tenant1', changed);
    expect(second.statusCode).toBe(200);
    expect(body(second)).toMatchObject({ revision: 2 });

    expect(body(await get('/v1/tenants/tenant1'))).toMatchObject({ revision: 2, policy: changed });
    const list = body(await get('/v1/tenants'));
    expect(list.tenants).toEqual([{ name: 'tenant1', revision: 2, uploadedAt: expect.any(String) }]);

    const history = body(await get('/v1/tenants/tenant1/history'));
    expect((history.revisions as Json[]).map((r) => r.revision)).toEqual([1, 2]);
    expect(body(await get('/v1/tenants/tenant1/history/1'))).toMatchObject({ revision: 1, policy: readmePolicy });
    expectError(await get('/v1/tenants/tenant1/history/7'), 404, 'REVISION_NOT_FOUND', /no revision 7/);
    expectError(await get('/v1/tenants/tenant1/history/zero'), 400, 'INVALID_REQUEST');

    expect((await del('/v1/tenants/tenant1')).statusCode).toBe(204);
    expectError(await get('/v1/tenants/tenant1'), 404, 'TENANT_NOT_FOUND', /volcli tenant upload tenant1/);
    expectError(await del('/v1/tenants/tenant1'), 404, 'TENANT_NOT_FOUND');
    // The history outlives the tenant.
    expect(((body(await get('/v1/tenants/tenant1/history')).revisions) as Json[]).length).toBe(2);
  });

  it('fills in the default filesystems', async () => {
    const res = await put('/v1/tenants/t2', { 'default-options': { pool: 'rbd', size: '1GB' } });
    expect(body(res)).toMatchObject({ policy: { filesystems: { ext4: 'mkfs.ext4 -m0 -E lazy_journal_init=1 %' } } });
  });

  it('404s for an unknown tenant and its history', async () => {
    expectError(await get('/v1/tenants/nobody'), 404, 'TENANT_NOT_FOUND');
    expectError(await get('/v1/tenants/nobody/history'), 404, 'TENANT_NOT_FOUND');
  });

  it('rejects invalid JSON with line and column, writing nothing', async () => {
    const res = await putRaw('/v1/tenants/tenant1', '{\n  "default-options": {\n    "pool": "rbd",\n  }\n}');
    expectError(res, 400, 'INVALID_JSON', /line 4, column 3: trailing comma/);
    expect(await store.listTenants()).toEqual([]);
  });

  it('rejects an empty body and other content types', async () => {
    expectError(await putRaw('/v1/tenants/tenant1', ''), 400, 'INVALID_JSON', /empty/);
    const text = await app.inject({ method: 'PUT', url: '/v1/tenants/tenant1', payload: 'pool=rbd', headers: { 'content-type': 'text/plain' } });
    expectError(text, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(await store.listTenants()).toEqual([]);
  });

  it('rejects a body over 1 MiB', async () => {
    const big = JSON.stringify({ 'default-options': { pool: 'rbd' }, filesystems: { ext4: `mkfs %${' '.repeat(1 << 20)}` } });
    expectError(await putRaw('/v1/tenants/tenant1', big), 413, 'PAYLOAD_TOO_LARGE');
  });

  const opts = (o: Json) => ({ 'default-options': { pool: 'rbd', ...o } });
  it.each([
    ['an unknown top-level key', { ...readmePolicy, volumes: {} }, 'volumes', /unknown key/],
    ['an unknown option key', opts({ colour: 'red' }), 'default-options.colour', /unknown key/],
    ['no pool', { 'default-options': { size: '10MB' } }, 'default-options.pool', /is required/],
    ['a size without unit', opts({ size: '10' }), 'default-options.size', /no unit/],
    ['a size with an unknown unit', opts({ size: '10QB' }), 'default-options.size', /unknown size unit "QB"/],
    ['a negative keep', opts({ snapshot: { keep: -3 } }), 'default-options.snapshot.keep', /at least 1, got -3/],
    ['a frequency that does not parse', opts({ snapshot: { frequency: 'often' } }), 'default-options.snapshot.frequency', /not a duration/],
    ['a filesystem command without %', { ...opts({}), filesystems: { ext4: 'mkfs.ext4' } }, 'filesystems.ext4', /no "%"/],
    ['a filesystem not in the map', opts({ filesystem: 'zfs' }), 'default-options.filesystem', /"zfs" is not in filesystems/],
    ['a value of the wrong type', opts({ snapshots: 'yes' }), 'default-options.snapshots', /true or false/],
  ])('rejects a policy with %s, writing nothing', async (_what, policy, field, message) => {
    expectError(await put('/v1/tenants/tenant1', policy), 400, 'INVALID_POLICY', message, field);
    expect(await store.listTenants()).toEqual([]);
    expect(await store.tenantHistory('tenant1')).toEqual([]);
  });

  it.each([
    ['a dot', 'ten.ant', /contains "\."/],
    ['dot-dot', 'a..b', /contains "\.\."/],
    ['too long', 'x'.repeat(65), /limit is 64/],
    ['whitespace', 'ten%20ant', /whitespace/],
    ['a slash', 'ten%2Fant', /contains "\/"/],
    ['a shell metacharacter', 'ten%3Bant', /contains ";"/],
    ['non-ASCII', 'caf%C3%A9', /non-ASCII/],
  ])('rejects a tenant name with %s', async (_what, name, message) => {
    expectError(await put(`/v1/tenants/${name}`, readmePolicy), 400, 'INVALID_NAME', message, 'tenant');
    expect(await store.listTenants()).toEqual([]);
  });

  it('rejects an empty tenant name', async () => {
    const res = await put('/v1/tenants/', readmePolicy);
    expect([400, 404]).toContain(res.statusCode);
    expect(await store.listTenants()).toEqual([]);
  });

  it('answers 503 when etcd is down', async () => {
    kv.setUnavailable(true);
    expectError(await get('/v1/tenants'), 503, 'STATE_UNAVAILABLE', /etcd/);
    expectError(await put('/v1/tenants/tenant1', readmePolicy), 503, 'STATE_UNAVAILABLE');
    kv.setUnavailable(false);
    expect((await get('/v1/tenants')).statusCode).toBe(200);
  });
});

describe('volumes: create', () => {
  beforeEach(() => uploadReadme());

  it('merges default-options and options, creates the image and the record', async () => {
    const res = await createVolume('tenant1/foo', { size: '20', filesystem: 'ext4', 'rate-limit.write.iops': '50' });
    expect(res.statusCode, res.body).toBe(201);
    const record = body(res) as unknown as VolumeRecord;
    expect(record).toMatchObject({
      tenant: 'tenant1',
      volume: 'foo',
      pool: 'rbd',
      image: 'tenant1.foo',
      policyRevision: 1,
      formatCommand: 'mkfs.ext4 -m0 %',
      options: {
        pool: 'rbd',
        sizeBytes: 20 * MiB,
        snapshots: true,
        snapshot: { frequency: '30m', keep: 20 },
        filesystem: 'ext4',
        ephemeral: false,
        rateLimit: { writeIops: 50, readIops: 1000, writeBps: 100000000, readBps: 100000000 },
      },
      runtime: { snapshots: true, snapshot: { frequency: '30m', keep: 20 }, rateLimit: { writeIops: 50 } },
    });
    const image = storage.images.get('rbd/tenant1.foo')!;
    expect(image.size).toBe(20 * MiB);
    expect(image.metadata[IMAGE_OWNER_KEY]).toBe('tenant1/foo');
    expect(image.qos).toMatchObject({ writeIops: 50, readIops: 1000 });
    expect(await store.getVolume('tenant1', 'foo')).toEqual(record);
    expect(await app.volumes.intents.list()).toEqual([]);
  });

  it('returns the volume when created again with the same (or no) options, 409 with others', async () => {
    expect((await createVolume('tenant1/foo', { size: '20' })).statusCode).toBe(201);
    const again = await createVolume('tenant1/foo', { size: '20MB' });
    expect(again.statusCode).toBe(200);
    expect(body(again)).toMatchObject({ image: 'tenant1.foo' });
    expect((await createVolume('tenant1/foo', {})).statusCode).toBe(200);
    expect((await app.inject({ method: 'PUT', url: '/v1/volumes/tenant1/foo' })).statusCode).toBe(200);
    expectError(await createVolume('tenant1/foo', { size: '30' }), 409, 'VOLUME_EXISTS', /other options \(size\)/, 'size');
    expect(storage.calls.filter((c) => c.startsWith('createImage '))).toHaveLength(1);
  });

  it('makes exactly one image for concurrent creates through one master', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => createVolume('tenant1/race')));
    const statuses = results.map((r) => r.statusCode).sort();
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(storage.calls.filter((c) => c.startsWith('createImage '))).toHaveLength(1);
  });

  it('makes exactly one image for concurrent creates through two masters', async () => {
    const other = await makeApp({ kv: kv.client(), owner: 'other-master:2' });
    extraApps.push(other);
    const results = await Promise.all([
      ...Array.from({ length: 4 }, () => createVolume('tenant1/race')),
      ...Array.from({ length: 4 }, () => createVolume('tenant1/race', {}, other)),
    ]);
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(7);
    expect(storage.calls.filter((c) => c.startsWith('createImage '))).toHaveLength(1);
    expect([...storage.images.keys()]).toEqual(['rbd/tenant1.race']);
  });

  it('404s for an unknown tenant', async () => {
    expectError(await createVolume('nobody/foo'), 404, 'TENANT_NOT_FOUND', /volcli tenant upload nobody/, 'tenant');
    expect(storage.images.size).toBe(0);
  });

  it.each([
    ['an unknown option', { colour: 'red' }, 'INVALID_OPTION', 'colour', /unknown option "colour"/],
    ['a misspelt option', { 'snapshot.keep': '3' }, 'INVALID_OPTION', 'snapshot.keep', /did you mean "snapshots.keep"/],
    ['a size with an unknown unit', { size: '10QB' }, 'INVALID_OPTION', 'size', /unknown size unit/],
    ['a size that is not a number', { size: 'huge' }, 'INVALID_OPTION', 'size', /not a size/],
    ['a bool that Go would not parse', { snapshots: 'yes' }, 'INVALID_OPTION', 'snapshots', /not a boolean/],
    ['a negative keep', { 'snapshots.keep': '-1' }, 'INVALID_OPTION', 'snapshots.keep', /negative/],
    ['a frequency that does not parse', { 'snapshots.frequency': 'hourly' }, 'INVALID_OPTION', 'snapshots.frequency', /not a duration/],
    ['a rate that is not a number', { 'rate-limit.read.bps': 'fast' }, 'INVALID_OPTION', 'rate-limit.read.bps', /not a whole number/],
    ['a filesystem not in the map', { filesystem: 'xfs' }, 'INVALID_OPTION', 'filesystem', /"xfs" is not one of/],
    ['an object as value', { size: { mb: 1 } }, 'INVALID_OPTION', 'size', /got an object/],
    ['a pool name with a slash', { pool: 'a/b' }, 'INVALID_OPTION', 'pool', /may contain only/],
  ])('rejects %s, writing nothing', async (_what, options, code, field, message) => {
    expectError(await createVolume('tenant1/foo', options), 400, code, message, field);
    expect(storage.images.size).toBe(0);
    expect(await store.listVolumes()).toEqual([]);
  });

  it('rejects a body that is not {options}', async () => {
    expectError(await put('/v1/volumes/tenant1/foo', { size: '10' }), 400, 'INVALID_REQUEST');
    expectError(await put('/v1/volumes/tenant1/foo', { options: 'size=10' }), 400, 'INVALID_REQUEST');
    expect(storage.images.size).toBe(0);
  });

  it.each([
    ['tenant1/a..b', 'volume', /contains "\.\."/],
    ['tenant1/a%20b', 'volume', /whitespace/],
    ['tenant1/a%2Fb', 'volume', /contains "\/"/],
    ['tenant1/a%24b', 'volume', /contains "\$"/],
    ['tenant1/a%60b', 'volume', /contains "`"/],
    ['tenant1/%E2%9C%93', 'volume', /non-ASCII/],
    [`tenant1/${'v'.repeat(65)}`, 'volume', /limit is 64/],
    ['ten.ant1/foo', 'tenant', /contains "\."/],
  ])('rejects the name %s', async (name, field, message) => {
    expectError(await createVolume(name), 400, 'INVALID_NAME', message, field);
    expect(storage.images.size).toBe(0);
  });

  it('names a missing pool', async () => {
    expectError(await createVolume('tenant1/foo', { pool: 'nopool' }), 400, 'POOL_NOT_FOUND', /no pool "nopool"/, 'pool');
    expect(await store.listVolumes()).toEqual([]);
  });

  it('leaves no image, record or intent when a step after the image fails', async () => {
    storage.failNext('setMetadata', -5);
    expectError(await createVolume('tenant1/foo'), 500, 'STORAGE_ERROR', /EIO/);
    expect(storage.images.size).toBe(0);
    expect(await store.listVolumes()).toEqual([]);
    expect(await app.volumes.intents.list()).toEqual([]);
    expect((await createVolume('tenant1/foo')).statusCode).toBe(201);
  });

  it('leaves nothing when creating the image fails', async () => {
    storage.failNext('createImage', -28);
    expectError(await createVolume('tenant1/foo'), 500, 'STORAGE_ERROR', /ENOSPC/);
    expect(storage.images.size).toBe(0);
    expect(await app.volumes.intents.list()).toEqual([]);
  });

  it('answers 503 when Ceph is unreachable and 503 when etcd is, then recovers', async () => {
    storage.unreachable = true;
    expectError(await createVolume('tenant1/foo'), 503, 'STORAGE_UNAVAILABLE', /Ceph cluster cannot be reached/);
    storage.unreachable = false;
    expect(await app.volumes.intents.list()).toEqual([]);
    kv.setUnavailable(true);
    expectError(await createVolume('tenant1/foo'), 503, 'STATE_UNAVAILABLE', /etcd/);
    kv.setUnavailable(false);
    expect(storage.images.size).toBe(0);
    expect((await createVolume('tenant1/foo')).statusCode).toBe(201);
  });

  it('answers 503 when Ceph stops answering, and the janitor resolves the create later', async () => {
    const stuck = storage.hang('createImage');
    const started = Date.now();
    expectError(await createVolume('tenant1/foo'), 503, 'STORAGE_UNAVAILABLE', /did not answer in time/);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect((await app.volumes.intents.list()).map((i) => i.volume)).toEqual(['foo']);
    await stuck.release('ETIMEDOUT'); // the stuck create never made its image
    expect(await app.volumes.reconcile()).toBe(1);
    expect(await app.volumes.intents.list()).toEqual([]);
    expect((await createVolume('tenant1/foo')).statusCode).toBe(201);
  });

  it('resolves a create whose record write failed once etcd is back (janitor)', async () => {
    const made = storage.hang('createImage');
    const created = createVolume('tenant1/foo');
    await made.reached;
    kv.setUnavailable(true); // etcd goes away while the image is made
    await made.release();
    expectError(await created, 503, 'STATE_UNAVAILABLE');
    kv.setUnavailable(false);
    // The failed master could not revoke its lock's lease while etcd was away: it expires after its TTL.
    for (const id of kv.leaseIds()) kv.expireLease(id);
    // The image may be an orphan: the intent says so, and the janitor removes it.
    expect(storage.images.has('rbd/tenant1.foo')).toBe(true);
    expect(await app.volumes.reconcile()).toBe(1);
    expect(storage.images.size).toBe(0);
    expect(await app.volumes.intents.list()).toEqual([]);
    expect(await store.getVolume('tenant1', 'foo')).toBeNull();
  });

  it('cleans up after a master that died mid-create, on the next create', async () => {
    // What a dead master leaves: an intent and the image it made, no record, no lock.
    await app.volumes.intents.put({ tenant: 'tenant1', volume: 'foo', pool: 'rbd', image: 'tenant1.foo', owner: 'dead:1', since: new Date().toISOString() });
    await storage.createImage('rbd', 'tenant1.foo', { size: 99 * MiB });
    const res = await createVolume('tenant1/foo');
    expect(res.statusCode).toBe(201);
    expect(storage.images.get('rbd/tenant1.foo')!.size).toBe(10 * MiB);
    expect(await app.volumes.intents.list()).toEqual([]);
  });

  it('the janitor removes a dead create\'s image that has a snapshot in the trash namespace (no group snapshot)', async () => {
    // A restore into a new volume killed while it removed the snapshots its diffs made leaves this
    // (found by the chaos suite's master-mid-restore): librbd removes such an image with it.
    await app.volumes.intents.put({ tenant: 'tenant1', volume: 'foo', pool: 'rbd', image: 'tenant1.foo', owner: 'dead:1', since: new Date().toISOString() });
    await storage.createImage('rbd', 'tenant1.foo', { size: MiB });
    await storage.createSnapshot('rbd', 'tenant1.foo', 'vb-20261130T213816Z');
    storage.trashSnapshot('rbd', 'tenant1.foo', 'vb-20261130T213816Z');
    expect(await app.volumes.reconcile()).toBe(1);
    expect(storage.images.has('rbd/tenant1.foo')).toBe(false);
    expect(await app.volumes.intents.list()).toEqual([]);
  });

  it('the janitor drops an intent whose record was written, and skips volumes being worked on', async () => {
    expect((await createVolume('tenant1/foo')).statusCode).toBe(201);
    await app.volumes.intents.put({ tenant: 'tenant1', volume: 'foo', pool: 'rbd', image: 'tenant1.foo', owner: 'x', since: '' });
    await app.volumes.intents.put({ tenant: 'tenant1', volume: 'busy', pool: 'rbd', image: 'tenant1.busy', owner: 'x', since: '' });
    await storage.createImage('rbd', 'tenant1.busy', { size: MiB });
    let resolved = -1;
    await store.withOperationLock('tenant1', 'busy', { reason: 'test' }, async () => {
      resolved = await app.volumes.reconcile();
    });
    expect(resolved).toBe(1);
    expect(storage.images.has('rbd/tenant1.foo')).toBe(true); // a recorded volume's image is never touched
    expect(storage.images.has('rbd/tenant1.busy')).toBe(true);
    expect((await app.volumes.intents.list()).map((i) => i.volume)).toEqual(['busy']);
  });

  it('refuses an image volplugin did not make', async () => {
    await storage.createImage('rbd', 'tenant1.foo', { size: 10 * MiB });
    expectError(await createVolume('tenant1/foo'), 409, 'IMAGE_EXISTS', /not created by volplugin/);
    expect(storage.images.has('rbd/tenant1.foo')).toBe(true);
    expect(await store.listVolumes()).toEqual([]);
  });

  it('adopts the image of a force-removed volume when the size matches', async () => {
    expect((await createVolume('tenant1/foo')).statusCode).toBe(201);
    expect((await del('/v1/volumes/tenant1/foo?force=true')).statusCode).toBe(204);
    expectError(await createVolume('tenant1/foo', { size: '50' }), 409, 'IMAGE_EXISTS', /--opt size=10MB/, 'size');
    const adopted = await createVolume('tenant1/foo');
    expect(adopted.statusCode).toBe(201);
    expect(storage.calls.filter((c) => c.startsWith('createImage '))).toHaveLength(1);
  });
});

describe('volumes: get, list, remove, force-remove', () => {
  beforeEach(async () => {
    await uploadReadme();
    await uploadReadme('tenant2');
    for (const v of ['tenant1/a', 'tenant1/b', 'tenant2/c']) expect((await createVolume(v)).statusCode).toBe(201);
  });

  it('gets one volume', async () => {
    expect(body(await get('/v1/volumes/tenant1/a'))).toMatchObject({ tenant: 'tenant1', volume: 'a', image: 'tenant1.a' });
    expectError(await get('/v1/volumes/tenant1/zzz'), 404, 'VOLUME_NOT_FOUND', /tenant1\/zzz/);
    expectError(await get('/v1/volumes/tenant1/a..b'), 400, 'INVALID_NAME');
  });

  it('lists per tenant and all', async () => {
    const names = (res: LightMyRequestResponse) => (body(res).volumes as VolumeRecord[]).map((v) => `${v.tenant}/${v.volume}`);
    expect(names(await get('/v1/volumes/tenant1'))).toEqual(['tenant1/a', 'tenant1/b']);
    expect(names(await get('/v1/volumes'))).toEqual(['tenant1/a', 'tenant1/b', 'tenant2/c']);
    expectError(await get('/v1/volumes/nobody'), 404, 'TENANT_NOT_FOUND');
    expectError(await get('/v1/volumes/no.body'), 400, 'INVALID_NAME');
  });

  it('removes the image (snapshots too) and the record', async () => {
    await storage.createSnapshot('rbd', 'tenant1.a', 'vs-1');
    expect((await del('/v1/volumes/tenant1/a')).statusCode).toBe(204);
    expect(storage.images.has('rbd/tenant1.a')).toBe(false);
    expect(await store.getVolume('tenant1', 'a')).toBeNull();
    expectError(await del('/v1/volumes/tenant1/a'), 404, 'VOLUME_NOT_FOUND');
  });

  it('removes the record when the image is already gone', async () => {
    await storage.removeImage('rbd', 'tenant1.a');
    expect((await del('/v1/volumes/tenant1/a')).statusCode).toBe(204);
    expect(await store.getVolume('tenant1', 'a')).toBeNull();
  });

  it('refuses while mounted, naming the host', async () => {
    await mount('tenant1', 'a', 'node7');
    expectError(await del('/v1/volumes/tenant1/a'), 409, 'VOLUME_MOUNTED', /mounted on host node7.*volcli mount force-remove tenant1\/a/);
    expect(storage.images.has('rbd/tenant1.a')).toBe(true);
    expect(await store.getVolume('tenant1', 'a')).not.toBeNull();
  });

  it('refuses while a host reports it mounted', async () => {
    const lease = await kv.lease(30);
    await store.putHostReport(
      { hostId: 'h1', host: 'node9', pid: 1, version: '0', reportedAt: '', mounts: [{ tenant: 'tenant1', volume: 'a', device: '/dev/x', mountpoint: '/m', mapper: 'fuse', references: 1 }], problems: [] },
      lease,
    );
    expectError(await del('/v1/volumes/tenant1/a'), 409, 'VOLUME_MOUNTED', /node9/);
  });

  it('refuses while the image has watchers, naming the address', async () => {
    storage.addWatcher('rbd', 'tenant1.a', { address: '10.0.0.5:0/123', clientId: 4100, cookie: 1 });
    expectError(await del('/v1/volumes/tenant1/a'), 409, 'VOLUME_IN_USE', /open by 10\.0\.0\.5:0\/123/);
    expect(storage.images.has('rbd/tenant1.a')).toBe(true);
  });

  it('refuses while a snapshot has clones', async () => {
    await storage.createSnapshot('rbd', 'tenant1.a', 's1');
    await storage.protectSnapshot('rbd', 'tenant1.a', 's1');
    await storage.cloneSnapshot({ pool: 'rbd', image: 'tenant1.a', snapshot: 's1' }, 'rbd', 'other');
    expectError(await del('/v1/volumes/tenant1/a'), 409, 'VOLUME_HAS_CLONES', /rbd\/other/);
  });

  it('a refused remove changes nothing: every snapshot is still there (mounted, open, or a later snapshot with clones)', async () => {
    const snapshots = async (image: string) => (await storage.listSnapshots('rbd', image)).map((x) => x.name);
    for (const image of ['tenant1.a', 'tenant1.b']) {
      await storage.createSnapshot('rbd', image, 's0');
      await storage.createSnapshot('rbd', image, 's1');
    }
    await mount('tenant1', 'a', 'node7');
    expectError(await del('/v1/volumes/tenant1/a'), 409, 'VOLUME_MOUNTED');
    expect(await snapshots('tenant1.a')).toEqual(['s0', 's1']);
    storage.addWatcher('rbd', 'tenant1.b', { address: '10.0.0.5:0/123', clientId: 4100, cookie: 1 });
    expectError(await del('/v1/volumes/tenant1/b'), 409, 'VOLUME_IN_USE');
    expect(await snapshots('tenant1.b')).toEqual(['s0', 's1']);
    // s1 has a clone: s0 (listed first) must not be removed before the refusal.
    await storage.createSnapshot('rbd', 'tenant2.c', 's0');
    await storage.createSnapshot('rbd', 'tenant2.c', 's1');
    await storage.protectSnapshot('rbd', 'tenant2.c', 's1');
    await storage.cloneSnapshot({ pool: 'rbd', image: 'tenant2.c', snapshot: 's1' }, 'rbd', 'other');
    expectError(await del('/v1/volumes/tenant2/c'), 409, 'VOLUME_HAS_CLONES');
    expect(await snapshots('tenant2.c')).toEqual(['s0', 's1']);
    expect(await store.getExclusion('tenant1', 'a')).toBeNull();
  });

  it('force-remove deletes the records only', async () => {
    await mount('tenant1', 'a');
    expect((await del('/v1/volumes/tenant1/a?force=true')).statusCode).toBe(204);
    expect(await store.getVolume('tenant1', 'a')).toBeNull();
    expect(await store.getMount('tenant1', 'a')).toBeNull();
    expect(storage.images.has('rbd/tenant1.a')).toBe(true);
    expectError(await del('/v1/volumes/tenant1/a?force=true'), 404, 'VOLUME_NOT_FOUND');
    expectError(await del('/v1/volumes/tenant1/a?force=maybe'), 400, 'INVALID_REQUEST');
  });

  it('keep-image refuses while mounted, naming the host, and changes nothing', async () => {
    await mount('tenant1', 'a', 'node7');
    expectError(await del('/v1/volumes/tenant1/a?keep-image=true'), 409, 'VOLUME_MOUNTED', /mounted on host node7/);
    expect(await store.getVolume('tenant1', 'a')).not.toBeNull();
    expect(await store.getMount('tenant1', 'a')).not.toBeNull();
    expect(storage.images.has('rbd/tenant1.a')).toBe(true);
  });

  it('keep-image refuses while a host reports it mounted or a client has the image open', async () => {
    const lease = await kv.lease(30);
    await store.putHostReport(
      { hostId: 'h1', host: 'node9', pid: 1, version: '0', reportedAt: '', mounts: [{ tenant: 'tenant1', volume: 'a', device: '/dev/x', mountpoint: '/m', mapper: 'fuse', references: 1 }], problems: [] },
      lease,
    );
    expectError(await del('/v1/volumes/tenant1/a?keep-image=true'), 409, 'VOLUME_MOUNTED', /host node9/);
    storage.addWatcher('rbd', 'tenant1.b', { address: '10.0.0.5:0/123', clientId: 4100, cookie: 1 });
    expectError(await del('/v1/volumes/tenant1/b?keep-image=true'), 409, 'VOLUME_IN_USE', /open by 10\.0\.0\.5:0\/123/);
    expect(await store.getVolume('tenant1', 'a')).not.toBeNull();
    expect(await store.getVolume('tenant1', 'b')).not.toBeNull();
  });

  it('keep-image deletes only the record under the operation lock; a create adopts the image again', async () => {
    await storage.createSnapshot('rbd', 'tenant1.a', 'vs-1');
    const removes = () => storage.calls.filter((c) => c.startsWith('removeImage ') || c.startsWith('removeSnapshot ')).length;
    const before = removes();
    expect((await del('/v1/volumes/tenant1/a?keep-image=true')).statusCode).toBe(204);
    expect(await store.getVolume('tenant1', 'a')).toBeNull();
    expect(storage.images.has('rbd/tenant1.a')).toBe(true);
    expect(storage.images.get('rbd/tenant1.a')!.snapshots.includes('vs-1')).toBe(true);
    expect(storage.images.get('rbd/tenant1.a')!.metadata[IMAGE_OWNER_KEY]).toBe('tenant1/a');
    expect(removes()).toBe(before);
    expectError(await del('/v1/volumes/tenant1/a?keep-image=true'), 404, 'VOLUME_NOT_FOUND');
    const creates = storage.calls.filter((c) => c.startsWith('createImage ')).length;
    expect((await createVolume('tenant1/a')).statusCode).toBe(201);
    expect(storage.calls.filter((c) => c.startsWith('createImage ')).length).toBe(creates);
    expect(await store.getVolume('tenant1', 'a')).not.toBeNull();
  });

  it('keep-image waits for the operation lock', async () => {
    let release!: () => void;
    const held = store.withOperationLock('tenant1', 'a', { reason: 'test' }, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 20));
    const pending = del('/v1/volumes/tenant1/a?keep-image=true');
    await new Promise((r) => setTimeout(r, 100));
    expect(await store.getVolume('tenant1', 'a')).not.toBeNull();
    release();
    await held;
    expect((await pending).statusCode).toBe(204);
    expect(await store.getVolume('tenant1', 'a')).toBeNull();
  });

  it('refuses force and keep-image together', async () => {
    expectError(await del('/v1/volumes/tenant1/a?force=true&keep-image=true'), 400, 'INVALID_REQUEST', /not both/);
    expectError(await del('/v1/volumes/tenant1/a?keep-image=perhaps'), 400, 'INVALID_REQUEST');
    expect(await store.getVolume('tenant1', 'a')).not.toBeNull();
  });

  it('answers 503 while etcd or Ceph is down', async () => {
    storage.unreachable = true;
    expectError(await del('/v1/volumes/tenant1/a'), 503, 'STORAGE_UNAVAILABLE');
    storage.unreachable = false;
    kv.setUnavailable(true);
    expectError(await get('/v1/volumes'), 503, 'STATE_UNAVAILABLE');
    expectError(await get('/v1/volumes/tenant1/a'), 503, 'STATE_UNAVAILABLE');
    expectError(await del('/v1/volumes/tenant1/a'), 503, 'STATE_UNAVAILABLE');
    kv.setUnavailable(false);
    expect((await del('/v1/volumes/tenant1/a')).statusCode).toBe(204);
  });
});

describe('runtime options', () => {
  beforeEach(async () => {
    await uploadReadme();
    expect((await createVolume('tenant1/foo')).statusCode).toBe(201);
  });

  const patch = (url: string, payload: unknown) => app.inject({ method: 'PATCH', url, payload: payload as Json });

  it('gets and changes them without touching the rest', async () => {
    expect(body(await get('/v1/volumes/tenant1/foo/runtime'))).toEqual({
      snapshots: true,
      snapshot: { frequency: '30m', keep: 20 },
      rateLimit: { writeIops: 1000, readIops: 1000, writeBps: 100000000, readBps: 100000000 },
    });
    const res = await patch('/v1/volumes/tenant1/foo/runtime', { options: { 'snapshots.keep': '5', 'rate-limit.write.iops': 10, snapshots: 'f' } });
    expect(res.statusCode, res.body).toBe(200);
    expect(body(res)).toEqual({
      snapshots: false,
      snapshot: { frequency: '30m', keep: 5 },
      rateLimit: { writeIops: 10, readIops: 1000, writeBps: 100000000, readBps: 100000000 },
    });
    expect(storage.images.get('rbd/tenant1.foo')!.qos.writeIops).toBe(10);
    const record = await store.getVolume('tenant1', 'foo');
    expect(record!.runtime.snapshot.keep).toBe(5);
    expect(record!.options.snapshot.keep).toBe(20); // what it was created with stays
  });

  it('refuses options that need a new volume and bad values, changing nothing', async () => {
    const before = await store.getVolume('tenant1', 'foo');
    expectError(await patch('/v1/volumes/tenant1/foo/runtime', { options: { size: '20' } }), 400, 'INVALID_OPTION', /unknown runtime option "size"/, 'size');
    expectError(await patch('/v1/volumes/tenant1/foo/runtime', { options: { 'snapshots.keep': '0' } }), 400, 'INVALID_OPTION', /at least 1/);
    expectError(await patch('/v1/volumes/tenant1/foo/runtime', { options: { 'snapshots.frequency': '1x' } }), 400, 'INVALID_OPTION', /not a duration/);
    expectError(await patch('/v1/volumes/tenant1/foo/runtime', {}), 400, 'INVALID_REQUEST', /options/);
    expect(await store.getVolume('tenant1', 'foo')).toEqual(before);
  });

  it('404s for an unknown volume', async () => {
    expectError(await get('/v1/volumes/tenant1/nope/runtime'), 404, 'VOLUME_NOT_FOUND');
    expectError(await patch('/v1/volumes/tenant1/nope/runtime', { options: {} }), 404, 'VOLUME_NOT_FOUND');
  });
});

describe('mounts', () => {
  beforeEach(async () => {
    await uploadReadme();
    expect((await createVolume('tenant1/foo')).statusCode).toBe(201);
  });

  it('lists, gets and force-removes', async () => {
    expect(body(await get('/v1/mounts'))).toEqual({ mounts: [] });
    const record = await mount('tenant1', 'foo', 'node1');
    expect(body(await get('/v1/mounts'))).toEqual({ mounts: [record] });
    expect(body(await get('/v1/mounts/tenant1/foo'))).toEqual(record);
    const removed = await del('/v1/mounts/tenant1/foo');
    expect(removed.statusCode).toBe(200);
    expect(body(removed)).toEqual(record);
    expectError(await get('/v1/mounts/tenant1/foo'), 404, 'MOUNT_NOT_FOUND');
    expectError(await del('/v1/mounts/tenant1/foo'), 404, 'MOUNT_NOT_FOUND');
    expectError(await get('/v1/mounts/ten.ant/foo'), 400, 'INVALID_NAME');
  });

  it('answers 503 while etcd is down', async () => {
    kv.setUnavailable(true);
    expectError(await get('/v1/mounts'), 503, 'STATE_UNAVAILABLE');
  });
});

describe('hosts', () => {
  const report = (hostId: string, host: string) => ({
    hostId,
    host,
    pid: 42,
    version: '0.1.0',
    reportedAt: '2026-11-22T12:00:00.000Z',
    mounts: [{ tenant: 'tenant1', volume: 'foo', device: '/dev/rbd0', mountpoint: '/mnt/ceph/tenant1/foo', mapper: 'krbd' as const, references: 2 }],
    problems: ['mount of tenant1/bar: lock held by node2'],
  });

  it('lists and gets the host reports', async () => {
    expect(body(await get('/v1/hosts'))).toEqual({ hosts: [] });
    const lease = await kv.lease(30);
    await store.putHostReport(report('h1', 'node1'), lease);
    await store.putHostReport({ ...report('h2', 'node2'), mounts: [], problems: [] }, lease);
    const list = await get('/v1/hosts');
    expect(list.statusCode).toBe(200);
    expect(body(list)).toEqual({ hosts: [report('h1', 'node1'), { ...report('h2', 'node2'), mounts: [], problems: [] }] });
    expect(body(await get('/v1/hosts/h1'))).toEqual(report('h1', 'node1'));
    expectError(await get('/v1/hosts/h9'), 404, 'HOST_NOT_FOUND', /h9/, 'hostId');
    await lease.revoke();
    expect(body(await get('/v1/hosts'))).toEqual({ hosts: [] });
  });

  it('answers 503 while etcd is down', async () => {
    kv.setUnavailable(true);
    expectError(await get('/v1/hosts'), 503, 'STATE_UNAVAILABLE');
    expectError(await get('/v1/hosts/h1'), 503, 'STATE_UNAVAILABLE');
  });
});

describe('snapshots', () => {
  beforeEach(async () => {
    await uploadReadme();
    await uploadReadme('tenant2');
    expect((await createVolume('tenant1/foo')).statusCode).toBe(201);
  });
  const post = (url: string, payload?: unknown) => app.inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as Json }) });

  it('takes, lists, rolls back, copies and removes', async () => {
    const taken = await post('/v1/volumes/tenant1/foo/snapshots', { name: 'before-upgrade' });
    expect(taken.statusCode, taken.body).toBe(201);
    expect(body(taken)).toMatchObject({ name: 'before-upgrade', origin: 'other', protected: false, clones: [] });
    const auto = await post('/v1/volumes/tenant1/foo/snapshots');
    expect(auto.statusCode, auto.body).toBe(201);
    expect(body(auto).name).toMatch(/^manual-/);
    expectError(await post('/v1/volumes/tenant1/foo/snapshots', { name: 'before-upgrade' }), 409, 'SNAPSHOT_EXISTS');

    const list = body(await get('/v1/volumes/tenant1/foo/snapshots')).snapshots as Json[];
    expect(list.map((s) => s.name)).toContain('before-upgrade');

    expect((await post('/v1/volumes/tenant1/foo/snapshots/before-upgrade/rollback')).statusCode).toBe(204);

    // A copy whose flatten fails stays a clone: its snapshot cannot go.
    storage.failNext('flattenImage', 'EIO');
    const copy = await post('/v1/volumes/tenant1/foo/snapshots/before-upgrade/copy', { tenant: 'tenant2', volume: 'bar' });
    expect(copy.statusCode, copy.body).toBe(201);
    expect(body(copy)).toMatchObject({ tenant: 'tenant2', volume: 'bar', image: 'tenant2.bar', source: { tenant: 'tenant1', volume: 'foo', snapshot: 'before-upgrade' } });
    const failed = await operationEnd(String(copy.headers.location));
    expect(failed).toMatchObject({ kind: 'copy', state: 'failed', error: { code: 'STORAGE_ERROR' }, target: { tenant: 'tenant2', volume: 'bar' } });
    expect(storage.images.get('rbd/tenant2.bar')!.parent).toEqual({ pool: 'rbd', image: 'tenant1.foo', snapshot: 'before-upgrade' });
    expect(await app.volumes.intents.list()).toEqual([]);
    expectError(await del('/v1/volumes/tenant1/foo/snapshots/before-upgrade'), 409, 'VOLUME_HAS_CLONES');
    expectError(await post('/v1/volumes/tenant1/foo/snapshots/before-upgrade/copy', { tenant: 'tenant2', volume: 'bar' }), 409, 'VOLUME_EXISTS');

    // A copy that flattens: usable at once, independent of its snapshot once its operation is done.
    const flat = await post('/v1/volumes/tenant1/foo/snapshots/before-upgrade/copy?wait=false', { tenant: 'tenant2', volume: 'flat' });
    expect(flat.statusCode, flat.body).toBe(202);
    expect(body(flat)).toMatchObject({ kind: 'copy', state: 'running', target: { tenant: 'tenant2', volume: 'flat' }, by: 'anonymous' });
    const done = await operationEnd(`/v1/operations/${String(body(flat).id)}`);
    expect(done).toMatchObject({ state: 'done', result: { flatten: 'flattened' }, message: expect.stringMatching(/tenant2\/flat is a copy of tenant1\/foo@before-upgrade, flattened/) });
    expect(storage.images.get('rbd/tenant2.flat')!.parent).toBeNull();

    expect((await del(`/v1/volumes/tenant1/foo/snapshots/${String(body(auto).name)}`)).statusCode).toBe(204);
  });

  it('answers every error with its code', async () => {
    expectError(await get('/v1/volumes/tenant1/nope/snapshots'), 404, 'VOLUME_NOT_FOUND');
    expectError(await del('/v1/volumes/tenant1/foo/snapshots/nothing'), 404, 'SNAPSHOT_NOT_FOUND');
    expectError(await post('/v1/volumes/tenant1/foo/snapshots/nothing/rollback'), 404, 'SNAPSHOT_NOT_FOUND');
    expectError(await post('/v1/volumes/tenant1/foo/snapshots', { name: 'vs-1' }), 400, 'INVALID_NAME', /volsupervisor/);
    expectError(await post('/v1/volumes/tenant1/foo/snapshots', { nom: 'x' }), 400, 'INVALID_REQUEST');
    await post('/v1/volumes/tenant1/foo/snapshots', { name: 's1' });
    expectError(await post('/v1/volumes/tenant1/foo/snapshots/s1/copy', { tenant: 'tenant2' }), 400, 'INVALID_REQUEST');
    expectError(await post('/v1/volumes/tenant1/foo/snapshots/s1/copy', { tenant: 'ten.ant', volume: 'x' }), 400, 'INVALID_NAME');
    expectError(await post('/v1/volumes/tenant1/foo/snapshots/s1/copy', { tenant: 'tenant2', volume: 'x', options: { size: '1' } }), 400, 'INVALID_OPTION');
    expectError(await post('/v1/volumes/tenant1/foo/snapshots/s1/copy', { tenant: 'tenant2', volume: 'x', options: { bogus: '1' } }), 400, 'INVALID_OPTION');
    expectError(await post('/v1/volumes/tenant1/foo/snapshots/s1/copy', { tenant: 'nobody', volume: 'x' }), 404, 'TENANT_NOT_FOUND');
    await mount('tenant1', 'foo');
    expectError(await post('/v1/volumes/tenant1/foo/snapshots/s1/rollback'), 409, 'VOLUME_MOUNTED');
  });
});
