// The flags of the two daemons that run backups (volmaster on demand, volsupervisor on schedule):
// which directories a tenant's backup target may name, which programs a backup hook may run, how
// long a hook may take, and where a Ceph target's diffs are staged. One definition for both.

import { tmpdir } from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { collectList, wholeNumber } from '../common/flags.js';
import { backupPathProblem } from '../policy/backup.js';
import { mkfsProgramProblem } from '../policy/filesystem.js';

export interface BackupConfig {
  /** Directories targets (and a Ceph target's conf and keyring) must lie in. */
  allow: string[];
  /** Programs a backup hook may run. */
  hookAllow: string[];
  hookTimeoutMs: number;
  /** Where a diff bound for a Ceph target is written first (room for one diff). */
  stagingDir: string;
}

/** Where backup targets may be unless the daemon is told otherwise. */
export const DEFAULT_BACKUP_ALLOW: readonly string[] = Object.freeze(['/var/backups/volplugin', '/etc/ceph']);

export interface BackupOptions {
  backupAllow?: string[];
  backupHookAllow?: string[];
  backupHookTimeout: number;
  backupStaging?: string;
}

export function addBackupOptions(command: Command, env: NodeJS.ProcessEnv): Command {
  return command
    .addOption(
      new Option(
        '--backup-allow <dirs>',
        `directories a tenant's backup target (and a Ceph target's conf and keyring) may be in, comma-separated or repeated [env VOLPLUGIN_BACKUP_ALLOW, else ${DEFAULT_BACKUP_ALLOW.join(',')}]`,
      ).argParser(collectList),
    )
    .addOption(
      new Option('--backup-hook-allow <programs>', 'programs a backup hook may run, comma-separated or repeated; hooks run without a shell [env VOLPLUGIN_BACKUP_HOOK_ALLOW, else none]').argParser(
        collectList,
      ),
    )
    .addOption(new Option('--backup-hook-timeout <seconds>', 'a backup hook still running after this is killed').default(600).argParser(wholeNumber('--backup-hook-timeout', 1)))
    .addOption(new Option('--backup-staging <dir>', `where a diff bound for a Ceph target is written first [env VOLPLUGIN_BACKUP_STAGING, else ${path.join(tmpdir(), 'volplugin-backup-staging')}]`).default(env.VOLPLUGIN_BACKUP_STAGING || undefined));
}

function listFrom(flag: string, given: string[] | undefined, fromEnv: string | undefined, fallback: readonly string[], check: (v: string) => string | null): string[] {
  const list = given ?? (fromEnv ? collectList(fromEnv, []) : [...fallback]);
  for (const value of list) {
    const problem = check(value);
    if (problem) throw new InvalidArgumentError(`${given ? flag : `the environment's value of ${flag}`}: ${problem}`);
  }
  return list;
}

export function backupConfig(o: BackupOptions, env: NodeJS.ProcessEnv): BackupConfig {
  const staging = path.resolve(o.backupStaging ?? path.join(tmpdir(), 'volplugin-backup-staging'));
  return {
    allow: listFrom('--backup-allow', o.backupAllow, env.VOLPLUGIN_BACKUP_ALLOW, DEFAULT_BACKUP_ALLOW, (v) => backupPathProblem(v.replace(/\/+$/, '') || '/')).map((d) => d.replace(/\/+$/, '') || '/'),
    hookAllow: listFrom('--backup-hook-allow', o.backupHookAllow, env.VOLPLUGIN_BACKUP_HOOK_ALLOW, [], mkfsProgramProblem),
    hookTimeoutMs: o.backupHookTimeout * 1000,
    stagingDir: staging,
  };
}
