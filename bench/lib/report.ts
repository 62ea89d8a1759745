// From measurements to what the run reports: one row per (operation, backend, concurrency,
// cluster) with the run's machine and versions on it, the native/CLI ratios, the addon's overhead
// over the C program, and each of the aims with the numbers that meet or miss it.

import type { BenchEnv } from './env.js';
import { machineLine } from './env.js';
import type { Backend, Measurement } from './harness.js';
import { ratio, round, summarise } from './stats.js';

export interface ResultRow {
  /** Human name of the operation, e.g. "snapshot create". */
  name: string;
  bench: string;
  op: string;
  backend: Backend;
  concurrency: number;
  cluster: string;
  paxos_propose_interval_s: number;
  ops_per_s: number;
  median_ms: number;
  p95_ms: number;
  mean_ms: number;
  min_ms: number;
  max_ms: number;
  samples: number;
  rounds: number;
  round_ops_per_s: number[];
  /** CPU ms per operation by party, over the whole round (see bench/lib/cpu.ts). */
  cpu_ms_per_op: {
    bench_process: number;
    child_processes: number;
    ceph_mon: number;
    ceph_osd: number;
    volmaster: number;
    etcd: number;
  } | null;
  machine: string;
  node: string;
  ceph: string;
  notes?: Record<string, string | number | boolean>;
}

export interface Comparison {
  name: string;
  concurrency: number;
  cluster: string;
  paxos_propose_interval_s: number;
  native_ops_per_s: number | null;
  cli_ops_per_s: number | null;
  c_ops_per_s: number | null;
  native_median_ms: number | null;
  cli_median_ms: number | null;
  c_median_ms: number | null;
  native_p95_ms: number | null;
  cli_p95_ms: number | null;
  c_p95_ms: number | null;
  /** native ops/s over CLI ops/s. */
  native_over_cli: number | null;
  /** (native median - C median) / C median, in percent. */
  addon_overhead_pct: number | null;
}

export interface AimResult {
  aim: string;
  target: string;
  measured: string;
  /** null: not measured in this run. */
  met: boolean | null;
}

const opNames: Record<string, string> = {
  snap_create: 'snapshot create',
  snap_remove: 'snapshot remove',
  image_create: 'image create',
  image_remove: 'image remove',
  image_remove_trash_move: 'image remove via trash (user-visible)',
  image_trash_purge: 'image trash purge (background)',
  image_create_object_map: 'image create, object-map',
  image_remove_object_map: 'image remove, object-map',
  mount_cycle: 'mount path: whole cycle',
  snap_create_kept_open: 'snapshot create, image kept open',
  snap_remove_kept_open: 'snapshot remove, image kept open',
  etcd_put: 'etcd put (one write, etcd3 client)',
  addon_round_trip: 'addon round trip (rados_cluster_fsid)',
  backup_incremental: 'backup: export-diff, 1 GiB, 1% changed',
  backup_full: 'backup: full export-diff, 1 GiB',
  backup_incremental_whole_object: 'backup: export-diff, 1% changed, whole objects',
  backup_service_incremental: 'backup: volplugin backup take, 1% changed (directory target)',
  backup_service_full: 'backup: volplugin backup take, full (directory target)',
  cli_process_start: 'rbd process start only (rbd --version)',
  docker_run_none: 'docker run, no volume',
  docker_run_local: "docker run, a volume of Docker's local driver (no plugin)",
  docker_run_warm: 'docker run, existing volume used within the grace',
  docker_run_cold: 'docker run, existing volume unused for longer than the grace',
  docker_volume_create: 'docker volume create',
  docker_run_fresh_run: 'docker run of a fresh volume (the run alone)',
  docker_run_fresh: 'docker volume create + docker run (fresh volume)',
  api_volume_create: 'API: volume create',
  api_volume_create_alone: 'API: volume create, alone in its round (its CPU by party)',
  api_volume_get: 'API: volume get',
  api_volume_remove: 'API: volume remove',
  api_health: 'API: GET /v1/health (no etcd; the HTTPS floor)',
  etcd_get: 'etcd get, 8 clients (no master; the etcd floor)',
  c_image_create_8: 'C program: image create, 8 at once (the Ceph floor of an API create)',
  c_image_remove_8: 'C program: image remove, 8 at once',
  api_read_after_write: 'API: write on one master, read on another',
  image_info: 'image info',
  image_list: 'image list',
};

export function displayName(op: string): string {
  if (opNames[op]) return opNames[op];
  if (op.startsWith('mount_')) return `mount path: ${op.slice('mount_'.length)}`;
  const round = /^supervisor_round_(\d+)$/.exec(op);
  if (round) return `supervisor round: snapshot ${Number(round[1]).toLocaleString('en')} volumes`;
  const scale = /^scale_(list_all|converge_pass)_(\d+)$/.exec(op);
  if (scale) return `scale, ${Number(scale[2]).toLocaleString('en')} volumes: ${scale[1] === 'list_all' ? 'list-all (API)' : 'convergence pass (200 mounts)'}`;
  return op.replace(/_/g, ' ');
}

