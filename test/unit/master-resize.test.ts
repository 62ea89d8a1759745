// Resizes, long operations and the audit trail through volmaster's API (inject) on the etcd and
// Ceph twins, with a host inbox standing in for the volplugin that holds a volume: what a resize
// changes (record, usage, image, the holder's filesystem), what it refuses without changing
// anything, what a host that does not answer or fails means, progress of removes and resizes, and
// who the trail records for what.
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { createApp, type App } from '../../src/master/app.js';
import { summarizeBody } from '../../src/master/audit.js';
import { HostRequestInbox } from '../../src/plugin/cluster/requests.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import type { HostRequest } from '../../src/state/records.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { issuePolicy, mountRecord } from '../helpers/fixtures.js';

const MiB = 1024 * 1024;
const ADMIN = 'admin-token';
type Json = Record<string, unknown>;

let kv: MemoryKV;
let store: StateStore;
let storage: MemoryStorage;
let app: App;
let inbox: HostRequestInbox | null = null;

async function makeApp(): Promise<App> {
  const a = await createApp({ store, storage, token: ADMIN, janitorIntervalMs: 0, lockTtlSeconds: 2, lockWaitMs: 5_000, cephTimeoutMs: 1_000, resizeHostTimeoutMs: 1_500 });
  await a.ready();
  return a;
}

beforeEach(async () => {
  kv = new MemoryKV();
  store = new StateStore(kv, { owner: 'volmaster@test:1' });
  storage = memoryStorage();
  app = await makeApp();
  const policy = { ...issuePolicy, limits: { size: '200MB', 'total-size': '300MB' } };
  expect((await call('PUT', '/v1/tenants/t1', policy)).statusCode).toBe(201);
  expect((await call('PUT', '/v1/volumes/t1/data', { options: { size: '100MB' } })).statusCode).toBe(201);
});

afterEach(async () => {
  await inbox?.stop();
  inbox = null;
  await app.close();
});

function call(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: unknown, token = ADMIN) {
  return app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload === undefined ? {} : { payload: payload as Json }) });
}
const body = (res: LightMyRequestResponse) => res.json() as Json;
const resize = (size: unknown, query = '', volume = 'data') => call('POST', `/v1/volumes/t1/${volume}/resize${query}`, { size });

function expectError(res: LightMyRequestResponse, status: number, code: string, field?: string, message?: RegExp) {
  expect(res.statusCode, res.body).toBe(status);
  expect(body(res).code).toBe(code);
  if (field !== undefined) expect(body(res).field).toBe(field);
  if (message) expect(String(body(res).message)).toMatch(message);
}

/** Polls an operation until it is no longer running. */
async function operationEnd(id: string): Promise<Json> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    const res = await call('GET', `/v1/operations/${id}`);
    expect(res.statusCode, res.body).toBe(200);
    if (body(res).state !== 'running') return body(res);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`operation ${id} still running`);
}

/** What a resize must not have touched. */
async function unchanged(sizeBytes = 100 * MiB): Promise<void> {
  expect((await store.getVolume('t1', 'data'))?.options.sizeBytes).toBe(sizeBytes);
  expect(storage.images.get('rbd/t1.data')?.size).toBe(sizeBytes);
  expect((await store.getUsage('t1')).bytes).toBe(sizeBytes);
  expect(await store.listResizes()).toEqual([]);
  expect(await store.listOperations()).toEqual([]);
}

/** The volume mounted on host-a, whose volplugin answers resize-fs with `handler` (none: it does not answer). */
async function mountedOnHostA(handler?: (request: HostRequest) => Promise<Record<string, unknown>>): Promise<HostRequest[]> {
  const lease = await kv.lease(30);
  const taken = await store.acquireMount(mountRecord('t1', 'data', { host: 'host-a', lease: lease.id }), lease);
  expect(taken.ok).toBe(true);
  const seen: HostRequest[] = [];
  if (handler) {
    inbox = new HostRequestInbox({ store: new StateStore(kv.client(), { owner: 'volplugin@host-a' }), hostId: 'host-a-id', log: pino({ level: 'silent' }), pollMs: 50 });
    inbox.handle('resize-fs', async (request) => {
      seen.push(request);
      return handler(request);
    });
    await inbox.start();
  }
  return seen;
}

