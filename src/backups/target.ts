// What a backup target does for one volume, whatever it is (a directory: directory.ts; a replica in
// a Ceph cluster: ceph.ts). The service (service.ts) drives the steps in this order, so that a
// backup counts only once it is complete and durable, and a process killed at any line leaves
// nothing that passes for a backup:
//
//   tidy()    removes what a dead run left (a partial file, a file no manifest names, a replica
//             half-written by an apply)
//   write()   stores one backup's diff (not yet counted)
//   commit()  writes the manifest that names it: from here on it is a backup
//   drop()    removes pruned backups, after the manifest no longer names them

import { ApiError } from '../api/errors.js';
import { isRbdError } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import type { Manifest, ManifestEntry } from './manifest.js';

/** Progress of a long step, in bytes: the one line the operations API hangs on. */
export interface BackupProgress {
  phase: 'export' | 'checksum' | 'apply' | 'verify';
  done: number;
  total: number;
}

export type OnBackupProgress = (progress: BackupProgress) => void;

/** One backup to write: the diff of `source` from snapshot `from` (null: full) to `to`. */
export interface WriteStep {
  storage: Storage;
  source: { pool: string; image: string };
  from: string | null;
  to: string;
  signal: AbortSignal;
  onProgress?: OnBackupProgress;
  /** Test-only: runs after the diff is written, before it is renamed into place (a failpoint). */
  afterExport?: () => Promise<void>;
}

/** What write() learnt; the service adds parent, times and source to make the manifest entry. */
export interface Written {
  file: string | null;
  bytes: number;
  dataBytes: number;
  sizeBytes: number;
  sha256: string;
}

export interface VerifyFinding {
  backup: string | null;
  problem: string;
}

export interface TargetVolume {
  /** For logs and records: "directory /backups", "ceph pool backups (conf ...)". */
  readonly describe: string;
  /**
   * Whether a backup needs its chain to be restored (diff files), or is a whole restore point of
   * its own (a replica's snapshot): chains bound their length by `keep` and are pruned whole.
   */
  readonly chained: boolean;
  readManifest(): Promise<Manifest>;
  /** Removes leftovers of dead runs; returns what it removed (for the log). */
  tidy(manifest: Manifest): Promise<string[]>;
  write(step: WriteStep, name: string): Promise<Written>;
  commit(manifest: Manifest): Promise<void>;
  drop(entries: readonly ManifestEntry[]): Promise<void>;
  /** Where a hook is told the backup is: a file, or `pool/image@snapshot` of the replica. */
  location(entry: ManifestEntry): string;
  /**
   * Runs `apply` for each stream that restores `entry`, in order (the chain's files, checked against
   * their checksums first; or one full stream exported from the replica).
   */
  restoreStreams(manifest: Manifest, entry: ManifestEntry, apply: (file: string) => Promise<void>, signal: AbortSignal, onProgress?: OnBackupProgress): Promise<void>;
  /** Reads every backup back and checks it; findings are problems (empty: all good). */
  verify(manifest: Manifest, onProgress?: OnBackupProgress): Promise<VerifyFinding[]>;
}

const UNAVAILABLE = new Set(['ENOENT', 'EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'ESTALE', 'ENOTCONN', 'ETIMEDOUT', 'EHOSTDOWN', 'EIO']);
const FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** A failure of the target as the API reports it: full (507), unusable (503), or as it was. */
export function targetError(err: unknown, what: string, target: string): unknown {
  const code = isRbdError(err) ? err.code : (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string') return err;
  const detail = err instanceof Error ? err.message : String(err);
  if (FULL.has(code)) {
    return new ApiError('BACKUP_TARGET_FULL', `backup target ${target} is full (${code} while ${what}): free room there or lower backups.keep; nothing was counted as a backup`, { cause: err });
  }
  // An RbdError about the image is Ceph's, not the target's (a missing snapshot is ENOENT too).
  if (UNAVAILABLE.has(code) && (!isRbdError(err) || ['open', 'write', 'fsync', 'close', 'rbd_diff_v1'].includes(err.op))) {
    return new ApiError('BACKUP_TARGET_UNAVAILABLE', `backup target ${target} cannot be used (${code} while ${what}: ${detail})`, { cause: err });
  }
  return err;
}
