// Over 400 lines on purpose: the catalogue is one list, so that every family is in one place.
// Every Prometheus metric family volplugin exports, in one place; docs/metrics.md describes each,
// its labels and what to alert on (a unit test keeps the two in step). The families live at module
// level, as Prometheus clients have them, grouped by concern in registries of their own: a daemon's
// endpoint shows the concerns it has (daemonRegistry), so volmaster shows no empty mount
// histograms. The code that counts imports the family it counts from here.
//
// Label values always come from small fixed sets: a route pattern, a step or action name, an
// errno name, a mapper kind. The only per-object labels are tenant and volume, on the two gauges
// of a volume's snapshot schedule, where one series per scheduled volume is the point: they are
// bounded by the volumes that exist (and the tenants' `limits.volumes`), and vanish with them.
// Never a container id, a request id, a host path or a raw URL.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { VERSION } from '../api/version.js';

/** The registry of each concern; daemonRegistry merges those a daemon has. */
export const registries = {
  /** Every daemon: build info, Ceph and etcd calls (and the process' own, added by daemonRegistry). */
  common: new Registry(),
  /** volmaster: its REST API. */
  api: new Registry(),
  /** volplugin: Docker's requests, mounts, fencing, convergence. */
  host: new Registry(),
  /** volmaster (on demand) and volsupervisor (scheduled). */
  snapshots: new Registry(),
  /** volsupervisor: leadership, jobs, each scheduled volume's last snapshot. */
  supervisor: new Registry(),
};

// Buckets in seconds. Calls to Ceph and etcd take milliseconds (a snapshot about 1 s with Ceph's
// default paxos interval); a mount a second or two (mkfs of a large volume, longer); supervisor
// jobs up to an hour (flattening a large copy).
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const MOUNT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

// ---- every daemon ---------------------------------------------------------------------------

const common = [registries.common];

export const buildInfo = new Gauge({
  name: 'volplugin_build_info',
  help: 'Always 1; the labels say which daemon and version this is',
  labelNames: ['daemon', 'version'] as const,
  registers: common,
});

export const cephCallDuration = new Histogram({
  name: 'volplugin_ceph_call_duration_seconds',
  help: 'Calls to Ceph (librbd/librados through the addon, or the rbd CLI) by storage call, failed ones included',
  labelNames: ['call'] as const,
  buckets: CALL_BUCKETS,
  registers: common,
});

export const cephCallErrors = new Counter({
  name: 'volplugin_ceph_call_errors_total',
  help: 'Calls to Ceph that failed, by storage call and error code (an errno name such as ENOENT or ETIMEDOUT, TIMEOUT for our own bound, other)',
  labelNames: ['call', 'code'] as const,
  registers: common,
});

/** What the Ceph call gauges read: the stats of every storage connection open in this process. */
export interface CallCounts {
  running: number;
  queued: number;
}
const storageSources = new Set<() => CallCounts>();

/** Counts `source` in the Ceph call gauges until the returned function is called. */
export function trackStorage(source: () => CallCounts): () => void {
  storageSources.add(source);
  return () => storageSources.delete(source);
}

function sumStorage(field: keyof CallCounts): number {
  let sum = 0;
  for (const source of storageSources) sum += source()[field];
  return sum;
}

export const cephCallsRunning = new Gauge({
  name: 'volplugin_ceph_calls_running',
  help: "Calls to Ceph running now (the addon's native calls on its threads; rbd processes for the CLI backend)",
  registers: common,
  collect() {
    this.set(sumStorage('running'));
  },
});

export const cephCallsQueued = new Gauge({
  name: 'volplugin_ceph_calls_queued',
  help: "Calls to Ceph waiting because every one of the addon's threads (or the CLI backend's process slots) is busy",
  registers: common,
  collect() {
    this.set(sumStorage('queued'));
  },
});

export const etcdRequestDuration = new Histogram({
  name: 'volplugin_etcd_request_duration_seconds',
  help: 'Requests to etcd by operation (get, list, put, txn, delete, grant, revoke, watch, status), failed ones included',
  labelNames: ['op'] as const,
  buckets: CALL_BUCKETS,
  registers: common,
});

export const etcdErrors = new Counter({
  name: 'volplugin_etcd_errors_total',
  help: 'Requests to etcd that failed, by operation and reason: unavailable (no answer in time, no connection), refused (user or permission), other',
  labelNames: ['op', 'reason'] as const,
  registers: common,
});

// ---- volmaster ------------------------------------------------------------------------------

export const apiRequestDuration = new Histogram({
  name: 'volplugin_api_request_duration_seconds',
  help: 'Requests to the volmaster API by method, route pattern (unmatched: no such route) and HTTP status; the _count is the number of requests',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: REQUEST_BUCKETS,
  registers: [registries.api],
});

// ---- volplugin ------------------------------------------------------------------------------

const host = [registries.host];

export const dockerRequestDuration = new Histogram({
  name: 'volplugin_docker_request_duration_seconds',
  help: "Docker's volume plugin requests by method (VolumeDriver.Mount, ...) and result (ok, error)",
  labelNames: ['method', 'result'] as const,
  buckets: MOUNT_BUCKETS,
  registers: host,
});

