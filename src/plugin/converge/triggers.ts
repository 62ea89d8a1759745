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

/** Pause before following the events again after dockerd closed the stream (it restarted). */
const RECONNECT_AFTER_END_MS = 1_000;

export class ConvergenceTriggers {
  private watches: Watch[] = [];
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

  /** Watches the mount locks and volume records in etcd (once set up, they stay until stop). */
  async ensureWatches(): Promise<void> {
    if (this.watches.length > 0 || this.stopped.signal.aborted) return;
    const { store, local, log } = this.parts;
    const ifOurs = (what: string) => (event: { type: string; tenant: string; volume: string }) => {
      if (local.get(event.tenant, event.volume)) this.wake(`${what} ${event.type}`);
    };
    const corrupt = (what: string) => () => this.wake(`${what} record unreadable`);
    const options = (what: string) => ({
      onDead: (err: Error) => void this.watchDied(what, err),
      onResumed: () => this.wake(`etcd watch of ${what} resumed after a gap`),
    });
    try {
      this.watches.push(await store.watchMounts(ifOurs('mount lock'), corrupt('mount lock'), options('mount locks')));
      this.watches.push(await store.watchVolumes(ifOurs('volume'), corrupt('volume'), options('volumes')));
    } catch (err) {
      log.debug({ err: messageOf(err) }, 'etcd watches not set up yet; retried next round');
      await this.closeWatches();
    }
  }

  /** A watch died: drop every watch and wake a round, which re-reads etcd and watches again (ensureWatches). */
  private async watchDied(what: string, err: Error): Promise<void> {
    if (this.stopped.signal.aborted) return;
    this.parts.log.warn({ watch: what, err: messageOf(err) }, 'etcd watch died: watching again and converging (events may have been missed)');
    await this.closeWatches();
    this.wake(`etcd watch of ${what} died`);
  }

  /** Follows Docker's container events until stop(), in the background. */
  followDockerEvents(): void {
    const docker = this.parts.docker;
    if (docker) void this.followEvents(docker);
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await this.closeWatches();
  }

  private async closeWatches(): Promise<void> {
    for (const w of this.watches) await w.close().catch(() => undefined);
    this.watches = [];
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
