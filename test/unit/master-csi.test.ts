// What the master gives the CSI controller, through inject() on MemoryKV and the memory Storage
// twin: the provisioner role, attachments (one host per volume, takeover only from a host whose
// volplugin is gone, refused while another host holds the mount lock), request names (a CO's
// CreateVolume/CreateSnapshot name finds its target again and is never used for two); growing a
// volume is the API's resize (test/unit/master-resize.test.ts). The CSI lifecycle against real processes:
// test/integration/csi-lifecycle.test.ts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { createApp, type App } from '../../src/master/app.js';
import { MemoryKV } from '../../src/state/memory.js';
import type { Lease } from '../../src/state/kv.js';
import { StateStore } from '../../src/state/store.js';
import { memoryStorage, type MemoryStorage } from '../../src/storage/memory.js';
import { mountRecord } from '../helpers/fixtures.js';

const MiB = 1024 * 1024;
const ADMIN = 'bootstrap-admin-token';

let kv: MemoryKV;
let store: StateStore;
let storage: MemoryStorage;
let app: App;

type Json = Record<string, unknown>;

beforeEach(async () => {
  kv = new MemoryKV();
  store = new StateStore(kv, { owner: 'test-master:1' });
  storage = memoryStorage();
  await storage.createPool('rbd');
  app = await createApp({ store, storage, token: ADMIN, janitorIntervalMs: 0, lockTtlSeconds: 2, lockWaitMs: 2_000, cephTimeoutMs: 1_000 });
  await app.ready();
  const policy = {
    'default-options': { pool: 'rbd', size: '10MB', snapshots: false, filesystem: 'ext4' },
    limits: { size: '64MB', 'total-size': '100MB' },
  };
  expect((await call('PUT', '/v1/tenants/t1', ADMIN, policy)).statusCode).toBe(201);
  expect((await call('PUT', '/v1/tenants/t2', ADMIN, policy)).statusCode).toBe(201);
});

afterEach(async () => {
  await app.close();
});

function call(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, token: string | null = ADMIN, payload?: unknown) {
  return app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(payload === undefined ? {} : { payload: payload as Json }) });
}

function expectError(res: LightMyRequestResponse, status: number, code: string, message?: RegExp) {
  expect(res.statusCode, res.body).toBe(status);
  expect((res.json() as Json).code, res.body).toBe(code);
  if (message) expect((res.json() as Json).message).toMatch(message);
}

async function token(name: string, role: string): Promise<string> {
  const res = await call('POST', '/v1/tokens', ADMIN, { name, role });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { token: string }).token;
}

/** A live volplugin for host `id`: its host-alive record, bound to a lease that ends when the host does. */
async function liveHost(id: string): Promise<Lease> {
  const lease = await kv.lease(30);
  const claim = await store.claimHostAlive({ hostId: id, host: `label-${id}`, bootId: 'b', pid: 1, hostname: 'h', since: new Date().toISOString() }, lease);
  expect(claim).toMatchObject({ ok: true });
  return lease;
}

async function create(tenant: string, volume: string, body: Json = {}) {
  return call('PUT', `/v1/volumes/${tenant}/${volume}`, ADMIN, body);
}

describe('the provisioner role', () => {
  it('may delete volumes with their data, take, copy and remove snapshots and grow volumes; nothing of an admin beyond that', async () => {
    const p = await token('csi', 'provisioner');
    expect((await call('PUT', '/v1/volumes/t1/a', p, {})).statusCode).toBe(201);
    const snap = await call('POST', '/v1/volumes/t1/a/snapshots', p, { name: 's1' });
    expect(snap.statusCode, snap.body).toBe(201);
    expect((await call('POST', '/v1/volumes/t1/a/snapshots/s1/copy', p, { tenant: 't1', volume: 'b' })).statusCode).toBe(201);
    const resized = await call('POST', '/v1/volumes/t1/a/resize', p, { size: '20MB' });
    expect(resized.statusCode, resized.body).toBe(200);
    expect(resized.json()).toMatchObject({ kind: 'resize', state: 'done', result: { sizeBytes: 20 * MiB, filesystem: 'not-mounted' } });
    expect((await storage.imageInfo('rbd', 't1.a')).size).toBe(20 * MiB);
    expect((await call('DELETE', '/v1/volumes/t1/b', p)).statusCode).toBe(204);
    expect((await call('DELETE', '/v1/volumes/t1/a/snapshots/s1', p)).statusCode).toBe(204);
    expect((await call('DELETE', '/v1/volumes/t1/a', p)).statusCode).toBe(204);
    expect(await storage.listImages('rbd')).toEqual([]);

    expectError(await call('PUT', '/v1/tenants/t3', p, { 'default-options': { pool: 'rbd' } }), 403, 'FORBIDDEN');
    expectError(await call('POST', '/v1/tokens', p, { name: 'x', role: 'admin' }), 403, 'FORBIDDEN');
    expect((await call('PUT', '/v1/volumes/t1/c', p, {})).statusCode).toBe(201);
    expectError(await call('DELETE', '/v1/volumes/t1/c?force=true', p), 403, 'FORBIDDEN');
    expectError(await call('POST', '/v1/volumes/t1/c/snapshots/s/rollback', p), 403, 'FORBIDDEN');
  });

  it('a host token may neither snapshot, attach nor grow', async () => {
    const h = await token('node1', 'host');
    expect((await call('PUT', '/v1/volumes/t1/a', h, {})).statusCode).toBe(201);
    expectError(await call('POST', '/v1/volumes/t1/a/snapshots', h, {}), 403, 'FORBIDDEN');
    expectError(await call('PUT', '/v1/volumes/t1/a/attachment', h, { hostId: 'x' }), 403, 'FORBIDDEN');
    expectError(await call('POST', '/v1/volumes/t1/a/resize', h, { size: '20MB' }), 403, 'FORBIDDEN');
    expect((await call('GET', '/v1/attachments', h)).statusCode).toBe(200);
  });
});

