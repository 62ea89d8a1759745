// The host's etcd lease. One lease per volplugin process, kept alive in the background (TTL --lock-ttl). Every mount lock
// and the host report are bound to it, so a host that dies or hangs loses them all after the TTL
// and another host may take its volumes over (fencing it first). When the lease is lost while this
// process lives (etcd unreachable for a TTL, or the process was paused), a new one is made and the
// convergence loop takes the locks back where no one else did.

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
  ) {}

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
          lease.onLost((err) => {
            if (this.lease === lease) this.lease = null;
            this.log?.warn({ lease: lease.id, err: err.message }, 'host lease lost: mount locks may be gone; taking them back');
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
