// Leak check of the native addon under valgrind (docs/storage.md, "The native addon"): every
// operation, failures included, N rounds, on a real cluster; then close() (or, with NO_CLOSE=1,
// the exit handler instead).
//
//   CEPH_CONF=... N=3 valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
//     --errors-for-leak-kinds=definite node --jitless test/leak/native-leak.mjs
//
// Expected: "definitely lost: 0", "indirectly lost: 0", no invalid reads or writes; the one
// "possibly lost" block of 304 bytes is Node's inspector thread stack, not the addon's.
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const addon = createRequire(import.meta.url)(path.resolve(import.meta.dirname, '../../build/Release/volplugin_rbd.node'));
class RbdError extends Error {
  constructor(f) {
    super(`${f.op}: ${f.detail}`);
    Object.assign(this, f);
  }
}
addon.init(RbdError);

const P = process.env.POOL ?? 'rbd';
const N = Number(process.env.N ?? 3);
const img = `leak-${process.pid}`;
const D = `/tmp/native-leak-${process.pid}`;
mkdirSync(D, { recursive: true });
const fail = (p) => p.catch(() => {});
const c = new addon.Cluster({ threads: 8 });
await c.connect(process.env.CEPH_CONF, null, null, { rbd_blocklist_on_break_lock: 'false' });
await c.createImage(P, img, 16 << 20, 1 | 4 | 8 | 16, 22, null);
await c.createImage(P, `${img}-b`, 1 << 20, 1 | 4, 22, null);
await c.createSnapshot(P, img, 'a');
for (let i = 0; i < N; i++) {
  // The first round of operations (images, snapshots, locks, metadata, cluster).
  await Promise.all([
    c.imageInfo(P, img), c.listImages(P), c.imageExists(P, img), c.listWatchers(P, img), c.listLocks(P, img),
    c.getMetadata(P, img), c.listSnapshots(P, img), c.fsid(), fail(c.imageInfo(P, `${img}-x`)),
    fail(c.removeSnapshot(P, img, 'nope')), fail(c.createImage('nopool', 'x', 1, 1, 22, null)),
  ]);
  await c.setMetadata(P, img, `k${i}`, 'v');
  await c.addLock(P, img, `ck${i}`, '', true);
  await c.breakLock(P, img, (await c.listLocks(P, img)).lockers[0].owner, `ck${i}`);
  await c.removeMetadata(P, img, `k${i}`);
  await c.protectSnapshot(P, img, 'a');
  await c.cloneSnapshot(P, img, 'a', P, `${img}-c${i}`, null, 21, null);
  await c.listChildren(P, img, 'a');
  await c.flattenImage(P, `${img}-c${i}`);
  await c.removeImage(P, `${img}-c${i}`);
  await c.unprotectSnapshot(P, img, 'a');
  // Diffs: export (path, whole-object, progress, EEXIST, ENOENT, cancelled), inspect, apply.
  await c.createSnapshot(P, img, `s${i}`);
  await c.exportDiff(P, img, 'a', `s${i}`, `${D}/d${i}`, i % 2 === 1, () => {});
  await fail(c.exportDiff(P, img, 'a', `s${i}`, `${D}/d${i}`, false, null));
  await fail(c.exportDiff(P, img, 'nope', `s${i}`, `${D}/x${i}`, false, null));
  await fail(c.exportDiff(P, img, null, `s${i}`, `${D}/c${i}`, false, () => false));
  await c.inspectDiff(`${D}/d${i}`);
  await fail(c.inspectDiff(`${D}/missing`));
  await fail(c.applyDiff(P, `${img}-b`, `${D}/d${i}`, () => {}));
  // Groups.
  await c.createGroup(P, `g${i}`);
  await c.addGroupImage(P, `g${i}`, P, `${img}-b`);
  await c.listGroupImages(P, `g${i}`);
  await c.createGroupSnapshot(P, `g${i}`, 'gs');
  await c.listGroupSnapshots(P, `g${i}`);
  await fail(c.createGroupSnapshot(P, `g${i}`, 'gs'));
  await c.rollbackGroupSnapshot(P, `g${i}`, 'gs', () => {});
  await fail(c.rollbackGroupSnapshot(P, `g${i}`, 'nope', null));
  const [part] = await c.listMemberSnapshots(P, `${img}-b`);
  await c.copySnapshot(P, `${img}-b`, part.id, P, `${img}-c${i}`, null, null, null, () => {});
  await fail(c.copySnapshot(P, `${img}-b`, 999999, P, `${img}-d${i}`, null, null, null, null));
  await fail(c.copySnapshot(P, `${img}-b`, part.id, P, `${img}-c${i}`, null, null, null, null));
  await c.removeImage(P, `${img}-c${i}`);
  await c.listGroups(P);
  await c.removeGroup(P, `g${i}`);
  c.threadStats();
}
for (let i = 0; i < N; i++) await c.removeSnapshot(P, img, `s${i}`);
await c.removeSnapshot(P, img, 'a');
await c.resizeImage(P, img, 32 << 20, false);
await c.monCommand(JSON.stringify({ prefix: 'mon dump', format: 'json' }));
await c.removeImage(P, img);
await c.removeImage(P, `${img}-b`);
console.log(c.stats(), c.threadStats().completed); // { pending: 0, openImages: 0, pools: 1 }
if (!process.env.NO_CLOSE) await c.close();
rmSync(D, { recursive: true, force: true });