export const mountDuration = new Histogram({
  name: 'volplugin_mount_duration_seconds',
  help: 'First mounts of a volume on this host (lock to recorded), by mapper and result (ok, error); later references are not counted',
  labelNames: ['mapper', 'result'] as const,
  buckets: MOUNT_BUCKETS,
  registers: host,
});

export const mountStepDuration = new Histogram({
  name: 'volplugin_mount_step_duration_seconds',
  help: 'Steps of first mounts by mapper and step: lock, fence, qos, map, note, format (probe, and mkfs on first use), mount, record',
  labelNames: ['mapper', 'step'] as const,
  buckets: MOUNT_BUCKETS,
  registers: host,
});

export const mountFailures = new Counter({
  name: 'volplugin_mount_failures_total',
  help: 'First mounts that failed (and were undone), by mapper and the step that failed',
  labelNames: ['mapper', 'step'] as const,
  registers: host,
});

export const unmountDuration = new Histogram({
  name: 'volplugin_unmount_duration_seconds',
  help: 'Teardowns after the last reference (unmount to lock released), by mapper and result (ok, error)',
  labelNames: ['mapper', 'result'] as const,
  buckets: MOUNT_BUCKETS,
  registers: host,
});

export const unmountStepDuration = new Histogram({
  name: 'volplugin_unmount_step_duration_seconds',
  help: 'Steps of teardowns by mapper and step: cut-io (lost volumes only), unmount, unmap, note, record, release',
  labelNames: ['mapper', 'step'] as const,
  buckets: MOUNT_BUCKETS,
  registers: host,
});

/** What the mount gauges read: this host's mount table. */
export interface MountCounts {
  held: number;
  lost: number;
  references: number;
}
let mountSource: (() => MountCounts) | null = null;

/** The mount gauges read `source` from now on (volplugin's mount table). */
export function trackMounts(source: () => MountCounts): void {
  mountSource = source;
}

export const mounts = new Gauge({
  name: 'volplugin_mounts',
  help: 'Volumes mounted on this host, by state: held (this host holds the lock) or lost (another host may have it; kept only until Docker unmounts)',
  labelNames: ['state'] as const,
  registers: host,
  collect() {
    const counts = mountSource?.() ?? { held: 0, lost: 0, references: 0 };
    this.set({ state: 'held' }, counts.held);
    this.set({ state: 'lost' }, counts.lost);
  },
});

export const mountReferences = new Gauge({
  name: 'volplugin_mount_references',
  help: "Docker's mount references on this host's volumes (one per Mount not yet unmounted)",
  registers: host,
  collect() {
    this.set(mountSource?.().references ?? 0);
  },
});

export const lockTakeovers = new Counter({
  name: 'volplugin_lock_takeovers_total',
  help: "Mounts that took a volume over from a holder that had not let go (its note was still on the image), after fencing that holder's client",
  registers: host,
});

export const fencing = new Counter({
  name: 'volplugin_fencing_total',
  help: "Ceph clients blocklisted, by target (previous_holder: before a takeover; self: this host's own client of a volume it lost) and result (ok, error)",
  labelNames: ['target', 'result'] as const,
  registers: host,
});

export const volumesLost = new Counter({
  name: 'volplugin_volumes_lost_total',
  help: 'Volumes this host lost while mounted, by reason (lock: another host holds or held its lock; lease: the host lease was not renewed in time)',
  labelNames: ['reason'] as const,
  registers: host,
});

export const hostLeaseLosses = new Counter({
  name: 'volplugin_host_lease_losses_total',
  help: "Times this host's etcd lease (which holds its mount locks) was lost: not renewed in time",
  registers: host,
});

export const convergenceRounds = new Counter({
  name: 'volplugin_convergence_rounds_total',
  help: 'Rounds of the convergence loop by result (ok; error: it could not observe the host or etcd)',
  labelNames: ['result'] as const,
  registers: host,
});

export const convergenceActions = new Counter({
  name: 'volplugin_convergence_actions_total',
  help: 'Actions of the convergence loop by action (take-lock, lost-lock, teardown, cleanup-mount, ...) and result (ok, error: retried next round); unchanged rate limits are not counted',
  labelNames: ['action', 'result'] as const,
  registers: host,
});

export const convergenceProblems = new Gauge({
  name: 'volplugin_convergence_problems',
  help: 'Problems the last convergence round could not fix (the host report in etcd lists them: volcli mount list, GET /v1/hosts)',
  registers: host,
});

// ---- snapshots (volmaster and volsupervisor) --------------------------------------------------

export const snapshotsTaken = new Counter({
  name: 'volplugin_snapshots_taken_total',
  help: 'Snapshots created in Ceph, by origin (scheduled: volsupervisor; manual: the API)',
  labelNames: ['origin'] as const,
  registers: [registries.snapshots],
});

