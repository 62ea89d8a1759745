// The data a volume's holders write and its next holders read back: a writer appends
// sequence-numbered, checksummed records through the mountpoint with an fsync after each and
// reports every record it had acknowledged (journal-io.mjs does the I/O in its own process); the
// journal remembers, per writer session, how many records were acknowledged, which is what the
// next holder must find.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SessionClaim } from './invariants/durability.js';
import { runBounded, type BoundedResult } from './proc.js';
import { pidAlive, sleep, waitUntil } from './wait.js';

const script = fileURLToPath(new URL('./journal-io.mjs', import.meta.url));

export interface SessionRead {
  max: number;
  count: number;
  /** Seqs below max with no good record (at most 50). */
  missing: number[];
  corrupt: number;
  tornBytes: number;
}

export type JournalRead = { ok: true; sessions: Record<string, SessionRead> } | { ok: false; error: string };

/** Runs journal-io.mjs with a deadline; a child stuck in the kernel is abandoned, not awaited. */
export function journalIo(args: string[], timeoutMs: number): Promise<BoundedResult> {
  return runBounded(process.execPath, [script, ...args], timeoutMs);
}

/** Reads every session's records below `mountpoint`. */
export async function readJournal(mountpoint: string, timeoutMs = 30_000, anyDir = false): Promise<JournalRead> {
  const result = await journalIo(['read', mountpoint, ...(anyDir ? ['any-dir'] : [])], timeoutMs);
  if (result.timedOut) return { ok: false, error: `reading the journal below ${mountpoint} hung for ${timeoutMs} ms` };
  if (result.code !== 0) return { ok: false, error: `reading the journal below ${mountpoint} failed: ${result.stderr.trim()}` };
  return { ok: true, sessions: JSON.parse(result.stdout) as Record<string, SessionRead> };
}

/** One writer process: appends and fsyncs records, counting the acknowledged ones. */
export class JournalWriter {
  acked = 0;
  /** The first error the writer reported (EIO after fencing, ...), with the seq it failed on. */
  error: string | null = null;
  /** When each ack arrived (ms since epoch), to tell acks after a takeover from acks before. */
  readonly ackTimes: number[] = [];
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(
    readonly session: string,
    readonly host: string,
    readonly mountpoint: string,
    options: { intervalMs?: number; max?: number; anyDir?: boolean } = {},
  ) {
    const args = [script, 'write', mountpoint, session, String(options.intervalMs ?? 25), String(options.max ?? 1_000_000), ...(options.anyDir ? ['any-dir'] : [])];
    this.child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buffer += d;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.startsWith('ack ')) {
          this.acked = Number(line.slice(4));
          this.ackTimes.push(Date.now());
        } else if (line.startsWith('error ')) {
          this.error ??= line.slice(6);
        }
      }
    });
    let stderr = '';
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        if (code !== 0 && code !== null && !this.error) this.error = `exit ${code}: ${stderr.trim().slice(0, 300)}`;
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Acks that arrived after `at` (ms since epoch). */
  ackedAfter(at: number): number {
    return this.ackTimes.filter((t) => t > at).length;
  }

  /** Waits until `n` records are acknowledged (false when the writer fails or the time is up). */
  async waitAcked(n: number, ms: number): Promise<boolean> {
    return waitUntil(`${n} acknowledged records`, () => this.acked >= n || this.error !== null, ms, 20).then(
      () => this.acked >= n,
      () => false,
    );
  }

  /**
   * Stops the writer and waits (bounded) until it is gone. A writer blocked in the kernel on a
   * fenced mount cannot die until that mount's FUSE connection goes; it is then left behind and
   * reported (false), and its acknowledged count is final anyway: it cannot ack while blocked.
   */
  async stop(ms = 5_000): Promise<boolean> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return true;
    this.child.kill('SIGKILL');
    const pid = this.pid;
    const gone = await Promise.race([this.exited.then(() => true), sleep(ms).then(() => false)]);
    return gone || !(await pidAlive(pid));
  }
}

/** What a volume's writers acknowledged, per session, and what the next holders found. */
export class VolumeJournal {
  private readonly sessions = new Map<string, { host: string; acked: number; verified: boolean; lastAckAt: number | null; error: string | null }>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** A session name unique within the volume (at most 24 characters). */
  nextSession(host: string, round: number): string {
    return `r${round}-${host.slice(0, 8)}-${this.counter++}`.slice(0, 24);
  }

  /** Starts a writer on `host` through `mountpoint`; its acks count once it is recorded with settle(). */
  start(host: string, round: number, mountpoint: string, options: { intervalMs?: number; max?: number } = {}): JournalWriter {
    const session = this.nextSession(host, round);
    const writer = new JournalWriter(session, host, mountpoint, options);
    this.sessions.set(session, { host, acked: 0, verified: false, lastAckAt: null, error: null });
    return writer;
  }

  /** Records the writer's final count of acknowledged records (after it stopped). */
  settle(writer: JournalWriter): void {
    const entry = this.sessions.get(writer.session);
    if (!entry) return;
    entry.acked = Math.max(entry.acked, writer.acked);
    entry.lastAckAt = writer.ackTimes.at(-1) ?? null;
    entry.error = writer.error;
  }

  /** Sessions whose records no other holder has read back yet, with their acknowledged counts. */
  unverified(): SessionClaim[] {
    return this.all().filter((c) => !this.sessions.get(c.session)!.verified);
  }

  all(): SessionClaim[] {
    return [...this.sessions].map(([session, s]) => ({ session, host: s.host, acked: s.acked, lastAckAt: s.lastAckAt, writerError: s.error }));
  }

  markVerified(sessions: string[]): void {
    for (const s of sessions) {
      const entry = this.sessions.get(s);
      if (entry) entry.verified = true;
    }
  }
}

export function journalDir(mountpoint: string): string {
  return path.join(mountpoint, 'journal');
}
