// The host report: what this host has mounted, with reference counts and the problems the last
// round saw, kept in etcd under the host lease (`volcli mount list` shows it; the master refuses to
// remove a volume a host reports as mounted).

import type { HostReport } from '../../state/records.js';
import type { StateStore } from '../../state/store.js';
import type { HostLease } from '../cluster/lease.js';
import type { HostIdentity } from '../mounts/host-id.js';
import { isIdle } from '../mounts/idle.js';
import type { LocalState, LocalVolume } from '../mounts/local-state.js';

/** The host report as `volcli mount list` shows it. */
export function hostReport(host: HostIdentity, version: string, entries: LocalVolume[], problems: string[]): HostReport {
  return {
    hostId: host.id,
    host: host.label,
    pid: process.pid,
    version,
    reportedAt: new Date().toISOString(),
    mounts: entries
      .filter((e) => !isIdle(e))
      .map((e) => ({
        tenant: e.tenant,
        volume: e.volume,
        device: e.mapping.device ?? '',
        mountpoint: e.mountpoint,
        mapper: e.mapping.kind,
        references: e.refs.length,
      })),
    // Kept after the last Unmount for the grace: no container uses them; another host gets them on asking.
    idle: entries
      .filter(isIdle)
      .map((e) => ({ tenant: e.tenant, volume: e.volume, device: e.mapping.device ?? '', mountpoint: e.mountpoint, mapper: e.mapping.kind, until: e.idleUntil! })),
    problems,
  };
}

export interface ReporterParts {
  host: HostIdentity;
  version: string;
  store: Pick<StateStore, 'putHostReport'>;
  lease: HostLease;
  local: LocalState;
}

export class HostReporter {
  constructor(private readonly parts: ReporterParts) {}

  /** Writes the report of the host's mount table now, with `problems`. */
  async publish(problems: string[]): Promise<void> {
    const { host, version, store, lease, local } = this.parts;
    const live = await lease.get();
    await store.putHostReport(hostReport(host, version, local.all(), problems), live);
  }
}
