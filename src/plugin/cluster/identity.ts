// One live volplugin process per host id. Two processes with one id (a copied state dir, a cloned
// VM) would adopt and release each other's mount locks. So every lease of the host claims the
// host-alive record (src/state/hosts.ts) before it is used: created if absent, bound to the lease.
// Held by this very process (an earlier lease of it) or by its own dead predecessor on this boot
// of this machine (same boot id and hostname, that pid not running), it is taken over at once;
// held by anyone else, volplugin waits up to `waitMs` (one lease TTL at start) for it to lapse,
// then refuses with IdentityConflictError.

import { hostname } from 'node:os';
import { ConstantBackoff, handleWhenResult, retry } from 'cockatiel';
import { processAlive } from '../../common/process.js';
import type { Lease } from '../../state/kv.js';
import type { HostAliveRecord } from '../../state/records.js';
import type { StateStore } from '../../state/store.js';
import type { HostIdentity } from '../mounts/host-id.js';

/** Another live process holds this host id. */
export class IdentityConflictError extends Error {
  readonly code = 'IDENTITY_CONFLICT';
  constructor(message: string) {
    super(message);
    this.name = 'IdentityConflictError';
  }
}

export interface IdentityParts {
  store: Pick<StateStore, 'claimHostAlive' | 'takeOverHostAlive'>;
  host: HostIdentity;
  bootId: string;
  /** The state dir holding the host id (for the message). */
  stateDir: string;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Default: this process's pid, os.hostname() and /proc. */
  pid?: number;
  hostname?: string;
  isRunning?: (pid: number) => Promise<boolean>;
}

/** How often a claim held by someone else is tried again while waiting for it to lapse. */
const RECHECK_MS = 500;

type Attempt = 'claimed' | 'held';

export class HostIdentityClaim {
  private readonly pid: number;
  private readonly hostname: string;

  constructor(private readonly parts: IdentityParts) {
    this.pid = parts.pid ?? process.pid;
    this.hostname = parts.hostname ?? hostname();
  }

  private record(): HostAliveRecord {
    const { host, bootId } = this.parts;
    return { hostId: host.id, host: host.label, bootId, pid: this.pid, hostname: this.hostname, since: new Date().toISOString() };
  }

  /** True when `holder` is this process or its dead predecessor on this very boot of this machine. */
  private async ours(holder: HostAliveRecord | null): Promise<boolean> {
    if (!holder || holder.bootId !== this.parts.bootId || holder.hostname !== this.hostname) return false;
    if (holder.pid === this.pid) return true;
    return !(await (this.parts.isRunning ?? processAlive)(holder.pid));
  }

  /** Claims the host id under `lease`, waiting up to `waitMs` for another holder's record to lapse. */
  async claim(lease: Lease, waitMs: number): Promise<void> {
    const { store } = this.parts;
    const record = this.record();
    let last: HostAliveRecord | null = null;
    let warned = false;
    // untilLapsed: a claim held by a live process is tried again every RECHECK_MS until waitMs is over.
    const untilLapsed = retry(handleWhenResult((a) => a === 'held'), {
      maxAttempts: Math.max(0, Math.ceil(waitMs / RECHECK_MS)),
      backoff: new ConstantBackoff(RECHECK_MS),
    });
    const result = await untilLapsed.execute(async (): Promise<Attempt> => {
      const claim = await store.claimHostAlive(record, lease);
      if (claim.ok) return 'claimed';
      last = claim.holder;
      if (await this.ours(claim.holder)) {
        if (await store.takeOverHostAlive(record, lease, claim.modRevision)) {
          this.parts.log?.info({ previous: claim.holder }, 'took over the host-alive record of this host\'s previous volplugin process');
          return 'claimed';
        }
        return 'held';
      }
      if (!warned && waitMs > 0) {
        warned = true;
        this.parts.log?.warn({ holder: claim.holder, waitMs }, 'another volplugin process holds this host id: waiting for its record to lapse');
      }
      return 'held';
    });
    if (result === 'claimed') return;
    throw new IdentityConflictError(this.conflictMessage(last));
  }

  private conflictMessage(holder: HostAliveRecord | null): string {
    const { host, stateDir } = this.parts;
    const who = holder
      ? `pid ${holder.pid} on ${holder.hostname} (host label ${holder.host}, boot id ${holder.bootId}, since ${holder.since})`
      : 'a process whose record is unreadable';
    return (
      `another volplugin runs with this host's id ${host.id}: ${who}. Two processes with one host id would take each other's ` +
      `mount locks, so this one does not start. If ${stateDir} was copied from another host (or this VM cloned), give this ` +
      `host its own identity: stop volplugin, move ${stateDir}/host-id and ${stateDir}/mounts.json aside and start again. ` +
      'If that process is really gone, start again once its lease has expired'
    );
  }
}
