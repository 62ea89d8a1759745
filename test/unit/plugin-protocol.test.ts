// Docker's volume plugin protocol over a real unix socket, with a fake driver behind it; then the
// real Driver's name and option checks with a fake master.
import { request } from 'node:http';
import type { Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Driver } from '../../src/plugin/docker/driver.js';
import { PluginError } from '../../src/plugin/errors.js';
import { KeyedMutex } from '../../src/plugin/mounts/keyed-mutex.js';
import { LocalState } from '../../src/plugin/mounts/local-state.js';
import { ApiMasterClient, type MasterClient } from '../../src/plugin/cluster/master-client.js';
import { ApiClient } from '../../src/api/client.js';
import type { MountManager } from '../../src/plugin/mounts/manager.js';
import { CONTENT_TYPE, createProtocolServer, type DockerVolume, type VolumeDriver } from '../../src/plugin/docker/protocol.js';
import type { VolumeRecord } from '../../src/state/records.js';

function post(socketPath: string, url: string, body?: string): Promise<{ status: number; json: Record<string, unknown>; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: url, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown>, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function listen(server: Server, socket: string): Promise<void> {
  await new Promise<void>((resolve) => server.listen(socket, resolve));
}

class FakeDriver implements VolumeDriver {
  calls: unknown[][] = [];
  hang = false;
  lastSignal: AbortSignal | null = null;
  async create(name: string, opts: Record<string, string>): Promise<void> {
    this.calls.push(['create', name, opts]);
    if (name === 'bad/one') throw new PluginError('INVALID_OPTION', 'unknown option "sise"; did you mean "size"?');
  }
  async remove(name: string): Promise<void> {
    this.calls.push(['remove', name]);
  }
  async mount(name: string, id: string, signal: AbortSignal): Promise<string> {
    this.calls.push(['mount', name, id]);
    this.lastSignal = signal;
    if (this.hang) await new Promise((resolve) => signal.addEventListener('abort', resolve));
    return `/mnt/ceph/${name}`;
  }
  async unmount(name: string, id: string): Promise<void> {
    this.calls.push(['unmount', name, id]);
  }
  async path(name: string): Promise<string> {
    return name === 'tenant1/foo' ? '/mnt/ceph/tenant1/foo' : '';
  }
  async get(name: string): Promise<DockerVolume> {
    if (name !== 'tenant1/foo') throw new PluginError('VOLUME_NOT_FOUND', `volume ${name} does not exist`);
    return { Name: name, Mountpoint: '' };
  }
  async list(): Promise<DockerVolume[]> {
    return [{ Name: 'tenant1/foo', Mountpoint: '' }];
  }
}

describe('protocol server on a unix socket', () => {
  let dir: string;
  let socket: string;
  let server: Server;
  const driver = new FakeDriver();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'volplugin-proto-'));
    socket = path.join(dir, 'p.sock');
    server = createProtocolServer(driver, { longTimeoutMs: 300, shortTimeoutMs: 300 });
    await listen(server, socket);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('Plugin.Activate says it implements VolumeDriver, with the plugin media type', async () => {
    const res = await post(socket, '/Plugin.Activate', '');
    expect(res.status).toBe(200);
    expect(res.type).toBe(CONTENT_TYPE);
    expect(res.json).toEqual({ Implements: ['VolumeDriver'] });
  });

  it('Capabilities: scope global', async () => {
    expect((await post(socket, '/VolumeDriver.Capabilities', '{}')).json).toEqual({ Capabilities: { Scope: 'global' } });
  });

  it('Create passes the name and options; Opts null (no --opt) is an empty map', async () => {
    expect((await post(socket, '/VolumeDriver.Create', '{"Name":"tenant1/foo","Opts":null}')).json).toEqual({ Err: '' });
    expect((await post(socket, '/VolumeDriver.Create', '{"Name":"tenant1/bar","Opts":{"size":"20MB"}}')).json).toEqual({ Err: '' });
    expect(driver.calls).toContainEqual(['create', 'tenant1/foo', {}]);
    expect(driver.calls).toContainEqual(['create', 'tenant1/bar', { size: '20MB' }]);
  });

  it('a driver error becomes Err with its message', async () => {
    const res = await post(socket, '/VolumeDriver.Create', '{"Name":"bad/one","Opts":{"sise":"1"}}');
    expect(res.status).toBe(200);
    expect(res.json.Err).toMatch(/did you mean "size"/);
  });

  it('Mount and Unmount carry the ID; Mount answers the mountpoint', async () => {
    const m = await post(socket, '/VolumeDriver.Mount', '{"Name":"tenant1/foo","ID":"abc"}');
    expect(m.json).toEqual({ Mountpoint: '/mnt/ceph/tenant1/foo', Err: '' });
    expect((await post(socket, '/VolumeDriver.Unmount', '{"Name":"tenant1/foo","ID":"abc"}')).json).toEqual({ Err: '' });
    expect(driver.calls).toContainEqual(['mount', 'tenant1/foo', 'abc']);
    expect(driver.calls).toContainEqual(['unmount', 'tenant1/foo', 'abc']);
  });

  it('Get, List and Path have Docker\'s shapes; Get of an unknown volume is an Err', async () => {
    expect((await post(socket, '/VolumeDriver.Get', '{"Name":"tenant1/foo"}')).json).toEqual({ Volume: { Name: 'tenant1/foo', Mountpoint: '' }, Err: '' });
    expect((await post(socket, '/VolumeDriver.Get', '{"Name":"tenant1/nope"}')).json.Err).toMatch(/does not exist/);
    expect((await post(socket, '/VolumeDriver.List', '{}')).json).toEqual({ Volumes: [{ Name: 'tenant1/foo', Mountpoint: '' }], Err: '' });
    expect((await post(socket, '/VolumeDriver.Path', '{"Name":"tenant1/foo"}')).json).toEqual({ Mountpoint: '/mnt/ceph/tenant1/foo', Err: '' });
  });

  it('a missing Name, a missing ID and a body that is not JSON are Errs that say what is wrong', async () => {
    expect((await post(socket, '/VolumeDriver.Mount', '{"ID":"x"}')).json.Err).toMatch(/TENANT\/VOLUME/);
    expect((await post(socket, '/VolumeDriver.Mount', '{"Name":"tenant1/foo"}')).json.Err).toMatch(/no ID/);
    expect((await post(socket, '/VolumeDriver.Create', '{"Name":')).json.Err).toMatch(/not JSON/);
    expect((await post(socket, '/VolumeDriver.Create', '{"Name":"a/b","Opts":{"size":5}}')).json.Err).toMatch(/must be a string/);
  });

  it('an unknown method is a 404 listing what volplugin speaks', async () => {
    const res = await post(socket, '/VolumeDriver.Frobnicate', '{}');
    expect(res.status).toBe(404);
    expect(res.json.Err).toMatch(/VolumeDriver.Mount/);
  });

  it('a request that outlives its deadline is answered with Err and its work is aborted', async () => {
    driver.hang = true;
    const started = Date.now();
    const res = await post(socket, '/VolumeDriver.Mount', '{"Name":"tenant1/slow","ID":"x"}');
    driver.hang = false;
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(res.json.Err).toMatch(/did not finish within/);
    expect(driver.lastSignal?.aborted).toBe(true);
  });
});

