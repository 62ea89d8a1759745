// Over 400 lines: one class that implements every Storage call with the rbd/ceph CLIs; the process handling is cli-run.ts.
// The CLI backend: every operation is one or two `rbd` (or `ceph`, `rados`) processes (cli-run.ts
// runs them and reads their failures back into RbdErrors) with `--format=json` output.
//
// Names go as `--image=NAME` (a name that starts with '-' cannot pass for an option), and free text
// (lock cookies, metadata keys and values) after `--`.

import { chmod, open, rm } from 'node:fs/promises';
import { CliGroups } from './cli-groups.js';
import { CliRunner, ERRNO, cloneError, type CliStorageOptions, type Target, type Tool } from './cli-run.js';
import { inspectDiffFile } from './diff-format.js';
import { RbdError, isRbdError } from './errors.js';
import { parseMonDump } from './monmap.js';
import type {
  ClusterConfig,
  CloneImageOptions,
  CreateImageOptions,
  DiffExport,
  DiffOptions,
  DiffSummary,
  ExportDiffOptions,
  GroupMember,
  ImageFeature,
  ImageInfo,
  ImageLock,
  ParentRef,
  ProgressOptions,
  QosLimits,
  SnapshotInfo,
  SnapshotIdRef,
  Storage,
  StorageStats,
  Watcher,
} from './types.js';
import { applyQos, cancelledError, cloneSpec, createSpec, qosFromMetadata, sortFeatures } from './validate.js';

export type { CliStorageOptions } from './cli-run.js';

export class CliStorage implements Storage {
  readonly kind = 'cli' as const;

  private readonly run: CliRunner;
  private readonly groups: CliGroups;
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing: Promise<void> | null = null;

  constructor(config: ClusterConfig = {}, options: CliStorageOptions = {}) {
    this.run = new CliRunner(config, options);
    this.groups = new CliGroups(this.run);
  }

  /** Checks that `rbd` runs and reaches the cluster (openStorage calls it once). */
  connect(): Promise<void> {
    return this.run.connect();
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
    return { pending: this.inFlight.size, ...this.run.counts(), openImages: 0, pools: 0 };
  }

  // --- images ---

  async createImage(pool: string, name: string, options: CreateImageOptions): Promise<void> {
    const o = createSpec(options);
    const args = ['create', `--pool=${pool}`, `--image=${name}`, `--size=${o.size}B`, ...imageOptionArgs(o.features, o.order, o.dataPool)];
    if (o.metadata.length === 0) return this.command('rbd', args, { op: 'rbd_create4', pool, image: name });
    return this.call(async () => {
      await this.run.rbd(args, { op: 'rbd_create4', pool, image: name });
      try {
        // The CLI has no "set several": one process per key (the addon opens the image once).
        for (const [key, value] of o.metadata) {
          await this.run.rbd(['image-meta', 'set', `--pool=${pool}`, `--image=${name}`, '--', key, value], { op: 'rbd_metadata_set', pool, image: name });
        }
      } catch (err) {
        await this.run.rbd(['rm', `--pool=${pool}`, `--image=${name}`, '--no-progress'], { op: 'rbd_remove', pool, image: name }).catch(() => undefined);
        throw err;
      }
    });
  }

  async removeImage(pool: string, name: string, options: ProgressOptions = {}): Promise<void> {
    return this.call(async () => {
      const target = { op: 'rbd_remove', pool, image: name };
      // librbd's remove spins forever trying to take the exclusive lock while an advisory lock is
      // held: refuse first, as the native backend does.
      // ENOENT: gone, or half-removed by a removal that died (listed, its header gone): no lock to
      // look at, and `rbd rm` clears what is left (or answers ENOENT itself).
      const lockers = await this.run.rbdJson<{ id: string }[]>(['lock', 'ls', `--pool=${pool}`, `--image=${name}`], target).catch((err: unknown) => {
        if (isRbdError(err, 'ENOENT')) return [];
        throw err;
      });
      if (lockers.some((l) => !l.id.startsWith('auto '))) {
        throw new RbdError({ errno: -ERRNO.EBUSY!, ...target, detail: 'image has advisory locks: break them first' });
      }
      await this.run.exec('rbd', ['rm', `--pool=${pool}`, `--image=${name}`, ...progressArgs(options)], target, { onStderr: percentOf(options) });
      options.onProgress?.(100, 100);
    });
  }

