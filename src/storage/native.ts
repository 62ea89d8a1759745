// The native backend: a thin facade over the C++ addon (native/*.cc, built to
// build/Release/volplugin_rbd.node). The addon holds one librados connection, a cache of pool
// contexts and the image handles of running operations; this file checks every argument first
// (TypeError/RangeError naming the field), converts results to the Storage types, and gives each
// RbdError the stack of the JS call that caused it (native errors are built on a worker's
// completion, with no JS frames of their own).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Addon from '../../native/volplugin_rbd.js';
import { RbdError } from './errors.js';
import { parseMonDump } from './monmap.js';
import type {
  ClusterConfig,
  CreateImageOptions,
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
  featureMask,
  featureNames,
  qosFromMetadata,
} from './validate.js';

type AddonModule = typeof Addon;

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
  const trace = captureSite(writeSysfsFile);
  try {
    await loadAddon().writeFile(file, data);
  } catch (err) {
    throw withSite(err, trace);
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
    const trace = captureSite(NativeStorage.open);
    const conf = config.confPath === undefined ? null : checkText('config.confPath', config.confPath);
    const keyring = config.keyring === undefined ? null : checkText('config.keyring', config.keyring);
    const clientId = config.clientId === undefined ? null : checkText('config.clientId', config.clientId);
    const mod = loadAddon();
    const cluster = new mod.Cluster();
    try {
      await cluster.connect(conf, keyring, clientId, FIXED_CONF);
    } catch (err) {
      await cluster.close();
      throw withSite(err, trace);
    }
    return new NativeStorage(cluster);
  }

  async close(): Promise<void> {
    this.closing ??= this.cluster.close();
    return this.closing;
  }

  stats(): StorageStats {
    return this.cluster.stats();
  }

  // --- images ---

  async createImage(pool: string, name: string, options: CreateImageOptions): Promise<void> {
    const site = this.enter('createImage', this.createImage);
    checkName('pool', pool);
    checkName('name', name);
    const o = checkCreateOptions(options);
    return this.run(site, () => this.cluster.createImage(pool, name, o.size, featureMask(o.features), o.order, o.dataPool));
  }

  async removeImage(pool: string, name: string): Promise<void> {
    const site = this.enter('removeImage', this.removeImage);
    checkName('pool', pool);
    checkName('name', name);
    return this.run(site, () => this.cluster.removeImage(pool, name));
  }

  async resizeImage(pool: string, name: string, size: number, options: { allowShrink?: boolean } = {}): Promise<void> {
    const site = this.enter('resizeImage', this.resizeImage);
    checkName('pool', pool);
    checkName('name', name);
    checkSize('size', size);
    const allowShrink = options.allowShrink === undefined ? false : checkBoolean('options.allowShrink', options.allowShrink);
    return this.run(site, () => this.cluster.resizeImage(pool, name, size, allowShrink));
  }

  async renameImage(pool: string, from: string, to: string): Promise<void> {
    const site = this.enter('renameImage', this.renameImage);
    checkName('pool', pool);
    checkName('from', from);
    checkName('to', to);
    return this.run(site, () => this.cluster.renameImage(pool, from, to));
  }

  async imageInfo(pool: string, name: string): Promise<ImageInfo> {
    const site = this.enter('imageInfo', this.imageInfo);
    checkName('pool', pool);
    checkName('name', name);
    const info = await this.run(site, () => this.cluster.imageInfo(pool, name));
    return {
      pool,
      name,
      size: info.size,
      order: info.order,
      objectSize: info.objectSize,
      features: featureNames(info.features),
      parent: info.parent,
      snapshotCount: info.snapshotCount,
    };
  }

  async listImages(pool: string): Promise<string[]> {
    const site = this.enter('listImages', this.listImages);
    checkName('pool', pool);
    const names = await this.run(site, () => this.cluster.listImages(pool));
    return names.sort();
  }

  async imageExists(pool: string, name: string): Promise<boolean> {
    const site = this.enter('imageExists', this.imageExists);
    checkName('pool', pool);
    checkName('name', name);
    return this.run(site, () => this.cluster.imageExists(pool, name));
  }

  // --- snapshots ---

  async createSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    const site = this.enter('createSnapshot', this.createSnapshot);
    checkSnap(pool, image, snapshot);
    return this.run(site, () => this.cluster.createSnapshot(pool, image, snapshot));
  }

  async listSnapshots(pool: string, image: string): Promise<SnapshotInfo[]> {
    const site = this.enter('listSnapshots', this.listSnapshots);
    checkName('pool', pool);
    checkName('image', image);
    const snaps = await this.run(site, () => this.cluster.listSnapshots(pool, image));
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
    const site = this.enter('removeSnapshot', this.removeSnapshot);
    checkSnap(pool, image, snapshot);
    return this.run(site, () => this.cluster.removeSnapshot(pool, image, snapshot));
  }

  async rollbackSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    const site = this.enter('rollbackSnapshot', this.rollbackSnapshot);
    checkSnap(pool, image, snapshot);
    return this.run(site, () => this.cluster.rollbackSnapshot(pool, image, snapshot));
  }

  async protectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    const site = this.enter('protectSnapshot', this.protectSnapshot);
    checkSnap(pool, image, snapshot);
    return this.run(site, () => this.cluster.protectSnapshot(pool, image, snapshot));
  }

  async unprotectSnapshot(pool: string, image: string, snapshot: string): Promise<void> {
    const site = this.enter('unprotectSnapshot', this.unprotectSnapshot);
    checkSnap(pool, image, snapshot);
    return this.run(site, () => this.cluster.unprotectSnapshot(pool, image, snapshot));
  }

  async cloneSnapshot(parent: ParentRef, pool: string, name: string, options?: Omit<CreateImageOptions, 'size'>): Promise<void> {
    const site = this.enter('cloneSnapshot', this.cloneSnapshot);
    const p = checkParent(parent);
    checkName('pool', pool);
    checkName('name', name);
    const o = checkImageOptions(options, { features: null });
    return this.run(site, () =>
      this.cluster.cloneSnapshot(
        p.pool,
        p.image,
        p.snapshot,
        pool,
        name,
        o.features === null ? null : featureMask(o.features),
        o.order,
        o.dataPool,
      ),
    );
  }

  async listChildren(parent: ParentRef): Promise<string[]> {
    const site = this.enter('listChildren', this.listChildren);
    const p = checkParent(parent);
    const children = await this.run(site, () => this.cluster.listChildren(p.pool, p.image, p.snapshot));
    return children.sort();
  }

  async flattenImage(pool: string, name: string): Promise<void> {
    const site = this.enter('flattenImage', this.flattenImage);
    checkName('pool', pool);
    checkName('name', name);
    return this.run(site, () => this.cluster.flattenImage(pool, name));
  }

  // --- watchers, locks, fencing ---

  async listWatchers(pool: string, image: string): Promise<Watcher[]> {
    const site = this.enter('listWatchers', this.listWatchers);
    checkName('pool', pool);
    checkName('image', image);
    const watchers = await this.run(site, () => this.cluster.listWatchers(pool, image));
    return watchers.map((w) => ({ address: w.address, clientId: w.id, cookie: w.cookie }));
  }

  async addLock(pool: string, image: string, lock: { cookie: string; tag?: string; exclusive: boolean }): Promise<void> {
    const site = this.enter('addLock', this.addLock);
    checkName('pool', pool);
    checkName('image', image);
    const { cookie, tag, exclusive } = checkLock(lock);
    return this.run(site, () => this.cluster.addLock(pool, image, cookie, tag, exclusive));
  }

  async listLocks(pool: string, image: string): Promise<ImageLock[]> {
    const site = this.enter('listLocks', this.listLocks);
    checkName('pool', pool);
    checkName('image', image);
    const info = await this.run(site, () => this.cluster.listLocks(pool, image));
    return info.lockers.map((l) => ({ owner: l.owner, cookie: l.cookie, tag: info.tag, exclusive: info.exclusive, address: l.address }));
  }

  async breakLock(pool: string, image: string, lock: { owner: string; cookie: string }): Promise<void> {
    const site = this.enter('breakLock', this.breakLock);
    checkName('pool', pool);
    checkName('image', image);
    if (typeof lock !== 'object' || lock === null) throw new TypeError('lock must be an object');
    const owner = checkText('lock.owner', lock.owner);
    const cookie = checkText('lock.cookie', lock.cookie);
    return this.run(site, () => this.cluster.breakLock(pool, image, owner, cookie));
  }

  async blocklistAdd(address: string, seconds: number): Promise<void> {
    const site = this.enter('blocklistAdd', this.blocklistAdd);
    checkAddress('address', address);
    checkSize('seconds', seconds, { min: 1 });
    // `expire` is a CephFloat: the monitor wants a JSON real ("120.0"), an integer is "bad or missing".
    const command = `{"prefix":"osd blocklist","blocklistop":"add","addr":${JSON.stringify(address)},"expire":${seconds.toFixed(1)}}`;
    await this.run(site, () => this.cluster.monCommand(command));
  }

  async blocklistRemove(address: string): Promise<void> {
    const site = this.enter('blocklistRemove', this.blocklistRemove);
    checkAddress('address', address);
    const command = JSON.stringify({ prefix: 'osd blocklist', blocklistop: 'rm', addr: address });
    await this.run(site, () => this.cluster.monCommand(command));
  }

  // --- metadata and QoS ---

  async getMetadata(pool: string, image: string): Promise<Record<string, string>> {
    const site = this.enter('getMetadata', this.getMetadata);
    checkName('pool', pool);
    checkName('image', image);
    const meta = await this.run(site, () => this.cluster.getMetadata(pool, image));
    return Object.fromEntries(Object.entries(meta).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async setMetadata(pool: string, image: string, key: string, value: string): Promise<void> {
    const site = this.enter('setMetadata', this.setMetadata);
    checkName('pool', pool);
    checkName('image', image);
    checkText('key', key);
    checkText('value', value);
    return this.run(site, () => this.cluster.setMetadata(pool, image, key, value));
  }

  async removeMetadata(pool: string, image: string, key: string): Promise<void> {
    const site = this.enter('removeMetadata', this.removeMetadata);
    checkName('pool', pool);
    checkName('image', image);
    checkText('key', key);
    return this.run(site, () => this.cluster.removeMetadata(pool, image, key));
  }

  async getQos(pool: string, image: string): Promise<QosLimits> {
    return qosFromMetadata(await this.getMetadata(pool, image));
  }

  async setQos(pool: string, image: string, limits: QosLimits): Promise<void> {
    this.enter('setQos', this.setQos);
    checkName('pool', pool);
    checkName('image', image);
    await applyQos(this, pool, image, checkQos(limits));
  }

  async clusterInfo(): Promise<{ fsid: string; monAddresses: string[] }> {
    const site = this.enter('clusterInfo', this.clusterInfo);
    const [fsid, dump] = await Promise.all([
      this.run(site, () => this.cluster.fsid()),
      this.run(site, () => this.cluster.monCommand(JSON.stringify({ prefix: 'mon dump', format: 'json' }))),
    ]);
    return { fsid, monAddresses: parseMonDump(dump.out).monAddresses };
  }

  // --- internals ---

  /** Refuses calls after close(); returns the caller's stack for errors that come back later. */
  private enter(op: string, method: (...args: never[]) => unknown): Site {
    if (this.closing) throw closedError(op);
    return captureSite(method);
  }

  private async run<T>(site: Site, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw withSite(err, site);
    }
  }
}

interface Site {
  stack?: string;
}

function captureSite(fn: (...args: never[]) => unknown): Site {
  const site: Site = {};
  Error.captureStackTrace(site, fn);
  return site;
}

/** Gives a native RbdError the JS stack of the call that caused it. */
function withSite(err: unknown, site: Site): unknown {
  if (err instanceof RbdError && site.stack) {
    err.stack = `${err.name}: ${err.message}\n${site.stack.split('\n').slice(1).join('\n')}`;
  }
  return err;
}

function checkSnap(pool: string, image: string, snapshot: string): void {
  checkName('pool', pool);
  checkName('image', image);
  checkName('snapshot', snapshot);
}
