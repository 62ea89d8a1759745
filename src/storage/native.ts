// Over 400 lines: one thin method per Storage call over the addon (the checks are checked.ts, the work native/*.cc).
// The native backend: a thin facade over the C++ addon (native/*.cc, built to
// build/Release/volplugin_rbd.node). The addon holds one librados connection, a cache of pool
// contexts and the image handles of running operations; this file converts arguments and results
// between the Storage types and the addon's. Argument checks, the refusal after close() and the
// caller's stack on errors are checked.ts's, in front of every backend (the addon still checks the
// types it reads itself, so that nothing it is given can crash it).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Addon from '../../native/volplugin_rbd.js';
import { RbdError, callSite, withCallSite } from './errors.js';
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
  GroupSnapshotInfo,
  MemberSnapshotInfo,
  SnapshotIdRef,
  ImageInfo,
  ImageLock,
  ParentRef,
  ProgressOptions,
  QosLimits,
  SnapshotInfo,
  Storage,
  StorageStats,
  Watcher,
} from './types.js';
import { applyQos, cancelledError, checkText, cloneSpec, createSpec, featureMask, featureNames, qosFromMetadata } from './validate.js';

type AddonModule = typeof Addon;

/** The addon's progress callback for a call's onProgress (null: none; the addon then only counts). */
function listener(options: ProgressOptions): Addon.NativeProgress | undefined {
  const on = options.onProgress;
  return on ? (done, total) => void on(done, total) : undefined;
}

const ADDON_FILE = 'volplugin_rbd.node';

/** The addon could not be loaded; `message` says why and what to do. */
export class AddonLoadError extends Error {
  readonly code = 'ERR_RBD_ADDON_LOAD';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AddonLoadError';
  }
}

let addon: AddonModule | null = null;

/** Where the built addon may be: $VOLPLUGIN_RBD_ADDON, else build/Release in this package. */
export function addonCandidates(): string[] {
  const fromEnv = process.env.VOLPLUGIN_RBD_ADDON;
  if (fromEnv) return [fromEnv];
  const out: string[] = [];
  // src/storage (tsx, vitest) or dist/storage (built): the package root is an ancestor.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    out.push(path.join(dir, 'build', 'Release', ADDON_FILE));
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return out;
}

/** Loads the addon once. Throws AddonLoadError with a remedy when it cannot. */
export function loadAddon(): AddonModule {
  if (addon) return addon;
  const candidates = addonCandidates();
  const file = candidates.find((f) => existsSync(f));
  const cli = 'or run with the CLI backend (--backend cli)';
  if (!file) {
    throw new AddonLoadError(
      `the native RBD addon is not built (looked for ${candidates.join(', ')}): run \`pnpm run build:native\` ` +
        `(needs g++, make, python3, librbd-dev and librados-dev), ${cli}`,
    );
  }
  const require = createRequire(import.meta.url);
  let mod: AddonModule;
  try {
    mod = require(file) as AddonModule;
  } catch (err) {
    throw explainAddonLoadFailure(file, err);
  }
  mod.init(RbdError);
  addon = mod;
  return mod;
}

/** Turns dlopen's complaint into what to do about it. */
export function explainAddonLoadFailure(file: string, err: unknown): AddonLoadError {
  const cli = 'or run with the CLI backend (--backend cli)';
  const text = err instanceof Error ? err.message : String(err);
  const lib = /(lib(?:rbd|rados)\.so[.\d]*)/.exec(text)?.[1];
  if (lib && /cannot open shared object|No such file/i.test(text)) {
    const pkg = lib.startsWith('librbd') ? 'librbd1' : 'librados2';
    return new AddonLoadError(`${lib} not found: apt-get install ${pkg}, ${cli} (loading ${file}: ${text})`, { cause: err });
  }
  if (/NODE_MODULE_VERSION|different Node\.js version|napi_/i.test(text)) {
    return new AddonLoadError(`${file} was built for another Node.js: run \`pnpm run build:native\`, ${cli} (${text})`, {
      cause: err,
    });
  }
  return new AddonLoadError(`cannot load ${file}: ${text}; rebuild it with \`pnpm run build:native\`, ${cli}`, { cause: err });
}

