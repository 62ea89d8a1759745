// `volcli mount list`: the mount locks in etcd joined with what the hosts report. A lock says who
// may have a volume mounted; the holder's report says what it actually has mounted (device,
// mountpoint, how many containers use it). Both the master path and the --etcd path build the same
// listing from the same two lists.

import type { HostReport, MountRecord } from '../state/records.js';

type ReportedMount = HostReport['mounts'][number];

export interface MountView {
  tenant: string;
  volume: string;
  /** The host holding the lock, or (when nobody holds it) the host reporting the mount. */
  host: string;
  hostId: string;
  /** The mount lock, or null when a host reports the mount without holding its lock. */
  lock: MountRecord | null;
  /** What that host reports about this mount; null when its report does not list it (or it has no report). */
  report: (ReportedMount & { reportedAt: string }) | null;
  /** False when the host has no report at all: its volplugin is down, or the host is dead. */
  hostReporting: boolean;
}

export interface HostProblem {
  host: string;
  hostId: string;
  problem: string;
}

export interface MountListing {
  mounts: MountView[];
  /** Problems the hosts' convergence loops saw and could not fix. */
  problems: HostProblem[];
}

const volumeKey = (m: { tenant: string; volume: string }) => `${m.tenant}/${m.volume}`;

export function joinMounts(locks: MountRecord[], reports: HostReport[]): MountListing {
  const byHost = new Map(reports.map((r) => [r.hostId, r]));
  const mounts: MountView[] = [];
  const locked = new Set<string>();
  for (const lock of locks) {
    const report = byHost.get(lock.hostId);
    const reported = report?.mounts.find((m) => m.tenant === lock.tenant && m.volume === lock.volume);
    locked.add(`${lock.hostId} ${volumeKey(lock)}`);
    mounts.push({
      tenant: lock.tenant,
      volume: lock.volume,
      host: lock.host,
      hostId: lock.hostId,
      lock,
      report: reported && report ? { ...reported, reportedAt: report.reportedAt } : null,
      hostReporting: report !== undefined,
    });
  }
  // Mounts a host reports without holding their lock (taken over by another host, or lost).
  for (const report of reports) {
    for (const m of report.mounts) {
      if (locked.has(`${report.hostId} ${volumeKey(m)}`)) continue;
      mounts.push({ tenant: m.tenant, volume: m.volume, host: report.host, hostId: report.hostId, lock: null, report: { ...m, reportedAt: report.reportedAt }, hostReporting: true });
    }
  }
  mounts.sort((a, b) => volumeKey(a).localeCompare(volumeKey(b)) || a.hostId.localeCompare(b.hostId));
  const problems = reports.flatMap((r) => r.problems.map((problem) => ({ host: r.host, hostId: r.hostId, problem })));
  return { mounts, problems };
}

/** Lines to print after the table: what does not add up, and the hosts' problems. */
export function mountWarnings(listing: MountListing): string[] {
  const lines: string[] = [];
  const byVolume = new Map<string, MountView>();
  for (const m of listing.mounts) if (m.lock) byVolume.set(volumeKey(m), m);
  for (const m of listing.mounts) {
    const name = volumeKey(m);
    if (m.lock && !m.hostReporting) {
      lines.push(
        `warning: ${name}: its lock is held by host ${m.host} (${m.hostId}), which sends no report: its volplugin is down or the host is dead; ` +
          `if it is gone for good: volcli mount force-remove ${name}`,
      );
    } else if (m.lock && !m.report) {
      lines.push(`warning: ${name}: its lock is held by host ${m.host}, but that host does not report it mounted`);
    } else if (!m.lock) {
      const holder = byVolume.get(name);
      lines.push(
        holder
          ? `warning: ${name}: host ${m.host} reports it mounted at ${m.report?.mountpoint ?? '?'}, but its lock is held by host ${holder.host}`
          : `warning: ${name}: host ${m.host} reports it mounted at ${m.report?.mountpoint ?? '?'}, but nobody holds its lock`,
      );
    }
  }
  for (const p of listing.problems) lines.push(`problem on host ${p.host}: ${p.problem}`);
  return lines;
}