export const snapshotFailures = new Counter({
  name: 'volplugin_snapshot_failures_total',
  help: 'Snapshots that Ceph failed to create (a name that exists does not count), by origin',
  labelNames: ['origin'] as const,
  registers: [registries.snapshots],
});

/** Counts a snapshot creation by `origin`: taken, or failed (a name that exists, EEXIST, is neither). */
export async function countSnapshot<T>(origin: 'scheduled' | 'manual', create: Promise<T>): Promise<T> {
  try {
    const value = await create;
    snapshotsTaken.inc({ origin });
    return value;
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code !== 'EEXIST') snapshotFailures.inc({ origin });
    throw err;
  }
}

// ---- volsupervisor --------------------------------------------------------------------------

const supervisor = [registries.supervisor];

/** A volume with a snapshot schedule, as the leader's scheduler sees it. */
export interface ScheduledVolume {
  tenant: string;
  volume: string;
  frequencyMs: number;
  /** When its last good snapshot's slot began (or the volume was created, before its first); null: not known yet. */
  lastGoodMs: number | null;
}

/** What the supervisor gauges read: whether this process leads, and the leader's scheduled volumes. */
export interface SupervisorView {
  leader: boolean;
  scheduled: ScheduledVolume[];
}
let supervisorSource: (() => SupervisorView) | null = null;

/** The supervisor gauges read `source` from now on. */
export function trackSupervisor(source: () => SupervisorView): void {
  supervisorSource = source;
}

export const supervisorLeader = new Gauge({
  name: 'volplugin_supervisor_leader',
  help: 'Whether this volsupervisor leads (1) and so takes the scheduled snapshots; exactly one should',
  registers: supervisor,
  collect() {
    this.set(supervisorSource?.().leader ? 1 : 0);
  },
});

export const supervisorJobDuration = new Histogram({
  name: 'volplugin_supervisor_job_duration_seconds',
  help: "The leader's jobs by job (snapshot: take and prune; flatten: a copy's) and result (ok, error: retried after a backoff)",
  labelNames: ['job', 'result'] as const,
  buckets: JOB_BUCKETS,
  registers: supervisor,
});

/** The leader's scheduled volumes whose last good snapshot is known (a follower shows none). */
function scheduledNow(): ScheduledVolume[] {
  const view = supervisorSource?.();
  return view?.leader ? view.scheduled.filter((v) => v.lastGoodMs !== null) : [];
}

export const snapshotAge = new Gauge({
  name: 'volplugin_snapshot_age_seconds',
  help: "Seconds since the slot of each scheduled volume's last good snapshot began (since its creation before the first); shown by the leader only",
  labelNames: ['tenant', 'volume'] as const,
  registers: supervisor,
  collect() {
    this.reset();
    const now = Date.now();
    for (const v of scheduledNow()) this.set({ tenant: v.tenant, volume: v.volume }, Math.max(0, (now - v.lastGoodMs!) / 1000));
  },
});

export const snapshotInterval = new Gauge({
  name: 'volplugin_snapshot_interval_seconds',
  help: "Each scheduled volume's snapshot frequency in seconds (alert when the age exceeds about twice it); shown by the leader only",
  labelNames: ['tenant', 'volume'] as const,
  registers: supervisor,
  collect() {
    this.reset();
    for (const v of scheduledNow()) this.set({ tenant: v.tenant, volume: v.volume }, v.frequencyMs / 1000);
  },
});

// ---- a daemon's endpoint --------------------------------------------------------------------

export type Daemon = 'volmaster' | 'volplugin' | 'volsupervisor';

const CONCERNS: Record<Daemon, Array<keyof typeof registries>> = {
  volmaster: ['common', 'api', 'snapshots'],
  volplugin: ['common', 'host'],
  volsupervisor: ['common', 'snapshots', 'supervisor'],
};

let processRegistry: Registry | null = null;

/**
 * What `daemon`'s endpoint shows: its concerns, and the process' own metrics (CPU, memory, event
 * loop lag, file descriptors: prom-client's defaults, `process_*` and `nodejs_*`).
 */
export function daemonRegistry(daemon: Daemon): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    // Gauges whose names end in _total, which Prometheus keeps for counters (promtool check
    // metrics refuses them); process_open_fds and the event loop metrics tell the same story.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) processRegistry.removeSingleMetric(name);
  }
  buildInfo.set({ daemon, version: VERSION }, 1);
  return Registry.merge([processRegistry, ...CONCERNS[daemon].map((c) => registries[c])]);
}

/** Observes the seconds `fn` takes in `histogram` with `labels` and result ok or error; returns what fn returns. */
export async function timeResult<T>(histogram: Histogram<string>, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const end = histogram.startTimer(labels);
  try {
    const value = await fn();
    end({ result: 'ok' });
    return value;
  } catch (err) {
    end({ result: 'error' });
    throw err;
  }
}

/** Observes the seconds `fn` takes in `histogram` with `labels`, whether it succeeds or fails; returns what fn returns. */
export async function timeStep<T>(histogram: Histogram<string>, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const end = histogram.startTimer(labels);
  try {
    return await fn();
  } finally {
    end();
  }
}
