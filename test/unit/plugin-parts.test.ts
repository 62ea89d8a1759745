// The small parts of volplugin: flags, host identity, the undo stack, the per-volume mutex,
// reference counting, fencing decisions and rate-limit strings.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig, socketPath } from '../../src/plugin/config.js';
import { decideFence, type HolderNote } from '../../src/fencing/index.js';
import { loadHostId } from '../../src/plugin/mounts/host-id.js';
import { KeyedMutex } from '../../src/plugin/mounts/keyed-mutex.js';
import { LocalState, addRef, dropRef, type LocalVolume } from '../../src/plugin/mounts/local-state.js';
import { RateLimiter, cgroupOfProcess, plannedCgroup } from '../../src/ratelimit/index.js';
import { UndoStack } from '../../src/plugin/mounts/undo.js';
import { dockerEndpoint } from '../../src/plugin/docker/client.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'volplugin-parts-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('flags', () => {
  it('defaults', () => {
    const c = parseConfig([], {});
    expect(c).toMatchObject({
      master: '127.0.0.1:9005',
      etcd: ['http://127.0.0.1:2379'],
      mountRoot: '/mnt/ceph',
      stateDir: '/var/lib/volplugin',
      mapper: 'auto',
      pluginName: 'volplugin',
      socketDir: '/run/docker/plugins',
      cephId: 'admin',
      backend: 'native',
      lockTtl: 30,
      fenceSeconds: 3600,
      docker: 'unix:///var/run/docker.sock',
      tokenFile: null,
      debug: false,
    });
    expect(socketPath(c)).toBe('/run/docker/plugins/volplugin.sock');
  });

  it('environment defaults and repeatable --etcd', () => {
    const env = { VOLPLUGIN_MASTER: 'm:1', VOLPLUGIN_ETCD: 'http://a:1,http://b:2', VOLPLUGIN_TOKEN_FILE: '/t', CEPH_CONF: '/c.conf', DOCKER_HOST: 'unix:///d.sock' };
    expect(parseConfig([], env)).toMatchObject({ master: 'm:1', etcd: ['http://a:1', 'http://b:2'], tokenFile: '/t', cephConf: '/c.conf', docker: 'unix:///d.sock' });
    expect(parseConfig(['--etcd', 'http://x:1', '--etcd', 'http://y:2'], env).etcd).toEqual(['http://x:1', 'http://y:2']);
  });

  it('the flags of `make up`', () => {
    const c = parseConfig(
      ['--master', '127.0.0.1:9005', '--etcd', 'http://127.0.0.1:2379', '--token-file', '.sandbox/token', '--ceph-conf', '.sandbox/ceph/ceph.conf', '--ceph-id', 'admin', '--mount-root', '.sandbox/mnt', '--state-dir', '.sandbox/volplugin'],
      {},
    );
    expect(c.mountRoot).toBe(path.resolve('.sandbox/mnt'));
    expect(c.stateDir).toBe(path.resolve('.sandbox/volplugin'));
  });

  it('refuses bad values with a reason', () => {
    expect(() => parseConfig(['--mapper', 'rbd'], {})).toThrow(/Allowed choices are auto, krbd, nbd, fuse/);
    expect(() => parseConfig(['--lock-ttl', '0'], {})).toThrow(/--lock-ttl must be a whole number >= 2/);
    expect(() => parseConfig(['--plugin-name', 'a/b'], {})).toThrow(/not a plugin name/);
    expect(() => parseConfig(['--etcd', '127.0.0.1:2379'], {})).toThrow(/not a URL/);
    expect(parseConfig(['--docker', 'none'], {}).docker).toBeNull();
  });
});

describe('host identity', () => {
  it('is made once and kept', async () => {
    const id = await loadHostId(dir);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await loadHostId(dir)).toBe(id);
    expect((await readFile(path.join(dir, 'host-id'), 'utf8')).trim()).toBe(id);
  });

  it('a damaged file is an error that says what to do', async () => {
    await writeFile(path.join(dir, 'host-id'), 'not-a-uuid');
    await expect(loadHostId(dir)).rejects.toThrow(/restore it or delete it/);
  });
});

describe('UndoStack', () => {
  it('undoes newest first, keeps going past a failing step and reports it', async () => {
    const done: string[] = [];
    const undo = new UndoStack();
    undo.push('one', async () => void done.push('one'));
    undo.push('two', async () => {
      throw new Error('boom');
    });
    undo.push('three', async () => void done.push('three'));
    const failed = await undo.rollback();
    expect(done).toEqual(['three', 'one']);
    expect(failed.map((f) => f.what)).toEqual(['two']);
    expect(undo.size).toBe(0);
  });

  it('commit forgets the steps', async () => {
    const undo = new UndoStack();
    let ran = false;
    undo.push('x', async () => void (ran = true));
    undo.commit();
    await undo.rollback();
    expect(ran).toBe(false);
  });
});

