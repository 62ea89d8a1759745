// Running the host tools the mappers need (rbd-fuse, losetup, blkid, mount, umount, mkfs): never
// through a shell, argv as given, a deadline on every call, and errors that
// quote the command line, the exit status and the end of stderr.

import { execa } from 'execa';

export interface RunOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Exit codes that count as success besides 0 (e.g. blkid's 2 = "nothing found"). */
  okCodes?: number[];
  input?: string;
  env?: Record<string, string>;
  /** Working directory (default: this process's). */
  cwd?: string;
  signal?: AbortSignal;
  /** Keep stdout as bytes (RunResult.stdoutBytes; `stdout` is then empty), e.g. data read from a device. */
  binary?: boolean;
}

export interface RunResult {
  stdout: string;
  /** stdout as bytes, with RunOptions.binary. */
  stdoutBytes?: Uint8Array;
  stderr: string;
  exitCode: number;
}

/** A host command failed, did not start, or ran out of time. */
export class CommandError extends Error {
  readonly code = 'COMMAND_FAILED';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly timedOut: boolean,
    message: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** A command line as a person would type it (for messages only; nothing runs it in a shell). */
export function commandLine(file: string, args: readonly string[]): string {
  return [file, ...args].map((word) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function lastLines(text: string, lines = 6): string {
  const all = text.trim().split('\n').filter(Boolean);
  return all.slice(-lines).join(' | ');
}

export async function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const line = commandLine(file, args);
  const result = await execa(file, args, {
    reject: false,
    timeout: timeoutMs,
    input: options.input,
    stdin: options.input === undefined ? 'ignore' : 'pipe',
    env: options.env,
    cwd: options.cwd,
    cancelSignal: options.signal,
    forceKillAfterDelay: 2_000,
    stripFinalNewline: false,
    maxBuffer: 16 << 20,
    ...(options.binary ? { encoding: 'buffer' as const } : {}),
  });
  const stdout = typeof result.stdout === 'string' ? result.stdout : '';
  const stdoutBytes = result.stdout instanceof Uint8Array ? result.stdout : undefined;
  const stderrText = result.stderr instanceof Uint8Array ? Buffer.from(result.stderr).toString('utf8') : undefined;
  const stderr = typeof result.stderr === 'string' ? result.stderr : (stderrText ?? '');
  if (result.timedOut) {
    throw new CommandError(line, null, stderr, true, `${line}: did not finish within ${timeoutMs} ms and was killed`);
  }
  if (result.failed && result.exitCode === undefined) {
    const reason = result.isCanceled ? 'canceled' : (result.cause instanceof Error ? result.cause.message : result.shortMessage);
    const missing = (result.cause as { code?: string } | undefined)?.code === 'ENOENT';
    throw new CommandError(
      line,
      null,
      stderr,
      false,
      missing ? `${file} is not installed (or not on PATH): install it on this host` : `${line}: ${reason}`,
    );
  }
  const exitCode = result.exitCode ?? 0;
  if (exitCode !== 0 && !(options.okCodes ?? []).includes(exitCode)) {
    const tail = lastLines(stderr) || lastLines(stdout) || 'no output';
    throw new CommandError(line, exitCode, stderr, false, `${line} failed with exit status ${exitCode}: ${tail}`);
  }
  return { stdout, stderr, exitCode, ...(stdoutBytes ? { stdoutBytes } : {}) };
}

/**
 * Waits for `work` at most `ms`. A process stuck in the kernel (a FUSE request to a daemon that no
 * longer answers) cannot be killed, so a deadline must not wait for it to exit: the work goes on
 * in the background and the caller gets `{ done: false }`.
 */
export async function bounded<T>(work: Promise<T>, ms: number): Promise<{ done: true; value: T } | { done: false }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<{ done: false }>((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), ms);
  });
  work.catch(() => undefined);
  try {
    return await Promise.race([work.then((value) => ({ done: true as const, value })), late]);
  } finally {
    clearTimeout(timer);
  }
}
