// krbd through sysfs: the exact lines written to /sys/bus/rbd/{add,remove}_single_major, keyring
// lookup, and the mapper's bookkeeping against a fake /sys/bus/rbd that behaves like the kernel
// (no machine here can load the rbd module, so the kernel itself is never exercised).

import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  KrbdMapper,
  findKrbdDevices,
  keyringFromConf,
  keyringSecret,
  krbdAddString,
  krbdRemoveString,
  listKrbdDevices,
} from '../../src/mapper/krbd.js';

const KEY = 'AQBqB4ZlAAAAABAAwQ0Qz8mD3ZxG5m3z0n2i9Q==';

describe('krbd add string', () => {
  const base = { monAddresses: ['10.0.0.1:6789'], clientId: 'admin', secret: KEY, pool: 'rbd', image: 'vol1' };

  it('is "<mons> <options> <pool> <image> -" for an image', () => {
    expect(krbdAddString(base)).toBe(`10.0.0.1:6789 name=admin,secret=${KEY} rbd vol1 -`);
  });

  it('joins several monitors with commas and keeps IPv6 brackets', () => {
    expect(krbdAddString({ ...base, monAddresses: ['10.0.0.1:6789', '10.0.0.2:6789', '[fd00::3]:6789'] })).toBe(
      `10.0.0.1:6789,10.0.0.2:6789,[fd00::3]:6789 name=admin,secret=${KEY} rbd vol1 -`,
    );
  });

  it('maps a snapshot read-only', () => {
    expect(krbdAddString({ ...base, snapshot: 'daily-1' })).toBe(`10.0.0.1:6789 name=admin,secret=${KEY},ro rbd vol1 daily-1`);
  });

  it('uses a kernel keyring key instead of the secret', () => {
    const { secret: _secret, ...rest } = base;
    expect(krbdAddString({ ...rest, clientId: 'volplugin', kernelKey: 'client.volplugin' })).toBe(
      '10.0.0.1:6789 name=volplugin,key=client.volplugin rbd vol1 -',
    );
  });

  it('puts every option in the kernel’s spelling, in a fixed order', () => {
    expect(
      krbdAddString({
        ...base,
        namespace: 'tenant1',
        readOnly: true,
        exclusive: true,
        noshare: true,
        queueDepth: 128,
        msMode: 'prefer-crc',
      }),
    ).toBe(`10.0.0.1:6789 name=admin,secret=${KEY},_pool_ns=tenant1,ro,exclusive,noshare,queue_depth=128,ms_mode=prefer-crc rbd vol1 -`);
  });

  it('refuses what the kernel would misparse', () => {
    expect(() => krbdAddString({ ...base, monAddresses: [] })).toThrow(/monAddresses/);
    expect(() => krbdAddString({ ...base, monAddresses: ['mon1:6789'] })).toThrow(/IP:PORT/);
    expect(() => krbdAddString({ ...base, monAddresses: ['10.0.0.1'] })).toThrow(TypeError);
    expect(() => krbdAddString({ ...base, image: 'two words' })).toThrow(/image/);
    expect(() => krbdAddString({ ...base, pool: 'a,b' })).toThrow(/pool/);
    expect(() => krbdAddString({ ...base, clientId: 'a,secret=x' })).toThrow(/clientId/);
    expect(() => krbdAddString({ ...base, snapshot: '-' })).toThrow(/snapshot/);
    expect(() => krbdAddString({ ...base, secret: 'not base64!' })).toThrow(/secret/);
    expect(() => krbdAddString({ ...base, kernelKey: 'client.admin' })).toThrow(/either/);
    expect(() => krbdAddString({ ...base, queueDepth: 0 })).toThrow(/queueDepth/);
  });
});

describe('krbd remove string', () => {
  it('is the device id, with " force" when asked', () => {
    expect(krbdRemoveString(3)).toBe('3');
    expect(krbdRemoveString('12', { force: true })).toBe('12 force');
  });

  it('refuses anything but an id', () => {
    expect(() => krbdRemoveString('rbd3')).toThrow(TypeError);
    expect(() => krbdRemoveString(-1)).toThrow(TypeError);
  });
});

