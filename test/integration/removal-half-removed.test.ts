// An image a removal left half-removed (listed in the pool's directory, its header object gone:
// librbd's remove died between the two, as a volmaster killed mid-remove does; found by the chaos
// suite's master-mid-remove) is removed by the next removal: librbd's rbd_remove clears what is
// left, so a missing header is no reason to stop. On the real cluster (the CLI and native backends).
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeRemoval } from '../../src/master/removal.js';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import { openStorage } from '../../src/storage/index.js';
import type { BackendKind } from '../../src/storage/types.js';
import { repoRoot } from '../helpers/sandbox.js';

const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const backends: BackendKind[] = existsSync(path.join(repoRoot, 'build/Release/volplugin_rbd.node')) ? ['native', 'cli'] : ['cli'];

describe('removing a half-removed image', () => {
  let kv: EtcdKV;
  let store: StateStore;
  const listed = async () => (await execa('rbd', ['ls', pool], { timeout: 60_000 })).stdout.split('\n');

  beforeAll(() => {
    kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
    store = new StateStore(kv, { prefix: `/it-removal-${randomUUID().slice(0, 8)}` });
  });

  afterAll(async () => {
    await kv.close();
  });

  for (const kind of backends) {
    it(`${kind}: an image without its header goes from the pool's listing`, async () => {
      const storage = await openStorage(kind, { confPath: process.env.CEPH_CONF });
      const image = `half-${kind}-${randomUUID().slice(0, 8)}`;
      try {
        await storage.createImage(pool, image, { size: 4 * 1024 * 1024 });
        const id = (JSON.parse((await execa('rbd', ['info', '--format', 'json', `${pool}/${image}`], { timeout: 60_000 })).stdout) as { id: string }).id;
        await execa('rados', ['-p', pool, 'rm', `rbd_header.${id}`], { timeout: 60_000 });
        expect(await listed()).toContain(image);
        await new VolumeRemoval({ store, storage, lockTtlSeconds: 10 }).destroyImage(pool, image);
        expect(await listed()).not.toContain(image);
        await new VolumeRemoval({ store, storage, lockTtlSeconds: 10 }).destroyImage(pool, image); // gone: nothing to do
      } finally {
        await execa('rbd', ['rm', '--no-progress', `${pool}/${image}`], { reject: false, timeout: 60_000 });
        await storage.close();
      }
    }, 120_000);
  }
});