describe('Driver checks before asking anyone', () => {
  const created: unknown[] = [];
  const removed: unknown[] = [];
  const master: MasterClient = {
    getVolume: async (tenant, volume) => {
      if (!['foo', 'eph', 'busy'].includes(volume)) throw new PluginError('VOLUME_NOT_FOUND', 'no such volume');
      return {
        tenant,
        volume,
        pool: 'rbd',
        image: `${tenant}.${volume}`,
        options: { sizeBytes: 1, filesystem: 'ext4', ephemeral: volume === 'eph' },
        createdAt: 'x',
      } as unknown as VolumeRecord;
    },
    listVolumes: async () => [],
    createVolume: async (tenant, volume, options) => {
      created.push([tenant, volume, options]);
      return {} as VolumeRecord;
    },
    removeVolume: async (tenant, volume, options) => void removed.push([tenant, volume, options]),
  };
  const local = new LocalState('/nonexistent/mounts.json');
  const mountedWhere = async (_t: string, volume: string) => (volume === 'busy' ? 'beta (host id h2) since then' : null);
  const driver = new Driver({ master, volumes: master, manager: {} as MountManager, local, mutex: new KeyedMutex(), mountedWhere });
  const signal = new AbortController().signal;

  it('a name without a tenant says how to write one', async () => {
    await expect(driver.create('foo', {}, signal)).rejects.toThrow(/TENANT\/VOLUME.*--name tenant1\/data/);
  });

  it('bad characters are named', async () => {
    await expect(driver.create('tenant1/f$oo', {}, signal)).rejects.toThrow(/contains "\$"/);
    await expect(driver.mount('a.b/c', 'id', signal)).rejects.toMatchObject({ code: 'INVALID_NAME' });
  });

  it('unknown options are refused with a suggestion before the master is asked', async () => {
    await expect(driver.create('tenant1/foo', { sise: '10MB' }, signal)).rejects.toThrow(/did you mean "size"/);
    expect(created).toEqual([]);
    await driver.create('tenant1/foo', { size: '10MB' }, signal);
    expect(created).toEqual([['tenant1', 'foo', { size: '10MB' }]]);
  });

  it('Get of an unknown volume tells how to create it', async () => {
    await expect(driver.get('tenant1/bar', signal)).rejects.toThrow(/docker volume create -d volplugin --name tenant1\/bar/);
  });

  it('volume rm keeps the image of a normal volume, removes an ephemeral one, and refuses while mounted elsewhere', async () => {
    await driver.remove('tenant1/foo', signal);
    await driver.remove('tenant1/eph', signal);
    await expect(driver.remove('tenant1/busy', signal)).rejects.toThrow(/mounted on beta .*stop the containers/);
    expect(removed).toEqual([
      ['tenant1', 'foo', { keepImage: true }],
      ['tenant1', 'eph', { keepImage: false }],
    ]);
  });
});

