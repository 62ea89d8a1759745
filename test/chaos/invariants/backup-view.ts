// A volume's backups as an operator sees them from outside the system under test: the manifest
// and files of a directory target (read from disk), or the replica image of a Ceph target (read
// with the `rbd` CLI); the leftovers a dead run may have left there; and checksums of what an
// image or snapshot reads as (`rbd export` to a hash).

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Manifest, ManifestEntry } from '../../../src/backups/manifest.js';
import type { Cluster } from './cluster-view.js';

export type BackupTargetKind = 'directory' | 'ceph';

/** Image metadata keys of a replica (src/backups/ceph.ts): its manifest and the marker of an apply. */
const MANIFEST_KEY = 'volplugin.backup.manifest';
const APPLYING_KEY = 'volplugin.backup.applying';

/** sha256 of `rbd export SPEC -`: the bytes an image or snapshot reads as; null when rbd fails. */
export function exportDigest(cephConf: string, spec: string, timeoutMs = 120_000): Promise<string | null> {
  return new Promise((resolve) => {
    const child = spawn('rbd', ['-c', cephConf, 'export', '--no-progress', spec, '-'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const hash = createHash('sha256');
    child.stdout.on('data', (d: Buffer) => hash.update(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', () => resolve(null));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? hash.digest('hex') : null);
    });
  });
}

export class BackupView {
  constructor(
    readonly cluster: Cluster,
    readonly kind: BackupTargetKind,
    readonly name: string,
    /** The directory target's root, or the replica's pool. */
    readonly where: string,
  ) {}

  get image(): string {
    return this.cluster.imageOf(this.name);
  }

  private get dir(): string {
    return path.join(this.where, ...this.name.split('/'));
  }

  get describe(): string {
    return this.kind === 'directory' ? this.dir : `${this.where}/${this.image}`;
  }

  async manifest(): Promise<Manifest | null> {
    if (this.kind === 'directory') {
      const text = await readFile(path.join(this.dir, 'manifest.json'), 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      return text === null ? null : (JSON.parse(text) as Manifest);
    }
    const text = await this.cluster.rbd('image-meta', 'get', `${this.where}/${this.image}`, MANIFEST_KEY).catch(() => null);
    return text === null ? null : (JSON.parse(text) as Manifest);
  }

  /** The backups the manifest counts (none without a manifest). */
  async counted(): Promise<ManifestEntry[]> {
    return (await this.manifest())?.backups ?? [];
  }

  /**
   * What the target holds that `counted` does not name: partial or unnamed diff files, a replica's
   * unnamed snapshots and its apply marker. Each as a short sentence that names it.
   */
  async leftovers(counted: readonly ManifestEntry[]): Promise<string[]> {
    if (this.kind === 'directory') {
      const names = await readdir(this.dir).catch(() => [] as string[]);
      const files = new Set(counted.map((b) => b.file));
      return names.filter((n) => n !== 'manifest.json' && !files.has(n)).map((n) => `file ${n}`);
    }
    const out: string[] = [];
    const replica = `${this.where}/${this.image}`;
    const marker = await this.cluster.rbd('image-meta', 'get', replica, APPLYING_KEY).catch(() => null);
    if (marker !== null) out.push(`apply marker ${marker.trim()}`);
    const named = new Set(counted.map((b) => b.name));
    for (const snap of await this.cluster.snapshots(replica.slice(replica.indexOf('/') + 1), this.where)) {
      if (!named.has(snap)) out.push(`replica snapshot ${snap}`);
    }
    return out;
  }

  /**
   * True while a backup's diff is being written: a partial file in the volume's directory, or a
   * diff staged for the replica in `staging`.
   */
  async exporting(staging: string): Promise<boolean> {
    if (this.kind === 'directory') return (await readdir(this.dir).catch(() => [] as string[])).some((n) => n.endsWith('.partial'));
    return (await readdir(staging).catch(() => [] as string[])).some((n) => n.startsWith(`${this.image}.`));
  }

  /** The volume's own backup snapshots (`vb-`). */
  async sourceSnapshots(): Promise<string[]> {
    return (await this.cluster.snapshots(this.image)).filter((s) => s.startsWith('vb-'));
  }

  /** A diff file of the directory target, by its name in the manifest. */
  file(entry: ManifestEntry): string {
    return path.join(this.dir, entry.file ?? '');
  }
}

/** The chain that restores `entry`, oldest first, walked through the parents (null: a parent is missing). */
export function chainOf(counted: readonly ManifestEntry[], entry: ManifestEntry): ManifestEntry[] | null {
  const chain = [entry];
  while (chain[0]!.parent !== null) {
    const parent = counted.find((b) => b.name === chain[0]!.parent);
    if (!parent) return null;
    chain.unshift(parent);
  }
  return chain;
}
