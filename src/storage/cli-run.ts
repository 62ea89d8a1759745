// How the CLI backend runs `rbd`, `ceph` and `rados`: argv, never a shell; the cluster options
// (--conf, --keyring, --id) in front of every command; at most `maxProcesses` at once; a time
// limit per process; and a failed run read back into the RbdError the native backend would give
// (`rbd` exits with the errno it failed with and prints "(N) text" on stderr, `ceph` prints
// "Error EXXX: text"). cli.ts says which commands make each Storage call.

import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import { constants } from 'node:os';
import { execa } from 'execa';
import { RbdError } from './errors.js';
import type { ClusterConfig, ParentRef } from './types.js';

export interface CliStorageOptions {
  /** Executables (default: found on PATH). */
  rbd?: string;
  ceph?: string;
  rados?: string;
  /** Kill a command that runs longer than this (default 5 minutes); the call fails with ETIMEDOUT. */
  timeoutMs?: number;
  /** At most this many processes at once; further calls queue (default 16). */
  maxProcesses?: number;
}

/** What a command was about, for its RbdError. */
export interface Target {
  op: string;
  pool?: string;
  image?: string;
  snapshot?: string;
}

export type Tool = 'rbd' | 'ceph' | 'rados';

/** What a long command (export-diff, import-diff) may add: its stderr as it comes (progress), cancellation. */
export interface ExecExtra {
  onStderr?: (text: string) => void;
  /** No time limit: it copies a whole image, and its caller bounds it. */
  long?: boolean;
  /** Aborting it kills the command; the call fails with ECANCELED. */
  signal?: AbortSignal;
}

export const ERRNO = constants.errno as Record<string, number>;

export class CliRunner {
  private readonly confPath: string | undefined;
  private readonly base: string[] = [];
  private readonly tools: Record<Tool, string>;
  private readonly timeoutMs: number;
  private readonly maxProcesses: number;
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(config: ClusterConfig, options: CliStorageOptions) {
    this.confPath = config.confPath;
    if (config.confPath !== undefined) this.base.push(`--conf=${config.confPath}`);
    if (config.keyring !== undefined) this.base.push(`--keyring=${config.keyring}`);
    if (config.clientId !== undefined) this.base.push(`--id=${config.clientId}`);
    this.tools = { rbd: options.rbd ?? 'rbd', ceph: options.ceph ?? 'ceph', rados: options.rados ?? 'rados' };
    this.timeoutMs = options.timeoutMs ?? 300_000;
    this.maxProcesses = options.maxProcesses ?? 16;
  }