describe('ApiMasterClient.removeVolume', () => {
  const calls: string[] = [];
  let answer: Response = new Response(null, { status: 204 });
  const api = new ApiClient({
    master: '127.0.0.1:1',
    fetch: (async (input: string | URL | Request, init?: RequestInit) => {
      calls.push(`${init?.method ?? 'GET'} ${String(input)}`);
      return answer;
    }) as typeof fetch,
  });
  const master = new ApiMasterClient(api);

  it('keeps the image with keep-image (checked by the master), never with force', async () => {
    await master.removeVolume('tenant1', 'foo', { keepImage: true });
    await master.removeVolume('tenant1', 'eph', { keepImage: false });
    expect(calls).toEqual(['DELETE http://127.0.0.1:1/v1/volumes/tenant1/foo?keep-image=true', 'DELETE http://127.0.0.1:1/v1/volumes/tenant1/eph']);
  });

  it("the master's refusal becomes IN_USE naming the host", async () => {
    answer = new Response(JSON.stringify({ code: 'VOLUME_MOUNTED', message: 'volume tenant1/foo is mounted on host node7' }), {
      status: 409,
      headers: { 'content-type': 'application/json' },
    });
    await expect(master.removeVolume('tenant1', 'foo', { keepImage: true })).rejects.toMatchObject({ code: 'IN_USE', message: /node7/ });
  });
});
