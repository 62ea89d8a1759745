// The CLI backend: every operation is one or two `rbd` (or `ceph`, `rados`) processes run by execa
// with argv — never a shell — and `--format=json` output. Failures become the same RbdError codes
// the native backend gives: `rbd` exits with the errno it failed with and prints "(N) text" on
// stderr; `ceph` prints "Error EXXX: text".
//
// Names go as `--image=NAME` (a name that starts with '-' cannot pass for an option), and free text
// (lock cookies, metadata keys and values) after `--`.

import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import { constants } from 'node:os';
import { execa } from 'execa';
import { RbdError } from './errors.js';
import { parseMonDump } from './monmap.js';
import type {
  ClusterConfig,
  CreateImageOptions,
  ImageFeature,
  ImageInfo,
  ImageLock,
  ParentRef,
  QosLimits,
  SnapshotInfo,
  Storage,
  StorageStats,
  Watcher,
} from './types.js';
import {
  applyQos,
  checkAddress,
  checkBoolean,
  checkCreateOptions,
  checkImageOptions,
  checkLock,
  checkName,
  checkParent,
  checkQos,
  checkSize,
  checkText,
  closedError,
  qosFromMetadata,
  sortFeatures,
} from './validate.js';

export interface CliStorageOptions {
  /** Executables (default: found on PATH). */
  rbd?: string;
  ceph?: string;
  rados?: string;
  /** Kill a command that runs longer than this (default 5 minutes); the call fails with ETIMEDOUT. */
  timeoutMs?: number;
  /** At most this many processes at once; further calls queue (default 16). */
  maxProcesses?: number;
}

interface Target {
  op: string;
  pool?: string;
  image?: string;
  snapshot?: string;
}

const ERRNO = constants.errno as Record<string, number>;

export class CliStorage implements Storage {
  readonly kind = 'cli' as const;

