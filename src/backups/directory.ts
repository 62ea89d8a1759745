// A directory target (a local path or a mounted NFS share): one directory per volume,
// <root>/<tenant>/<volume>/, holding `<backup>.diff` files in `rbd export-diff` format (so that
// `rbd import-diff` restores them without volplugin) and `manifest.json`.
//
// A diff is written as `<backup>.diff.partial` (the addon fsyncs it), read back for its checksum,
// renamed to `<backup>.diff` and the directory fsync'ed; only then does the manifest name it
// (written atomically: temp file, fsync, rename, fsync). A process killed before that leaves a
// partial or unnamed file, which tidy() removes, never a manifest entry without its file. The root
// itself is never created: a missing root is an unmounted share, and writing into the empty mount
// point would fill the wrong disk.

import { lstat, mkdir, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApiError } from '../api/errors.js';
import { insideAllowed } from '../policy/backup.js';
import { sha256File, syncDir, writeAtomically } from './files.js';
import { chainTo, emptyManifest, parseManifest, type Manifest, type ManifestEntry } from './manifest.js';
import { targetError, type OnBackupProgress, type TargetVolume, type VerifyFinding, type WriteStep, type Written } from './target.js';
import type { Storage } from '../storage/types.js';

const MANIFEST = 'manifest.json';

export class DirectoryTarget implements TargetVolume {
  readonly describe: string;
  readonly chained = true;
  private readonly dir: string;

  private constructor(
    private readonly root: string,
    private readonly tenant: string,
    private readonly volume: string,
    /** Reads diff files (inspectDiff): the daemon's own connection. */
    private readonly storage: Storage,
  ) {
    this.describe = `directory ${root}`;
    this.dir = path.join(root, tenant, volume);
  }

