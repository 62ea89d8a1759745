// The addon's `rbd export-diff` streams (native/diff_ops.cc) against the real `rbd` tool on the
// test cluster: what the addon writes, `rbd import-diff` reads back to the same bytes; what
// `rbd export-diff` writes, the addon applies to the same bytes; corrupt or truncated streams are
// refused without touching the target's snapshots (nor, from a file, its data).
//
// The source image is built with `rbd import-diff` of streams made here (test/helpers/rbd-diff.ts),
// so its contents are known: data, zeros written as data, whole objects and partial ranges zeroed,
// a new object, and a shrink that drops the image's tail.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Addon from '../../native/volplugin_rbd.js';
import { RbdError } from '../../src/storage/errors.js';
import { addonCandidates } from '../../src/storage/native.js';
import { diffStream, imageDigest, random, rbd, rbdImportDiff, userSnaps } from '../helpers/rbd-diff.js';

const CONF = process.env.CEPH_CONF;
if (!CONF) throw new Error('CEPH_CONF is not set: this suite needs a real cluster (test/helpers/global-setup.ts starts one)');
const POOL = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const REPO = path.resolve(import.meta.dirname, '../..');
const ADDON = addonCandidates().find((f) => existsSync(f)) ?? path.join(REPO, 'build/Release/volplugin_rbd.node');
const addon = createRequire(import.meta.url)(ADDON) as typeof Addon;
addon.init(RbdError);

const MiB = 1 << 20;
const SIZE = 64 * MiB;
const tag = `${process.pid}-${Date.now().toString(36)}`;
const SRC = `diff-src-${tag}`;
const made: string[] = [];

let c: Addon.Cluster;
let dir: string;
const digests: Record<string, string> = {};

/** A fresh image in the test pool, removed (with its snapshots) after the suite. */
async function freshImage(name: string, size = MiB, features = 'layering,exclusive-lock'): Promise<string> {
  await rbd('create', '--size', `${size / MiB}M`, '--image-feature', features, `${POOL}/${name}`);
  made.push(name);
  return name;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'native-diff-'));
  c = new addon.Cluster();
  await c.connect(CONF, null, null, {});
  await freshImage(SRC, MiB, 'layering,exclusive-lock,object-map,fast-diff');
  // s1: data, a whole object, a small unaligned write, zeros written as data.
  await rbdImportDiff(
    diffStream({
      to: 's1',
      size: SIZE,
      records: [{ w: [0, random(MiB)] }, { w: [8 * MiB, random(4 * MiB)] }, { w: [20 * MiB + 12345, random(100_000)] }, { w: [30 * MiB, Buffer.alloc(65536)] }],
    }),
    `${POOL}/${SRC}`,
  );
  // s2: an overwrite, a whole object zeroed (deallocated), part of one zeroed, a new object.
  await rbdImportDiff(
    diffStream({
      from: 's1',
      to: 's2',
      size: SIZE,
      records: [{ w: [512 * 1024, random(4096)] }, { z: [8 * MiB, 4 * MiB] }, { z: [20 * MiB + 20000, 50_000] }, { w: [40 * MiB, random(2 * MiB)] }, { w: [60 * MiB, random(MiB)] }],
    }),
    `${POOL}/${SRC}`,
  );
  // s3: shrunk to 56 MiB (the data at 60 MiB goes), then grown back, and one more write.
  await rbd('resize', '--no-progress', '--allow-shrink', '--size', '56M', `${POOL}/${SRC}`);
  await rbd('resize', '--no-progress', '--size', '64M', `${POOL}/${SRC}`);
  await rbdImportDiff(diffStream({ size: SIZE, records: [{ w: [3 * MiB, random(8192)] }] }), `${POOL}/${SRC}`);
  await rbd('snap', 'create', `${POOL}/${SRC}@s3`);
  for (const s of ['s1', 's2', 's3']) digests[s] = await imageDigest(`${POOL}/${SRC}@${s}`);
}, 180_000);

