// The host's etcd lease. One lease per volplugin process, kept alive in the background (TTL
// --lock-ttl). Every mount lock, the host report and the host-alive record are bound to it, so a
// host that dies or hangs loses them all after the TTL and another host may take its volumes over
// (fencing it first). The lease is declared lost before it can have expired at etcd (src/state/
// etcd.ts): the listeners (converge/actions.ts leaseLost) stop the volumes' I/O then. A new lease
// is made on the next get(), after `prepare` (the host-alive claim) succeeded under it.

import type { Lease } from '../../state/kv.js';
import type { StateStore } from '../../state/store.js';
import { PluginError } from '../errors.js';

export interface LeaseLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export class HostLease {
  private lease: Lease | null = null;
  private pending: Promise<Lease> | null = null;
  private readonly lostListeners: Array<(err: Error) => void> = [];
  private closed = false;

  constructor(
    private readonly store: Pick<StateStore, 'lease'>,
    readonly ttlSeconds: number,
    private readonly log?: LeaseLog,
    /** Runs under each new lease before it is used (the host-alive claim); when it throws the lease is revoked. */
    private readonly prepare?: (lease: Lease, first: boolean) => Promise<void>,
  ) {}

  private granted = 0;

  /** Called whenever the current lease is lost (its locks are gone or may be). */
  onLost(listener: (err: Error) => void): void {
    this.lostListeners.push(listener);
  }

  /** The id of the live lease, or null when there is none right now. */
  get currentId(): string | null {
    return this.lease && !this.lease.lost ? this.lease.id : null;
  }

  /** The live lease; makes one when there is none (throws StateUnavailableError when etcd is down). */
  async get(): Promise<Lease> {
    if (this.closed) throw new PluginError('INTERNAL', 'volplugin is shutting down');
    if (this.lease && !this.lease.lost) return this.lease;
    if (!this.pending) {
      this.pending = (async () => {
        try {
          const lease = await this.store.lease(this.ttlSeconds);
          try {
            await this.prepare?.(lease, this.granted === 0);
            if (lease.lost) throw new PluginError('STATE_UNAVAILABLE', `etcd lease ${lease.id} was lost while it was being set up; try again`);
          } catch (err) {
            await lease.revoke().catch(() => undefined);
            throw err;
          }
          this.granted++;
          lease.onLost((err) => {
            if (this.lease === lease) this.lease = null;
            this.log?.warn({ lease: lease.id, err: err.message }, 'host lease lost: its mount locks may be gone or about to be');
            for (const listener of this.lostListeners) listener(err);
          });
          this.lease = lease;
          this.log?.info({ lease: lease.id, ttl: this.ttlSeconds }, 'host lease granted');
          return lease;
        } finally {
          this.pending = null;
        }
      })();
    }
    return this.pending;
  }

  /**
   * Stops using the lease. With `revoke` the locks bound to it vanish at once (only when nothing
   * is mounted); without, they stay until the TTL runs out, so that a restart within the TTL finds
   * them still held by this host.
   */
  async close(options: { revoke: boolean }): Promise<void> {
    this.closed = true;
    const lease = this.lease;
    this.lease = null;
    if (lease && options.revoke) await lease.revoke().catch(() => undefined);
  }
}
