// Ceph helpers for the plugin and mapper tests: images made and removed with the rbd CLI, and what
// the tests check from outside (watchers, blocklist, metadata, leftovers on the host).
import { execFile, spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export function cephConf(): string {
  const conf = process.env.CEPH_CONF;
  if (!conf) throw new Error('CEPH_CONF is not set: run through vitest (test/helpers/global-setup.ts sets it)');
  return conf;
}

export const testPool = () => process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';

export async function rbd(...args: string[]): Promise<string> {
  const { stdout } = await exec('rbd', ['-c', cephConf(), ...args], { timeout: 60_000, maxBuffer: 16 << 20 });
  return stdout;
}

export async function ceph(...args: string[]): Promise<string> {
  const { stdout } = await exec('ceph', ['-c', cephConf(), ...args], { timeout: 60_000, maxBuffer: 16 << 20 });
  return stdout;
}

export async function createImage(pool: string, image: string, sizeMb = 64): Promise<void> {
  await rbd('create', '--size', `${sizeMb}M`, `${pool}/${image}`);
}

export async function removeImage(pool: string, image: string): Promise<void> {
  await rbd('rm', '--no-progress', `${pool}/${image}`).catch(() => undefined);
}

export async function watchers(pool: string, image: string): Promise<string[]> {
  const status = JSON.parse(await rbd('status', '--format', 'json', `${pool}/${image}`)) as { watchers: Array<{ address: string }> };
  return status.watchers.map((w) => w.address);
}

export async function blocklisted(address: string): Promise<boolean> {
  // Pacific prints the list followed by a second, empty JSON array: match the entry in the text.
  const out = await ceph('osd', 'blocklist', 'ls', '--format', 'json');
  return out.includes(`"addr":"${address}"`);
}

export async function imageMeta(pool: string, image: string): Promise<Record<string, string>> {
  const out = await rbd('image-meta', 'list', '--format', 'json', `${pool}/${image}`);
  return out.trim() ? (JSON.parse(out) as Record<string, string>) : {};
}

/** Mounts, loop devices and rbd-fuse mounts below `dir` (what a test must leave behind: none). */
export async function leftoversBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const mp = (fields[4] ?? '').replace(/\\040/g, ' ');
    if (mp === dir || mp.startsWith(`${dir}/`)) out.push(`mount ${mp}`);
  }
  const { stdout } = await exec('losetup', ['--json', '--list', '--output', 'NAME,BACK-FILE'], { timeout: 10_000 });
  const loops = stdout.trim() ? (JSON.parse(stdout) as { loopdevices: Array<{ name: string; 'back-file': string }> }).loopdevices : [];
  for (const l of loops) if (l['back-file'].startsWith(`${dir}/`)) out.push(`loop ${l.name} on ${l['back-file']}`);
  return out;
}

/** How many mounts are stacked at exactly `dir` on this host. */
export async function mountsAt(dir: string): Promise<number> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').filter((l) => l.split(' ')[4] === dir).length;
}

/** One O_DIRECT 4k write of `file` in `dir`, in its own process (a hung one is killed after 20 s): true when it was written. */
export function directWrite(dir: string, file = 'probe'): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('dd', ['if=/dev/zero', `of=${path.join(dir, file)}`, 'bs=4k', 'count=1', 'oflag=direct', 'conv=notrunc'], { stdio: 'ignore' });
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      resolve(false);
    }, 20_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}

/**
 * The end of a plugin test file: lifts the blocklist entries it made, removes the images of its
 * tenant and its directory (never through a mount: with leftovers it stays, logs included) and
 * returns the leftovers (mounts, loop devices) below it, which must be none.
 */
export async function cleanUpRun(run: { tenant: string; root: string; pool: string; fenced?: string[] }): Promise<string[]> {
  for (const address of run.fenced ?? []) await ceph('osd', 'blocklist', 'rm', address).catch(() => undefined);
  const images = (await rbd('ls', run.pool)).split('\n').filter((i) => i.startsWith(run.tenant));
  for (const image of images) await removeImage(run.pool, image);
  const left = await leftoversBelow(run.root);
  if (left.length === 0) await rm(run.root, { recursive: true, force: true }).catch(() => undefined);
  return left;
}