describe('KeyedMutex', () => {
  it('serialises one key and lets others through', async () => {
    const mutex = new KeyedMutex();
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = mutex.run('v', async () => {
      order.push('a-start');
      await gate;
      order.push('a-end');
    });
    const b = mutex.run('v', async () => void order.push('b'));
    const c = mutex.run('w', async () => void order.push('c'));
    await c;
    expect(mutex.busy('v')).toBe(true);
    release();
    await Promise.all([a, b]);
    expect(order).toEqual(['a-start', 'c', 'a-end', 'b']);
    expect(mutex.busy('v')).toBe(false);
  });

  it('a failing operation does not block the next', async () => {
    const mutex = new KeyedMutex();
    await expect(mutex.run('v', async () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(await mutex.run('v', async () => 1)).toBe(1);
  });
});

describe('references and the local table', () => {
  const entry = (): LocalVolume => ({
    tenant: 't',
    volume: 'v',
    pool: 'rbd',
    image: 't.v',
    mapping: { tenant: 't', volume: 'v', pool: 'rbd', image: 't.v', kind: 'fuse', device: '/dev/loop0', clientAddress: null },
    mountpoint: '/mnt/ceph/t/v',
    refs: [],
    since: 'now',
    appliedLimits: null,
    lost: null,
    lockGeneration: 1,
    idleUntil: null,
  });

  it('one reference per ID', () => {
    const e = entry();
    expect(addRef(e, 'a')).toBe(true);
    expect(addRef(e, 'a')).toBe(false);
    expect(addRef(e, 'b')).toBe(true);
    expect(dropRef(e, 'x')).toBe(false);
    expect(dropRef(e, 'a')).toBe(true);
    expect(e.refs).toEqual(['b']);
  });

  it('saves atomically and loads back; a corrupt file is moved aside', async () => {
    const file = path.join(dir, 'mounts.json');
    const a = new LocalState(file);
    a.set({ ...entry(), refs: ['x'] });
    await a.save();
    const b = new LocalState(file);
    expect(await b.load()).toEqual({ corrupt: null });
    expect(b.get('t', 'v')?.refs).toEqual(['x']);
    await writeFile(file, '{broken');
    const c = new LocalState(file);
    expect((await c.load()).corrupt).toMatch(/moved to/);
    expect(c.all()).toEqual([]);
  });
});

describe('fencing decision', () => {
  const note = (clientAddress: string | null): HolderNote => ({ hostId: 'h1', host: 'alpha', mapper: 'fuse', clientAddress, since: 'then' });
  it('fences a recorded client that is not one of ours', () => {
    expect(decideFence(note('127.0.0.1:0/5'), new Set())).toMatchObject({ fence: true, address: '127.0.0.1:0/5' });
  });
  it('no note (clean unmount), no address, or our own live client: no fencing', () => {
    expect(decideFence(null, new Set()).fence).toBe(false);
    expect(decideFence(note(null), new Set()).fence).toBe(false);
    expect(decideFence(note('a'), new Set(['a'])).fence).toBe(false);
  });
});

describe('rate-limit strings', () => {
  const dev = { major: 7, minor: 3 };
  const limits = { writeIops: 100, readIops: 0, writeBps: 1_000_000, readBps: 0 };
  it('writes only the limits that differ into a v1 cgroup, and makes the cgroup of a container that has not started', async () => {
    const limiter = new RateLimiter({ docker: null, storage: { setQos: async () => undefined, getQos: async () => ({}) } });
    const cg = path.join(dir, 'blkio', 'docker', 'abc');
    await mkdir(cg, { recursive: true });
    const files = ['write_iops', 'read_iops', 'write_bps', 'read_bps'].map((f) => path.join(cg, `blkio.throttle.${f}_device`));
    for (const f of files) await writeFile(f, '');
    await writeFile(files[2]!, '7:3 1000000\n');
    await limiter.writeLimits({ dir: cg, version: 1, ahead: false }, dev, limits);
    expect(await readFile(files[0]!, 'utf8')).toBe('7:3 100');
    expect(await readFile(files[1]!, 'utf8')).toBe('');
    expect(await readFile(files[2]!, 'utf8')).toBe('7:3 1000000\n');
    const ahead = path.join(dir, 'blkio', 'docker', 'def');
    await expect(limiter.writeLimits({ dir: ahead, version: 1, ahead: true }, dev, limits, 'def')).rejects.toThrow();
    expect((await stat(ahead)).isDirectory()).toBe(true);
  });
  it('a process\'s blkio cgroup (v1) or unified cgroup (v2)', () => {
    expect(cgroupOfProcess('12:blkio:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/', '/sys/fs/cgroup')).toEqual({
      dir: '/sys/fs/cgroup/blkio/docker/abc',
      version: 1,
      ahead: false,
    });
    expect(cgroupOfProcess('0::/system.slice/docker-abc.scope\n', '/sys/fs/cgroup')).toEqual({ dir: '/sys/fs/cgroup/system.slice/docker-abc.scope', version: 2, ahead: false });
  });
  it('where cgroupfs will put a container that has not started', () => {
    expect(plannedCgroup({ CgroupDriver: 'cgroupfs', CgroupVersion: '1' }, 'abc', '')).toEqual({ dir: '/sys/fs/cgroup/blkio/docker/abc', version: 1, ahead: true });
    expect(plannedCgroup({ CgroupDriver: 'cgroupfs', CgroupVersion: '1' }, 'abc', '/tenants')?.dir).toBe('/sys/fs/cgroup/blkio/tenants/abc');
    expect(plannedCgroup({ CgroupDriver: 'systemd', CgroupVersion: '1' }, 'abc', '')).toBeNull();
  });
});

describe('Docker endpoint', () => {
  it('unix and tcp addresses', () => {
    expect(dockerEndpoint('unix:///run/d.sock')).toEqual({ socketPath: '/run/d.sock' });
    expect(dockerEndpoint('/run/d.sock')).toEqual({ socketPath: '/run/d.sock' });
    expect(dockerEndpoint('tcp://10.0.0.1:2375')).toEqual({ host: '10.0.0.1', port: 2375 });
    expect(() => dockerEndpoint('ssh://x')).toThrow(/neither/);
  });
});
