// The addon's own threads (native/pool.h): calls run there, not on libuv's pool; the `threads`
// option bounds them; they end with the connection; pending calls keep the process alive and an
// idle connection does not. Scenarios that depend on the process's environment run in child
// processes with the raw addon.

import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Addon from '../../native/volplugin_rbd.js';
import { RbdError } from '../../src/storage/errors.js';
import { addonCandidates } from '../../src/storage/native.js';

const CONF = process.env.CEPH_CONF;
if (!CONF) throw new Error('CEPH_CONF is not set: this suite needs a real cluster (test/helpers/global-setup.ts starts one)');
const POOL = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const REPO = path.resolve(import.meta.dirname, '../..');
const ADDON = addonCandidates().find((f) => existsSync(f)) ?? path.join(REPO, 'build/Release/volplugin_rbd.node');
const addon = createRequire(import.meta.url)(ADDON) as typeof Addon;
addon.init(RbdError);

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'native-pool-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const PRELUDE = `
import { createRequire } from 'node:module';
const addon = createRequire(import.meta.url)(process.env.ADDON);
class RbdError extends Error { constructor(f) { super(f.op + ': ' + f.detail); Object.assign(this, f); } }
addon.init(RbdError);
const POOL = process.env.POOL;
const poolThreads = () => readdirSync('/proc/self/task').filter((t) => readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim() === 'rbd-pool').length;
import { readdirSync, readFileSync } from 'node:fs';
`;

async function runScript(name: string, source: string, env: Record<string, string> = {}) {
  const file = path.join(dir, name);
  await writeFile(file, `${PRELUDE}\n${source}`);
  return execa('node', [file], { reject: false, timeout: 60_000, env: { CEPH_CONF: CONF!, ADDON, POOL, ...env }, cwd: REPO });
}

async function connected(options?: Addon.ClusterOptions): Promise<Addon.Cluster> {
  const c = new addon.Cluster(options);
  await c.connect(CONF!, null, null, {});
  return c;
}

describe('native thread pool', () => {
  it('1 runs calls while every libuv pool thread is blocked (the addon does not use libuv’s pool)', async () => {
    // Two FIFOs nobody writes to: opening one for reading blocks a libuv thread in open(2).
    const r = await runScript(
      'uv-blocked.mjs',
      `