  /**
   * The target of one volume in `root`, which must exist, be a directory and lie (symbolic links
   * resolved) inside one of `allowed`. BACKUP_TARGET_UNAVAILABLE otherwise, saying what to do.
   */
  static async open(root: string, tenant: string, volume: string, allowed: readonly string[], storage: Storage): Promise<DirectoryTarget> {
    let real: string;
    try {
      real = await realpath(root);
      if (!(await stat(real)).isDirectory()) throw Object.assign(new Error(`${root} is not a directory`), { code: 'ENOTDIR' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'does not exist: create it, or mount the NFS share there' : `cannot be used (${(err as Error).message})`;
      throw new ApiError('BACKUP_TARGET_UNAVAILABLE', `backup target directory ${root} ${why}`, { cause: err });
    }
    if (!insideAllowed(real, allowed)) {
      throw new ApiError(
        'BACKUP_TARGET_UNAVAILABLE',
        `backup target directory ${root}${real !== root ? ` (${real})` : ''} is not under an allowed directory of this daemon (--backup-allow: ${allowed.join(', ') || 'none'}); ` +
          'start volmaster and volsupervisor with --backup-allow naming it',
      );
    }
    return new DirectoryTarget(real, tenant, volume, storage);
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  async readManifest(): Promise<Manifest> {
    let text: string;
    try {
      text = await readFile(this.file(MANIFEST), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyManifest(this.tenant, this.volume);
      throw targetError(err, 'reading the manifest', this.describe);
    }
    return parseManifest(text, this.file(MANIFEST));
  }

  async tidy(manifest: Manifest): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw targetError(err, 'listing the volume directory', this.describe);
    }
    const named = new Set(manifest.backups.map((b) => b.file));
    const stale = names.filter((n) => n.endsWith('.partial') || n === `${MANIFEST}.tmp` || (n.endsWith('.diff') && !named.has(n)));
    for (const n of stale) await rm(this.file(n), { force: true });
    if (stale.length > 0) await syncDir(this.dir);
    return stale;
  }

  async write(step: WriteStep, name: string): Promise<Written> {
    const file = `${name}.diff`;
    const partial = this.file(`${file}.partial`);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await rm(partial, { force: true });
      const summary = await step.storage.exportDiff(step.source.pool, step.source.image, { from: step.from, to: step.to }, partial, {
        signal: step.signal,
        onProgress: step.onProgress && ((done, total) => step.onProgress!({ phase: 'export', done, total })),
      });
      try {
        // Read back from the target, not from memory: what the checksum vouches for is what is stored.
        const sha256 = await sha256File(partial, step.onProgress && ((done) => step.onProgress!({ phase: 'checksum', done, total: summary.streamBytes })));
        await step.afterExport?.();
        await rename(partial, this.file(file));
        await syncDir(this.dir);
        return { file, bytes: summary.streamBytes, dataBytes: summary.dataBytes, sizeBytes: summary.size, sha256 };
      } catch (err) {
        await rm(partial, { force: true }).catch(() => undefined);
        throw err;
      }
    } catch (err) {
      throw targetError(err, `writing backup ${name}`, this.describe);
    }
  }

  async commit(manifest: Manifest): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeAtomically(this.file(MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    } catch (err) {
      throw targetError(err, 'writing the manifest', this.describe);
    }
  }

  async drop(entries: readonly ManifestEntry[]): Promise<void> {
    for (const e of entries) if (e.file) await rm(this.file(e.file), { force: true });
    if (entries.length > 0) await syncDir(this.dir).catch(() => undefined);
  }

  location(entry: ManifestEntry): string {
    return this.file(entry.file ?? '');
  }

  /** Checks a backup's file against the manifest (checksum, size, its snapshots); a problem, or null. */
  private async check(entry: ManifestEntry, onBytes?: (done: number) => void): Promise<string | null> {
    if (!entry.file) return 'names no file';
    const file = this.file(entry.file);
    const st = await lstat(file).catch(() => null);
    if (!st) return `its file ${file} is missing`;
    if (st.size !== entry.bytes) return `its file ${file} has ${st.size} bytes, the manifest says ${entry.bytes}`;
    if ((await sha256File(file, onBytes)) !== entry.sha256) return `its file ${file} does not match its checksum (damaged)`;
    try {
      const s = await this.storage.inspectDiff(file);
      if (s.fromSnapshot !== entry.parent || s.toSnapshot !== entry.name) {
        return `its file ${file} is a diff from ${s.fromSnapshot ?? 'nothing'} to ${s.toSnapshot ?? 'the head'}, not from ${entry.parent ?? 'nothing'} to ${entry.name}`;
      }
      if (s.size !== entry.sizeBytes) return `its file ${file} restores ${s.size} bytes, the manifest says ${entry.sizeBytes}`;
    } catch (err) {
      return `its file ${file} is not a valid diff: ${(err as Error).message}`;
    }
    return null;
  }

  async restoreStreams(manifest: Manifest, entry: ManifestEntry, apply: (file: string) => Promise<void>, signal: AbortSignal, onProgress?: OnBackupProgress): Promise<void> {
    const chain = chainTo(manifest, entry.name);
    const total = chain.reduce((n, b) => n + b.bytes, 0);
    let before = 0;
    for (const b of chain) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('cancelled');
      const problem = await this.check(b, onProgress && ((done) => onProgress({ phase: 'verify', done: before + done, total })));
      if (problem) {
        throw new ApiError('BACKUP_CHAIN_BROKEN', `backup ${b.name} of ${this.tenant}/${this.volume}, which the restore of ${entry.name} needs, ${problem}; restore a backup of another chain (volcli volume backup list)`);
      }
      await apply(this.file(b.file!));
      before += b.bytes;
    }
  }

  async verify(manifest: Manifest, onProgress?: OnBackupProgress): Promise<VerifyFinding[]> {
    const findings: VerifyFinding[] = [];
    const total = manifest.backups.reduce((n, b) => n + b.bytes, 0);
    let before = 0;
    for (const b of manifest.backups) {
      const problem = await this.check(b, onProgress && ((done) => onProgress({ phase: 'verify', done: before + done, total })));
      if (problem) findings.push({ backup: b.name, problem });
      before += b.bytes;
    }
    return findings;
  }
}