export function toRows(measurements: readonly Measurement[], env: BenchEnv): ResultRow[] {
  const paxos = new Map(env.clusters.map((c) => [c.name, c.paxos_propose_interval_s]));
  return measurements.map((m) => {
    const s = summarise(m.rounds);
    return {
      name: displayName(m.op),
      bench: m.bench,
      op: m.op,
      backend: m.backend,
      concurrency: m.concurrency,
      cluster: m.cluster,
      paxos_propose_interval_s: paxos.get(m.cluster) ?? Number.NaN,
      ops_per_s: round(s.ops_per_s, 2),
      median_ms: round(s.median_ms, 2),
      p95_ms: round(s.p95_ms, 2),
      mean_ms: round(s.mean_ms, 2),
      min_ms: round(s.min_ms, 2),
      max_ms: round(s.max_ms, 2),
      samples: s.samples,
      rounds: m.rounds.length,
      round_ops_per_s: s.round_ops_per_s.map((v) => round(v, 2)),
      cpu_ms_per_op: m.cpuMsPerOp
        ? {
            bench_process: round(m.cpuMsPerOp.self, 2),
            child_processes: round(m.cpuMsPerOp.children, 2),
            ceph_mon: round(m.cpuMsPerOp.mon, 2),
            ceph_osd: round(m.cpuMsPerOp.osd, 2),
            volmaster: round(m.cpuMsPerOp.volmaster, 2),
            etcd: round(m.cpuMsPerOp.etcd, 2),
          }
        : null,
      machine: machineLine(env),
      node: env.node,
      ceph: env.ceph,
      ...(m.notes ? { notes: m.notes } : {}),
    };
  });
}

const key = (r: Pick<ResultRow, 'name' | 'concurrency' | 'cluster'>) => `${r.name}\u0000${r.concurrency}\u0000${r.cluster}`;

/** Groups rows by operation, concurrency and cluster, in the order they were measured. */
export function compare(rows: readonly ResultRow[]): Comparison[] {
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    const list = groups.get(key(r)) ?? [];
    list.push(r);
    groups.set(key(r), list);
  }
  return [...groups.values()].map((g) => {
    const by = (b: Backend) => g.find((r) => r.backend === b);
    const native = by('native');
    const cli = by('cli');
    const c = by('c');
    const speed = ratio(native?.ops_per_s, cli?.ops_per_s);
    const over = ratio(native?.median_ms, c?.median_ms);
    const first = g[0]!;
    return {
      name: first.name,
      concurrency: first.concurrency,
      cluster: first.cluster,
      paxos_propose_interval_s: first.paxos_propose_interval_s,
      native_ops_per_s: native?.ops_per_s ?? null,
      cli_ops_per_s: cli?.ops_per_s ?? null,
      c_ops_per_s: c?.ops_per_s ?? null,
      native_median_ms: native?.median_ms ?? null,
      cli_median_ms: cli?.median_ms ?? null,
      c_median_ms: c?.median_ms ?? null,
      native_p95_ms: native?.p95_ms ?? null,
      cli_p95_ms: cli?.p95_ms ?? null,
      c_p95_ms: c?.p95_ms ?? null,
      native_over_cli: Number.isFinite(speed) ? round(speed, 2) : null,
      addon_overhead_pct: Number.isFinite(over) ? round((over - 1) * 100, 1) : null,
    };
  });
}

function find(cmp: readonly Comparison[], name: string, concurrency: number, cluster = 'tuned'): Comparison | undefined {
  return cmp.find((c) => c.name === name && c.concurrency === concurrency && c.cluster === cluster);
}

/** The aims, each checked against this run's numbers. */
export function checkAims(cmp: readonly Comparison[]): AimResult[] {
  const out: AimResult[] = [];
  for (const name of ['snapshot create', 'snapshot remove', 'image create']) {
    const c = find(cmp, name, 1);
    const pct = c?.addon_overhead_pct ?? null;
    out.push({
      aim: `addon within 15% of C per operation: ${name}`,
      target: '≤ +15% median',
      measured: pct === null ? 'not measured' : `${pct >= 0 ? '+' : ''}${pct}% (median ${c!.native_median_ms} ms vs C ${c!.c_median_ms} ms)`,
      met: pct === null ? null : pct <= 15,
    });
  }
  const speedAims: Array<[string, number, number]> = [
    ['image create', 1, 5],
    ['image info', 1, 5],
    ['image list', 1, 5],
    ['snapshot create', 1, 3],
    ['snapshot remove', 1, 3],
    ['snapshot create', 16, 20],
    ['snapshot remove', 16, 20],
  ];
  for (const [name, conc, times] of speedAims) {
    const c = find(cmp, name, conc);
    const r = c?.native_over_cli ?? null;
    out.push({
      aim: `addon ≥ ${times}× the CLI's throughput: ${name}, concurrency ${conc}`,
      target: `≥ ${times}×`,
      measured: r === null ? 'not measured' : `${r}× (${c!.native_ops_per_s} vs ${c!.cli_ops_per_s} ops/s)`,
      met: r === null ? null : r >= times,
    });
  }
  // Issue 14, part 3: snapshots where every one waits for a monitor commit (Ceph's default paxos
  // interval): the addon against the C program with the same number in flight.
  for (const conc of [16, 64, 256]) {
    const c = find(cmp, 'snapshot create', conc, 'default-paxos');
    const r = ratio(c?.native_ops_per_s ?? undefined, c?.c_ops_per_s ?? undefined);
    out.push({
      aim: `addon ≥ 90% of the C program's throughput: snapshot create, ${conc} in flight, default paxos interval`,
      target: '≥ 90%',
      measured: Number.isFinite(r) ? `${round(r * 100, 1)}% (${c!.native_ops_per_s} vs ${c!.c_ops_per_s} ops/s)` : 'not measured',
      met: Number.isFinite(r) ? r >= 0.9 : null,
    });
  }
  return out;
}