afterAll(async () => {
  for (const name of made) {
    await rbd('snap', 'purge', '--no-progress', `${POOL}/${name}`).catch(() => undefined);
    await rbd('rm', '--no-progress', `${POOL}/${name}`).catch(() => undefined);
  }
  await c?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('native exportDiff / applyDiff', () => {
  it('1 a chain written by the addon, imported with the real `rbd import-diff`, gives the source snapshots’ bytes', async () => {
    const files = [path.join(dir, 'a-full-s1'), path.join(dir, 'a-s1-s2'), path.join(dir, 'a-s2-s3')];
    const r1 = await c.exportDiff(POOL, SRC, null, 's1', files[0]!, false, null);
    const r2 = await c.exportDiff(POOL, SRC, 's1', 's2', files[1]!, false, null);
    const r3 = await c.exportDiff(POOL, SRC, 's2', 's3', files[2]!, false, null);
    expect(r1).toMatchObject({ fromSnapshot: null, toSnapshot: 's1', size: SIZE, wholeObject: false });
    expect(r2).toMatchObject({ fromSnapshot: 's1', toSnapshot: 's2', size: SIZE });
    // The zeroed ranges travel as 'z' records, not as data.
    expect(r2.zeroBytes).toBeGreaterThanOrEqual(4 * MiB + 50_000);
    expect(r2.dataBytes).toBeLessThan(4 * MiB);
    expect(r3.zeroRecords).toBeGreaterThan(0); // the tail dropped by the shrink
    for (const [i, r] of [r1, r2, r3].entries()) expect((await stat(files[i]!)).size).toBe(r.streamBytes);
    expect((await stat(files[0]!)).mode & 0o777).toBe(0o600);

    const dst = await freshImage(`diff-dst-a-${tag}`);
    for (const f of files) await rbd('import-diff', '--no-progress', f, `${POOL}/${dst}`);
    expect(await userSnaps(`${POOL}/${dst}`)).toEqual(['s1', 's2', 's3']);
    for (const s of ['s1', 's2', 's3']) expect(await imageDigest(`${POOL}/${dst}@${s}`)).toBe(digests[s]);
  });

  it('2 a chain made by the real `rbd export-diff` applies with the addon, snapshot by snapshot', async () => {
    const files = [path.join(dir, 'c-full-s1'), path.join(dir, 'c-s1-s2'), path.join(dir, 'c-s2-s3')];
    await rbd('export-diff', '--no-progress', `${POOL}/${SRC}@s1`, files[0]!);
    await rbd('export-diff', '--no-progress', '--from-snap', 's1', `${POOL}/${SRC}@s2`, files[1]!);
    await rbd('export-diff', '--no-progress', '--from-snap', 's2', `${POOL}/${SRC}@s3`, files[2]!);
    const dst = await freshImage(`diff-dst-c-${tag}`);
    const applied = [];
    for (const f of files) applied.push(await c.applyDiff(POOL, dst, f, null));
    expect(applied.map((a) => [a.fromSnapshot, a.toSnapshot])).toEqual([
      [null, 's1'],
      ['s1', 's2'],
      ['s2', 's3'],
    ]);
    expect(applied[0]!.streamBytes).toBe((await stat(files[0]!)).size);
    expect(await userSnaps(`${POOL}/${dst}`)).toEqual(['s1', 's2', 's3']);
    for (const s of ['s1', 's2', 's3']) expect(await imageDigest(`${POOL}/${dst}@${s}`)).toBe(digests[s]);
    expect(await imageDigest(`${POOL}/${dst}`)).toBe(digests.s3);
    expect(c.stats()).toMatchObject({ openImages: 0 });
  });

  it('3 streams through a pipe: the addon writes into `rbd import-diff -` as it goes', async () => {
    const dst = await freshImage(`diff-dst-p-${tag}`);
    const { readable, writable, fifo } = await pipe();
    const importer = execa('rbd', ['import-diff', '--no-progress', '-', `${POOL}/${dst}`], { stdin: { file: fifo } });
    try {
      const r = await c.exportDiff(POOL, SRC, null, 's2', writable.fd, false, null);
      expect(r.toSnapshot).toBe('s2');
    } finally {
      await writable.close();
      await readable.close();
    }
    await importer;
    expect(await imageDigest(`${POOL}/${dst}@s2`)).toBe(digests.s2);
  });

  it('4 reports progress up to the total, and a callback returning false cancels (ECANCELED, no file left)', async () => {
    const seen: Array<[number, number]> = [];
    const file = path.join(dir, 'progress');
    await c.exportDiff(POOL, SRC, null, 's2', file, false, (done, total) => {
      seen.push([done, total]);
    });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.at(-1)).toEqual([SIZE, SIZE]);
    for (const [done, total] of seen) expect(done).toBeLessThanOrEqual(total);

    const cancelled = path.join(dir, 'cancelled');
    const err = await c.exportDiff(POOL, SRC, null, 's2', cancelled, false, () => false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RbdError);
    expect(err).toMatchObject({ code: 'ECANCELED' });
    expect(existsSync(cancelled)).toBe(false);

    const applied: Array<[number, number]> = [];
    const dst = await freshImage(`diff-dst-g-${tag}`);
    await c.applyDiff(POOL, dst, file, (done, total) => {
      applied.push([done, total]);
    });
    const size = (await stat(file)).size;
    expect(applied.at(-1)).toEqual([size, size]);
  });

  it('5 whole-object diffs (fast-diff) carry whole objects and still restore the same bytes', async () => {
    const file = path.join(dir, 'whole-s1-s2');
    const r = await c.exportDiff(POOL, SRC, 's1', 's2', file, true, null);
    expect(r.wholeObject).toBe(true);
    const exact = await c.inspectDiff(path.join(dir, 'a-s1-s2'));
    expect(r.dataBytes).toBeGreaterThanOrEqual(exact.dataBytes);
    const dst = await freshImage(`diff-dst-w-${tag}`);
    await c.applyDiff(POOL, dst, path.join(dir, 'a-full-s1'), null);
    await c.applyDiff(POOL, dst, file, null);
    expect(await imageDigest(`${POOL}/${dst}@s2`)).toBe(digests.s2);
    // An image without fast-diff: the option is ignored (librbd would list every object anyway).
    const plain = await freshImage(`diff-plain-${tag}`);
    await rbd('snap', 'create', `${POOL}/${plain}@p1`);
    expect((await c.exportDiff(POOL, plain, null, 'p1', path.join(dir, 'plain'), true, null)).wholeObject).toBe(false);
  });

  it('6 inspectDiff reads a stream’s header and counts without touching an image', async () => {
    const s = await c.inspectDiff(path.join(dir, 'c-s1-s2'));
    expect(s).toMatchObject({ fromSnapshot: 's1', toSnapshot: 's2', size: SIZE });
    expect(s.streamBytes).toBe((await stat(path.join(dir, 'c-s1-s2'))).size);
    expect(s.zeroRecords).toBeGreaterThan(0);
    expect(s.writeRecords).toBeGreaterThan(0);
  });
});

describe('native applyDiff refuses bad streams and leaves the target as it was', () => {
  let target: string;
  let before: { snaps: string[]; digest: string; size: number };

  beforeAll(async () => {
    target = await freshImage(`diff-bad-${tag}`);
    await c.applyDiff(POOL, target, path.join(dir, 'a-full-s1'), null);
    before = await state();
  });

  async function state() {
    const info = await c.imageInfo(POOL, target);
    return { snaps: await userSnaps(`${POOL}/${target}`), digest: await imageDigest(`${POOL}/${target}`), size: info.size };
  }

  const good = () => diffStream({ from: 's1', to: 's2', size: 2 * SIZE, records: [{ w: [0, random(8192)] }, { z: [MiB, MiB] }] });
  const cases: Array<[string, () => Promise<Buffer>, RegExp]> = [
    ['a truncated file (cut inside a data record)', async () => good().subarray(0, 60), /truncated diff stream/],
    ['a stream without its end record', async () => good().subarray(0, good().length - 1), /no end record/],
    ['a file that is not a diff', async () => Buffer.from('hello, this is not a diff at all'), /not an rbd diff stream/],
    ['an unknown record tag', async () => Buffer.concat([good().subarray(0, good().length - 1), Buffer.from('q')]), /unknown record tag 'q'/],
    [
      'data beyond the image size',
      async () => diffStream({ from: 's1', to: 's2', size: MiB, records: [{ w: [MiB - 10, random(100)] }] }),
      /beyond the image size/,
    ],
    ['bytes after the end record', async () => Buffer.concat([good(), Buffer.from('xyz')]), /3 bytes after the end record/],
    ['a data record before the size', async () => Buffer.concat([Buffer.from('rbd diff v1\nz'), Buffer.alloc(16), Buffer.from('e')]), /before the size record/],
  ];

  for (const [i, [what, make, message]] of cases.entries()) {
    it(`7.${i + 1} refuses ${what} (EBADMSG) before changing anything`, async () => {
      const file = path.join(dir, `bad-${i}`);
      await writeFile(file, await make());
      const err = await c.applyDiff(POOL, target, file, null).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RbdError);
      expect(err).toMatchObject({ code: 'EBADMSG', op: 'rbd_diff_v1' });
      expect((err as RbdError).message).toMatch(message);
      expect((err as RbdError).message).toContain(file);
      expect(await state()).toEqual(before);
    });
  }

  it('8 refuses a v2 stream (from `rbd export --export-format 2`) as unsupported', async () => {
    const file = path.join(dir, 'v2');
    await writeFile(file, Buffer.from('rbd diff v2\ne'));
    await expect(c.applyDiff(POOL, target, file, null)).rejects.toMatchObject({ code: 'EPROTONOSUPPORT' });
    await expect(c.inspectDiff(file)).rejects.toMatchObject({ code: 'EPROTONOSUPPORT' });
  });

  it('9 refuses a diff whose start snapshot the target lacks (ENOENT) or whose end snapshot it has (EEXIST)', async () => {
    const missingStart = path.join(dir, 'from-s9');
    await writeFile(missingStart, diffStream({ from: 's9', to: 's10', size: SIZE, records: [{ w: [0, random(4096)] }] }));
    await expect(c.applyDiff(POOL, target, missingStart, null)).rejects.toMatchObject({ code: 'ENOENT', op: 'rbd_snap_exists', snapshot: 's9' });
    const existingEnd = path.join(dir, 'to-s1');
    await writeFile(existingEnd, diffStream({ to: 's1', size: 2 * SIZE, records: [{ w: [0, random(4096)] }] }));
    await expect(c.applyDiff(POOL, target, existingEnd, null)).rejects.toMatchObject({ code: 'EEXIST', snapshot: 's1' });
    expect(await state()).toEqual(before);
  });

  it('10 a truncated copy of a real `rbd export-diff` file is refused too', async () => {
    const file = path.join(dir, 'cut-c-s1-s2');
    await writeFile(file, await readFile(path.join(dir, 'c-s1-s2')));
    await truncate(file, (await stat(file)).size - 1000);
    await expect(c.applyDiff(POOL, target, file, null)).rejects.toMatchObject({ code: 'EBADMSG' });
    await expect(c.inspectDiff(file)).rejects.toMatchObject({ code: 'EBADMSG' });
    expect(await state()).toEqual(before);
  });

  it('11 from a pipe, a truncated stream is refused and no end snapshot is made', async () => {
    const { readable, writable } = await pipe();
    // The target's own size: nothing is resized before the cut is found.
    const stream = diffStream({ from: 's1', to: 's2', size: SIZE, records: [{ w: [0, random(8192)] }] }).subarray(0, 100);
    const writing = (async () => {
      await writable.write(stream);
      await writable.close();
    })();
    const err = await c.applyDiff(POOL, target, readable.fd, null).catch((e: unknown) => e);
    await writing;
    await readable.close();
    expect(err).toMatchObject({ code: 'EBADMSG' });
    expect((err as RbdError).message).toMatch(/truncated diff stream/);
    expect((err as RbdError).message).toMatch(/head may be partly written/);
    expect(await userSnaps(`${POOL}/${target}`)).toEqual(before.snaps);
  });
});