import { execFileSync } from 'node:child_process';
import { openSync, closeSync, constants } from 'node:fs';
import { open } from 'node:fs/promises';
const fifos = [0, 1].map((i) => process.env.DIR + '/fifo-' + i);
for (const f of fifos) execFileSync('mkfifo', [f]);
const blocked = fifos.map((f) => open(f, 'r'));
await new Promise((r) => setTimeout(r, 100));
const c = new addon.Cluster();
await c.connect(process.env.CEPH_CONF, null, null, {});
const results = await Promise.all(Array.from({ length: 32 }, () => c.listImages(POOL)));
console.log(results.length, c.threadStats().completed >= 33);
// Let the two libuv threads go: a writer unblocks each reader's open(2).
for (const f of fifos) closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
for (const h of await Promise.all(blocked)) await h.close();
await c.close();
`,
      { UV_THREADPOOL_SIZE: '2', DIR: dir },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('32 true');
  });

  it('2 `threads` bounds the calls running at once; the rest queue and all settle', async () => {
    const c = await connected({ threads: 2 });
    try {
      const name = `pool-${process.pid}-${Date.now()}`;
      await c.createImage(POOL, name, 1 << 20, 1, 22, null);
      let open = 0;
      let queued = 0;
      const poll = setInterval(() => {
        open = Math.max(open, c.stats().openImages);
        queued = Math.max(queued, c.threadStats().queued);
      }, 1);
      await Promise.all(Array.from({ length: 64 }, () => c.imageInfo(POOL, name)));
      clearInterval(poll);
      await c.removeImage(POOL, name);
      const t = c.threadStats();
      expect(open).toBeLessThanOrEqual(2);
      expect(queued).toBeGreaterThan(0);
      expect(t.maxThreads).toBe(2);
      expect(t.threads).toBeLessThanOrEqual(2);
      expect(t.completed).toBe(1 + 1 + 64 + 1);
      expect(t.queueWaitMs).toBeGreaterThan(0);
      expect(t.runMs).toBeGreaterThan(0);
      expect(c.stats()).toEqual({ pending: 0, openImages: 0, pools: 1 });
    } finally {
      await c.close();
    }
  });

  it('3 starts threads only as calls need them, up to the default of 256', async () => {
    const c = new addon.Cluster();
    expect(c.threadStats()).toMatchObject({ threads: 0, busy: 0, queued: 0, maxThreads: 256, completed: 0 });
    await c.connect(CONF!, null, null, {});
    expect(c.threadStats().threads).toBe(1);
    for (let i = 0; i < 20; i++) await c.fsid();
    // One call at a time: one thread, or a few more when a call arrived while the previous call's
    // thread had posted its result but was not yet back at the queue (on a loaded machine that
    // thread may wait for a core a while); never a thread per call, let alone the 256 allowed.
    expect(c.threadStats().threads).toBeLessThanOrEqual(5);
    await c.close();
  });

  it('4 refuses a bad `threads` option before anything starts', () => {
    for (const threads of [0, 1.5, -1, 4097, Number.NaN]) {
      expect(() => new addon.Cluster({ threads })).toThrow(RangeError);
    }
    expect(() => new addon.Cluster({ threads: '8' as unknown as number })).toThrow(TypeError);
    expect(() => new addon.Cluster('x' as unknown as Addon.ClusterOptions)).toThrow(TypeError);
  });

  it('5 the threads end after close(); a pending call keeps the process alive, an idle connection does not', async () => {
    const r = await runScript(
      'lifetime.mjs',
      `
const c = new addon.Cluster();
await c.connect(process.env.CEPH_CONF, null, null, {});
await Promise.all(Array.from({ length: 8 }, () => c.listImages(POOL)));
const during = poolThreads();
await c.close();
await new Promise((r) => setTimeout(r, 200));
console.log(during >= 1, poolThreads());
// Not awaited: only the pending call keeps the event loop (and so the process) alive.
const d = new addon.Cluster();
d.connect(process.env.CEPH_CONF, null, null, {}).then(() => d.listImages(POOL)).then((names) => console.log('listed', Array.isArray(names)));
`,
    );
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['true 0', 'listed true']);
  });

  it('6 process.exit() while a long call runs: the call may finish (bounded wait), then librados is shut down and the exit is clean', async () => {
    const name = `exit-long-${process.pid}-${Date.now()}`;
    const r = await runScript(
      'exit-long.mjs',
      `
const c = new addon.Cluster();
await c.connect(process.env.CEPH_CONF, null, null, {});
const name = process.env.NAME;
await c.createImage(POOL, name, 20 * 2 ** 30, 5, 22, null);
// Removing a 20 GiB image without an object map deletes 5,120 possible objects: still running at exit.
c.removeImage(POOL, name).then(() => console.log('removed'), (e) => console.log('failed', e.errno));
setTimeout(() => process.exit(0), 20);
`,
      { NAME: name },
    );
    await execa('rbd', ['rm', '--no-progress', `${POOL}/${name}`], { reject: false });
    expect(r.signal).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('7 errors from the pool threads are RbdErrors with the call, pool and image', async () => {
    const c = await connected({ threads: 4 });
    try {
      const errs = await Promise.all(Array.from({ length: 8 }, (_, i) => c.imageInfo(POOL, `missing-${i}`).catch((e: unknown) => e)));
      for (const [i, e] of errs.entries()) {
        expect(e).toBeInstanceOf(RbdError);
        expect(e).toMatchObject({ code: 'ENOENT', op: 'rbd_open_read_only', pool: POOL, image: `missing-${i}` });
      }
    } finally {
      await c.close();
    }
    const after = await c.fsid().catch((e: unknown) => e);
    expect(after).toMatchObject({ code: 'ENOTCONN' });
  });
});