  private readonly base: string[];
  private readonly confPath: string | undefined;
  private readonly tools: { rbd: string; ceph: string; rados: string };
  private readonly timeoutMs: number;
  private readonly maxProcesses: number;
  private running = 0;
  private readonly queue: (() => void)[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing: Promise<void> | null = null;

  constructor(config: ClusterConfig = {}, options: CliStorageOptions = {}) {
    this.confPath = config.confPath;
    this.base = [];
    if (config.confPath !== undefined) this.base.push(`--conf=${config.confPath}`);
    if (config.keyring !== undefined) this.base.push(`--keyring=${config.keyring}`);
    if (config.clientId !== undefined) this.base.push(`--id=${config.clientId}`);
    this.tools = { rbd: options.rbd ?? 'rbd', ceph: options.ceph ?? 'ceph', rados: options.rados ?? 'rados' };
    this.timeoutMs = options.timeoutMs ?? 300_000;
    this.maxProcesses = options.maxProcesses ?? 16;
  }

  /** Checks that `rbd` runs and reaches the cluster (openStorage calls it once). */
  async connect(): Promise<void> {
    // Like rados_conf_read_file: a configuration file that is not there is ENOENT.
    if (this.confPath !== undefined) {
      try {
        await access(this.confPath, fsConstants.R_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'ENOENT';
        throw new RbdError({ errno: -(ERRNO[code] ?? ERRNO.ENOENT!), op: 'rados_conf_read_file', detail: `${code}: ${this.confPath}` });
      }
    }
    // Both tools present, and the cluster reachable with this configuration.
    await Promise.all([
      this.exec('rbd', ['--version'], { op: 'spawn' }),
      this.exec('ceph', ['fsid', '--format=json'], { op: 'rados_connect' }),
    ]);
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
      })();
    }
    return this.closing;
  }

  stats(): StorageStats {
    return { pending: this.inFlight.size, openImages: 0, pools: 0 };
  }

  // --- images ---

  async createImage(pool: string, name: string, options: CreateImageOptions): Promise<void> {
    return this.call('createImage', async () => {
      checkName('pool', pool);
      checkName('name', name);
      const o = checkCreateOptions(options);
      await this.rbd(
        ['create', `--pool=${pool}`, `--image=${name}`, `--size=${o.size}B`, ...imageOptionArgs(o.features, o.order, o.dataPool)],
        { op: 'rbd_create4', pool, image: name },
      );
    });
  }

  async removeImage(pool: string, name: string): Promise<void> {
    return this.call('removeImage', async () => {
      checkName('pool', pool);
      checkName('name', name);
      const target = { op: 'rbd_remove', pool, image: name };
      // librbd's remove spins forever trying to take the exclusive lock while an advisory lock is
      // held: refuse first, as the native backend does.
      const lockers = await this.rbdJson<{ id: string }[]>(['lock', 'ls', `--pool=${pool}`, `--image=${name}`], target);
      if (lockers.some((l) => !l.id.startsWith('auto '))) {
        throw new RbdError({ errno: -ERRNO.EBUSY!, ...target, detail: 'image has advisory locks: break them first' });
      }
      await this.rbd(['rm', `--pool=${pool}`, `--image=${name}`, '--no-progress'], target);
    });
  }

  async resizeImage(pool: string, name: string, size: number, options: { allowShrink?: boolean } = {}): Promise<void> {
    return this.call('resizeImage', async () => {
      checkName('pool', pool);
      checkName('name', name);
      checkSize('size', size);
      const allowShrink = options.allowShrink === undefined ? false : checkBoolean('options.allowShrink', options.allowShrink);
      await this.rbd(
        ['resize', `--pool=${pool}`, `--image=${name}`, `--size=${size}B`, '--no-progress', ...(allowShrink ? ['--allow-shrink'] : [])],
        { op: 'rbd_resize2', pool, image: name },
      );
    });
  }

  async renameImage(pool: string, from: string, to: string): Promise<void> {
    return this.call('renameImage', async () => {
      checkName('pool', pool);
      checkName('from', from);
      checkName('to', to);
      await this.rbd(['rename', `--pool=${pool}`, `--image=${from}`, `--dest-pool=${pool}`, `--dest=${to}`], {
        op: 'rbd_rename',
        pool,
        image: from,
      }).catch((err: unknown) => {
        // EEXIST is about the name that is taken, as in the native backend.
        if (err instanceof RbdError && err.code === 'EEXIST') {
          throw new RbdError({ errno: err.errno, op: err.op, pool, image: to, detail: err.detail });
        }
        throw err;
      });
    });
  }

  async imageInfo(pool: string, name: string): Promise<ImageInfo> {
    return this.call('imageInfo', async () => {
      checkName('pool', pool);
      checkName('name', name);
      const info = await this.info(pool, name, 'rbd_stat');
      return {
        pool,
        name,
        size: info.size,
        order: info.order,
        objectSize: info.object_size,
        features: sortFeatures(info.features),
        parent:
          info.parent && !info.parent.trash
            ? { pool: info.parent.pool, image: info.parent.image, snapshot: info.parent.snapshot }
            : null,
        snapshotCount: info.snapshot_count,
      };
    });
  }

  async listImages(pool: string): Promise<string[]> {
    return this.call('listImages', async () => {
      checkName('pool', pool);
      const names = await this.rbdJson<string[]>(['ls', `--pool=${pool}`], { op: 'rbd_list2', pool });
      return names.sort();
    });
  }

  async imageExists(pool: string, name: string): Promise<boolean> {
    return this.call('imageExists', async () => {
      checkName('pool', pool);
      checkName('name', name);
      try {
        await this.info(pool, name, 'rbd_open_read_only');
        return true;
      } catch (err) {
        if (err instanceof RbdError && err.code === 'ENOENT' && err.op.startsWith('rbd_open')) return false;
        throw err;
      }
    });
  }

  // --- snapshots ---

  async createSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.snapVerb('createSnapshot', 'create', 'rbd_snap_create', pool, image, snapshot, ['--no-progress']);
  }

  async listSnapshots(pool: string, image: string): Promise<SnapshotInfo[]> {
    return this.call('listSnapshots', async () => {
      checkName('pool', pool);
      checkName('image', image);
      const snaps = await this.rbdJson<CliSnap[]>(['snap', 'ls', `--pool=${pool}`, `--image=${image}`], {
        op: 'rbd_snap_list',
        pool,
        image,
      });
      return snaps
        .map((s) => ({
          id: s.id,
          name: s.name,
          size: s.size,
          protected: s.protected === 'true',
          createdAt: parseCtime(s.timestamp),
        }))
        .sort((a, b) => a.id - b.id);
    });
  }

  async removeSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.snapVerb('removeSnapshot', 'rm', 'rbd_snap_remove', pool, image, snapshot, ['--no-progress']);
  }

  async rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.snapVerb('rollbackSnapshot', 'rollback', 'rbd_snap_rollback', pool, image, snapshot, ['--no-progress']);
  }

  async protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.snapVerb('protectSnapshot', 'protect', 'rbd_snap_protect', pool, image, snapshot, []);
  }

  async unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.snapVerb('unprotectSnapshot', 'unprotect', 'rbd_snap_unprotect', pool, image, snapshot, []);
  }

  async cloneSnapshot(parent: ParentRef, pool: string, name: string, options?: Omit<CreateImageOptions, 'size'>): Promise<void> {
    return this.call('cloneSnapshot', async () => {
      const p = checkParent(parent);
      checkName('pool', pool);
      checkName('name', name);
      const o = checkImageOptions(options, { features: null });
      await this.rbd(
        [
          'clone',
          `--pool=${p.pool}`,
          `--image=${p.image}`,
          `--snap=${p.snapshot}`,
          `--dest-pool=${pool}`,
          `--dest=${name}`,
          ...imageOptionArgs(o.features, o.order, o.dataPool),
        ],
        { op: 'rbd_clone3', pool, image: name },
      ).catch((err: unknown) => {
        throw cloneError(err, p, pool);
      });
    });
  }

  async listChildren(parent: ParentRef): Promise<string[]> {
    return this.call('listChildren', async () => {
      const p = checkParent(parent);
      const children = await this.rbdJson<{ pool: string; pool_namespace?: string; image: string; trash?: boolean }[]>(
        ['children', `--pool=${p.pool}`, `--image=${p.image}`, `--snap=${p.snapshot}`],
        { op: 'rbd_list_children3', pool: p.pool, image: p.image, snapshot: p.snapshot },
      );
      return children
        .filter((c) => !c.trash)
        .map((c) => `${c.pool}/${c.image}`)
        .sort();
    });
  }

  async flattenImage(pool: string, name: string): Promise<void> {
    return this.call('flattenImage', async () => {
      checkName('pool', pool);
      checkName('name', name);
      await this.rbd(['flatten', `--pool=${pool}`, `--image=${name}`, '--no-progress'], { op: 'rbd_flatten', pool, image: name });
    });
  }

  // --- watchers, locks, fencing ---

  async listWatchers(pool: string, image: string): Promise<Watcher[]> {
    return this.call('listWatchers', async () => {
      checkName('pool', pool);
      checkName('image', image);
      const status = await this.rbdJson<{ watchers?: { address: string; client: number; cookie: number }[] }>(
        ['status', `--pool=${pool}`, `--image=${image}`],
        { op: 'rbd_watchers_list', pool, image },
      );
      return (status.watchers ?? []).map((w) => ({ address: w.address, clientId: w.client, cookie: w.cookie }));
    });
  }

  async addLock(pool: string, image: string, lock: { cookie: string; tag?: string; exclusive: boolean }): Promise<void> {
    return this.call('addLock', async () => {
      checkName('pool', pool);
      checkName('image', image);
      const { cookie, tag, exclusive } = checkLock(lock);
      await this.rbd(
        ['lock', 'add', `--pool=${pool}`, `--image=${image}`, ...(exclusive ? [] : [`--shared=${tag}`]), '--', cookie],
        { op: exclusive ? 'rbd_lock_exclusive' : 'rbd_lock_shared', pool, image },
      );
    });
  }

  async listLocks(pool: string, image: string): Promise<ImageLock[]> {
    return this.call('listLocks', async () => {
      checkName('pool', pool);
      checkName('image', image);
      // `rbd lock ls --format json` leaves out the tag and the lock type: ask the header object.
      const target = { op: 'rbd_list_lockers', pool, image };
      const info = await this.info(pool, image, 'rbd_open_read_only');
      const out = await this.exec(
        'rados',
        [`--pool=${pool}`, 'lock', 'info', `rbd_header.${info.id}`, 'rbd_lock', '--format=json'],
        target,
      );
      const lock = JSON.parse(out) as { type: string; tag: string; lockers: { name: string; cookie: string; addr: string }[] };
      return lock.lockers.map((l) => ({
        owner: l.name,
        cookie: l.cookie,
        tag: lock.tag,
        exclusive: lock.type === 'exclusive',
        address: l.addr,
      }));
    });
  }

  async breakLock(pool: string, image: string, lock: { owner: string; cookie: string }): Promise<void> {
    return this.call('breakLock', async () => {
      checkName('pool', pool);
      checkName('image', image);
      const owner = checkText('lock.owner', lock.owner);
      const cookie = checkText('lock.cookie', lock.cookie);
      // Fencing is the caller's decision (blocklistAdd): librbd's blocklist-on-break is turned off.
      await this.rbd(
        ['lock', 'rm', `--pool=${pool}`, `--image=${image}`, '--rbd-blocklist-on-break-lock=false', '--', cookie, owner],
        { op: 'rbd_break_lock', pool, image },
      );
    });
  }

  async blocklistAdd(address: string, seconds: number): Promise<void> {
    return this.call('blocklistAdd', async () => {
      checkAddress('address', address);
      checkSize('seconds', seconds, { min: 1 });
      await this.exec('ceph', ['osd', 'blocklist', 'add', address, String(seconds)], { op: 'rados_mon_command' });
    });
  }

  async blocklistRemove(address: string): Promise<void> {
    return this.call('blocklistRemove', async () => {
      checkAddress('address', address);
      await this.exec('ceph', ['osd', 'blocklist', 'rm', address], { op: 'rados_mon_command' });
    });
  }

  // --- metadata and QoS ---

  async getMetadata(pool: string, image: string): Promise<Record<string, string>> {
    return this.call('getMetadata', async () => {
      checkName('pool', pool);
      checkName('image', image);
      const meta = await this.rbdJson<Record<string, string>>(['image-meta', 'list', `--pool=${pool}`, `--image=${image}`], {
        op: 'rbd_metadata_list',
        pool,
        image,
      });
      return Object.fromEntries(Object.entries(meta).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    });
  }

  async setMetadata(pool: string, image: string, key: string, value: string): Promise<void> {
    return this.call('setMetadata', async () => {
      checkName('pool', pool);
      checkName('image', image);
      checkText('key', key);
      checkText('value', value);
      await this.rbd(['image-meta', 'set', `--pool=${pool}`, `--image=${image}`, '--', key, value], {
        op: 'rbd_metadata_set',
        pool,
        image,
      });
    });
  }

  async removeMetadata(pool: string, image: string, key: string): Promise<void> {
    return this.call('removeMetadata', async () => {
      checkName('pool', pool);
      checkName('image', image);
      checkText('key', key);
      await this.rbd(['image-meta', 'remove', `--pool=${pool}`, `--image=${image}`, '--', key], {
        op: 'rbd_metadata_remove',
        pool,
        image,
      });
    });
  }

  async getQos(pool: string, image: string): Promise<QosLimits> {
    return qosFromMetadata(await this.getMetadata(pool, image));
  }

  async setQos(pool: string, image: string, limits: QosLimits): Promise<void> {
    if (this.closing) throw closedError('setQos');
    checkName('pool', pool);
    checkName('image', image);
    await applyQos(this, pool, image, checkQos(limits));
  }

  async clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }> {
    return this.call('clusterInfo', async () => {
      const out = await this.exec('ceph', ['mon', 'dump', '--format=json'], { op: 'rados_mon_command' });
      return parseMonDump(out);
    });
  }

  // --- internals ---

  /** Runs one public operation: refused after close(), tracked so close() can wait for it. */
  private call<T>(op: string, body: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(closedError(op));
    const trace: { stack?: string } = {};
    Error.captureStackTrace(trace, this.call);
    const promise = body().catch((err: unknown) => {
      if (err instanceof RbdError && trace.stack) {
        err.stack = `${err.name}: ${err.message}\n${trace.stack.split('\n').slice(1).join('\n')}`;
      }
      throw err;
    });
    this.inFlight.add(promise);
    const done = () => this.inFlight.delete(promise);
    promise.then(done, done);
    return promise;
  }

  private async snapVerb(
    method: string,
    verb: string,
    op: string,
    pool: string,
    image: string,
    snapshot: string,
    extra: string[],
  ): Promise<void> {
    return this.call(method, async () => {
      checkName('pool', pool);
      checkName('image', image);
      checkName('snapshot', snapshot);
      await this.rbd(['snap', verb, `--pool=${pool}`, `--image=${image}`, `--snap=${snapshot}`, ...extra], {
        op,
        pool,
        image,
        snapshot,
      });
    });
  }

  private async info(pool: string, image: string, op: string): Promise<CliInfo> {
    return this.rbdJson<CliInfo>(['info', `--pool=${pool}`, `--image=${image}`], { op, pool, image });
  }

  private rbd(args: string[], target: Target): Promise<string> {
    return this.exec('rbd', args, target);
  }

  private async rbdJson<T>(args: string[], target: Target): Promise<T> {
    const out = await this.exec('rbd', [...args, '--format=json'], target);
    // Some listings (image-meta list) print nothing at all when empty.
    return (out.trim() === '' ? {} : JSON.parse(out)) as T;
  }

  private async exec(
    tool: 'rbd' | 'ceph' | 'rados',
    args: string[],
    target: Target,
  ): Promise<string> {
    await this.slot();
    try {
      const result = await execa(this.tools[tool], [...this.base, ...args], {
        reject: false,
        stdin: 'ignore',
        timeout: this.timeoutMs,
        forceKillAfterDelay: 2_000,
        stripFinalNewline: false,
        maxBuffer: 64 << 20,
      });
      if (result.exitCode === 0 && !result.failed) return result.stdout;
      throw cliError(tool, result, target);
    } finally {
      this.release();
    }
  }

  private slot(): Promise<void> {
    if (this.running < this.maxProcesses) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.running--;
  }
}