describe('attachments', () => {
  it('one host per volume: idempotent for the same host, refused for another live host, and a readonly change is a conflict', async () => {
    await liveHost('h1');
    await liveHost('h2');
    await create('t1', 'v');
    const first = await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h1' });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({ tenant: 't1', volume: 'v', hostId: 'h1', host: 'label-h1', readonly: false, by: 'bootstrap' });
    expect((await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h1' })).statusCode).toBe(200);
    expectError(await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h1', readonly: true }), 409, 'ATTACHMENT_DIFFERS');
    expectError(await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h2' }), 409, 'VOLUME_ATTACHED', /label-h1 \(host id h1\)/);
    expect((await call('GET', '/v1/volumes/t1/v/attachment')).json()).toMatchObject({ hostId: 'h1' });
    // Detaching from another host changes nothing; from h1 frees it.
    expect((await call('DELETE', '/v1/volumes/t1/v/attachment?host-id=h2')).statusCode).toBe(204);
    expect((await call('GET', '/v1/volumes/t1/v/attachment')).json()).toMatchObject({ hostId: 'h1' });
    expect((await call('DELETE', '/v1/volumes/t1/v/attachment?host-id=h1')).statusCode).toBe(204);
    expectError(await call('GET', '/v1/volumes/t1/v/attachment'), 404, 'ATTACHMENT_NOT_FOUND');
    expect((await call('DELETE', '/v1/volumes/t1/v/attachment')).statusCode).toBe(204);
    expect((await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h2' })).statusCode).toBe(201);
  });

  it('needs the volume and a live volplugin on the host', async () => {
    await liveHost('h1');
    expectError(await call('PUT', '/v1/volumes/t1/nope/attachment', ADMIN, { hostId: 'h1' }), 404, 'VOLUME_NOT_FOUND');
    await create('t1', 'v');
    expectError(await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'ghost' }), 404, 'HOST_NOT_FOUND');
    expect(await store.listAttachments()).toEqual([]);
  });

  it('is taken over from a host whose volplugin is gone (its lease expired), never from a live one', async () => {
    const h1 = await liveHost('h1');
    await liveHost('h2');
    await create('t1', 'v');
    expect((await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h1' })).statusCode).toBe(201);
    expectError(await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h2' }), 409, 'VOLUME_ATTACHED');
    kv.expireLease(h1.id);
    const taken = await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h2' });
    expect(taken.statusCode, taken.body).toBe(201);
    expect(taken.json()).toMatchObject({ hostId: 'h2', takenFrom: 'h1' });
  });

  it('is refused while another host holds the mount lock, and a detach while the attached host does', async () => {
    await liveHost('h1');
    await liveHost('h2');
    await create('t1', 'v');
    const lease = await kv.lease(30);
    expect(await store.acquireMount(mountRecord('t1', 'v', { host: 'docker1', hostId: 'd1', lease: lease.id }), lease)).toMatchObject({ ok: true });
    expectError(await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h1' }), 409, 'VOLUME_MOUNTED', /docker1/);
    await store.releaseMount('t1', 'v', { hostId: 'd1', lease: lease.id });
    expect((await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h1' })).statusCode).toBe(201);
    const l1 = await kv.lease(30);
    expect(await store.acquireMount(mountRecord('t1', 'v', { host: 'label-h1', hostId: 'h1', lease: l1.id }), l1)).toMatchObject({ ok: true });
    expectError(await call('DELETE', '/v1/volumes/t1/v/attachment'), 409, 'VOLUME_MOUNTED', /unstage it there first/);
    expect(await store.getAttachment('t1', 'v')).toMatchObject({ hostId: 'h1' });
    await store.releaseMount('t1', 'v', { hostId: 'h1', lease: l1.id });
    expect((await call('DELETE', '/v1/volumes/t1/v/attachment')).statusCode).toBe(204);
  });

  it('an attachment left by a removed volume binds no new volume of the same name', async () => {
    await liveHost('h1');
    await liveHost('h2');
    await create('t1', 'v');
    expect((await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h1' })).statusCode).toBe(201);
    expect((await call('DELETE', '/v1/volumes/t1/v')).statusCode).toBe(204);
    await new Promise((r) => setTimeout(r, 5)); // a new createdAt
    await create('t1', 'v');
    expectError(await call('GET', '/v1/volumes/t1/v/attachment'), 404, 'ATTACHMENT_NOT_FOUND');
    expect((await call('PUT', '/v1/volumes/t1/v/attachment', ADMIN, { hostId: 'h2' })).statusCode).toBe(201);
  });
});

describe('request names', () => {
  it('a create with a request name is idempotent, records the name, and the name is refused for a volume of another tenant', async () => {
    const first = await create('t1', 'pvc-1', { requestName: 'pvc-1', options: { size: '20MB' } });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({ requestName: 'pvc-1' });
    expect((await create('t1', 'pvc-1', { requestName: 'pvc-1', options: { size: '20MB' } })).statusCode).toBe(200);
    expectError(await create('t2', 'pvc-1', { requestName: 'pvc-1' }), 409, 'NAME_TAKEN', /volume t1\/pvc-1/);
    expect(await store.getVolume('t2', 'pvc-1')).toBeNull();
    expect(await storage.listImages('rbd')).toEqual(['t1.pvc-1']);
    // A volume made without (or for another) name is not this request's.
    await create('t1', 'plain');
    expectError(await create('t1', 'plain', { requestName: 'plain' }), 409, 'VOLUME_EXISTS', /not created for request name "plain"/);
  });

  it('a refused create frees its name; removing the volume frees it too', async () => {
    expectError(await create('t1', 'big', { requestName: 'n', options: { size: '1GB' } }), 422, 'LIMIT_EXCEEDED');
    expect(await store.getRequestName('volume', 'n')).toBeNull();
    expect((await create('t1', 'v', { requestName: 'n' })).statusCode).toBe(201);
    expect(await store.getRequestName('volume', 'n')).toMatchObject({ tenant: 't1', volume: 'v' });
    expect((await call('DELETE', '/v1/volumes/t1/v')).statusCode).toBe(204);
    expect(await store.getRequestName('volume', 'n')).toBeNull();
    expect((await create('t2', 'v', { requestName: 'n' })).statusCode).toBe(201);
  });

  it('a name whose volume never appeared (a master died) does not hold it', async () => {
    await store.claimRequestName('volume', 'n', { tenant: 't1', volume: 'gone' }, async () => false);
    expect((await create('t2', 'v', { requestName: 'n' })).statusCode).toBe(201);
    expect(await store.getRequestName('volume', 'n')).toMatchObject({ tenant: 't2', volume: 'v' });
  });

  it('snapshots: the same request again answers the same snapshot; the name for another volume is refused; removal frees it', async () => {
    await create('t1', 'a');
    await create('t1', 'b');
    const first = await call('POST', '/v1/volumes/t1/a/snapshots', ADMIN, { name: 'csi-x', requestName: 'snap-1' });
    expect(first.statusCode, first.body).toBe(201);
    const again = await call('POST', '/v1/volumes/t1/a/snapshots', ADMIN, { name: 'csi-x', requestName: 'snap-1' });
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json()).toMatchObject({ name: 'csi-x', id: (first.json() as Json).id });
    expectError(await call('POST', '/v1/volumes/t1/b/snapshots', ADMIN, { name: 'csi-x', requestName: 'snap-1' }), 409, 'NAME_TAKEN', /snapshot csi-x of t1\/a/);
    expect(await storage.listSnapshots('rbd', 't1.b')).toEqual([]);
    expectError(await call('POST', '/v1/volumes/t1/b/snapshots', ADMIN, { requestName: 'snap-2' }), 400, 'INVALID_REQUEST');
    expect((await call('DELETE', '/v1/volumes/t1/a/snapshots/csi-x')).statusCode).toBe(204);
    expect(await store.getRequestName('snapshot', 'snap-1')).toBeNull();
    expect((await call('POST', '/v1/volumes/t1/b/snapshots', ADMIN, { name: 'csi-x', requestName: 'snap-1' })).statusCode).toBe(201);
    // Removing a volume frees the names of the snapshots that went with it.
    expect((await call('DELETE', '/v1/volumes/t1/b')).statusCode).toBe(204);
    expect(await store.getRequestName('snapshot', 'snap-1')).toBeNull();
  });

  it('a copy of a snapshot with a request name records it and claims it', async () => {
    await create('t1', 'a');
    expect((await call('POST', '/v1/volumes/t1/a/snapshots', ADMIN, { name: 's' })).statusCode).toBe(201);
    const copy = await call('POST', '/v1/volumes/t1/a/snapshots/s/copy', ADMIN, { tenant: 't1', volume: 'c', requestName: 'restore-1' });
    expect(copy.statusCode, copy.body).toBe(201);
    expect(copy.json()).toMatchObject({ requestName: 'restore-1', source: { tenant: 't1', volume: 'a', snapshot: 's' } });
    expectError(await call('POST', '/v1/volumes/t1/a/snapshots/s/copy', ADMIN, { tenant: 't2', volume: 'c', requestName: 'restore-1' }), 409, 'NAME_TAKEN');
  });
});