describe('keyrings', () => {
  it('finds the key of an entity in a keyring file', () => {
    const text = `[client.admin]\n\tkey = ${KEY}\n\tcaps mon = "allow *"\n[client.other]\n\tkey = AAAA\n`;
    expect(keyringSecret(text, 'client.admin')).toBe(KEY);
    expect(keyringSecret(text, 'client.other')).toBe('AAAA');
    expect(keyringSecret(text, 'client.none')).toBeNull();
  });

  it('reads the keyring path from ceph.conf: the client section first, then global, $name expanded', () => {
    const conf = '[global]\nkeyring = /etc/ceph/$cluster.$name.keyring\n[client.vp]\nkeyring = /srv/vp.keyring # ours\n';
    expect(keyringFromConf(conf, 'vp')).toBe('/srv/vp.keyring');
    expect(keyringFromConf(conf, 'admin')).toBe('/etc/ceph/ceph.client.admin.keyring');
    expect(keyringFromConf('[mon]\nkeyring = /x\n', 'admin')).toBeNull();
  });
});

/** A /sys/bus/rbd that acts like the kernel: add makes devices/<n>/, remove deletes it. */
class FakeRbdBus {
  readonly lines: { file: string; data: string }[] = [];
  private next = 0;
  failAdd: Error | null = null;
  /** Like a kernel before 5.3: no client_addr attribute. */
  noClientAddr = false;

  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await mkdir(path.join(this.root, 'devices'), { recursive: true });
    for (const f of ['add_single_major', 'remove_single_major']) await writeFile(path.join(this.root, f), '');
  }

  write = async (file: string, data: string): Promise<void> => {
    this.lines.push({ file: path.relative(this.root, file), data });
    if (file === path.join(this.root, 'add_single_major')) {
      if (this.failAdd) throw this.failAdd;
      const [, options, pool, image, snap] = data.split(' ') as [string, string, string, string, string];
      const id = String(this.next++);
      const dir = path.join(this.root, 'devices', id);
      await mkdir(dir);
      const ns = /_pool_ns=([^,]+)/.exec(options)?.[1] ?? '';
      const attrs = { pool, name: image, current_snap: snap, pool_ns: ns, major: '252', minor: String(Number(id) * 16), client_addr: `127.0.0.1:0/${1000 + Number(id)}` };
      for (const [k, v] of Object.entries(attrs)) if (!(k === 'client_addr' && this.noClientAddr)) await writeFile(path.join(dir, k), `${v}\n`);
    } else if (file === path.join(this.root, 'remove_single_major')) {
      const [id] = data.split(' ');
      await rm(path.join(this.root, 'devices', id!), { recursive: true });
    } else {
      throw new Error(`unexpected write to ${file}`);
    }
  };
}

