// Ceph helpers for the plugin and mapper tests: images made and removed with the rbd CLI, and what
// the tests check from outside (watchers, blocklist, metadata, leftovers on the host).
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
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

/**
 * The end of a plugin test: the images of `tenant` (and of tenants whose names start with it) are
 * removed, and `root` too when nothing is left mounted or mapped below it (never rm -r through a
 * mount; with leftovers the logs stay for a look). Returns the leftovers: the test expects none.
 */
export async function cleanUpPluginTest(tenant: string, root: string): Promise<string[]> {
  const images = (await rbd('ls', testPool())).split('\n').filter((i) => i.startsWith(tenant));
  for (const image of images) await removeImage(testPool(), image);
  const left = await leftoversBelow(root);
  if (left.length === 0) await rm(root, { recursive: true, force: true }).catch(() => undefined);
  return left;
}
