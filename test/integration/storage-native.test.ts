// What only the native backend has: a leak counter over many calls, the addon's behaviour when
// garbage collected or when the process exits with a connection still open (the environment
// cleanup hook), the advice it gives when it cannot load, and its sysfs/cgroup writer's errors.
// Child processes run the scenarios that end a process.

import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RbdError } from '../../src/storage/errors.js';
import { openStorage, writeSysfsFile } from '../../src/storage/index.js';
import { addonCandidates } from '../../src/storage/native.js';
import type { Storage } from '../../src/storage/types.js';
import { waitFor } from '../helpers/plugin-harness.js';

const CONF = process.env.CEPH_CONF;
if (!CONF) throw new Error('CEPH_CONF is not set: this suite needs a real cluster (test/helpers/global-setup.ts starts one)');
const POOL = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const REPO = path.resolve(import.meta.dirname, '../..');
const ADDON = addonCandidates().find((f) => existsSync(f)) ?? path.join(REPO, 'build/Release/volplugin_rbd.node');
const MiB = 1 << 20;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'storage-native-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs an ES module script with node (plain JS using the built addon directly). */
async function runScript(name: string, source: string, options: { env?: Record<string, string>; nodeArgs?: string[] } = {}) {
  const file = path.join(dir, name);
  await writeFile(file, source);
  const started = Date.now();
  const result = await execa('node', [...(options.nodeArgs ?? []), file], {
    reject: false,
    timeout: 60_000,
    env: { CEPH_CONF: CONF!, ADDON, POOL, ...options.env },
    cwd: REPO,
  });
  return { ...result, ms: Date.now() - started };
}

// The raw addon's interface, with a stand-in error class (the scripts are plain JS).
const PRELUDE = `
import { createRequire } from 'node:module';
const addon = createRequire(import.meta.url)(process.env.ADDON);
class RbdError extends Error { constructor(f) { super(f.op + ': ' + f.detail); Object.assign(this, f); } }
addon.init(RbdError);
const POOL = process.env.POOL;
`;

describe('native backend: handles and counters', () => {
  let s: Storage;
  const name = `nat-leak-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    s = await openStorage('native', { confPath: CONF });
    await s.createImage(POOL, name, { size: MiB });
  });

  afterAll(async () => {
    await s.removeImage(POOL, name).catch(() => undefined);
    await s.close();
  });

  it('1 runs 500 calls (a fifth of them failing) and ends with no handle open and nothing pending', async () => {
    const calls: Promise<unknown>[] = [];
    let peakOpen = 0;
    for (let i = 0; i < 500; i++) {
      const op = i % 5;
      if (op === 0) calls.push(s.imageInfo(POOL, name));
      else if (op === 1) calls.push(s.listWatchers(POOL, name));
      else if (op === 2) calls.push(s.getMetadata(POOL, name));
      else if (op === 3) calls.push(s.listLocks(POOL, name));
      else calls.push(s.imageInfo(POOL, `${name}-missing-${i}`).catch((err: unknown) => err));
      if (i % 50 === 0) peakOpen = Math.max(peakOpen, s.stats().openImages);
    }
    expect(s.stats().pending).toBe(500);
    const results = await Promise.all(calls);
    expect(results.filter((r) => r instanceof RbdError)).toHaveLength(100);
    // A worker thread counts itself idle just after it hands its result over: on a loaded machine
    // the last call's promise can settle a moment before that (the counts are for metrics).
    await waitFor('the addon threads to be idle', async () => s.stats().running === 0, 5_000, 10);
    expect(s.stats()).toEqual({ pending: 0, running: 0, queued: 0, openImages: 0, pools: 1 });
  });

  it('2 holds an image handle only while an operation runs (never more than the calls in flight)', async () => {
    let seen = 0;
    const poll = setInterval(() => {
      seen = Math.max(seen, s.stats().openImages);
    }, 1);
    await Promise.all(Array.from({ length: 64 }, () => s.imageInfo(POOL, name)));
    clearInterval(poll);
    // The addon's own threads (native-pool.test.ts bounds them with the `threads` option).
    expect(seen).toBeLessThanOrEqual(64);
    expect(s.stats().openImages).toBe(0);
  });
});

describe('native backend: lifecycle', () => {
  it('3 a process that ends with a connection still open exits cleanly (cleanup hook)', async () => {
    const r = await runScript(
      'open-and-leave.mjs',
      `${PRELUDE}
const c = new addon.Cluster();
await c.connect(process.env.CEPH_CONF, null, null, {});
console.log(JSON.stringify(await c.listImages(POOL)).length > 0);
// no close(): the environment's cleanup hook shuts the connection down
`,
    );
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe('true');
    expect(r.ms).toBeLessThan(30_000);
  });

  it('4 process.exit() with 32 calls still running neither crashes nor hangs', async () => {
    const r = await runScript(
      'exit-while-busy.mjs',
      `${PRELUDE}
const c = new addon.Cluster();
await c.connect(process.env.CEPH_CONF, null, null, {});
for (let i = 0; i < 32; i++) c.listImages(POOL).catch(() => {});
process.exit(0);
`,
    );
    expect(r.signal).toBeUndefined();
    expect(r.exitCode).toBe(0);
    expect(r.ms).toBeLessThan(30_000);
  });

  it('5 a garbage-collected connection is shut down; close() after close() and calls after it behave', async () => {
    const r = await runScript(
      'gc.mjs',
      `${PRELUDE}
for (let i = 0; i < 3; i++) {
  let c = new addon.Cluster();
  await c.connect(process.env.CEPH_CONF, null, null, {});
  await c.listImages(POOL);
  c = null;
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 50));
}
const c = new addon.Cluster();
await c.connect(process.env.CEPH_CONF, null, null, {});
const pending = [c.listImages(POOL), c.fsid()];
const closing = [c.close(), c.close()];
console.log(c.stats().pending);
await Promise.all(pending);
await Promise.all(closing);
await c.close();
const err = await c.listImages(POOL).catch((e) => e);
console.log(err.code === undefined ? err.errno : err.errno, c.stats().pending, c.stats().openImages, c.stats().pools);
const again = await c.connect(process.env.CEPH_CONF, null, null, {}).catch((e) => e.errno);
console.log(again);
`,
      { nodeArgs: ['--expose-gc'] },
    );
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    // 2 calls pending when close() is called; then ENOTCONN, every counter 0, and a closed
    // connection cannot be reopened (ENOTCONN).
    expect(r.stdout.trim().split('\n')).toEqual(['2', '-107 0 0 0', '-107']);
  });

  it('6 a failed connect (no such ceph.conf) leaves a connection that closes', async () => {
    const r = await runScript(
      'bad-connect.mjs',
      `${PRELUDE}
