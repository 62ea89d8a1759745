// Running a tenant's backup hook after a backup (e.g. to upload its file elsewhere): the policy's
// argument vector with TENANT/VOLUME, SNAPSHOT and FILE appended, run without a shell (execa with
// an argv), only when its program is on this daemon's --backup-hook-allow list, from `/`, with a
// clean environment (PATH and the three values as VOLPLUGIN_BACKUP_*), killed after its timeout.
// A failing hook does not undo the backup (it is complete): it is logged and recorded.

import { execa } from 'execa';
import { hookArgv } from '../policy/backup.js';

export interface HookResult {
  ok: boolean;
  exitCode: number | null;
  ms: number;
  /** What went wrong, with the end of its output. */
  message?: string;
}

export async function runHook(
  hook: readonly string[],
  fields: { volume: string; snapshot: string; file: string },
  options: { allowed: readonly string[]; timeoutMs: number },
): Promise<HookResult> {
  const started = Date.now();
  let argv: { program: string; args: string[] };
  try {
    argv = hookArgv(hook, options.allowed, fields);
  } catch (err) {
    return { ok: false, exitCode: null, ms: 0, message: (err as Error).message };
  }
  const result = await execa(argv.program, argv.args, {
    reject: false,
    shell: false,
    stdin: 'ignore',
    cwd: '/',
    extendEnv: false,
    env: {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      VOLPLUGIN_BACKUP_VOLUME: fields.volume,
      VOLPLUGIN_BACKUP_SNAPSHOT: fields.snapshot,
      VOLPLUGIN_BACKUP_FILE: fields.file,
    },
    timeout: options.timeoutMs,
    forceKillAfterDelay: 5_000,
    all: true,
    maxBuffer: 1 << 20,
  });
  const ms = Date.now() - started;
  if (result.exitCode === 0 && !result.failed) return { ok: true, exitCode: 0, ms };
  const tail = (result.all ?? '').trim().split('\n').slice(-5).join(' | ').slice(-500);
  const why = result.timedOut
    ? `did not finish within ${options.timeoutMs / 1000} s (--backup-hook-timeout)`
    : result.exitCode === undefined
      ? `could not run: ${result.originalMessage ?? result.shortMessage}`
      : `exited with ${result.exitCode}`;
  return { ok: false, exitCode: result.exitCode ?? null, ms, message: `backup hook ${argv.program} ${why}${tail ? `: ${tail}` : ''}` };
}