describe('KrbdMapper on a fake /sys/bus/rbd', () => {
  let dir: string;
  let bus: FakeRbdBus;
  let mapper: KrbdMapper;
  const target = { tenant: 't1', volume: 'v1', pool: 'rbd', image: 't1.v1' };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'krbd-test-'));
    bus = new FakeRbdBus(path.join(dir, 'sys'));
    await bus.init();
    mapper = new KrbdMapper({
      root: path.join(dir, 'state'),
      ceph: { clientId: 'admin' },
      cluster: { clusterInfo: async () => ({ monAddresses: ['127.0.0.1:6789'] }) },
      write: bus.write,
      sysfs: bus.root,
      secret: KEY,
    });
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('maps: writes the add line, finds /dev/rbdN and its client address, keeps a note', async () => {
    const mapping = await mapper.map(target);
    expect(bus.lines).toEqual([{ file: 'add_single_major', data: `127.0.0.1:6789 name=admin,secret=${KEY},noshare rbd t1.v1 -` }]);
    expect(mapping).toEqual({ ...target, kind: 'krbd', device: '/dev/rbd0', clientAddress: '127.0.0.1:0/1000', krbdId: '0' });
    expect(await mapper.discover()).toEqual([mapping]);
  });

  it('tells apart a second mapping of another image', async () => {
    await mapper.map(target);
    const other = await mapper.map({ ...target, volume: 'v2', image: 't1.v2' });
    expect(other).toMatchObject({ device: '/dev/rbd1', krbdId: '1' });
    expect((await listKrbdDevices(bus.root)).map((d) => [d.id, d.image, d.major, d.minor])).toEqual([
      ['0', 't1.v1', 252, 0],
      ['1', 't1.v2', 252, 16],
    ]);
    expect(await findKrbdDevices({ pool: 'rbd', image: 't1.v2' }, bus.root)).toHaveLength(1);
  });

  it('unmaps: writes the id to remove_single_major and forgets the note; twice is fine', async () => {
    const mapping = await mapper.map(target);
    await mapper.unmap(mapping);
    expect(bus.lines.at(-1)).toEqual({ file: 'remove_single_major', data: '0' });
    expect(await readdir(path.join(bus.root, 'devices'))).toEqual([]);
    expect(await mapper.discover()).toEqual([]);
    await mapper.unmap(mapping);
    expect(bus.lines.filter((l) => l.file === 'remove_single_major')).toHaveLength(1);
  });

  it('discovers a mapping the kernel lost as a half-made one (device null)', async () => {
    const mapping = await mapper.map(target);
    await rm(path.join(bus.root, 'devices', '0'), { recursive: true });
    expect(await mapper.discover()).toEqual([{ ...mapping, device: null }]);
  });

  it('does not touch a device that now maps another image under the same id', async () => {
    const mapping = await mapper.map(target);
    await writeFile(path.join(bus.root, 'devices', '0', 'name'), 'someone-else\n');
    await mapper.unmap(mapping);
    expect(bus.lines.filter((l) => l.file === 'remove_single_major')).toEqual([]);
  });

  it('leaves nothing behind when the kernel refuses the add', async () => {
    bus.failAdd = Object.assign(new Error('write: No such file or directory (ENOENT)'), { code: 'ENOENT' });
    await expect(mapper.map(target)).rejects.toThrow(/ENOENT/);
    expect(await mapper.discover()).toEqual([]);
  });

  it('refuses a device whose client address the kernel does not show: unmapped, no note (issue 12, rule 3)', async () => {
    bus.noClientAddr = true;
    await expect(mapper.map(target)).rejects.toThrow(/no client_addr for \/dev\/rbd0 .* no other host could fence it: unmapped it/);
    expect(bus.lines.at(-1)).toEqual({ file: 'remove_single_major', data: '0' });
    expect(await readdir(path.join(bus.root, 'devices'))).toEqual([]);
    expect(await mapper.discover()).toEqual([]);
  });

  it('stopIo removes the device by force; unmap then only drops the note', async () => {
    const mapping = await mapper.map(target);
    expect(await mapper.isMapped(mapping)).toBe(true);
    await mapper.stopIo(mapping);
    expect(bus.lines.at(-1)).toEqual({ file: 'remove_single_major', data: '0 force' });
    expect(await mapper.isMapped(mapping)).toBe(false);
    await mapper.unmap(mapping);
    expect(bus.lines.filter((l) => l.file === 'remove_single_major')).toHaveLength(1);
    expect(await mapper.discover()).toEqual([]);
  });

  it('isMapped is false once the id maps another image (a device is never reused blindly)', async () => {
    const mapping = await mapper.map(target);
    await writeFile(path.join(bus.root, 'devices', '0', 'name'), 'someone-else\n');
    expect(await mapper.isMapped(mapping)).toBe(false);
  });

  it('reads the secret from the keyring that ceph.conf names', async () => {
    const conf = path.join(dir, 'ceph.conf');
    const keyring = path.join(dir, 'client.keyring');
    await writeFile(conf, `[global]\nkeyring = ${keyring}\n`);
    await writeFile(keyring, `[client.vp]\n\tkey = ${KEY}\n`);
    const m = new KrbdMapper({
      root: path.join(dir, 'state2'),
      ceph: { confPath: conf, clientId: 'vp' },
      cluster: { clusterInfo: async () => ({ monAddresses: ['127.0.0.1:6789'] }) },
      write: bus.write,
      sysfs: bus.root,
    });
    expect(await m.secret()).toBe(KEY);
    await m.map(target);
    expect(bus.lines.at(-1)!.data).toBe(`127.0.0.1:6789 name=vp,secret=${KEY},noshare rbd t1.v1 -`);
    expect(JSON.parse(await readFile(path.join(dir, 'state2', 't1', 'v1.json'), 'utf8'))).toMatchObject({ krbdId: '0' });
  });
});