/** Writes a sysfs or cgroup file with one write(2), off the JS thread (krbd add/remove, blkio). */
export async function writeSysfsFile(file: string, data: string): Promise<void> {
  checkText('path', file);
  checkText('data', data);
  const site = callSite(writeSysfsFile);
  try {
    await loadAddon().writeFile(file, data);
  } catch (err) {
    throw withCallSite(err, site);
  }
}

/** librados settings the backend always applies (after ceph.conf and CEPH_ARGS). */
const FIXED_CONF: Record<string, string> = {
  // breakLock() only breaks; fencing is the caller's explicit blocklistAdd(), as in the CLI backend.
  rbd_blocklist_on_break_lock: 'false',
};

export class NativeStorage implements Storage {
  readonly kind = 'native' as const;
  private closing: Promise<void> | null = null;

  private constructor(private readonly cluster: Addon.Cluster) {}

  /** Connects (rados_connect) with `config`; the connection is shared by every call. */
  static async open(config: ClusterConfig = {}): Promise<NativeStorage> {
    const site = callSite(NativeStorage.open);
    const mod = loadAddon();
    const cluster = new mod.Cluster();
    try {
      await cluster.connect(config.confPath ?? null, config.keyring ?? null, config.clientId ?? null, FIXED_CONF);
    } catch (err) {
      await cluster.close();
      throw withCallSite(err, site);
    }
    return new NativeStorage(cluster);
  }

  async close(): Promise<void> {
    this.closing ??= this.cluster.close();
    return this.closing;
  }

  stats(): StorageStats {
    const { busy, queued } = this.cluster.threadStats();
    return { ...this.cluster.stats(), running: busy, queued };
  }

  // --- images ---

  async createImage(pool: string, name: string, options: CreateImageOptions): Promise<void> {
    const o = createSpec(options);
    return this.cluster.createImage(pool, name, o.size, featureMask(o.features), o.order, o.dataPool, o.metadata.length > 0 ? o.metadata : null);
  }

  async removeImage(pool: string, name: string, options: ProgressOptions = {}): Promise<void> {
    return this.cluster.removeImage(pool, name, listener(options));
  }

  async resizeImage(pool: string, name: string, size: number, options: { allowShrink?: boolean } & ProgressOptions = {}): Promise<void> {
    return this.cluster.resizeImage(pool, name, size, options.allowShrink ?? false, listener(options));
  }

  async renameImage(pool: string, from: string, to: string): Promise<void> {
    return this.cluster.renameImage(pool, from, to);
  }

  async imageInfo(pool: string, name: string): Promise<ImageInfo> {
    const info = await this.cluster.imageInfo(pool, name);
    return {
      pool,
      name,
      size: info.size,
      order: info.order,
      objectSize: info.objectSize,
      features: featureNames(info.features),
      parent: info.parent,
      snapshotCount: info.snapshotCount,
      group: info.group,
    };
  }

  async listImages(pool: string): Promise<string[]> {
    return (await this.cluster.listImages(pool)).sort();
  }

  async imageExists(pool: string, name: string): Promise<boolean> {
    return this.cluster.imageExists(pool, name);
  }

  // --- snapshots ---