  /** Checks that the tools run and reach the cluster with this configuration. */
  async connect(): Promise<void> {
    // Like rados_conf_read_file: a configuration file that is not there is ENOENT.
    if (this.confPath !== undefined) {
      try {
        await access(this.confPath, fsConstants.R_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'ENOENT';
        throw new RbdError({ errno: -(ERRNO[code] ?? ERRNO.ENOENT!), op: 'rados_conf_read_file', detail: `${code}: ${this.confPath}` });
      }
    }
    await Promise.all([
      this.exec('rbd', ['--version'], { op: 'spawn' }),
      this.exec('ceph', ['fsid', '--format=json'], { op: 'rados_connect' }),
    ]);
  }

  /** `rbd ARGS` (stdout), or the RbdError its failure means. */
  rbd(args: string[], target: Target, extra?: ExecExtra): Promise<string> {
    return this.exec('rbd', args, target, extra);
  }

  /** `rbd ARGS --format=json`, parsed. */
  async rbdJson<T>(args: string[], target: Target): Promise<T> {
    const out = await this.exec('rbd', [...args, '--format=json'], target);
    // Some listings (image-meta list) print nothing at all when empty.
    return (out.trim() === '' ? {} : JSON.parse(out)) as T;
  }

  async exec(tool: Tool, args: string[], target: Target, extra: ExecExtra = {}): Promise<string> {
    await this.slot();
    try {
      const child = execa(this.tools[tool], [...this.base, ...args], {
        reject: false,
        stdin: 'ignore',
        timeout: extra.long ? undefined : this.timeoutMs,
        forceKillAfterDelay: 2_000,
        stripFinalNewline: false,
        maxBuffer: 64 << 20,
        cancelSignal: extra.signal,
      });
      if (extra.onStderr) child.stderr?.on('data', (chunk: Buffer) => extra.onStderr!(chunk.toString()));
      const result = await child;
      if (result.exitCode === 0 && !result.failed) return result.stdout;
      if (result.isCanceled) throw new RbdError({ ...target, errno: -ERRNO.ECANCELED!, detail: `${tool} was cancelled` });
      throw cliError(tool, result, target);
    } finally {
      this.release();
    }
  }

  /** Processes running and calls waiting for one (at most `maxProcesses` run at once). */
  counts(): { running: number; queued: number } {
    return { running: this.running, queued: this.queue.length };
  }

  private slot(): Promise<void> {
    if (this.running < this.maxProcesses) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.running--;
  }
}

interface ExecResult {
  exitCode?: number;
  stderr: string;
  timedOut: boolean;
  failed: boolean;
  signal?: string;
  code?: string;
  originalMessage?: string;
}

// The `ceph` CLI (Python) reports a failed connect as an exception name with exit status 1.
const PYTHON_ERRORS: [RegExp, number][] = [
  [/ObjectNotFound/, ERRNO.ENOENT!],
  [/PermissionDenied/, ERRNO.EACCES!],
  [/TimedOut|timed out/, ERRNO.ETIMEDOUT!],
  [/InvalidArgument/, ERRNO.EINVAL!],
];

/** Maps a failed `rbd`/`ceph`/`rados` run to an RbdError. */
export function cliError(tool: string, result: ExecResult, target: Target): RbdError {
  const stderr = result.stderr ?? '';
  if (result.code === 'ENOENT' && result.exitCode === undefined) {
    return new RbdError({ errno: -ERRNO.ENOENT!, op: 'spawn', detail: `${tool} not found: apt-get install ceph-common` });
  }
  if (result.timedOut) {
    return new RbdError({ ...target, errno: -ERRNO.ETIMEDOUT!, detail: `${tool} did not finish in time` });
  }
  // The meaningful line: "rbd: <what failed>: (N) text", or ceph's "Error EXXX: text"; librbd's
  // own log lines (timestamped) only back it up.
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^\d{4}-\d\d-\d\dT/.test(l));
  const ownLine = [...lines].reverse().find((l) => l.startsWith(`${tool}: `) || l.startsWith('Error E')) ?? lines.at(-1) ?? '';
  const numbered = /\((\d+)\) [A-Z]/.exec(ownLine) ?? /\((\d+)\) [A-Z]/.exec(stderr);
  const named = /^Error (E[A-Z0-9]+):/m.exec(stderr);
  const python = PYTHON_ERRORS.find(([re]) => re.test(stderr));
  let errno: number;
  if (numbered) errno = Number(numbered[1]);
  else if (named && ERRNO[named[1]!] !== undefined) errno = ERRNO[named[1]!]!;
  else if (python) errno = python[1];
  else if (result.exitCode !== undefined && result.exitCode > 1 && result.exitCode < 256) errno = result.exitCode;
  else errno = ERRNO.EIO!;

  let fields: Target = target;
  const poolOpen = /error opening pool '([^']*)'/.exec(stderr);
  if (poolOpen) fields = { ...target, op: 'rados_ioctx_create', pool: poolOpen[1] };
  else if (/error opening image/.test(stderr)) fields = { ...target, op: target.op.startsWith('rbd_open') ? target.op : 'rbd_open' };
  const detail =
    ownLine.replace(new RegExp(`^${tool}: `), '').replace(/^Error E[A-Z0-9]+: /, '') || `${tool} exited with ${result.exitCode}`;
  return new RbdError({ ...fields, errno: -errno, detail });
}

/**
 * librbd's clone fails with ENOENT for a missing parent image or snapshot and with EINVAL for an
 * unprotected one: both are reported against the parent, as the native backend does.
 */
export function cloneError(err: unknown, parent: ParentRef, pool: string): unknown {
  if (!(err instanceof RbdError) || (err.code !== 'ENOENT' && err.code !== 'EINVAL')) return err;
  if (err.op === 'rados_ioctx_create') return err.pool === parent.pool && err.pool !== pool ? reattribute(err, parent) : err;
  return reattribute(err, parent);
}

function reattribute(err: RbdError, parent: ParentRef): RbdError {
  const out = new RbdError({ errno: err.errno, op: err.op, pool: parent.pool, image: parent.image, snapshot: parent.snapshot, detail: err.detail });
  out.stack = err.stack;
  return out;
}