  async resizeImage(pool: string, name: string, size: number, options: { allowShrink?: boolean } & ProgressOptions = {}): Promise<void> {
    const args = ['resize', `--pool=${pool}`, `--image=${name}`, `--size=${size}B`, ...progressArgs(options)];
    return this.command('rbd', options.allowShrink ? [...args, '--allow-shrink'] : args, { op: 'rbd_resize2', pool, image: name }, options);
  }

  async renameImage(pool: string, from: string, to: string): Promise<void> {
    return this.call(async () => {
      await this.run.rbd(['rename', `--pool=${pool}`, `--image=${from}`, `--dest-pool=${pool}`, `--dest=${to}`], {
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
    return this.call(async () => {
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
        group: groupOf(info.group),
      };
    });
  }

  async listImages(pool: string): Promise<string[]> {
    return this.call(async () => {
      const names = await this.run.rbdJson<string[]>(['ls', `--pool=${pool}`], { op: 'rbd_list2', pool });
      return names.sort();
    });
  }

  async imageExists(pool: string, name: string): Promise<boolean> {
    return this.call(async () => {
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
    return this.snapCommand('create', 'rbd_snap_create', pool, image, snapshot, ['--no-progress']);
  }

  async listSnapshots(pool: string, image: string): Promise<SnapshotInfo[]> {
    return this.call(async () => {
      const snaps = await this.run.rbdJson<CliSnap[]>(['snap', 'ls', `--pool=${pool}`, `--image=${image}`], {
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
    return this.snapCommand('rm', 'rbd_snap_remove', pool, image, snapshot, ['--no-progress']);
  }

  async rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.snapCommand('rollback', 'rbd_snap_rollback', pool, image, snapshot, ['--no-progress']);
  }

  async protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.snapCommand('protect', 'rbd_snap_protect', pool, image, snapshot);
  }

  async unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.snapCommand('unprotect', 'rbd_snap_unprotect', pool, image, snapshot);
  }

  async cloneSnapshot(parent: ParentRef, pool: string, name: string, options?: CloneImageOptions): Promise<void> {
    return this.call(async () => {
      const o = cloneSpec(options);
      await this.run.rbd(
        [
          'clone',
          `--pool=${parent.pool}`,
          `--image=${parent.image}`,
          `--snap=${parent.snapshot}`,
          `--dest-pool=${pool}`,
          `--dest=${name}`,
          ...imageOptionArgs(o.features, o.order, o.dataPool),
        ],
        { op: 'rbd_clone3', pool, image: name },
      ).catch((err: unknown) => {
        throw cloneError(err, parent, pool);
      });
    });
  }

  async listChildren(parent: ParentRef): Promise<string[]> {
    return this.call(async () => {
      const { pool, image, snapshot } = parent;
      const children = await this.run.rbdJson<{ pool: string; pool_namespace?: string; image: string; trash?: boolean }[]>(
        ['children', `--pool=${pool}`, `--image=${image}`, `--snap=${snapshot}`],
        { op: 'rbd_list_children3', pool, image, snapshot },
      );
      return children
        .filter((c) => !c.trash)
        .map((c) => `${c.pool}/${c.image}`)
        .sort();
    });
  }

  async flattenImage(pool: string, name: string, options: ProgressOptions = {}): Promise<void> {
    const args = ['flatten', `--pool=${pool}`, `--image=${name}`, ...progressArgs(options)];
    return this.command('rbd', args, { op: 'rbd_flatten', pool, image: name }, options);
  }

  // --- watchers, locks, fencing ---

  async listWatchers(pool: string, image: string): Promise<Watcher[]> {
    return this.call(async () => {
      const status = await this.run.rbdJson<{ watchers?: { address: string; client: number; cookie: number }[] }>(
        ['status', `--pool=${pool}`, `--image=${image}`],
        { op: 'rbd_watchers_list', pool, image },
      );
      return (status.watchers ?? []).map((w) => ({ address: w.address, clientId: w.client, cookie: w.cookie }));
    });
  }

  async addLock(pool: string, image: string, lock: { cookie: string; tag?: string; exclusive: boolean }): Promise<void> {
    const { cookie, tag = '', exclusive } = lock;
    return this.command(
      'rbd',
      ['lock', 'add', `--pool=${pool}`, `--image=${image}`, ...(exclusive ? [] : [`--shared=${tag}`]), '--', cookie],
      { op: exclusive ? 'rbd_lock_exclusive' : 'rbd_lock_shared', pool, image },
    );
  }

  async listLocks(pool: string, image: string): Promise<ImageLock[]> {
    return this.call(async () => {
      // `rbd lock ls --format json` leaves out the tag and the lock type: ask the header object.
      const target = { op: 'rbd_list_lockers', pool, image };
      const info = await this.info(pool, image, 'rbd_open_read_only');
      const out = await this.run.exec(
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
    // Fencing is the caller's decision (blocklistAdd): librbd's blocklist-on-break is turned off.
    const args = ['lock', 'rm', `--pool=${pool}`, `--image=${image}`, '--rbd-blocklist-on-break-lock=false', '--', lock.cookie, lock.owner];
    return this.command('rbd', args, { op: 'rbd_break_lock', pool, image });
  }

  async blocklistAdd(address: string, seconds: number): Promise<void> {
    return this.command('ceph', ['osd', 'blocklist', 'add', address, String(seconds)], { op: 'rados_mon_command' });
  }

  async blocklistRemove(address: string): Promise<void> {
    return this.command('ceph', ['osd', 'blocklist', 'rm', address], { op: 'rados_mon_command' });
  }

  // --- metadata and QoS ---

  async getMetadata(pool: string, image: string): Promise<Record<string, string>> {
    return this.call(async () => {
      const meta = await this.run.rbdJson<Record<string, string>>(['image-meta', 'list', `--pool=${pool}`, `--image=${image}`], {
        op: 'rbd_metadata_list',
        pool,
        image,
      });
      return Object.fromEntries(Object.entries(meta).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    });
  }

  async setMetadata(pool: string, image: string, key: string, value: string): Promise<void> {
    const args = ['image-meta', 'set', `--pool=${pool}`, `--image=${image}`, '--', key, value];
    return this.command('rbd', args, { op: 'rbd_metadata_set', pool, image });
  }

  async removeMetadata(pool: string, image: string, key: string): Promise<void> {
    const args = ['image-meta', 'remove', `--pool=${pool}`, `--image=${image}`, '--', key];
    return this.command('rbd', args, { op: 'rbd_metadata_remove', pool, image });
  }

  async getQos(pool: string, image: string): Promise<QosLimits> {
    return qosFromMetadata(await this.getMetadata(pool, image));
  }

  async setQos(pool: string, image: string, limits: QosLimits): Promise<void> {
    await applyQos(this, pool, image, limits);
  }

  // --- consistency groups (cli-groups.ts) ---
  createGroup = (pool: string, group: string) => this.call(() => this.groups.create(pool, group));
  removeGroup = (pool: string, group: string) => this.call(() => this.groups.remove(pool, group));
  addGroupImage = (pool: string, group: string, member: GroupMember) => this.call(() => this.groups.add(pool, group, member));
  listGroupImages = (pool: string, group: string) => this.call(() => this.groups.members(pool, group));
  createGroupSnapshot = (pool: string, group: string, snapshot: string) => this.call(() => this.groups.snap(pool, group, snapshot));
  listGroupSnapshots = (pool: string, group: string) => this.call(() => this.groups.snapshots(pool, group));
  removeGroupSnapshot = (pool: string, group: string, snapshot: string) => this.call(() => this.groups.removeSnap(pool, group, snapshot));
  rollbackGroupSnapshot = (pool: string, group: string, snapshot: string, options: ProgressOptions = {}) =>
    this.call(async () => {
      await this.groups.rollback(pool, group, snapshot, options.onProgress !== undefined, percentOf(options));
      options.onProgress?.(100, 100);
    });
  listMemberSnapshots = (pool: string, image: string) => this.call(() => this.groups.memberSnapshots(pool, image));

  /** rbd 16 opens a snapshot by name in the user namespace only (`rbd copy POOL/IMAGE@.group.…` is ENOENT): a member's part of a group snapshot cannot be read from the CLI. */
  copySnapshot = async (source: SnapshotIdRef, pool: string, name: string): Promise<void> => {
    throw new RbdError({
      errno: -ERRNO.EOPNOTSUPP!,
      op: 'rbd_copy',
      pool: source.pool,
      image: source.image,
      detail: `the rbd CLI cannot copy snapshot id ${source.snapshotId} (rbd 16 opens snapshots by name in the user namespace only) into ${pool}/${name}: run volmaster with the native backend (the addon)`,
    });
  };

  async clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }> {
    return this.call(async () => {
      const out = await this.run.exec('ceph', ['mon', 'dump', '--format=json'], { op: 'rados_mon_command' });
      return parseMonDump(out);
    });
  }

  // --- backups: `rbd export-diff` / `rbd import-diff` ---
  // The addon's contract on top of rbd's: the snapshots are looked up first (one `rbd snap ls`), so
  // that a missing one fails as in the native backend; the file is made 0600 and fsync'ed after
  // rbd wrote it (rbd makes it 0644 and does not sync); an import checks the whole file first
  // (`rbd import-diff` would apply a corrupt file half-way). Progress is read from rbd's own
  // "N% complete" lines; the summary from the file.

  async exportDiff(pool: string, image: string, range: { from: string | null; to: string }, file: string, options: ExportDiffOptions = {}): Promise<DiffExport> {
    return this.call(async () => {
      const target = { op: 'rbd_diff_iterate2', pool, image };
      if (options.signal?.aborted) throw cancelledError(target.op, target);
      const snaps = await this.snapshotSizes(pool, image, 'rbd_open_read_only', range.to);
      const size = snaps.get(range.to);
      if (size === undefined) throw new RbdError({ errno: -ERRNO.ENOENT!, op: 'rbd_open_read_only', pool, image, snapshot: range.to, detail: `no snapshot ${range.to}` });
      if (range.from !== null && !snaps.has(range.from)) {
        throw new RbdError({ errno: -ERRNO.ENOENT!, op: 'rbd_snap_exists', pool, image, snapshot: range.from, detail: `the start snapshot ${range.from} does not exist` });
      }
      // Created (O_EXCL) and removed again first: open(2)'s errors as the addon reports them (EEXIST,
      // ENOENT for a missing directory, EACCES), before rbd starts; rbd then creates it itself.
      try {
        await (await open(file, 'wx', 0o600)).close();
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new RbdError({ errno: e.errno ?? -ERRNO.EIO!, op: 'open', detail: `${e.code}: ${file}` });
      }
      await rm(file, { force: true });
      const wholeObject = options.wholeObject === true && (await this.info(pool, image, 'rbd_open_read_only')).features.includes('fast-diff');
      const args = ['export-diff', `--pool=${pool}`, `--image=${image}`, `--snap=${range.to}`];
      if (range.from !== null) args.push(`--from-snap=${range.from}`);
      if (wholeObject) args.push('--whole-object');
      try {
        await this.run.rbd([...args, '--', file], target, { long: true, signal: options.signal, onStderr: progressReader(size, options) });
        // rbd makes it 0644 and leaves it in the page cache: the addon's 0600 and fsync.
        await chmod(file, 0o600);
        const handle = await open(file, 'r');
        await handle.sync().finally(() => handle.close());
        const summary = await inspectDiffFile(file);
        options.onProgress?.(size, size);
        return { ...summary, wholeObject };
      } catch (err) {
        await rm(file, { force: true });
        throw err;
      }
    });
  }

  async applyDiff(pool: string, image: string, file: string, options: DiffOptions = {}): Promise<DiffSummary> {
    return this.call(async () => {
      if (options.signal?.aborted) throw cancelledError('rbd_diff_v1', { pool, image });
      const summary = await inspectDiffFile(file).catch((err: unknown) => {
        throw err instanceof RbdError ? new RbdError({ errno: err.errno, op: err.op, pool, image, detail: err.detail }) : err;
      });
      const snaps = await this.snapshotSizes(pool, image, 'rbd_open');
      if (summary.fromSnapshot !== null && !snaps.has(summary.fromSnapshot)) {
        const detail = `the diff starts at snapshot ${summary.fromSnapshot}, which the image does not have`;
        throw new RbdError({ errno: -ERRNO.ENOENT!, op: 'rbd_snap_exists', pool, image, snapshot: summary.fromSnapshot, detail });
      }
      if (summary.toSnapshot !== null && snaps.has(summary.toSnapshot)) {
        const detail = `the diff ends at snapshot ${summary.toSnapshot}, which the image already has`;
        throw new RbdError({ errno: -ERRNO.EEXIST!, op: 'rbd_snap_exists', pool, image, snapshot: summary.toSnapshot, detail });
      }
      const args = ['import-diff', `--pool=${pool}`, `--image=${image}`, '--', file];
      await this.run.rbd(args, { op: 'rbd_diff_v1', pool, image }, { long: true, signal: options.signal, onStderr: progressReader(summary.streamBytes, options) });
      options.onProgress?.(summary.streamBytes, summary.streamBytes);
      return summary;
    });
  }

  async inspectDiff(file: string): Promise<DiffSummary> {
    return this.call(() => inspectDiffFile(file));
  }

  // --- internals ---

  /** The image's snapshots and their sizes, by name; `op` names the call when the image is missing. */
  private async snapshotSizes(pool: string, image: string, op: string, snapshot?: string): Promise<Map<string, number>> {
    const snaps = await this.run.rbdJson<CliSnap[]>(['snap', 'ls', `--pool=${pool}`, `--image=${image}`], { op, pool, image, snapshot });
    return new Map(snaps.map((s) => [s.name, s.size]));
  }

  /** Runs one public operation, tracked so that close() can wait for it. */
  private call<T>(body: () => Promise<T>): Promise<T> {
    const promise = body();
    this.inFlight.add(promise);
    const done = () => this.inFlight.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /** `rbd snap VERB` on one snapshot. */
  private snapCommand(verb: string, op: string, pool: string, image: string, snapshot: string, extra: string[] = []): Promise<void> {
    const args = ['snap', verb, `--pool=${pool}`, `--image=${image}`, `--snap=${snapshot}`, ...extra];
    return this.command('rbd', args, { op, pool, image, snapshot });
  }

  /** One command as a whole operation, whose output is not needed. */
  private command(tool: Tool, args: string[], target: Target, progress: ProgressOptions = {}): Promise<void> {
    return this.call(async () => {
      await this.run.exec(tool, args, target, { onStderr: percentOf(progress) });
      progress.onProgress?.(100, 100);
    });
  }

  private async info(pool: string, image: string, op: string): Promise<CliInfo> {
    return this.run.rbdJson<CliInfo>(['info', `--pool=${pool}`, `--image=${image}`], { op, pool, image });
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
  /** "pool/group" when the image is in a consistency group. */
  group?: string;
}

function groupOf(spec: string | undefined): { pool: string; name: string } | null {
  const at = spec?.indexOf('/') ?? -1;
  return spec && at > 0 ? { pool: spec.slice(0, at), name: spec.slice(at + 1) } : null;
}

interface CliSnap {
  id: number;
  name: string;
  size: number;
  protected: string;
  timestamp?: string;
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

/** Turns rbd's "Exporting image: 42% complete..." lines into progress of `total` bytes. */
function progressReader(total: number, options: DiffOptions): ((text: string) => void) | undefined {
  const report = options.onProgress;
  if (!report) return undefined;
  return (text) => {
    const all = [...text.matchAll(/(\d{1,3})% complete/g)];
    const pct = all.length > 0 ? Number(all.at(-1)![1]) : null;
    if (pct !== null && pct < 100) report(Math.floor((total * pct) / 100), total);
  };
}

/** `rbd snap ls` prints ctime(3) text in local time, to the second. */
function parseCtime(text: string | undefined): Date | null {
  if (!text) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : new Date(ms);
}

/** rbd prints "<What>: N% complete..." on stderr unless told --no-progress: only asked for when someone listens. */
function progressArgs(options: ProgressOptions): string[] {
  return options.onProgress ? [] : ['--no-progress'];
}

/** Reads rbd's percentages off its stderr for `options.onProgress` (done of 100); the caller reports 100 at the end. */
function percentOf(options: ProgressOptions): ((text: string) => void) | undefined {
  const on = options.onProgress;
  if (!on) return undefined;
  return (text) => {
    const all = [...text.matchAll(/(\d{1,3})% complete/g)];
    const last = all.at(-1);
    if (last) on(Math.min(100, Number(last[1])), 100);
  };
}