  async createSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.cluster.createSnapshot(pool, image, snapshot);
  }

  async listSnapshots(pool: string, image: string): Promise<SnapshotInfo[]> {
    const snaps = await this.cluster.listSnapshots(pool, image);
    return snaps
      .map((s) => ({
        id: s.id,
        name: s.name,
        size: s.size,
        protected: s.protected,
        createdAt: s.timestamp === null ? null : new Date(s.timestamp * 1000),
      }))
      .sort((a, b) => a.id - b.id);
  }

  async removeSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.cluster.removeSnapshot(pool, image, snapshot);
  }

  async rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.cluster.rollbackSnapshot(pool, image, snapshot);
  }

  async protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.cluster.protectSnapshot(pool, image, snapshot);
  }

  async unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    return this.cluster.unprotectSnapshot(pool, image, snapshot);
  }

  async cloneSnapshot(parent: ParentRef, pool: string, name: string, options?: CloneImageOptions): Promise<void> {
    const o = cloneSpec(options);
    const features = o.features === null ? null : featureMask(o.features);
    return this.cluster.cloneSnapshot(parent.pool, parent.image, parent.snapshot, pool, name, features, o.order, o.dataPool);
  }

  async listChildren(parent: ParentRef): Promise<string[]> {
    return (await this.cluster.listChildren(parent.pool, parent.image, parent.snapshot)).sort();
  }

  async flattenImage(pool: string, name: string, options: ProgressOptions = {}): Promise<void> {
    return this.cluster.flattenImage(pool, name, listener(options));
  }

  // --- consistency groups ---

  async createGroup(pool: string, group: string): Promise<void> {
    return this.cluster.createGroup(pool, group);
  }

  async removeGroup(pool: string, group: string): Promise<void> {
    await this.groupExists('rbd_group_remove', pool, group);
    return this.cluster.removeGroup(pool, group);
  }

  async addGroupImage(pool: string, group: string, member: GroupMember): Promise<void> {
    // librbd answers EEXIST for a member of this group too: only another group is a refusal.
    try {
      return await this.cluster.addGroupImage(pool, group, member.pool, member.image);
    } catch (err) {
      const mine = (await this.listGroupImages(pool, group).catch(() => [])).some((m) => m.pool === member.pool && m.image === member.image);
      if (!mine) throw err;
    }
  }

  async listGroupImages(pool: string, group: string): Promise<GroupMember[]> {
    // librbd 16 lists a group that does not exist as empty: ENOENT, as for every other group call.
    await this.groupExists('rbd_group_image_list', pool, group);
    return (await this.cluster.listGroupImages(pool, group)).map((m) => ({ pool: m.pool, image: m.image }));
  }

  async createGroupSnapshot(pool: string, group: string, snapshot: string): Promise<void> {
    return this.cluster.createGroupSnapshot(pool, group, snapshot);
  }

  async listGroupSnapshots(pool: string, group: string): Promise<GroupSnapshotInfo[]> {
    await this.groupExists('rbd_group_snap_list', pool, group);
    return (await this.cluster.listGroupSnapshots(pool, group)).map((s) => ({ name: s.name, complete: s.state === 'complete' }));
  }

  async removeGroupSnapshot(pool: string, group: string, snapshot: string): Promise<void> {
    return this.cluster.removeGroupSnapshot(pool, group, snapshot);
  }

  async rollbackGroupSnapshot(pool: string, group: string, snapshot: string, options: ProgressOptions = {}): Promise<void> {
    await this.groupExists('rbd_group_snap_rollback', pool, group);
    return this.cluster.rollbackGroupSnapshot(pool, group, snapshot, listener(options));
  }

  async listMemberSnapshots(pool: string, image: string): Promise<MemberSnapshotInfo[]> {
    return (await this.cluster.listMemberSnapshots(pool, image))
      .sort((a, b) => a.id - b.id)
      .map((s) => ({
        id: s.id,
        size: s.size,
        createdAt: s.timestamp === null ? null : new Date(s.timestamp * 1000),
        group: { pool: s.groupPool, group: s.group, snapshot: s.groupSnapshot },
      }));
  }

  async copySnapshot(source: SnapshotIdRef, pool: string, name: string, options: CloneImageOptions & ProgressOptions = {}): Promise<void> {
    const o = cloneSpec(options);
    const features = o.features === null ? null : featureMask(o.features);
    return this.cluster.copySnapshot(source.pool, source.image, source.snapshotId, pool, name, features, o.order, o.dataPool, listener(options));
  }

  private async groupExists(op: string, pool: string, group: string): Promise<void> {
    if (!(await this.cluster.listGroups(pool)).includes(group)) {
      throw new RbdError({ errno: -2, op, pool, image: group, detail: `group ${pool}/${group} does not exist` });
    }
  }

  // --- watchers, locks, fencing ---

  async listWatchers(pool: string, image: string): Promise<Watcher[]> {
    const watchers = await this.cluster.listWatchers(pool, image);
    return watchers.map((w) => ({ address: w.address, clientId: w.id, cookie: w.cookie }));
  }

  async addLock(pool: string, image: string, lock: { cookie: string; tag?: string; exclusive: boolean }): Promise<void> {
    return this.cluster.addLock(pool, image, lock.cookie, lock.tag ?? '', lock.exclusive);
  }

  async listLocks(pool: string, image: string): Promise<ImageLock[]> {
    const info = await this.cluster.listLocks(pool, image);
    return info.lockers.map((l) => ({ owner: l.owner, cookie: l.cookie, tag: info.tag, exclusive: info.exclusive, address: l.address }));
  }

  async breakLock(pool: string, image: string, lock: { owner: string; cookie: string }): Promise<void> {
    return this.cluster.breakLock(pool, image, lock.owner, lock.cookie);
  }

  async blocklistAdd(address: string, seconds: number): Promise<void> {
    // `expire` is a CephFloat: the monitor wants a JSON real ("120.0"), an integer is "bad or missing".
    const command = `{"prefix":"osd blocklist","blocklistop":"add","addr":${JSON.stringify(address)},"expire":${seconds.toFixed(1)}}`;
    await this.cluster.monCommand(command);
  }

  async blocklistRemove(address: string): Promise<void> {
    await this.cluster.monCommand(JSON.stringify({ prefix: 'osd blocklist', blocklistop: 'rm', addr: address }));
  }

  // --- metadata and QoS ---

  async getMetadata(pool: string, image: string): Promise<Record<string, string>> {
    const meta = await this.cluster.getMetadata(pool, image);
    return Object.fromEntries(Object.entries(meta).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async setMetadata(pool: string, image: string, key: string, value: string): Promise<void> {
    return this.cluster.setMetadata(pool, image, key, value);
  }

  async removeMetadata(pool: string, image: string, key: string): Promise<void> {
    return this.cluster.removeMetadata(pool, image, key);
  }

  async getQos(pool: string, image: string): Promise<QosLimits> {
    return qosFromMetadata(await this.getMetadata(pool, image));
  }

  async setQos(pool: string, image: string, limits: QosLimits): Promise<void> {
    await applyQos(this, pool, image, limits);
  }

  async clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }> {
    const [fsid, dump] = await Promise.all([
      this.cluster.fsid(),
      this.cluster.monCommand(JSON.stringify({ prefix: 'mon dump', format: 'json' })),
    ]);
    return { fsid, monAddresses: parseMonDump(dump.out).monAddresses };
  }

  // --- backups: export-diff streams ---

  async exportDiff(pool: string, image: string, range: { from: string | null; to: string }, file: string, options: ExportDiffOptions = {}): Promise<DiffExport> {
    if (options.signal?.aborted) throw cancelledError('rbd_diff_iterate2', { pool, image });
    const r = await this.cluster.exportDiff(pool, image, range.from, range.to, file, options.wholeObject ?? false, progressOf(options));
    return summaryOf(r, r.wholeObject);
  }

  async applyDiff(pool: string, image: string, file: string, options: DiffOptions = {}): Promise<DiffSummary> {
    if (options.signal?.aborted) throw cancelledError('rbd_diff_v1', { pool, image });
    return summaryOf(await this.cluster.applyDiff(pool, image, file, progressOf(options)));
  }

  async inspectDiff(file: string): Promise<DiffSummary> {
    return summaryOf(await this.cluster.inspectDiff(file));
  }
}

/** The addon's progress callback for `options`: reports, and cancels (returns false) once the signal aborts. Null when neither is asked for. */
function progressOf(options: DiffOptions): Addon.NativeProgress | null {
  const { onProgress, signal } = options;
  if (!onProgress && !signal) return null;
  return (done, total) => {
    onProgress?.(done, total);
    return signal?.aborted ? false : undefined;
  };
}

function summaryOf(s: Addon.NativeDiffSummary): DiffSummary;
function summaryOf(s: Addon.NativeDiffSummary, wholeObject: boolean): DiffExport;
function summaryOf(s: Addon.NativeDiffSummary, wholeObject?: boolean): DiffSummary | DiffExport {
  const out: DiffSummary = {
    fromSnapshot: s.fromSnapshot,
    toSnapshot: s.toSnapshot,
    size: s.size,
    streamBytes: s.streamBytes,
    dataBytes: s.dataBytes,
    zeroBytes: s.zeroBytes,
    writeRecords: s.writeRecords,
    zeroRecords: s.zeroRecords,
  };
  return wholeObject === undefined ? out : { ...out, wholeObject };
}