const c = new addon.Cluster();
const err = await c.connect('/nonexistent/ceph.conf', null, null, {}).catch((e) => e);
console.log(err.op, err.errno);
await c.close();
await c.close();
console.log(c.stats().pending);
`,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['rados_conf_read_file -2', '0']);
  });

  it('7 when the addon cannot load, the error says how to build it or to use the CLI backend', async () => {
    await writeFile(
      path.join(dir, 'load.mts'),
      `import { openStorage } from ${JSON.stringify(path.join(REPO, 'src/storage/index.ts'))};
try { await openStorage('native', {}); console.log('loaded?'); } catch (err) { console.log(err.name, err.code); console.log(err.message); }
`,
    );
    const out = await execa('node', ['--import', 'tsx', path.join(dir, 'load.mts')], {
      reject: false,
      cwd: REPO,
      env: { VOLPLUGIN_RBD_ADDON: path.join(dir, 'missing.node') },
      timeout: 60_000,
    });
    const [first, message] = out.stdout.trim().split('\n');
    expect(first).toBe('AddonLoadError ERR_RBD_ADDON_LOAD');
    expect(message).toMatch(/native RBD addon is not built/);
    expect(message).toMatch(/pnpm run build:native/);
    expect(message).toMatch(/--backend cli/);
  });
});

describe('native backend: sysfs/cgroup writer', () => {
  it('8 reports a file that is not there as ENOENT from open(2), naming the path', async () => {
    const file = path.join(dir, 'no', 'such', 'file');
    const err = await writeSysfsFile(file, 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RbdError);
    expect(err).toMatchObject({ code: 'ENOENT', op: 'open' });
    expect((err as RbdError).message).toContain(file);
    expect((err as RbdError).stack).toContain('storage-native.test.ts');
  });

  it('9 writes a whole string with one write(2) (an ordinary file stands in here)', async () => {
    const file = path.join(dir, 'target');
    await writeFile(file, '');
    await writeSysfsFile(file, '252:16 100');
    expect(await readFile(file, 'utf8')).toBe('252:16 100');
  });
});
