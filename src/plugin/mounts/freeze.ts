// Freezing a mounted volume's filesystem for the instant of a snapshot: the `freeze` and `thaw`
// host requests (src/plugin/cluster/requests.ts) of a snapshotter (the master on demand,
// volsupervisor on schedule; src/snapshots/freeze.ts is that side).
//
// A freeze holds the volume on this host until its thaw: the volume's mutex is taken (Mount,
// Unmount and the convergence loop's actions on it wait), and if its filesystem is mounted here it
// is frozen with `fsfreeze -f` (the kernel flushes it and blocks every new write). If it is not
// mounted, nothing is frozen but no Mount can start here either, so the answer "not mounted" stays
// true until the thaw. The thaw (`fsfreeze -u`) must name the token the freeze was given; its answer
// says whether the filesystem was still frozen, which is what tells the snapshotter that the
// snapshot it took in between is consistent.
//
// Thawing never depends on the requester: a timer started at the freeze thaws it after the
// requested `thawAfterMs` (at most MAX_THAW_AFTER_MS), and a detached watchdog process started
// before the freeze thaws it a second later even if this volplugin dies meanwhile. The bound is a
// minute at most because every writer of the volume stalls while it is frozen: an application
// should never wait longer than that for a snapshot. The snapshotters ask for 10 s (enough for a
// snapshot, about 1 s with Ceph's default monitor settings) and refuse a snapshot whose freeze ran
// out before it was taken.
//
// fsfreeze runs as an argument vector (mapper/exec.ts), never through a shell.

import { spawn } from 'node:child_process';
import { HostRequestKind } from '../../state/host-requests.js';
import { run } from '../../mapper/exec.js';
import type { HostRequest } from '../../state/records.js';
import type { HostRequestInbox } from '../cluster/requests.js';
import { messageOf } from '../errors.js';
import type { KeyedMutex } from './keyed-mutex.js';
import { volumeKey, type LocalState } from './local-state.js';

/** The longest a host keeps a volume frozen, whatever the requester asks for. */
export const MAX_THAW_AFTER_MS = 60_000;
/** The shortest freeze a requester may ask for. */
export const MIN_THAW_AFTER_MS = 100;
/** The watchdog thaws this long after the timer would have (the timer normally wins and kills it). */
const WATCHDOG_MARGIN_MS = 1_000;

/** What freezing needs of the host (the real one below; unit tests give fakes). */
export interface FreezeOps {
  /** Whether a filesystem is mounted at `dir`. */
  mounted(dir: string): Promise<boolean>;
  /** `fsfreeze -f DIR`. */
  freeze(dir: string): Promise<void>;
  /** `fsfreeze -u DIR`: 'not-frozen' when the kernel says it was not frozen (EINVAL). */
  thaw(dir: string): Promise<'thawed' | 'not-frozen'>;
  /** Starts a process of its own that thaws `dir` after `ms` even if this one dies; cancel() ends it. */
  watchdog(dir: string, ms: number): Promise<{ cancel(): void }>;
}

/** The watchdog: a separate node process, so that it outlives a volplugin that dies. */
const WATCHDOG_SOURCE = `
const [dir, ms] = process.argv.slice(1);
setTimeout(() => require('node:child_process').execFile('fsfreeze', ['-u', dir], () => process.exit(0)), Number(ms));
`;

export function realFreezeOps(mountsAt: (dir: string) => Promise<number>): FreezeOps {
  return {
    mounted: async (dir) => (await mountsAt(dir)) > 0,
    freeze: async (dir) => {
      await run('fsfreeze', ['-f', dir], { timeoutMs: 60_000 });
    },
    thaw: async (dir) => {
      const result = await run('fsfreeze', ['-u', dir], { timeoutMs: 30_000, okCodes: [1] });
      if (result.exitCode === 0) return 'thawed';
      if (/Invalid argument/i.test(result.stderr)) return 'not-frozen';
      throw new Error(`fsfreeze -u ${dir} failed: ${result.stderr.trim() || `exit status ${result.exitCode}`}`);
    },
    watchdog: (dir, ms) =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['-e', WATCHDOG_SOURCE, dir, String(ms)], { detached: true, stdio: 'ignore' });
        child.once('error', reject);
        child.once('spawn', () => {
          child.unref();
          resolve({ cancel: () => void child.kill('SIGKILL') });
        });
      }),
  };
}

