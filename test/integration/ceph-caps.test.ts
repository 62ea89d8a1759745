// Each component's own cephx key (scripts/sandbox.sh makes them; docs/security.md lists the caps):
// volplugin's does what a Docker host needs (map through rbd-fuse, image metadata, QoS, watchers,
// fence a client) and nothing beyond: no pool created or deleted, no other pool read, no caps
// changed, no blocklist entry removed. volmaster's makes and removes images but fences no one.
// (Every plugin test runs volplugin and volmaster with these keys: test/helpers/plugin-harness.ts.)
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FuseMapper } from '../../src/mapper/fuse.js';
import { openStorage, type Storage } from '../../src/storage/index.js';
import { blocklisted, ceph, cephConf, createImage, leftoversBelow, rbd, removeImage, testPool } from '../helpers/plugin-ceph.js';
import { testBackend, testRoot } from '../helpers/sandbox.js';

const exec = promisify(execFile);
const id = randomBytes(4).toString('hex');
const pool = testPool();
const other = `other-${id}`;
const image = `caps-${id}`;
const keyring = (component: string) => path.join(path.dirname(cephConf()), `ceph.client.${component}.keyring`);

/** The ceph CLI as `component`: its exit code and stderr (13 is EACCES). */
async function cephAs(component: string, ...args: string[]): Promise<{ code: number; stderr: string }> {
  return exec('ceph', ['-c', cephConf(), '--id', component, '--keyring', keyring(component), ...args], { timeout: 60_000 }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
}

const errnoOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? String(e));

let asPlugin: Storage;
let asMaster: Storage;

beforeAll(async () => {
  asPlugin = await openStorage(testBackend as 'native' | 'cli', { confPath: cephConf(), clientId: 'volplugin', keyring: keyring('volplugin') });
  asMaster = await openStorage(testBackend as 'native' | 'cli', { confPath: cephConf(), clientId: 'volmaster', keyring: keyring('volmaster') });
  await createImage(pool, image, 16);
  // A pool none of the volplugin keys is given, with an image in it.
  await ceph('osd', 'pool', 'create', other, '8', '8');
  await rbd('pool', 'init', other);
  await createImage(other, 'secret', 8);
}, 120_000);

afterAll(async () => {
  await asPlugin?.close();
  await asMaster?.close();
  await removeImage(pool, image);
  await ceph('osd', 'pool', 'rm', other, other, '--yes-i-really-really-mean-it').catch(() => undefined);
});

describe('the cephx keys of the components', () => {
  it('have exactly the caps docs/security.md lists', async () => {
    const caps = async (component: string) => (JSON.parse(await ceph('auth', 'get', `client.${component}`, '--format', 'json')) as Array<{ caps: Record<string, string> }>)[0]!.caps;
    expect(await caps('volplugin')).toEqual({ mon: 'profile rbd', osd: `profile rbd pool=${pool}` });
    expect(await caps('volmaster')).toEqual({ mon: 'allow r', osd: `profile rbd pool=${pool}` });
    expect(await caps('volsupervisor')).toEqual({ mon: 'allow r', osd: `profile rbd pool=${pool}` });
  });

  it("volplugin's key maps an image through rbd-fuse, writes and reads it, sets metadata and QoS, and fences a client", async () => {
    const root = path.join(testRoot, `ceph-caps-${id}`);
    const mapper = new FuseMapper({ root, ceph: { confPath: cephConf(), clientId: 'volplugin', keyring: keyring('volplugin') }, watchers: asPlugin });
    const mapping = await mapper.map({ tenant: 'caps', volume: id, pool, image });
    try {
      expect(mapping.device).toMatch(/^\/dev\/loop\d+$/);
      await exec('dd', ['if=/dev/urandom', `of=${mapping.device!}`, 'bs=4k', 'count=4', 'oflag=direct'], { timeout: 30_000 });
      await exec('dd', [`if=${mapping.device!}`, 'of=/dev/null', 'bs=4k', 'count=4', 'iflag=direct'], { timeout: 30_000 });
      expect((await asPlugin.listWatchers(pool, image)).map((w) => w.address)).toContain(mapping.clientAddress);
    } finally {
      await mapper.unmap(mapping);
    }
    expect(await leftoversBelow(root)).toEqual([]);
    await asPlugin.setMetadata(pool, image, 'volplugin.holder', 'caps-test');
    expect((await asPlugin.getMetadata(pool, image))['volplugin.holder']).toBe('caps-test');
    await asPlugin.removeMetadata(pool, image, 'volplugin.holder');
    await asPlugin.setQos(pool, image, { writeIops: 100 });
    const fenced = `127.0.0.1:0/${Date.now() % 1e9}`;
    await asPlugin.blocklistAdd(fenced, 2);
    expect(await blocklisted(fenced)).toBe(true);
  });

  it("volplugin's key deletes no pool, makes none, reads no other pool, changes no caps and lifts no fence", async () => {
    const denied = /EACCES|access denied/;
    for (const args of [
      ['osd', 'pool', 'rm', pool, pool, '--yes-i-really-really-mean-it'],
      ['osd', 'pool', 'rm', other, other, '--yes-i-really-really-mean-it'],
      ['osd', 'pool', 'create', `evil-${id}`, '8'],
      ['auth', 'get-or-create', `client.evil-${id}`, 'mon', 'allow *'],
      ['auth', 'get', 'client.admin'],
      ['osd', 'blocklist', 'rm', '127.0.0.1:0/1'],
      ['osd', 'blocklist', 'add', '127.0.0.1:0'], // a whole host, not one client
      ['config', 'set', 'global', 'mon_allow_pool_delete', 'false'],
    ]) {
      const result = await cephAs('volplugin', ...args);
      expect({ args, code: result.code }).toEqual({ args, code: 13 });
      expect(result.stderr).toMatch(denied);
    }
    expect(JSON.parse(await ceph('osd', 'pool', 'ls', '--format', 'json'))).toEqual(expect.arrayContaining([pool, other]));
    expect(await errnoOf(asPlugin.listImages(other))).toBe('EPERM');
    expect(await errnoOf(asPlugin.imageInfo(other, 'secret'))).toBe('EPERM');
    expect(await errnoOf(asPlugin.removeImage(other, 'secret'))).toBe('EPERM');
    expect(await errnoOf(asPlugin.createImage(other, `x-${id}`, { size: 8 << 20 }))).toBe('EPERM');
    expect(await errnoOf(asPlugin.blocklistRemove('127.0.0.1:0/1'))).toBe('EACCES');
    expect(JSON.parse(await rbd('ls', '--format', 'json', other))).toEqual(['secret']);
  });

  it("volmaster's key makes, snapshots and removes images in its pool but fences no one and touches no other pool", async () => {
    const name = `m-${id}`;
    await asMaster.createImage(pool, name, { size: 8 << 20 });
    await asMaster.createSnapshot(pool, name, 's1');
    await asMaster.removeSnapshot(pool, name, 's1');
    await asMaster.removeImage(pool, name);
    expect(await errnoOf(asMaster.blocklistAdd(`127.0.0.1:0/${Date.now() % 1e9}`, 2))).toBe('EACCES');
    expect(await errnoOf(asMaster.listImages(other))).toBe('EPERM');
    expect((await cephAs('volmaster', 'osd', 'pool', 'rm', other, other, '--yes-i-really-really-mean-it')).code).toBe(13);
  });
});
