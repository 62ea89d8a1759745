// The life of a daemon process around its own work, the same for volmaster, volplugin and
// volsupervisor: its logger, its connections to Ceph and etcd, a bounded and logged shutdown on
// SIGTERM/SIGINT (a second signal exits at once), and one line on stderr with exit code 1 when it
// cannot start. Flags are flags.ts.

import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import { StateStore } from '../state/store.js';
import { connectStorage } from '../storage/index.js';
import type { Storage } from '../storage/types.js';
import { openEtcd } from './etcd.js';
import { messageOf } from './errors.js';
import type { DaemonConfig } from './flags.js';
import { withTimeout } from './timeout.js';

/** How long a shutdown may take in all before the process exits anyway (code 1). */
export const SHUTDOWN_TIMEOUT_MS = 30_000;

/** JSON lines on stdout; `base` replaces pino's default fields (pid, hostname). */
export function daemonLogger(name: string, config: Pick<DaemonConfig, 'debug'>, base?: Record<string, unknown>): Logger {
  return pino({ name, level: config.debug ? 'debug' : 'info', ...(base ? { base } : {}) });
}

/** The Ceph connection the flags describe, bounded in time (connectStorage says what to check when it fails). */
export function openDaemonStorage(config: DaemonConfig): Promise<Storage> {
  return connectStorage(config.backend, {
    confPath: config.cephConf ?? undefined,
    keyring: config.cephKeyring ?? undefined,
    clientId: config.cephId,
  });
}

export interface DaemonState {
  store: StateStore;
  /** Closes the etcd client. */
  close(): Promise<void>;
}

/** The state store on the configured etcd (with its TLS and user), its writes marked `<role>@<hostname>:<pid>`. */
export async function openDaemonState(config: Pick<DaemonConfig, 'etcd' | 'etcdSecurity' | 'prefix'>, role: string): Promise<DaemonState> {
  const kv = await openEtcd(config);
  const store = new StateStore(kv, { prefix: config.prefix, owner: `${role}@${hostname()}:${process.pid}` });
  return { store, close: () => store.close() };
}

/** One step of a shutdown, e.g. "closing the Ceph connection". */
export interface StopStep {
  /** What it does, for the log. */
  what: string;
  run: () => Promise<unknown>;
  /** Bound of this step alone (default: only the whole shutdown's bound). */
  timeoutMs?: number;
}

export interface StopOnSignalsOptions {
  log: Logger;
  /** Run in order; a failing step is logged and the next ones still run. */
  steps: StopStep[];
  /** Bound of the whole shutdown (default SHUTDOWN_TIMEOUT_MS). */
  timeoutMs?: number;
  /** For tests: what exits (default process.exit) and what emits the signals (default process). */
  exit?: (code: number) => void;
  signals?: { on(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown };
}

/**
 * On SIGTERM or SIGINT runs the steps, logs "stopped" and exits 0; exits 1 when a step failed or
 * the whole shutdown took longer than its bound (logging which step hung). A second signal exits 1
 * at once.
 */
export function stopOnSignals(options: StopOnSignalsOptions): void {
  const { log, steps, timeoutMs = SHUTDOWN_TIMEOUT_MS, exit = (code) => process.exit(code), signals = process } = options;
  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    stopping = true;
    log.info({ signal }, `stopping: ${steps.map((s) => s.what).join(', then ')}`);
    let current = steps[0]?.what ?? 'stopping';
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      log.error({ ms: timeoutMs }, `${current} did not finish within ${timeoutMs / 1000} s: exiting anyway`);
      exit(1);
    }, timeoutMs);
    let failed = false;
    for (const step of steps) {
      current = step.what;
      try {
        await withTimeout(step.run(), step.timeoutMs ?? 0, step.what);
      } catch (err) {
        failed = true;
        log.error({ err }, `${step.what} failed`);
      }
      if (done) return;
    }
    clearTimeout(timer);
    if (failed) log.warn('stopped, not cleanly (see above)');
    else log.info('stopped');
    exit(failed ? 1 : 0);
  };
  signals.on('SIGTERM', () => void shutdown('SIGTERM'));
  signals.on('SIGINT', () => void shutdown('SIGINT'));
}

/** Runs a daemon's start; when it fails: `<name>: <message>` on stderr and exit code 1. */
export function runDaemon(name: string, start: () => Promise<void>): void {
  start().catch((err: unknown) => {
    process.stderr.write(`${name}: ${messageOf(err)}\n`);
    process.exit(1);
  });
}