/** A handler's refusal, answered with its code. */
class FreezeError extends Error {
  constructor(
    readonly code: 'BAD_REQUEST' | 'LOST' | 'TOO_LATE',
    message: string,
  ) {
    super(message);
    this.name = 'FreezeError';
  }
}

interface Hold {
  token: string;
  /** The mountpoint frozen, or null when the volume was not mounted here. */
  dir: string | null;
  timer: NodeJS.Timeout;
  watchdog: { cancel(): void } | null;
  /** Ends the hold on the volume's mutex. */
  release: () => void;
}

export interface FreezerParts {
  local: LocalState;
  mutex: KeyedMutex;
  ops: FreezeOps;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export class HostFreezer {
  private readonly holds = new Map<string, Hold>();

  constructor(private readonly parts: FreezerParts) {}

  /** Registers the `freeze` and `thaw` handlers. */
  register(inbox: Pick<HostRequestInbox, 'handle'>): void {
    inbox.handle(HostRequestKind.Freeze, (request) => this.freeze(request));
    inbox.handle(HostRequestKind.Thaw, (request) => this.thaw(request));
  }

  /** The volumes held now ("tenant/volume"). */
  held(): string[] {
    return [...this.holds.keys()];
  }

  /**
   * params: {token: string, thawAfterMs: number}. Answers {frozen: true, dir, thawBy} when the
   * filesystem was frozen, {frozen: false, reason} when the volume is not mounted here; both hold
   * the volume until the thaw with the same token or until `thawAfterMs` ran out.
   */
  async freeze(request: HostRequest): Promise<Record<string, unknown>> {
    const { tenant, volume } = request;
    const token = request.params.token;
    const thawAfterMs = request.params.thawAfterMs;
    if (!tenant || !volume) throw new FreezeError('BAD_REQUEST', 'a freeze request names no tenant and volume');
    if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{8,64}$/.test(token)) throw new FreezeError('BAD_REQUEST', 'a freeze request needs a token (8-64 letters, digits, "_" or "-")');
    if (typeof thawAfterMs !== 'number' || !Number.isInteger(thawAfterMs) || thawAfterMs < MIN_THAW_AFTER_MS || thawAfterMs > MAX_THAW_AFTER_MS) {
      throw new FreezeError('BAD_REQUEST', `thawAfterMs must be a whole number of milliseconds from ${MIN_THAW_AFTER_MS} to ${MAX_THAW_AFTER_MS}, got ${JSON.stringify(thawAfterMs)}`);
    }
    const key = volumeKey(tenant, volume);
    const previous = this.holds.get(key);
    if (previous) {
      // Only the holder of the volume's operation lock freezes, so an earlier hold is a dead
      // requester's: this one takes it over (same frozen state, a new token and deadline).
      clearTimeout(previous.timer);
      previous.token = token;
      previous.timer = this.armTimer(key, token, thawAfterMs);
      this.parts.log.warn({ volume: key }, 'freeze requested while an earlier freeze (its requester gone?) still held the volume: taken over');
      return this.answer(previous, thawAfterMs);
    }
    let answered!: (value: Record<string, unknown> | Error) => void;
    const answer = new Promise<Record<string, unknown> | Error>((resolve) => (answered = resolve));
    void this.parts.mutex
      .run(key, async () => {
        let hold: Hold;
        try {
          hold = await this.hold(request, key, token, thawAfterMs);
        } catch (err) {
          answered(err as Error);
          return;
        }
        const released = new Promise<void>((resolve) => (hold.release = resolve));
        this.holds.set(key, hold);
        answered(this.answer(hold, thawAfterMs));
        await released;
      })
      .catch((err: unknown) => answered(err as Error));
    const result = await answer;
    if (result instanceof Error) throw result;
    return result;
  }

