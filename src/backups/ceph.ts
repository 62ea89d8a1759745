// A Ceph target: a replica image per volume in another cluster's pool (or another pool of the same
// cluster), with the volume's image name. Each backup's diff is exported to a staging file,
// checked whole by applyDiff on the target's own connection, and applied to the replica, which
// then has the backup's snapshot: every backup is a whole restore point there, so a restore is one
// full export of that snapshot and pruning removes snapshots in any order. The manifest lives in
// the replica's image metadata (one atomic write).
//
// An apply sets a marker on the replica first and removes it after: a marker found later means an
// apply died half-way, and tidy() rolls the replica back to its last backup (or removes a replica
// that never had one). Snapshots the manifest does not name are removed: a run that died after
// applying but before its manifest write.

import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ApiError } from '../api/errors.js';
import { isRbdError } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import { VOLUME_IMAGE_FEATURES } from '../storage/conventions.js';
import { sha256File } from './files.js';
import { emptyManifest, parseManifest, type Manifest, type ManifestEntry } from './manifest.js';
import { targetError, type OnBackupProgress, type TargetVolume, type VerifyFinding, type WriteStep, type Written } from './target.js';

export const MANIFEST_KEY = 'volplugin.backup.manifest';
export const APPLYING_KEY = 'volplugin.backup.applying';