interface CliInfo {
  id: string;
  size: number;
  order: number;
  object_size: number;
  snapshot_count: number;
  features: string[];
  parent?: { pool: string; image: string; snapshot: string; trash?: boolean };
}

interface CliSnap {
  id: number;
  name: string;
  size: number;
  protected: string;
  timestamp?: string;
}

/**
 * librbd's clone fails with ENOENT for a missing parent image or snapshot and with EINVAL for an
 * unprotected one: both are reported against the parent, as the native backend does.
 */
export function cloneError(err: unknown, parent: ParentRef, pool: string): unknown {
  if (!(err instanceof RbdError) || (err.code !== 'ENOENT' && err.code !== 'EINVAL')) return err;
  if (err.op === 'rados_ioctx_create') return err.pool === parent.pool && err.pool !== pool ? reattribute(err, parent) : err;
  return reattribute(err, parent);
}

function reattribute(err: RbdError, parent: ParentRef): RbdError {
  const out = new RbdError({ errno: err.errno, op: err.op, pool: parent.pool, image: parent.image, snapshot: parent.snapshot, detail: err.detail });
  out.stack = err.stack;
  return out;
}

function imageOptionArgs(features: ImageFeature[] | null, order: number | null, dataPool: string | null): string[] {
  const args: string[] = [];
  if (features !== null) {
    // `--image-feature` cannot be empty: no features at all is spelled as a zero default.
    args.push(features.length > 0 ? `--image-feature=${features.join(',')}` : '--rbd-default-features=0');
  }
  // The object size, with striping to match (a clone would otherwise keep its parent's stripe unit,
  // which must divide the object size).
  if (order !== null) args.push(`--object-size=${2 ** order}`, `--stripe-unit=${2 ** order}`, '--stripe-count=1');
  if (dataPool !== null) args.push(`--data-pool=${dataPool}`);
  return args;
}