  /** Under the volume's mutex: freezes its filesystem if it is mounted here. */
  private async hold(request: HostRequest, key: string, token: string, thawAfterMs: number): Promise<Hold> {
    // The requester stops waiting at its deadline: a freeze that starts later would only stall writers.
    if (Date.parse(request.deadline) <= Date.now()) throw new FreezeError('TOO_LATE', `the freeze request for ${key} waited past its deadline for the volume (a mount in progress?)`);
    const entry = this.parts.local.get(request.tenant!, request.volume!);
    if (entry?.lost) throw new FreezeError('LOST', `${key} is lost to this host (${entry.lost}); it cannot be frozen here`);
    const dir = entry && (await this.parts.ops.mounted(entry.mountpoint)) ? entry.mountpoint : null;
    let watchdog: { cancel(): void } | null = null;
    if (dir) {
      // The watchdog first: from the moment the filesystem is frozen, something must thaw it.
      watchdog = await this.parts.ops.watchdog(dir, thawAfterMs + WATCHDOG_MARGIN_MS);
      try {
        await this.parts.ops.freeze(dir);
      } catch (err) {
        watchdog.cancel();
        throw err;
      }
      this.parts.log.info({ volume: key, dir, thawAfterMs }, 'filesystem frozen for a snapshot');
    }
    return { token, dir, watchdog, timer: this.armTimer(key, token, thawAfterMs), release: () => undefined };
  }

  private answer(hold: Hold, thawAfterMs: number): Record<string, unknown> {
    const thawBy = new Date(Date.now() + thawAfterMs).toISOString();
    return hold.dir ? { frozen: true, dir: hold.dir, thawBy } : { frozen: false, reason: 'not mounted on this host', thawBy };
  }

  private armTimer(key: string, token: string, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.end(key, token).then(
        (outcome) => {
          if (outcome) this.parts.log.warn({ volume: key, ms }, 'freeze ran out: thawed by itself (its requester did not thaw it in time; did it die?)');
        },
        () => undefined, // logged by end()
      );
    }, ms);
    timer.unref();
    return timer;
  }

  /** params: {token}. Answers {thawed: true} when the freeze held until now; {thawed: false, reason} when it did not. */
  async thaw(request: HostRequest): Promise<Record<string, unknown>> {
    const { tenant, volume } = request;
    if (!tenant || !volume) throw new FreezeError('BAD_REQUEST', 'a thaw request names no tenant and volume');
    const key = volumeKey(tenant, volume);
    const hold = this.holds.get(key);
    if (!hold || hold.token !== request.params.token) {
      return { thawed: false, reason: `${key} is not held for this request here (its freeze ran out and it was thawed, or volplugin restarted)` };
    }
    const outcome = await this.end(key, hold.token);
    if (outcome === 'not-frozen') return { thawed: false, reason: `the filesystem of ${key} was no longer frozen (thawed by someone else)` };
    return { thawed: true, wasMounted: hold.dir !== null };
  }

  /** Ends a hold (if `token` still has it): thaws its filesystem, frees the mutex. */
  private async end(key: string, token: string): Promise<'thawed' | 'not-frozen' | 'released' | null> {
    const hold = this.holds.get(key);
    if (!hold || hold.token !== token) return null;
    this.holds.delete(key);
    clearTimeout(hold.timer);
    try {
      if (!hold.dir) return 'released';
      const outcome = await this.parts.ops.thaw(hold.dir).catch((err: unknown) => {
        // The watchdog keeps running: it tries again when its time comes.
        this.parts.log.warn({ volume: key, err: messageOf(err) }, 'fsfreeze -u failed; the watchdog tries again when the freeze runs out');
        throw err;
      });
      hold.watchdog?.cancel();
      this.parts.log.info({ volume: key, dir: hold.dir, outcome }, 'filesystem thawed');
      return outcome;
    } finally {
      hold.release();
    }
  }

  /** Thaws everything held (volplugin stopping). */
  async thawAll(): Promise<void> {
    await Promise.allSettled([...this.holds.entries()].map(([key, hold]) => this.end(key, hold.token)));
  }
}
