// The CLI backend: every operation is one or two `rbd` (or `ceph`, `rados`) processes (cli-run.ts
// runs them and reads their failures back into RbdErrors) with `--format=json` output.
//
// Names go as `--image=NAME` (a name that starts with '-' cannot pass for an option), and free text
// (lock cookies, metadata keys and values) after `--`.

import { CliGroups } from './cli-groups.js';
import { CliRunner, ERRNO, cloneError, type CliStorageOptions, type Target, type Tool } from './cli-run.js';
import { RbdError } from './errors.js';
import { parseMonDump } from './monmap.js';
import type {
  ClusterConfig,
  CreateImageOptions,
  GroupMember,
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
import { applyQos, cloneSpec, createSpec, qosFromMetadata, sortFeatures } from './validate.js';

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
    return { pending: this.inFlight.size, openImages: 0, pools: 0 };
  }

  // --- images ---

  async createImage(pool: string, name: string, options: CreateImageOptions): Promise<void> {
    const o = createSpec(options);
    const args = ['create', `--pool=${pool}`, `--image=${name}`, `--size=${o.size}B`, ...imageOptionArgs(o.features, o.order, o.dataPool)];
    return this.command('rbd', args, { op: 'rbd_create4', pool, image: name });
  }

  async removeImage(pool: string, name: string): Promise<void> {
    return this.call(async () => {
      const target = { op: 'rbd_remove', pool, image: name };
      // librbd's remove spins forever trying to take the exclusive lock while an advisory lock is
      // held: refuse first, as the native backend does.
      const lockers = await this.run.rbdJson<{ id: string }[]>(['lock', 'ls', `--pool=${pool}`, `--image=${name}`], target);
      if (lockers.some((l) => !l.id.startsWith('auto '))) {
        throw new RbdError({ errno: -ERRNO.EBUSY!, ...target, detail: 'image has advisory locks: break them first' });
      }
      await this.run.rbd(['rm', `--pool=${pool}`, `--image=${name}`, '--no-progress'], target);
    });
  }

  async resizeImage(pool: string, name: string, size: number, options: { allowShrink?: boolean } = {}): Promise<void> {
    const args = ['resize', `--pool=${pool}`, `--image=${name}`, `--size=${size}B`, '--no-progress'];
    return this.command('rbd', options.allowShrink ? [...args, '--allow-shrink'] : args, { op: 'rbd_resize2', pool, image: name });
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

  async cloneSnapshot(parent: ParentRef, pool: string, name: string, options?: Omit<CreateImageOptions, 'size'>): Promise<void> {
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

  async flattenImage(pool: string, name: string): Promise<void> {
    return this.command('rbd', ['flatten', `--pool=${pool}`, `--image=${name}`, '--no-progress'], { op: 'rbd_flatten', pool, image: name });
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

  async clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }> {
    return this.call(async () => {
      const out = await this.run.exec('ceph', ['mon', 'dump', '--format=json'], { op: 'rados_mon_command' });
      return parseMonDump(out);
    });
  }

  // --- internals ---

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
  private command(tool: Tool, args: string[], target: Target): Promise<void> {
    return this.call(async () => {
      await this.run.exec(tool, args, target);
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

/** `rbd snap ls` prints ctime(3) text in local time, to the second. */
function parseCtime(text: string | undefined): Date | null {
  if (!text) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : new Date(ms);
}
