// The rbd-fuse mapper: one rbd-fuse process per mapped volume, showing just that image
// (`rbd-fuse -p POOL -r IMAGE DIR`) under <state-dir>/fuse/<tenant>/<volume>, and a loop device
// with direct I/O in front of the image file. Each volume thus has its own Ceph client, whose
// address (the watcher that appears when rbd-fuse opens the image) is what fencing blocklists —
// without touching the host's other volumes.
//
// rbd-fuse daemonizes once its FUSE mount is in place and exits when that mount is unmounted, so
// the mount, not a pid, is the handle: discovery reads /proc/self/mountinfo and the loop devices in
// sysfs. A fenced (blocklisted) rbd-fuse hangs on every request to its FUSE mount: the only access
// to a FUSE path is the first stat of a fresh mapping's image file, with a deadline after which the
// FUSE connection is aborted (which fails the stuck call and frees its thread). A JSON note beside
// each directory keeps the pool and client address for a volplugin that restarts.

import { mkdir, readFile, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { processAlive } from '../common/process.js';
import { timeStep } from '../common/steps.js';
import { bounded, run } from './exec.js';
import { attachLoop, detachLoop, listLoopDevices, setLoopCapacity } from './loop.js';
import { isBelow, readMountInfo } from './mountinfo.js';
import type { CephClientSettings, Mapper, MapOptions, Mapping, MapTarget, WatcherSource } from './types.js';
import { MapperUnavailableError, cephToolArgs, findNewClient, noClientError } from './types.js';

export interface FuseMapperOptions {
  /** <state-dir>/fuse: every rbd-fuse mount of this volplugin lives below it. */
  root: string;
  ceph: CephClientSettings;
  watchers: WatcherSource;
  /** How long rbd-fuse may take to mount and open the image (default 30 s). */
  timeoutMs?: number;
  log?: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

interface FuseNote {
  tenant: string;
  volume: string;
  pool: string;
  image: string;
  clientAddress: string | null;
}

const FUSE_TYPE = 'fuse.rbd-fuse';

/** The image an rbd-fuse had open and its client's address (null: never learnt). */
type ClosedBy = Pick<Mapping, 'pool' | 'image' | 'clientAddress'>;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Checks that rbd-fuse, losetup and /dev/fuse are there; throws MapperUnavailableError otherwise. */
export async function checkFuseAvailable(): Promise<void> {
  try {
    await run('rbd-fuse', ['--version'], { timeoutMs: 10_000, okCodes: [1] });
  } catch (err) {
    throw new MapperUnavailableError('fuse', `rbd-fuse does not run here (${(err as Error).message}): install the rbd-fuse package`);
  }
  const fuse = await stat('/dev/fuse').catch(() => null);
  if (!fuse?.isCharacterDevice()) {
    throw new MapperUnavailableError('fuse', '/dev/fuse is missing: load the fuse module or give the host FUSE');
  }
  try {
    await run('losetup', ['--version'], { timeoutMs: 10_000 });
  } catch (err) {
    throw new MapperUnavailableError('fuse', `losetup does not run here (${(err as Error).message}): install util-linux`);
  }
}

/**
 * mkdir -p that survives the unmap of a sibling volume removing the tenant directory it found empty
 * (removeDir) between the two steps of the recursive mkdir (seen in make chaos: ENOTDIR/ENOENT).
 */
async function makeDir(dir: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await mkdir(dir, { recursive: true });
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (attempt >= 5 || (code !== 'ENOENT' && code !== 'ENOTDIR')) throw err;
    }
  }
}

/** Pids of the rbd-fuse processes serving `dir` (from /proc/PID/cmdline). */
export async function rbdFusePids(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const argv = await readFile(`/proc/${name}/cmdline`, 'utf8').then(
      (text) => text.split('\0'),
      () => [] as string[],
    );
    if (argv[0] && path.basename(argv[0]) === 'rbd-fuse' && argv.includes(dir)) out.push(Number(name));
  }
  return out;
}


