// Host commands with a deadline that never waits for the process to die: a process blocked in the
// kernel (I/O on a fenced FUSE mount) cannot be killed, so at the deadline it is sent SIGKILL and
// abandoned, and the caller goes on.

import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { sandboxScript } from '../helpers/sandbox.js';

export interface BoundedResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export function runBounded(file: string, args: string[], timeoutMs: number): Promise<BoundedResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: null, stdout, stderr, timedOut: true });
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: err.message, timedOut: false });
    });
    // 'exit' can come before the last of stdout was read (a journal read then looked empty: "Unexpected
    // end of JSON input"); 'close' comes after it, but never when a daemon the child started keeps
    // the pipes (sandbox.sh): so the output gets a moment after the exit, not forever.
    child.on('exit', (code) => {
      clearTimeout(timer);
      const done = () => resolve({ code, stdout, stderr, timedOut: false });
      const grace = setTimeout(done, 2_000);
      child.on('close', () => {
        clearTimeout(grace);
        done();
      });
    });
  });
}

/** Pids of processes named `name` (argv[0]'s basename) with an argument at or below `dir`. */
export async function processesBelow(name: string, dir: string): Promise<number[]> {
  const out: number[] = [];
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
    if (argv.length === 0) continue;
    const exe = path.basename(argv[0]!);
    const named = exe === name || (exe === 'node' && argv.some((a) => path.basename(a).startsWith(name)));
    if (named && argv.slice(1).some((a) => a === dir || a.startsWith(prefix))) out.push(Number(entry));
  }
  return out;
}

/** SIGKILL to every process in `pids` that still exists. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/**
 * Removes what is mounted or attached below `dir` (scripts/sandbox.sh cleanup-mounts), first killing
 * the rbd-fuse clients there: I/O stuck in a fenced client then fails instead of blocking the
 * unmounts. Never waits past `timeoutMs`, also when an orphaned umount keeps the script's output open.
 */
export async function cleanupBelow(dir: string, timeoutMs = 120_000): Promise<void> {
  killAll(await processesBelow('rbd-fuse', dir));
  await runBounded(sandboxScript, ['cleanup-mounts', dir], timeoutMs);
  killAll(await processesBelow('rbd-fuse', dir));
}
