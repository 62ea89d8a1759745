// Snapshots on demand through the master's API on the real cluster and etcd: take, copy into a new
// volume that volplugin mounts at once and that holds the snapshot's data, flattened by the master as
// an operation, rollback (refused while mounted), remove, and the errors of bad input.
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/master/app.js';
import { FuseMapper } from '../../src/mapper/fuse.js';
import { mountDevice, probeDevice, formatDevice, unmountAll } from '../../src/mapper/fs.js';
import type { Mapping } from '../../src/mapper/types.js';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import type { MountRecord, VolumeRecord } from '../../src/state/records.js';
import { openStorage } from '../../src/storage/index.js';
import type { Storage } from '../../src/storage/types.js';
import { Supervisor } from '../../src/supervisor/supervisor.js';
import { ApiClient } from '../../src/api/client.js';
import { startPlugin, type RunningPlugin } from '../../src/plugin/app.js';
import { parseConfig } from '../../src/plugin/config.js';
import { ApiMasterClient } from '../../src/plugin/cluster/master-client.js';
import { repoRoot, testRoot } from '../helpers/sandbox.js';

const backend = existsSync(path.join(repoRoot, 'build/Release/volplugin_rbd.node')) ? 'native' : 'cli';
const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const log = pino({ level: process.env.VOLPLUGIN_TEST_VERBOSE ? 'debug' : 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One call of Docker's volume plugin protocol over the plugin's unix socket. */
function pluginCall(socket: string, method: string, body: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, path: `/VolumeDriver.${method}`, method: 'POST', headers: { 'content-type': 'application/vnd.docker.plugins.v1+json' }, timeout: 60_000 },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          try {
            resolve(JSON.parse(text) as Record<string, unknown>);
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe(`snapshot copy and rollback on real Ceph and etcd (${backend} backend)`, () => {
  const id = randomUUID().slice(0, 8);
  const prefix = `/it-snapcopy-${id}`;
  const src = `sc${id}`; // source tenant
  const dst = `sd${id}`; // target tenant
  const dir = path.join(testRoot, `snapcopy-${id}`);
  let kv: EtcdKV;
  let store: StateStore;
  let storage: Storage;
  let app: App;
  let mapper: FuseMapper;
  const mapped = new Map<string, { mapping: Mapping; mountpoint: string | null }>();
  /** The operation flattening the copy (the copy answer's Location). */
  let flattenOperation = '';

  async function api(method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
    const res = await app.inject({ method, url, payload: payload as object | undefined });
    return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : null };
  }

  /** Maps the volume's image with rbd-fuse + loop (what volplugin does on this host) and mounts it. */
  async function mount(record: VolumeRecord, format = false): Promise<string> {
    const mapping = await mapper.map({ tenant: record.tenant, volume: record.volume, pool: record.pool, image: record.image });
    const mountpoint = path.join(dir, 'mnt', record.tenant, record.volume);
    mapped.set(record.image, { mapping, mountpoint: null });
    const contents = await probeDevice(mapping.device!);
    if (format) {
      expect(contents).toEqual({ kind: 'empty' });
      await formatDevice('mkfs.ext4 -q -m0 %', mapping.device!);
    } else {
      expect(contents).toMatchObject({ kind: 'filesystem', type: 'ext4' });
    }
    await mountDevice(mapping.device!, mountpoint);
    mapped.set(record.image, { mapping, mountpoint });
    return mountpoint;
  }

  async function unmount(record: VolumeRecord): Promise<void> {
    const m = mapped.get(record.image);
    if (!m) return;
    if (m.mountpoint) await unmountAll(m.mountpoint);
    await mapper.unmap(m.mapping);
    mapped.delete(record.image);
  }

  async function volume(tenant: string, name: string): Promise<VolumeRecord> {
    return (await store.getVolume(tenant, name))!;
  }

  beforeAll(async () => {
    await mkdir(dir, { recursive: true });
    kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
    store = new StateStore(kv, { prefix, owner: `it-${id}` });
    storage = await openStorage(backend, { confPath: process.env.CEPH_CONF });
    mapper = new FuseMapper({ root: path.join(dir, 'fuse'), ceph: { confPath: process.env.CEPH_CONF }, watchers: storage });
    app = await createApp({ store, storage, token: null, janitorIntervalMs: 0, logger: false });
    const policy = (keep: number, snapshots: boolean) => ({
      'default-options': { pool, size: '32MB', snapshots, snapshot: { frequency: '1h', keep }, filesystem: 'ext4' },
      filesystems: { ext4: 'mkfs.ext4 -q -m0 %' },
    });
    expect((await api('PUT', `/v1/tenants/${src}`, policy(5, false))).status).toBeLessThan(300);
    expect((await api('PUT', `/v1/tenants/${dst}`, policy(9, true))).status).toBeLessThan(300);
    expect((await api('PUT', `/v1/volumes/${src}/data`, {})).status).toBeLessThan(300);
  });

  afterAll(async () => {
    for (const m of [...mapped.values()]) {
      if (m.mountpoint) await unmountAll(m.mountpoint).catch(() => undefined);
      await mapper.unmap(m.mapping).catch(() => undefined);
    }
    await app?.close();
    for (const image of (await storage.listImages(pool)).filter((i) => i.startsWith(`${src}.`) || i.startsWith(`${dst}.`)).sort().reverse()) {
      // Clones first (the target tenant's images), then their parents.
      await storage.flattenImage(pool, image).catch(() => undefined);
    }
    for (const image of (await storage.listImages(pool)).filter((i) => i.startsWith(`${src}.`) || i.startsWith(`${dst}.`))) {
      for (const s of await storage.listSnapshots(pool, image)) {
        if (s.protected) await storage.unprotectSnapshot(pool, image, s.name).catch(() => undefined);
        await storage.removeSnapshot(pool, image, s.name).catch(() => undefined);
      }
      await storage.removeImage(pool, image).catch(() => undefined);
    }
    for (const entry of await kv.list(`${prefix}/`)) await kv.delete(entry.key);
    await storage.close();
    await kv.close();
    await rm(dir, { recursive: true, force: true });
  });

  let snapshot = '';

  it('takes a snapshot of a mounted volume with the data written before it', async () => {
    const data = await volume(src, 'data');
    const mnt = await mount(data, true);
    await writeFile(path.join(mnt, 'file.txt'), 'before the snapshot\n');
    await unmount(data); // flushes the filesystem: the snapshot of an unmounted volume is exact
    const mnt2 = await mount(data);
    const res = await api('POST', `/v1/volumes/${src}/data/snapshots`, {});
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ origin: 'manual', protected: false, clones: [] });
    snapshot = res.body!.name as string;
    expect(snapshot).toMatch(/^manual-\d{8}T\d{6}Z$/);
    await writeFile(path.join(mnt2, 'file.txt'), 'after the snapshot\n');
    await unmount(data);

    const list = await api('GET', `/v1/volumes/${src}/data/snapshots`);
    expect((list.body!.snapshots as Array<{ name: string }>).map((s) => s.name)).toEqual([snapshot]);
  });

  it('copies the snapshot into a new volume that mounts at once and holds the snapshot data', async () => {
    const answer = await app.inject({ method: 'POST', url: `/v1/volumes/${src}/data/snapshots/${snapshot}/copy`, payload: { tenant: dst, volume: 'restored' } });
    const res = { status: answer.statusCode, body: JSON.parse(answer.body) as Record<string, unknown> };
    expect(res.status).toBe(201);
    // The flatten goes on as an operation (Location); the copy is usable before it ends.
    flattenOperation = String(answer.headers.location).replace('/v1/operations/', '');
    expect(flattenOperation).toMatch(/^\d{8}T\d{9}Z-[0-9a-f]{8}$/);
    expect(res.body).toMatchObject({ tenant: dst, volume: 'restored', source: { tenant: src, volume: 'data', snapshot } });
    expect(res.body).toMatchObject({ runtime: { snapshot: { keep: 9 } } }); // the target tenant's policy
    const copy = await volume(dst, 'restored');
    expect(copy.source).toEqual({ tenant: src, volume: 'data', snapshot });
    // The clone inherited its parent's image metadata; the copy marks it as its own.
    expect((await storage.getMetadata(pool, copy.image))['volplugin.volume']).toBe(`${dst}/restored`);

    const mnt = await mount(copy);
    expect(await readFile(path.join(mnt, 'file.txt'), 'utf8')).toBe('before the snapshot\n');
    await writeFile(path.join(mnt, 'copy-only.txt'), 'mine\n');
    await unmount(copy);
    const data = await volume(src, 'data');
    const mntSrc = await mount(data);
    expect(await readFile(path.join(mntSrc, 'file.txt'), 'utf8')).toBe('after the snapshot\n');
    expect(existsSync(path.join(mntSrc, 'copy-only.txt'))).toBe(false);
    await unmount(data);
  });

  it('is mounted by volplugin (Docker Mount) at once, holding the snapshot data', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address() as { port: number };
    const pluginKv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
    const config = parseConfig([
      '--etcd', process.env.VOLPLUGIN_TEST_ETCD!,
      // The master's prefix: a mount lock is only taken for a volume whose record is there.
      '--prefix', prefix,
      '--master', `127.0.0.1:${address.port}`,
      '--mount-root', path.join(dir, 'plugin-mnt'),
      '--state-dir', path.join(dir, 'plugin-state'),
      '--socket-dir', path.join(dir, 'sock'),
      '--plugin-name', `vp${id}`,
      '--mapper', 'fuse',
      '--ceph-conf', process.env.CEPH_CONF!,
      '--docker', 'none',
      '--lock-ttl', '5',
      '--converge-seconds', '3600',
    ]);
    let plugin: RunningPlugin | null = null;
    try {
      plugin = await startPlugin(config, {
        storage,
        kv: pluginKv,
        master: new ApiMasterClient(new ApiClient({ master: `127.0.0.1:${address.port}` })),
        log,
      });
      // A second copy, of the same snapshot, that nothing has touched yet: mounted straight away.
      const res = await api('POST', `/v1/volumes/${src}/data/snapshots/${snapshot}/copy`, { tenant: dst, volume: 'fresh' });
      expect(res.status).toBe(201);
      const mounted = await pluginCall(plugin.socket, 'Mount', { Name: `${dst}/fresh`, ID: 'c0ffee' });
      expect(mounted.Err).toBe('');
      const mountpoint = mounted.Mountpoint as string;
      expect(await readFile(path.join(mountpoint, 'file.txt'), 'utf8')).toBe('before the snapshot\n');
      expect((await pluginCall(plugin.socket, 'Unmount', { Name: `${dst}/fresh`, ID: 'c0ffee' })).Err).toBe('');
    } finally {
      await plugin?.stop();
      await pluginKv.close();
    }
  });

  it('refuses bad input with a clear error and changes nothing', async () => {
    const before = await kv.list(`${prefix}/volumes/`);
    const cases: Array<[string, 'GET' | 'POST' | 'DELETE', string, unknown, number, string]> = [
      ['unknown volume', 'GET', `/v1/volumes/${src}/nope/snapshots`, undefined, 404, 'VOLUME_NOT_FOUND'],
      ['take on unknown volume', 'POST', `/v1/volumes/${src}/nope/snapshots`, {}, 404, 'VOLUME_NOT_FOUND'],
      ['unknown snapshot', 'DELETE', `/v1/volumes/${src}/data/snapshots/nope`, undefined, 404, 'SNAPSHOT_NOT_FOUND'],
      ['copy of unknown snapshot', 'POST', `/v1/volumes/${src}/data/snapshots/nope/copy`, { tenant: dst, volume: 'x' }, 404, 'SNAPSHOT_NOT_FOUND'],
      ['copy onto an existing volume', 'POST', `/v1/volumes/${src}/data/snapshots/${snapshot}/copy`, { tenant: dst, volume: 'restored' }, 409, 'VOLUME_EXISTS'],
      ['rollback to unknown snapshot', 'POST', `/v1/volumes/${src}/data/snapshots/nope/rollback`, undefined, 404, 'SNAPSHOT_NOT_FOUND'],
    ];
    for (const [what, method, url, payload, status, code] of cases) {
      const res = await api(method, url, payload);
      expect(res.status, what).toBe(status);
      expect(res.body, what).toMatchObject({ code });
      expect(typeof res.body!.message, what).toBe('string');
    }
    for (const [keyValue, code] of [['snapshots.keep=0', 'INVALID_OPTION'], ['snapshots.frequency=500ms', 'INVALID_OPTION']] as const) {
      const [k, v] = keyValue.split('=') as [string, string];
      const res = await api('PATCH', `/v1/volumes/${src}/data/runtime`, { options: { [k]: v } });
      expect(res.status, keyValue).toBe(400);
      expect(res.body, keyValue).toMatchObject({ code });
    }
    expect(await kv.list(`${prefix}/volumes/`)).toEqual(before); // same records, same revisions
    expect((await storage.listSnapshots(pool, `${src}.data`)).map((s) => s.name)).toEqual([snapshot]);
  });

  it('refuses a rollback while the volume is mounted or its image open', async () => {
    const data = await volume(src, 'data');
    await mount(data);
    const open = await api('POST', `/v1/volumes/${src}/data/snapshots/${snapshot}/rollback`);
    expect(open.status).toBe(409);
    expect(open.body).toMatchObject({ code: 'VOLUME_IN_USE' });
    // With the mount lock volplugin holds while it has the volume mounted:
    const lease = await kv.lease(10);
    const m = mapped.get(data.image)!;
    const record: MountRecord = {
      tenant: src,
      volume: 'data',
      host: 'this-host',
      hostId: `it-${id}`,
      lease: lease.id,
      device: m.mapping.device!,
      mountpoint: m.mountpoint!,
      mapper: 'fuse',
      clientAddress: m.mapping.clientAddress,
      since: new Date().toISOString(),
    };
    expect((await store.acquireMount(record, lease)).ok).toBe(true);
    const mounted = await api('POST', `/v1/volumes/${src}/data/snapshots/${snapshot}/rollback`);
    expect(mounted.status).toBe(409);
    expect(mounted.body).toMatchObject({ code: 'VOLUME_MOUNTED' });
    await lease.revoke();
    await unmount(data);
  });

  it('flattens the copy as an operation of the master (volsupervisor flattens what a stopped master left), after which the snapshot is free', async () => {
    const deadline = Date.now() + 30_000;
    let op = await store.getOperation(flattenOperation);
    while (op?.state === 'running' && Date.now() < deadline) {
      await sleep(200);
      op = await store.getOperation(flattenOperation);
    }
    expect(op).toMatchObject({ kind: 'copy', state: 'done', result: { flatten: 'flattened' }, target: { tenant: dst, volume: 'restored' } });
    const supervisor = new Supervisor({ store, storage, logger: log, electionTtlSeconds: 2, scheduler: { tickMs: 200 } });
    void supervisor.start();
    try {
      const copy = await volume(dst, 'restored');
      expect((await storage.imageInfo(pool, copy.image)).parent).toBeNull();
      while ((await storage.listSnapshots(pool, `${src}.data`))[0]?.protected && Date.now() < deadline) await sleep(200);
      expect((await storage.listSnapshots(pool, `${src}.data`))[0]?.protected).toBe(false);
      // The copy's own schedule (the target tenant's policy) starts once it is flattened.
      while ((await storage.listSnapshots(pool, copy.image)).length === 0 && Date.now() < deadline) await sleep(200);
      expect((await storage.listSnapshots(pool, copy.image)).map((s) => s.name)).toEqual([expect.stringMatching(/^vs-/)]);
    } finally {
      await supervisor.stop();
    }
    // The flattened copy still holds the data.
    const copy = await volume(dst, 'restored');
    const mnt = await mount(copy);
    expect(await readFile(path.join(mnt, 'file.txt'), 'utf8')).toBe('before the snapshot\n');
    expect(await readFile(path.join(mnt, 'copy-only.txt'), 'utf8')).toBe('mine\n');
    await unmount(copy);
  });

  it('rolls an unmounted volume back to the snapshot, then removes the snapshot', async () => {
    const res = await api('POST', `/v1/volumes/${src}/data/snapshots/${snapshot}/rollback`);
    expect(res.status).toBe(204);
    const data = await volume(src, 'data');
    const mnt = await mount(data);
    expect(await readFile(path.join(mnt, 'file.txt'), 'utf8')).toBe('before the snapshot\n');
    await unmount(data);
    expect((await api('DELETE', `/v1/volumes/${src}/data/snapshots/${snapshot}`)).status).toBe(204);
    expect((await api('GET', `/v1/volumes/${src}/data/snapshots`)).body).toEqual({ snapshots: [] });
  });
});