/** Waits up to `ms` for the processes to exit, then kills what is left. */
async function reapProcesses(pids: number[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (const pid of pids) {
    while ((await processAlive(pid)) && Date.now() < deadline) await sleep(10);
    if (await processAlive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
}

/** Runs `umount -c DIR`; 'hung' if it has not finished after `ms` (it keeps running). */
async function umountBounded(dir: string, ms: number): Promise<'done' | 'busy' | 'hung'> {
  const work = run('umount', ['-c', dir], { timeoutMs: 120_000 }).then(
    () => 'done' as const,
    () => 'busy' as const,
  );
  const result = await bounded(work, ms);
  return result.done ? result.value : 'hung';
}

/** Aborts a FUSE connection (fusectl, mounted on demand): every request on it fails at once. */
async function abortFuseConnection(minor: number): Promise<void> {
  const connections = '/sys/fs/fuse/connections';
  const listed = await readdir(connections).catch(() => [] as string[]);
  if (listed.length === 0) await run('mount', ['-t', 'fusectl', 'fusectl', connections], { timeoutMs: 10_000 }).catch(() => undefined);
  await writeFile(path.join(connections, String(minor), 'abort'), '1').catch(() => undefined);
}

export class FuseMapper implements Mapper {
  readonly kind = 'fuse' as const;
  private readonly root: string;
  private readonly timeoutMs: number;

  constructor(private readonly options: FuseMapperOptions) {
    this.root = path.resolve(options.root);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  dirOf(target: { tenant: string; volume: string }): string {
    return path.join(this.root, target.tenant, target.volume);
  }

  private noteOf(dir: string): string {
    return `${dir}.json`;
  }

  private cephArgs(): string[] {
    const args = cephToolArgs(this.options.ceph);
    // librados waits 300 s for the monitors by default; a mapping must fail well before dockerd gives up.
    args.push('--client_mount_timeout', '20');
    // No librbd write-back cache: rbd-fuse answers fsync with rbd_flush but ignores its result, so
    // with a cache an fsync could return success for writes that a fence (blocklist) then threw
    // away (make chaos's kill-holder and pause-past-ttl found exactly that: the last acknowledged
    // record missing). Without it every write reaches the OSDs before rbd-fuse answers it, and a
    // fenced client's write fails (EIO) instead of being acknowledged.
    args.push('--rbd_cache', 'false');
    return args;
  }

  async map(target: MapTarget, options: MapOptions = {}): Promise<Mapping> {
    const step = <T>(name: string, fn: () => Promise<T>) => timeStep(options.steps, `map.${name}`, fn);
    const dir = this.dirOf(target);
    const note: FuseNote = { ...target, clientAddress: null };
    // A leftover of a crash at the same place is removed first: it may be fenced or stale.
    await step('leftovers', () => this.unmapDir(dir));
    await makeDir(dir);
    await this.writeNote(dir, note);
    let fuseMounted = false;
    let device: string | null = null;
    try {
      const before = await step('watchers', () =>
        this.options.watchers.listWatchers(target.pool, target.image).catch((err: unknown) => {
          throw new Error(
            `cannot open image ${target.pool}/${target.image} (${(err as Error).message}): check that the image exists (rbd ls ${target.pool}) and that the Ceph key may read it`,
            { cause: err },
          );
        }),
      );
      await step('rbd-fuse', () => run('rbd-fuse', [...this.cephArgs(), '-p', target.pool, '-r', target.image, dir], { timeoutMs: this.timeoutMs }));
      fuseMounted = true;
      const file = path.join(dir, target.image);
      await step('image-file', () => this.waitForImageFile(dir, file, target));
      device = await step('loop', () => attachLoop(file));
      const client = await step('client', () => findNewClient(this.options.watchers, target, before));
      if (!client.address) throw noClientError('fuse', target, client.candidates);
      note.clientAddress = client.address;
      await this.writeNote(dir, note);
      return { ...target, kind: 'fuse', device, clientAddress: note.clientAddress, fuseDir: dir };
    } catch (err) {
      if (device) await detachLoop(device).catch(() => undefined);
      if (fuseMounted) await this.unmountFuse(dir, null).catch(() => undefined);
      await this.removeDir(dir).catch(() => undefined);
      throw err;
    }
  }

  /**
   * rbd-fuse mounts even when the image cannot be opened (it opens it after daemonizing): wait for
   * its file to show the image's size. A stat that does not answer in time gets the FUSE connection
   * aborted, which fails it (a thread of Node's pool stuck in it is freed) before the mapping is undone.
   */
  private async waitForImageFile(dir: string, file: string, target: MapTarget): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      const left = Math.max(1_000, deadline - Date.now());
      // A missing file means "not yet"; only a stat that hangs is fatal.
      const probe = await bounded(stat(file).catch((): Stats | null => null), left);
      if (!probe.done) {
        const mount = (await readMountInfo()).find((m) => m.mountPoint === dir && m.fsType === FUSE_TYPE);
        if (mount) await abortFuseConnection(mount.minor);
        throw new Error(`rbd-fuse for ${target.pool}/${target.image} hangs: check that the Ceph monitors and OSDs answer (ceph -s)`);
      }
      if (probe.value && probe.value.size > 0) return;
      if (Date.now() > deadline) {
        throw new Error(
          `rbd-fuse mounted but shows no image ${target.pool}/${target.image} after ${this.timeoutMs} ms: ` +
            'check that the image exists (rbd ls) and that the Ceph key may read it',
        );
      }
      await sleep(wait);
    }
  }

  async unmap(mapping: Mapping, options: MapOptions = {}): Promise<void> {
    const step = <T>(name: string, fn: () => Promise<T>) => timeStep(options.steps, `unmap.${name}`, fn);
    const dir = mapping.fuseDir ?? this.dirOf(mapping);
    this.options.log?.debug({ dir, device: mapping.device }, 'unmapping: detaching the loop device');
    // Only while the device is still this mapping's: a loop device number can belong to another image by now.
    const device = mapping.device;
    if (device) await step('loop', async () => (await this.backs(device, dir)) && (await this.detachBounded(device, dir)));
    await step('rbd-fuse', () => this.unmapDir(dir, mapping));
    this.options.log?.debug({ dir }, 'unmapped');
  }

  /**
   * Detaching a loop device waits for its in-flight I/O; I/O stuck in a fenced rbd-fuse never
   * completes, so a detach that hangs gets the FUSE connection aborted (the I/O then fails).
   */
  private async detachBounded(device: string, dir: string): Promise<void> {
    const detach = detachLoop(device);
    const first = await bounded(detach, 15_000);
    if (first.done) return;
    this.options.log?.warn({ device, dir }, 'loop device does not let go (its rbd-fuse is fenced?): aborting the FUSE connection');
    await this.stopIoAt(dir);
    const second = await bounded(detach, 30_000);
    if (!second.done) throw new Error(`losetup --detach ${device} hangs even after aborting rbd-fuse at ${dir}; see dmesg`);
  }

  async stopIo(mapping: Mapping): Promise<void> {
    await this.stopIoAt(mapping.fuseDir ?? this.dirOf(mapping));
  }

  /**
   * rbd-fuse reports the image's current size (librbd follows the header); the kernel keeps a
   * file's size for FUSE's attribute timeout (1 s), so the file is stat'ed (in a child with a
   * deadline: a hung rbd-fuse must not block us) before the loop device takes the file's size.
   */
  async refreshSize(mapping: Mapping): Promise<void> {
    if (!mapping.device) return;
    const file = path.join(mapping.fuseDir ?? this.dirOf(mapping), mapping.image);
    const probe = await bounded(run('stat', ['-c', '%s', file], { timeoutMs: 10_000 }), 10_000);
    if (!probe.done) throw new Error(`rbd-fuse for ${mapping.pool}/${mapping.image} hangs: check that the Ceph monitors and OSDs answer (ceph -s)`);
    await setLoopCapacity(mapping.device);
  }

  /** Aborts the FUSE connection of the rbd-fuse at `dir` and kills that rbd-fuse. */
  private async stopIoAt(dir: string): Promise<void> {
    const mount = (await readMountInfo()).find((m) => m.mountPoint === dir && m.fsType === FUSE_TYPE);
    if (mount) await abortFuseConnection(mount.minor);
    for (const pid of await rbdFusePids(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }

  /**
   * Detaches loop devices on anything under `dir`, unmounts rbd-fuse there and removes the
   * directory. `client`: the image and client rbd-fuse had open, if known (see unmountFuse).
   */
  private async unmapDir(dir: string, client: ClosedBy | null = null): Promise<void> {
    for (const loop of await listLoopDevices()) {
      if (isBelow(loop.backingFile, dir) && loop.backingFile !== dir) await detachLoop(loop.device);
    }
    if ((await readMountInfo()).some((m) => m.mountPoint === dir)) await this.unmountFuse(dir, client);
    await this.removeDir(dir);
  }

  /**
   * Unmounts rbd-fuse at `dir` and makes sure its process is gone. A fenced (blocklisted) rbd-fuse
   * hangs on every metadata request, so nothing here may stat the mount: `umount -c` skips the
   * path lookup, a umount that still hangs gets the FUSE connection aborted, and a client that does
   * not exit after its mount is gone is killed.
   */
  private async unmountFuse(dir: string, client: ClosedBy | null): Promise<void> {
    this.options.log?.debug({ dir }, 'unmounting rbd-fuse');
    for (let attempt = 0; ; attempt++) {
      const mount = (await readMountInfo()).find((m) => m.mountPoint === dir);
      if (!mount) break;
      const outcome = await umountBounded(dir, 10_000);
      if (outcome === 'done') continue;
      if (outcome === 'hung') {
        this.options.log?.warn({ dir }, 'rbd-fuse does not answer (fenced?): aborting its FUSE connection');
        await abortFuseConnection(mount.minor);
        continue;
      }
      // busy: the loop device may still be letting go of the file.
      if (attempt >= 30) {
        this.options.log?.warn({ dir }, 'rbd-fuse mount stays busy: detaching it lazily');
        await run('umount', ['-c', '-l', dir], { timeoutMs: 10_000 });
        break;
      }
      await sleep(attempt < 10 ? 10 : 100);
    }
    // rbd-fuse closes the image and exits once its mount is gone. What others need is the image
    // closed (a remove, a rollback or another host's map looks at its watchers): waiting for this
    // client's watch to go is cheaper than finding the process among all of the host's. Only when
    // it stays (a fenced or hung rbd-fuse), or the client is unknown, is the process found and
    // made to go.
    if (client?.clientAddress && (await this.clientGone(client, 1_000))) return;
    await reapProcesses(await rbdFusePids(dir), 5_000);
  }

  /** True once `client` no longer watches its image (or the image is gone), within `ms`. */
  private async clientGone(client: ClosedBy, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      let watchers;
      try {
        watchers = await this.options.watchers.listWatchers(client.pool, client.image);
      } catch (err) {
        return (err as { code?: string }).code === 'ENOENT';
      }
      if (!watchers.some((w) => w.address === client.clientAddress)) return true;
      if (Date.now() > deadline) return false;
      await sleep(wait);
    }
  }

  private async removeDir(dir: string): Promise<void> {
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rm(this.noteOf(dir), { force: true });
    // The tenant directory goes when it is empty.
    await rmdir(path.dirname(dir)).catch(() => undefined);
  }

  private async writeNote(dir: string, note: FuseNote): Promise<void> {
    const file = this.noteOf(dir);
    await writeFile(`${file}.tmp`, JSON.stringify(note));
    await rename(`${file}.tmp`, file);
  }

  private async readNote(dir: string): Promise<FuseNote | null> {
    try {
      const note = JSON.parse(await readFile(this.noteOf(dir), 'utf8')) as FuseNote;
      return typeof note.pool === 'string' && typeof note.image === 'string' ? note : null;
    } catch {
      return null;
    }
  }

  async discover(): Promise<Mapping[]> {
    const mounts = (await readMountInfo()).filter((m) => m.fsType === FUSE_TYPE && isBelow(m.mountPoint, this.root));
    const loops = (await listLoopDevices()).filter((l) => isBelow(l.backingFile, this.root));
    const dirs = new Set<string>(mounts.map((m) => m.mountPoint));
    for (const loop of loops) dirs.add(path.dirname(loop.backingFile));
    // Notes without mount or loop (a crash between writing the note and starting rbd-fuse).
    for (const tenant of await readdir(this.root).catch(() => [] as string[])) {
      for (const entry of await readdir(path.join(this.root, tenant)).catch(() => [] as string[])) {
        if (entry.endsWith('.json')) dirs.add(path.join(this.root, tenant, entry.slice(0, -'.json'.length)));
        else if (!entry.endsWith('.tmp')) dirs.add(path.join(this.root, tenant, entry));
      }
    }
    const out: Mapping[] = [];
    for (const dir of dirs) {
      const rel = path.relative(this.root, dir).split(path.sep);
      if (rel.length !== 2) continue;
      const [tenant, volume] = rel as [string, string];
      const note = await this.readNote(dir);
      const loop = loops.find((l) => path.dirname(l.backingFile) === dir);
      out.push({
        tenant,
        volume,
        pool: note?.pool ?? '',
        image: note?.image ?? (loop ? path.basename(loop.backingFile) : ''),
        kind: 'fuse',
        device: loop?.device ?? null,
        clientAddress: note?.clientAddress ?? null,
        fuseDir: dir,
      });
    }
    return out;
  }

  /** True when the loop device `device` is attached to a file in `dir`. */
  private async backs(device: string, dir: string): Promise<boolean> {
    return (await listLoopDevices()).some((l) => l.device === device && path.dirname(l.backingFile) === dir);
  }

  /** True when the mapping's rbd-fuse is mounted and its loop device attached to that image's file there. */
  async isMapped(mapping: Mapping): Promise<boolean> {
    const dir = mapping.fuseDir ?? this.dirOf(mapping);
    if (!mapping.device) return false;
    const mounted = (await readMountInfo()).some((m) => m.mountPoint === dir && m.fsType === FUSE_TYPE);
    const loops = await listLoopDevices();
    return mounted && loops.some((l) => l.device === mapping.device && l.backingFile === path.join(dir, mapping.image) && !l.deleted);
  }
}