/** `rbd snap ls` prints ctime(3) text in local time, to the second. */
function parseCtime(text: string | undefined): Date | null {
  if (!text) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : new Date(ms);
}

interface ExecResult {
  exitCode?: number;
  stderr: string;
  timedOut: boolean;
  failed: boolean;
  signal?: string;
  code?: string;
  originalMessage?: string;
}

// The `ceph` CLI (Python) reports a failed connect as an exception name with exit status 1.
const PYTHON_ERRORS: [RegExp, number][] = [
  [/ObjectNotFound/, ERRNO.ENOENT!],
  [/PermissionDenied/, ERRNO.EACCES!],
  [/TimedOut|timed out/, ERRNO.ETIMEDOUT!],
  [/InvalidArgument/, ERRNO.EINVAL!],
];

/** Maps a failed `rbd`/`ceph`/`rados` run to an RbdError. */
export function cliError(tool: string, result: ExecResult, target: Target): RbdError {
  const stderr = result.stderr ?? '';
  if (result.code === 'ENOENT' && result.exitCode === undefined) {
    return new RbdError({ errno: -ERRNO.ENOENT!, op: 'spawn', detail: `${tool} not found: apt-get install ceph-common` });
  }
  if (result.timedOut) {
    return new RbdError({ ...target, errno: -ERRNO.ETIMEDOUT!, detail: `${tool} did not finish in time` });
  }
  // The meaningful line: "rbd: <what failed>: (N) text", or ceph's "Error EXXX: text"; librbd's
  // own log lines (timestamped) only back it up.
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^\d{4}-\d\d-\d\dT/.test(l));
  const ownLine = [...lines].reverse().find((l) => l.startsWith(`${tool}: `) || l.startsWith('Error E')) ?? lines.at(-1) ?? '';
  const numbered = /\((\d+)\) [A-Z]/.exec(ownLine) ?? /\((\d+)\) [A-Z]/.exec(stderr);
  const named = /^Error (E[A-Z0-9]+):/m.exec(stderr);
  const python = PYTHON_ERRORS.find(([re]) => re.test(stderr));
  let errno: number;
  if (numbered) errno = Number(numbered[1]);
  else if (named && ERRNO[named[1]!] !== undefined) errno = ERRNO[named[1]!]!;
  else if (python) errno = python[1];
  else if (result.exitCode !== undefined && result.exitCode > 1 && result.exitCode < 256) errno = result.exitCode;
  else errno = ERRNO.EIO!;

  let fields: Target = target;
  const poolOpen = /error opening pool '([^']*)'/.exec(stderr);
  if (poolOpen) fields = { ...target, op: 'rados_ioctx_create', pool: poolOpen[1] };
  else if (/error opening image/.test(stderr)) fields = { ...target, op: target.op.startsWith('rbd_open') ? target.op : 'rbd_open' };
  const detail =
    ownLine.replace(new RegExp(`^${tool}: `), '').replace(/^Error E[A-Z0-9]+: /, '') || `${tool} exited with ${result.exitCode}`;
  return new RbdError({ ...fields, errno: -errno, detail });
}