describe('native exportDiff errors', () => {
  it('12 never overwrites a file (EEXIST) and leaves none behind when the snapshot is missing (ENOENT)', async () => {
    const existing = path.join(dir, 'existing');
    await writeFile(existing, 'keep me');
    await expect(c.exportDiff(POOL, SRC, 's1', 's2', existing, false, null)).rejects.toMatchObject({ code: 'EEXIST', op: 'open' });
    expect(await readFile(existing, 'utf8')).toBe('keep me');
    const none = path.join(dir, 'none');
    await expect(c.exportDiff(POOL, SRC, 'nope', 's2', none, false, null)).rejects.toMatchObject({ code: 'ENOENT', snapshot: 'nope' });
    await expect(c.exportDiff(POOL, SRC, null, 'nope', none, false, null)).rejects.toMatchObject({ code: 'ENOENT', image: SRC });
    expect(existsSync(none)).toBe(false);
  });

  it('13 checks its arguments before queueing anything', () => {
    expect(() => c.exportDiff(POOL, SRC, null, 's1', -1, false, null)).toThrow(RangeError);
    expect(() => c.exportDiff(POOL, SRC, null, 's1', '', false, null)).toThrow(TypeError);
    expect(() => c.applyDiff(POOL, SRC, {} as unknown as string, null)).toThrow(TypeError);
    expect(() => c.applyDiff(POOL, SRC, 'x', 'nope' as unknown as null)).toThrow(TypeError);
  });
});

/** A pipe as two file handles (mkfifo in the test's directory, both ends opened without blocking on each other). */
async function pipe() {
  const { open } = await import('node:fs/promises');
  const fifo = path.join(dir, `fifo-${Math.random().toString(36).slice(2)}`);
  await new Promise<void>((resolve, reject) => execFile('mkfifo', [fifo], (err) => (err ? reject(err) : resolve())));
  // O_RDWR on a FIFO never blocks (Linux); the read end is then opened on its own and the RDWR handle used for writing.
  const writable = await open(fifo, 'r+');
  const readable = await open(fifo, 'r');
  return { readable, writable, fifo };
}
