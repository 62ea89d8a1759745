// What wakes the convergence loop between its regular rounds: an etcd event on the mount lock or
// the record of a volume this host has mounted, the host lease being lost, a container starting
// (its rate limits go into its cgroup), and an etcd watch that died or resumed after a gap (events
// may have been missed: a round re-reads everything; one that died is set up again by that round).
// Docker's create and destroy events also tell the rate limiter each container's cgroup parent.

import { setTimeout as sleep } from 'node:timers/promises';
import { ExponentialBackoff, handleAll, noJitterGenerator, retry } from 'cockatiel';
import type { RateLimiter } from '../../ratelimit/index.js';
import type { Watch } from '../../state/kv.js';
import type { StateStore } from '../../state/store.js';
import type { HostLease } from '../cluster/lease.js';
import type { DockerClient, DockerEvent } from '../docker/client.js';
import { messageOf } from '../errors.js';
import type { LocalState } from '../mounts/local-state.js';

export interface TriggerLog {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface TriggerParts {
  store: Pick<StateStore, 'watchMounts' | 'watchVolumes'>;
  local: LocalState;
  lease: HostLease;
  /** Null when volplugin runs without Docker access (no container events then). */
  docker: DockerClient | null;
  limits: Pick<RateLimiter, 'learnContainer' | 'forgetContainer'>;
  log: TriggerLog;
}

/**
 * Reconnecting to Docker's event stream while it cannot be reached: after 1 s, then twice as long
 * each time up to 30 s apart. Its timers do not keep the process alive.
 */
const dockerEventsReconnect = retry(handleAll, {
  maxAttempts: Infinity,
  backoff: new ExponentialBackoff({ initialDelay: 1_000, maxDelay: 30_000, generator: noJitterGenerator }),
}).dangerouslyUnref();

/** What volplugin watches in etcd, each with its own watch. */
const WATCHED = ['mount locks', 'volumes'] as const;
type WatchedThing = (typeof WATCHED)[number];

/** Pause before following the events again after dockerd closed the stream (it restarted). */
const RECONNECT_AFTER_END_MS = 1_000;

export class ConvergenceTriggers {
  /**
   * The live watches by what they watch. A dead one is only taken out (etcd has ended it already);
   * the others are left alone: closing one while etcd cancels it too (both are cancelled after a
   * compaction) would crash etcd3, which cannot match etcd's second cancellation to a watcher.
   */
  private readonly watches = new Map<WatchedThing, Watch>();
  private wake: (reason: string) => void = () => undefined;
  /** Aborted by stop(): ends the Docker event stream and any further watch. */
  private readonly stopped = new AbortController();

  constructor(private readonly parts: TriggerParts) {
    parts.lease.onLost(() => this.wake('host lease lost'));
  }

  /** Who to wake (the loop's trigger). */
  connect(wake: (reason: string) => void): void {
    this.wake = wake;
  }

  /** Watches the mount locks and volume records in etcd (each one set up again after it died). */
  async ensureWatches(): Promise<void> {
    const { store, local, log } = this.parts;
    const ifOurs = (what: string) => (event: { type: string; tenant: string; volume: string }) => {
      if (local.get(event.tenant, event.volume)) this.wake(`${what} ${event.type}`);
    };
    const corrupt = (what: string) => () => this.wake(`${what} record unreadable`);
    for (const what of WATCHED) {
      if (this.watches.has(what) || this.stopped.signal.aborted) continue;
      let watch: Watch | null = null;
      let died = false;
      const options = {
        onDead: (err: Error) => {
          died = true;
          this.watchDied(what, watch, err);
        },
        onResumed: () => this.wake(`etcd watch of ${what} resumed after a gap`),
      };
      try {
        watch =
          what === 'mount locks'
            ? await store.watchMounts(ifOurs('mount lock'), corrupt('mount lock'), options)
            : await store.watchVolumes(ifOurs('volume'), corrupt('volume'), options);
      } catch (err) {
        log.debug({ watch: what, err: messageOf(err) }, 'etcd watch not set up yet; retried next round');
        continue;
      }
      // stop() ran while this watch was being set up: it is nobody's to close otherwise.
      if (this.stopped.signal.aborted) await watch.close().catch(() => undefined);
      else if (!died) this.watches.set(what, watch);
    }
  }

  /** A watch died: take it out and wake a round, which re-reads etcd and watches again (ensureWatches). */
  private watchDied(what: WatchedThing, watch: Watch | null, err: Error): void {
    if (this.stopped.signal.aborted) return;
    if (watch !== null && this.watches.get(what) === watch) this.watches.delete(what);
    this.parts.log.warn({ watch: what, err: messageOf(err) }, 'etcd watch died: watching again and converging (events may have been missed)');
    this.wake(`etcd watch of ${what} died`);
  }

  /** Follows Docker's container events until stop(), in the background. */
  followDockerEvents(): void {
    const docker = this.parts.docker;
    if (docker) void this.followEvents(docker);
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    const watches = [...this.watches.values()];
    this.watches.clear();
    for (const w of watches) await w.close().catch(() => undefined);
  }

  private async followEvents(docker: DockerClient): Promise<void> {
    const signal = this.stopped.signal;
    const onEvent = (event: DockerEvent) => this.onDockerEvent(event);
    while (!signal.aborted) {
      // One connection, until dockerd ends the stream; failing to connect or a broken stream is retried.
      await dockerEventsReconnect
        .execute(async () => {
          try {
            await docker.streamEvents(onEvent, signal);
          } catch (err) {
            this.parts.log.debug({ err: messageOf(err) }, 'Docker event stream failed; reconnecting');
            throw err;
          }
        }, signal)
        .catch(() => undefined);
      await sleep(RECONNECT_AFTER_END_MS, undefined, { signal, ref: false }).catch(() => undefined);
    }
  }

  private onDockerEvent(event: DockerEvent): void {
    const id = event.Actor?.ID ?? event.id;
    if (event.Action === 'create' && id) {
      this.parts.limits.learnContainer(id).catch(() => undefined);
    } else if (event.Action === 'destroy' && id) {
      this.parts.limits.forgetContainer(id);
    } else if (event.Action === 'start') {
      this.wake('container start');
    }
  }
}
