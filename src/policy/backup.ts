// The `backup` block of a tenant policy, beside `snapshot`:
//
//   "default-options": { "pool": "rbd", "backups": true,
//     "backup": { "frequency": "24h", "keep": 7,            (or tiers: {"last": 3, "daily": 7, "weekly": 4})
//                 "target": { "directory": "/var/backups/volplugin" },
//                 "hook": ["upload-backup", "--bucket=b1"] } }
//
// or "target": { "ceph": { "conf": "/etc/ceph/backup.conf", "keyring": "/etc/ceph/backup.keyring",
// "client": "backup", "pool": "backups" } } for a replica in a second cluster (or another pool).
//
// Paths and the hook are the tenant's, uploaded by an admin, and they are used by root daemons: a
// path must be absolute and plain (no `.` or `..` parts), and each daemon only uses targets under
// its own --backup-allow directories. The hook follows the filesystem commands' rules
// (filesystem.ts): an argument vector run without a shell, its program a bare name on the daemon's
// --backup-hook-allow list, each argument plain text; TENANT/VOLUME, SNAPSHOT and FILE are
// appended. These rules are checked at upload and again right before use (a record in etcd is not
// trusted).

import path from 'node:path';
import type { Static } from '@sinclair/typebox';
import { mkfsProgramProblem } from './filesystem.js';
import { poolProblem } from './names.js';
import { retentionProblem, type Retention } from './retention.js';
import type { BackupBlockSchema, BackupTargetSchema } from './schema.js';
import { parseFrequency } from './units.js';

export type BackupTarget = Static<typeof BackupTargetSchema>;
export type BackupBlock = Static<typeof BackupBlockSchema>;

/** When `default-options.backup` (or one of its keys) is absent. */
export const DEFAULT_BACKUP: Readonly<{ frequency: string; keep: Retention }> = Object.freeze({ frequency: '24h', keep: 7 });

export const MAX_HOOK_ARGUMENT = 1024;
const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why `value` cannot be a path in a backup target, or null. */
export function backupPathProblem(value: string): string | null {
  if (!value.startsWith('/')) return `${JSON.stringify(value)} is not an absolute path`;
  if (CONTROL.test(value)) return `${JSON.stringify(value)} contains control characters`;
  if (value.length > 4096) return 'is longer than 4096 characters';
  if (value !== '/' && (path.posix.normalize(value) !== value.replace(/\/+$/, '') || value.split('/').some((p) => p === '.' || p === '..'))) {
    return `${JSON.stringify(value)} is not a plain path (write it without ".", ".." or "//")`;
  }
  return null;
}

/** The first problem of a target, as `[field under the target, message]`, or null. */
export function targetProblem(target: BackupTarget): [string, string] | null {
  if ('directory' in target) {
    const problem = backupPathProblem(target.directory);
    return problem ? ['directory', problem] : null;
  }
  const c = target.ceph;
  for (const field of ['conf', 'keyring'] as const) {
    const value = c[field];
    const problem = value === undefined ? null : backupPathProblem(value);
    if (problem) return [`ceph.${field}`, problem];
  }
  if (c.client !== undefined && !CLIENT_ID.test(c.client)) return ['ceph.client', `${JSON.stringify(c.client)} is not a cephx id (letters, digits, "_", ".", "-"; without "client.")`];
  const pool = poolProblem(c.pool);
  return pool ? ['ceph.pool', pool] : null;
}

/** Why `hook` cannot be a backup hook, or null; with `allowed`, its program must be on that list. */
export function hookProblem(hook: readonly string[], allowed: readonly string[] | null = null): string | null {
  const [program, ...args] = hook;
  if (program === undefined) return 'names no program; write e.g. ["upload-backup", "--bucket=b1"]';
  const bad = mkfsProgramProblem(program);
  if (bad) return `the program ${bad}; it is found on the daemon's PATH`;
  if (allowed !== null && !allowed.includes(program)) {
    return `runs ${JSON.stringify(program)}, which is not an allowed program (--backup-hook-allow: ${allowed.length > 0 ? allowed.join(', ') : 'none'})`;
  }
  for (const arg of args) {
    if (CONTROL.test(arg)) return `the argument ${JSON.stringify(arg)} contains control characters`;
    if (arg.length > MAX_HOOK_ARGUMENT) return `an argument is longer than ${MAX_HOOK_ARGUMENT} characters`;
  }
  return null;
}

/** The argv of a hook for one backup; throws naming the rule when the hook breaks one. */
export function hookArgv(hook: readonly string[], allowed: readonly string[], fields: { volume: string; snapshot: string; file: string }): { program: string; args: string[] } {
  const problem = hookProblem(hook, allowed);
  if (problem) throw new Error(`the backup hook ${JSON.stringify(hook)} ${problem}`);
  return { program: hook[0]!, args: [...hook.slice(1), fields.volume, fields.snapshot, fields.file] };
}

/**
 * Whether `file` lies inside one of `allowed` (both plain absolute paths, as checked above; the
 * caller resolves symbolic links first). `allowed` empty: nothing is.
 */
export function insideAllowed(file: string, allowed: readonly string[]): boolean {
  return allowed.some((dir) => {
    const rel = path.posix.relative(dir, file);
    return rel === '' || (!rel.startsWith('..') && !path.posix.isAbsolute(rel));
  });
}

/** The typed backup defaults of a policy's default-options; throws via `fail(field, message)`. */
export function checkBackupDefaults(
  raw: { backups?: boolean; backup?: BackupBlock },
  field: string,
  fail: (field: string, message: string) => never,
): { backups: boolean; backup: { frequency: string; keep: Retention } } {
  const block = raw.backup ?? {};
  const backup: { frequency: string; keep: Retention } = { ...DEFAULT_BACKUP };
  if (block.frequency !== undefined) {
    parseFrequency(block.frequency, { field: `${field}.backup.frequency`, code: 'INVALID_POLICY' });
    backup.frequency = block.frequency.trim();
  }
  if (block.keep !== undefined) {
    const problem = retentionProblem(block.keep);
    if (problem) fail(`${field}.backup.keep`, problem);
    backup.keep = structuredClone(block.keep);
  }
  if (block.target !== undefined) {
    const problem = targetProblem(block.target);
    if (problem) fail(`${field}.backup.target.${problem[0]}`, problem[1]);
  }
  if (block.hook !== undefined) {
    const problem = hookProblem(block.hook);
    if (problem) fail(`${field}.backup.hook`, problem);
  }
  const backups = raw.backups ?? false;
  if (backups && block.target === undefined) {
    fail(`${field}.backup.target`, 'is not set, and backups are on: name a directory ({"directory": "/var/backups/volplugin"}) or a Ceph cluster ({"ceph": {...}})');
  }
  return { backups, backup };
}