describe('resize', () => {
  it('grows the record, the usage and the image of a volume nobody has mounted; the filesystem grows at its next mount', async () => {
    const res = await resize('150MB');
    expect(res.statusCode, res.body).toBe(200);
    expect(body(res)).toMatchObject({
      kind: 'resize',
      tenant: 't1',
      volume: 'data',
      state: 'done',
      by: 'bootstrap',
      result: { sizeBytes: 150 * MiB, previousBytes: 100 * MiB, filesystem: 'not-mounted' },
      message: expect.stringMatching(/t1\/data is 150MB; it is not mounted/),
    });
    expect((await store.getVolume('t1', 'data'))?.options.sizeBytes).toBe(150 * MiB);
    expect(storage.images.get('rbd/t1.data')?.size).toBe(150 * MiB);
    expect((await store.getUsage('t1')).bytes).toBe(150 * MiB);
    expect(await store.listResizes()).toEqual([]);
    // The same size again is fine (it finishes an earlier resize), and the old size still finds the volume on create.
    expect((await resize('150MB')).statusCode).toBe(200);
    expect((await call('PUT', '/v1/volumes/t1/data', { options: { size: '100MB' } })).statusCode).toBe(200);
  });

  it('refuses, changing nothing: a smaller size, an unknown unit, a missing volume, beyond limits.size and limits.total-size', async () => {
    expectError(await resize('50MB'), 422, 'SHRINK_REFUSED', 'size', /50MB is smaller than t1\/data's 100MB; volumes only grow .*give at least 100MB/);
    expectError(await resize('100 parsecs'), 400, 'INVALID_OPTION', 'size', /unknown size unit "parsecs"/);
    expectError(await resize('lots'), 400, 'INVALID_OPTION', 'size', /not a size/);
    expectError(await resize(150), 400, 'INVALID_REQUEST');
    expectError(await call('POST', '/v1/volumes/t1/data/resize', {}), 400, 'INVALID_REQUEST');
    expectError(await resize('150MB', '', 'nothing'), 404, 'VOLUME_NOT_FOUND', 'volume');
    expectError(await resize('250MB'), 422, 'LIMIT_EXCEEDED', 'size', /limits\.size/);
    expect((await call('PUT', '/v1/volumes/t1/more', { options: { size: '150MB' } })).statusCode).toBe(201);
    expectError(await resize('200MB'), 409, 'QUOTA_EXCEEDED', 'limits.total-size', /uses 250MB of its 300MB/);
    expect((await store.getUsage('t1')).bytes).toBe(250 * MiB);
    expect((await call('DELETE', '/v1/volumes/t1/more')).statusCode).toBe(204);
    await store.pruneOperations({ maxCount: 0, maxAgeMs: 0 }); // the remove's operation
    await unchanged();
  });

  it('the host holding the volume grows its filesystem, and the operation says so', async () => {
    const seen = await mountedOnHostA(async () => ({ filesystem: 'xfs', deviceBytes: 150 * MiB, filesystemBytes: 149 * MiB }));
    const res = await resize('150MB');
    expect(res.statusCode, res.body).toBe(200);
    expect(body(res)).toMatchObject({ state: 'done', result: { filesystem: 'grown', host: 'host-a', hostResult: { filesystem: 'xfs', filesystemBytes: 149 * MiB } } });
    expect(seen.map((r) => [r.kind, r.tenant, r.volume, r.params.sizeBytes])).toEqual([['resize-fs', 't1', 'data', 150 * MiB]]);
  });

  it('a holder that does not answer (down, mid-takeover) leaves the filesystem pending: record and image are grown', async () => {
    await mountedOnHostA();
    const res = await resize('150MB');
    expect(res.statusCode, res.body).toBe(200);
    expect(body(res)).toMatchObject({ state: 'done', result: { filesystem: 'pending', host: 'host-a', detail: expect.stringMatching(/did not answer within 2 s .*the next mount grows the filesystem/) } });
    expect((await store.getVolume('t1', 'data'))?.options.sizeBytes).toBe(150 * MiB);
    expect(storage.images.get('rbd/t1.data')?.size).toBe(150 * MiB);
  });

  it('a holder that cannot grow its filesystem fails the operation, naming why; the record and image stay grown', async () => {
    await mountedOnHostA(async () => {
      throw Object.assign(new Error('resize2fs: Permission denied to resize filesystem'), { code: 'GROW_FAILED' });
    });
    const res = await resize('150MB', '?wait=false');
    expect(res.statusCode, res.body).toBe(202);
    expect(res.headers.location).toBe(`/v1/operations/${String(body(res).id)}`);
    const end = await operationEnd(String(body(res).id));
    expect(end).toMatchObject({ state: 'failed', error: { code: 'FILESYSTEM_NOT_GROWN', message: expect.stringMatching(/could not grow its filesystem: resize2fs: Permission denied.*next mounted/) } });
    expect((await store.getVolume('t1', 'data'))?.options.sizeBytes).toBe(150 * MiB);
  });

  it('a holder that cannot grow it while mounted (GROW_DEFERRED: ext without CAP_SYS_RESOURCE) leaves it pending for the next mount', async () => {
    await mountedOnHostA(async () => {
      throw Object.assign(new Error('growing a mounted ext4 filesystem needs the CAP_SYS_RESOURCE capability'), { code: 'GROW_DEFERRED' });
    });
    const res = await resize('150MB');
    expect(res.statusCode, res.body).toBe(200);
    expect(body(res)).toMatchObject({ state: 'done', result: { filesystem: 'pending', host: 'host-a', detail: expect.stringMatching(/CAP_SYS_RESOURCE.*the next host to mount it does/) } });
  });

  it('an image Ceph refuses to grow puts the record back; one Ceph does not answer for is grown later by the janitor', async () => {
    storage.failNext('resizeImage', 'EPERM');
    expectError(await resize('150MB'), 500, 'STORAGE_ERROR');
    expect(await store.listOperations()).toEqual([expect.objectContaining({ state: 'failed', error: expect.objectContaining({ code: 'STORAGE_ERROR' }) })]);
    await store.pruneOperations({ maxCount: 0, maxAgeMs: 0 });
    await unchanged();

    storage.failNext('resizeImage', 'ETIMEDOUT');
    expectError(await resize('150MB'), 503, 'STORAGE_UNAVAILABLE');
    expect((await store.getVolume('t1', 'data'))?.options.sizeBytes).toBe(150 * MiB);
    expect(storage.images.get('rbd/t1.data')?.size).toBe(100 * MiB);
    expect(await store.listResizes()).toMatchObject([{ tenant: 't1', volume: 'data', fromBytes: 100 * MiB, toBytes: 150 * MiB }]);
    expect(await app.resizer.reconcile()).toBe(1);
    expect(storage.images.get('rbd/t1.data')?.size).toBe(150 * MiB);
    expect(await store.listResizes()).toEqual([]);
  });
});

describe('operations', () => {
  it('a remove with ?wait=false answers 202 with its operation, which ends done; the progress named its steps', async () => {
    await storage.createSnapshot('rbd', 't1.data', 'old');
    const res = await call('DELETE', '/v1/volumes/t1/data?wait=false');
    expect(res.statusCode, res.body).toBe(202);
    expect(body(res)).toMatchObject({ kind: 'remove', state: 'running', tenant: 't1', volume: 'data' });
    const end = await operationEnd(String(body(res).id));
    expect(end).toMatchObject({ state: 'done', message: 'removed t1/data and its image rbd/t1.data', result: { pool: 'rbd', image: 't1.data' } });
    expect(end.done).toBe(end.total);
    expect(storage.images.has('rbd/t1.data')).toBe(false);
    const listed = body(await call('GET', '/v1/operations')).operations as Json[];
    expect(listed.map((o) => o.id)).toEqual([end.id]);
  });

  it('an unknown or malformed operation id is 404 OPERATION_NOT_FOUND', async () => {
    expectError(await call('GET', '/v1/operations/20261130T174823123Z-9f3a1c2b'), 404, 'OPERATION_NOT_FOUND', 'id');
    expectError(await call('GET', '/v1/operations/..%2Fvolumes'), 404, 'OPERATION_NOT_FOUND', 'id');
  });
});

describe('roles', () => {
  it('read-only may follow operations but not resize or read the audit; a host token may not resize', async () => {
    const tokens: Record<string, string> = {};
    for (const role of ['read-only', 'host']) {
      const res = await call('POST', '/v1/tokens', { name: `a-${role}`, role });
      tokens[role] = String(body(res).token);
    }
    const op = body(await resize('120MB'));
    expect((await call('GET', `/v1/operations/${String(op.id)}`, undefined, tokens['read-only'])).statusCode).toBe(200);
    expect((await call('GET', '/v1/operations', undefined, tokens['read-only'])).statusCode).toBe(200);
    expectError(await call('GET', '/v1/audit', undefined, tokens['read-only']), 403, 'FORBIDDEN');
    expectError(await call('POST', '/v1/volumes/t1/data/resize', { size: '130MB' }, tokens['read-only']), 403, 'FORBIDDEN');
    expectError(await call('POST', '/v1/volumes/t1/data/resize', { size: '130MB' }, tokens.host), 403, 'FORBIDDEN');
    expect((await store.getVolume('t1', 'data'))?.options.sizeBytes).toBe(120 * MiB);
  });
});

describe('audit trail', () => {
  const entries = async (query = '') => body(await call('GET', `/v1/audit${query}`)).entries as Json[];

  it('records every change with who, what and how it ended; no reads; a create that changed nothing is dropped', async () => {
    const res = await call('POST', '/v1/tokens', { name: 'ops', role: 'read-only' });
    const token = String(body(res).token);
    await call('GET', '/v1/volumes');
    expect((await call('PUT', '/v1/volumes/t1/data', {})).statusCode).toBe(200); // exists: no change
    const op = body(await resize('120MB'));
    await call('POST', '/v1/volumes/t1/data/resize', { size: '130MB' }, token); // 403
    expectError(await resize('10MB'), 422, 'SHRINK_REFUSED');
    const trail = await entries();
    expect(trail.map((e) => `${String(e.method)} ${String(e.route)} ${String(e.status)} ${String(e.outcome)} ${(e.who as Json).name as string}`)).toEqual([
      'PUT /v1/tenants/:tenant 201 ok bootstrap',
      'PUT /v1/volumes/:tenant/:volume 201 ok bootstrap',
      'POST /v1/tokens 201 ok bootstrap',
      'POST /v1/volumes/:tenant/:volume/resize 200 ok bootstrap',
      'POST /v1/volumes/:tenant/:volume/resize 403 refused ops',
      'POST /v1/volumes/:tenant/:volume/resize 422 refused bootstrap',
    ]);
    expect(trail[3]).toMatchObject({ tenant: 't1', volume: 'data', body: { size: '120MB' }, operation: op.id, master: 'volmaster@test:1', who: { role: 'admin', via: 'bootstrap' } });
    expect(trail[4]).toMatchObject({ code: 'FORBIDDEN', who: { name: 'ops', role: 'read-only', via: 'token' } });
    expect(trail[5]).toMatchObject({ code: 'SHRINK_REFUSED', message: expect.stringMatching(/volumes only grow/) });
    // The token itself is never recorded (only the request; never the answer).
    expect(JSON.stringify(trail)).not.toContain(token);
    expect((await entries('?tenant=t1&limit=2')).map((e) => e.status)).toEqual([403, 422]);
    expect(await entries(`?after=${String(trail[4]!.id)}`)).toHaveLength(1);
    expect(await entries(`?since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([]);
    expectError(await call('GET', '/v1/audit?since=yesterday'), 400, 'INVALID_REQUEST');
  });

  it('an entry is pending while its request runs, and etcd down refuses a change rather than running it unrecorded', async () => {
    const hang = storage.hang('resizeImage');
    const pending = resize('150MB');
    await hang.reached;
    expect((await store.listAudit()).at(-1)).toMatchObject({ route: '/v1/volumes/:tenant/:volume/resize', outcome: 'pending' });
    await hang.release();
    expect((await pending).statusCode).toBe(200);
    expect((await store.listAudit()).at(-1)).toMatchObject({ outcome: 'ok', status: 200 });

    kv.setUnavailable(true);
    expectError(await resize('160MB'), 503, 'STATE_UNAVAILABLE');
    kv.setUnavailable(false);
    expect((await store.getVolume('t1', 'data'))?.options.sizeBytes).toBe(150 * MiB);
  });

  it('keeps secrets out of body summaries and cuts long values', () => {
    expect(summarizeBody({ name: 'n', token: 'vpt_x', nested: { password: 'p', keep: 3 }, long: 'x'.repeat(300) })).toEqual({
      name: 'n',
      token: '[redacted]',
      nested: { password: '[redacted]', keep: 3 },
      long: `${'x'.repeat(200)}… (300 chars)`,
    });
  });
});