const CONNECTION = new Set(['ETIMEDOUT', 'ENOTCONN', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ESHUTDOWN']);

export interface CephTargetParts {
  /** The target cluster's connection. */
  target: Storage;
  /** The fsid of the volume's own cluster, to refuse a replica onto the volume's own pool. */
  sourceFsid: () => Promise<string>;
  pool: string;
  describe: string;
  stagingDir: string;
}

export class CephTarget implements TargetVolume {
  readonly describe: string;
  readonly chained = false;
  private readonly storage: Storage;
  private readonly pool: string;

  constructor(
    private readonly parts: CephTargetParts,
    private readonly tenant: string,
    private readonly volume: string,
    /** The replica's name: the volume's image name. */
    private readonly image: string,
  ) {
    this.describe = parts.describe;
    this.storage = parts.target;
    this.pool = parts.pool;
  }

  /** A call to the target cluster; an unreachable one is BACKUP_TARGET_UNAVAILABLE. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isRbdError(err) && (CONNECTION.has(err.code) || (err.code === 'ENOENT' && err.op === 'rados_ioctx_create'))) {
        const why = err.code === 'ENOENT' ? `its pool ${this.pool} does not exist` : `it cannot be reached (${err.code})`;
        throw new ApiError('BACKUP_TARGET_UNAVAILABLE', `backup target ${this.describe}: ${why} while ${what}`, { cause: err });
      }
      throw targetError(err, what, this.describe);
    }
  }

  private async exists(): Promise<boolean> {
    return this.call('looking for the replica', () => this.storage.imageExists(this.pool, this.image));
  }

  async readManifest(): Promise<Manifest> {
    if (!(await this.exists())) return emptyManifest(this.tenant, this.volume);
    const meta = await this.call('reading the manifest', () => this.storage.getMetadata(this.pool, this.image));
    const text = meta[MANIFEST_KEY];
    return text === undefined ? emptyManifest(this.tenant, this.volume) : parseManifest(text, `of ${this.pool}/${this.image} (${this.describe})`);
  }

  async tidy(manifest: Manifest): Promise<string[]> {
    if (!(await this.exists())) return [];
    const done: string[] = [];
    const meta = await this.call('reading the replica', () => this.storage.getMetadata(this.pool, this.image));
    const last = manifest.backups.at(-1);
    if (meta[APPLYING_KEY] !== undefined) {
      if (!last) {
        await this.destroyReplica();
        return [`${this.pool}/${this.image} (never completed)`];
      }
      await this.call('rolling the replica back', () => this.storage.rollbackSnapshot(this.pool, this.image, last.name));
      done.push(`${this.pool}/${this.image} rolled back to ${last.name}`);
    }
    const named = new Set(manifest.backups.map((b) => b.name));
    for (const snap of await this.call('listing the replica', () => this.storage.listSnapshots(this.pool, this.image))) {
      if (named.has(snap.name)) continue;
      await this.call('removing a stray snapshot', () => this.storage.removeSnapshot(this.pool, this.image, snap.name));
      done.push(`${this.pool}/${this.image}@${snap.name}`);
    }
    if (meta[APPLYING_KEY] !== undefined) await this.call('clearing the apply marker', () => this.storage.removeMetadata(this.pool, this.image, APPLYING_KEY));
    return done;
  }

  private async destroyReplica(): Promise<void> {
    for (const snap of await this.storage.listSnapshots(this.pool, this.image)) await this.storage.removeSnapshot(this.pool, this.image, snap.name);
    await this.storage.removeImage(this.pool, this.image);
  }

  private async staged<T>(fn: (file: string) => Promise<T>): Promise<T> {
    await mkdir(this.parts.stagingDir, { recursive: true, mode: 0o700 });
    const file = path.join(this.parts.stagingDir, `${this.image}.${randomUUID()}.diff`);
    try {
      return await fn(file);
    } finally {
      await rm(file, { force: true });
    }
  }

  async write(step: WriteStep, name: string): Promise<Written> {
    const { fsid: targetFsid } = await this.call('reading the target cluster', () => this.storage.clusterInfo());
    if (targetFsid === (await this.parts.sourceFsid()) && this.pool === step.source.pool) {
      throw new ApiError('BACKUP_TARGET_UNAVAILABLE', `backup target ${this.describe} is the volume's own pool ${step.source.pool}: a replica there would be the volume itself; name another pool or cluster`);
    }
    return this.staged(async (file) => {
      const summary = await step.storage
        .exportDiff(step.source.pool, step.source.image, { from: step.from, to: step.to }, file, {
          signal: step.signal,
          onProgress: step.onProgress && ((done, total) => step.onProgress!({ phase: 'export', done, total })),
        })
        .catch((err: unknown) => {
          throw targetError(err, `staging backup ${name} in ${this.parts.stagingDir}`, `staging directory ${this.parts.stagingDir}`);
        });
      const sha256 = await sha256File(file);
      await step.afterExport?.();
      if (!(await this.exists())) {
        await this.call('creating the replica', () => this.storage.createImage(this.pool, this.image, { size: summary.size, features: VOLUME_IMAGE_FEATURES }));
      }
      await this.call('marking the replica', () => this.storage.setMetadata(this.pool, this.image, APPLYING_KEY, name));
      // A full backup onto an existing replica: its head must start empty (a full diff carries only
      // what the volume has), its snapshots stay as they are.
      if (step.from === null) await this.call('emptying the replica', () => this.storage.resizeImage(this.pool, this.image, 0, { allowShrink: true }));
      await this.call(`applying backup ${name} to the replica`, () =>
        this.storage.applyDiff(this.pool, this.image, file, {
          signal: step.signal,
          onProgress: step.onProgress && ((done, total) => step.onProgress!({ phase: 'apply', done, total })),
        }),
      );
      await this.call('clearing the apply marker', () => this.storage.removeMetadata(this.pool, this.image, APPLYING_KEY));
      return { file: null, bytes: summary.streamBytes, dataBytes: summary.dataBytes, sizeBytes: summary.size, sha256 };
    });
  }

  async commit(manifest: Manifest): Promise<void> {
    await this.call('writing the manifest', () => this.storage.setMetadata(this.pool, this.image, MANIFEST_KEY, JSON.stringify(manifest)));
  }

  async drop(entries: readonly ManifestEntry[]): Promise<void> {
    for (const e of entries) {
      await this.call(`removing backup ${e.name}`, () => this.storage.removeSnapshot(this.pool, this.image, e.name)).catch((err: unknown) => {
        if (!isRbdError(err, 'ENOENT')) throw err;
      });
    }
  }

  location(entry: ManifestEntry): string {
    return `${this.pool}/${this.image}@${entry.name}`;
  }

  async restoreStreams(_manifest: Manifest, entry: ManifestEntry, apply: (file: string) => Promise<void>, signal: AbortSignal, onProgress?: OnBackupProgress): Promise<void> {
    const snaps = await this.call('listing the replica', () => this.storage.listSnapshots(this.pool, this.image)).catch((err: unknown) => {
      if (isRbdError(err, 'ENOENT')) return [];
      throw err;
    });
    if (!snaps.some((s) => s.name === entry.name)) {
      throw new ApiError('BACKUP_CHAIN_BROKEN', `backup ${entry.name} of ${this.tenant}/${this.volume} is in the manifest, but the replica ${this.pool}/${this.image} has no such snapshot; restore another backup`);
    }
    await this.staged(async (file) => {
      await this.call(`exporting backup ${entry.name} from the replica`, () =>
        this.storage.exportDiff(this.pool, this.image, { from: null, to: entry.name }, file, {
          signal,
          onProgress: onProgress && ((done, total) => onProgress({ phase: 'export', done, total })),
        }),
      );
      await apply(file);
    });
  }

  /**
   * Checks each backup's snapshot on the replica (there, of the right size) and reads its data back:
   * the diff from the previous good snapshot (the first in full) is exported to the staging
   * directory and read whole, so that every byte kept is read once and an unreadable object is found.
   */
  async verify(manifest: Manifest, onProgress?: OnBackupProgress): Promise<VerifyFinding[]> {
    if (manifest.backups.length === 0) return [];
    if (!(await this.exists())) return [{ backup: null, problem: `the replica ${this.pool}/${this.image} is missing` }];
    const findings: VerifyFinding[] = [];
    const meta = await this.call('reading the replica', () => this.storage.getMetadata(this.pool, this.image));
    if (meta[APPLYING_KEY] !== undefined) findings.push({ backup: meta[APPLYING_KEY], problem: 'an apply to the replica did not finish (the next backup rolls it back)' });
    const snaps = new Map((await this.call('listing the replica', () => this.storage.listSnapshots(this.pool, this.image))).map((s) => [s.name, s]));
    for (const b of manifest.backups) {
      const snap = snaps.get(b.name);
      if (!snap) findings.push({ backup: b.name, problem: `the replica ${this.pool}/${this.image} has no snapshot ${b.name}` });
      else if (snap.size !== b.sizeBytes) findings.push({ backup: b.name, problem: `its snapshot on the replica has ${snap.size} bytes, the manifest says ${b.sizeBytes}` });
    }
    const good = manifest.backups.filter((b) => snaps.has(b.name));
    const total = good.reduce((n, b) => n + b.dataBytes, 0);
    let before = 0;
    let previous: string | null = null;
    for (const b of good) {
      try {
        const read = await this.staged(async (file) => {
          const range = { from: previous, to: b.name };
          const summary = await this.storage.exportDiff(this.pool, this.image, range, file, { onProgress: onProgress && ((done) => onProgress({ phase: 'verify', done: before + done, total })) });
          await this.storage.inspectDiff(file);
          return summary;
        });
        before += b.dataBytes;
        if (read.size !== b.sizeBytes) findings.push({ backup: b.name, problem: `its snapshot on the replica reads as ${read.size} bytes, the manifest says ${b.sizeBytes}` });
        previous = b.name;
      } catch (err) {
        findings.push({ backup: b.name, problem: `its snapshot on the replica cannot be read back: ${(err as Error).message}` });
      }
    }
    return findings;
  }
}
