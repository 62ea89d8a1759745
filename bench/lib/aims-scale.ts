// Issue 14, parts 2 to 4: the aims of the master's API, the supervisor's round and scale, checked
// against a run's rows (kept apart from report.ts's per-call aims, which compare backends).

import type { AimResult, ResultRow } from './report.js';

const row = (results: readonly ResultRow[], op: string, backend = 'native') => results.find((r) => r.op === op && r.backend === backend);
const note = (r: ResultRow | undefined, key: string): number | undefined => {
  const v = (r as { notes?: Record<string, unknown> } | undefined)?.notes?.[key];
  return typeof v === 'number' ? v : undefined;
};

export function checkScaleAims(results: readonly ResultRow[]): AimResult[] {
  const out: AimResult[] = [];
  // Each rate is shown with the floors measured in the same run: what the same clients reach
  // without volplugin's part (HTTPS alone, etcd alone, Ceph alone through the C program).
  const rate = (op: string, aim: string, target: number, floors: Array<[string, string, string]>) => {
    const r = row(results, op);
    const beside = floors
      .map(([fop, backend, what]) => [row(results, fop, backend), what] as const)
      .filter(([f]) => f !== undefined)
      .map(([f, what]) => `${what} ${f!.ops_per_s}/s`);
    const measured = r ? `${r.ops_per_s}/s (median ${r.median_ms} ms)${beside.length ? `; floors: ${beside.join(', ')}` : ''}` : 'not measured';
    out.push({ aim, target: `≥ ${target}/s`, measured, met: r ? r.ops_per_s >= target : null });
  };
  rate('api_volume_get', 'master API: GET /v1/volumes/T/V, 8 clients', 5000, [
    ['api_health', 'native', 'HTTPS alone'],
    ['etcd_get', 'native', 'etcd alone'],
  ]);
  rate('api_volume_create', 'master API: volume creates, 8 clients', 200, [['c_image_create_8', 'c', 'Ceph alone (C, 8 at once)']]);

  // docker run with a volume against the same run without one, in the same rounds (make up's stack).
  const none = row(results, 'docker_run_none');
  const local = row(results, 'docker_run_local');
  const ratio = (op: string, aim: string, times: number) => {
    const r = row(results, op);
    const x = r && none ? r.median_ms / none.median_ms : null;
    out.push({
      aim,
      target: `≤ ${times}× the run without a volume`,
      measured:
        x === null
          ? 'not measured'
          : `${x.toFixed(2)}× (median ${r!.median_ms} ms against ${none!.median_ms} ms)${local ? `; a volume of Docker's local driver: ${(local.median_ms / none!.median_ms).toFixed(2)}×` : ''}`,
      met: x === null ? null : x <= times,
    });
  };
  ratio('docker_run_warm', 'docker run with an existing volume, used within the unmount grace', 1.5);
  ratio('docker_run_cold', 'docker run with an existing volume, first use after the grace (map, mount)', 1.5);
  ratio('docker_run_fresh', 'docker run with a fresh volume (docker volume create + run)', 2);

  const raw = row(results, 'api_read_after_write');
  const stale = note(raw, 'stale_reads');
  const checked = note(raw, 'read_after_write_checked');
  out.push({
    aim: 'master API: a read through one master after a write through another sees it',
    target: '0 stale reads',
    measured: stale === undefined ? 'not measured' : `${stale} stale of ${checked ?? '?'} reads`,
    met: stale === undefined ? null : stale === 0,
  });

  const rounds = results.filter((r) => r.op === 'supervisor_round_1000').sort((a, b) => b.concurrency - a.concurrency);
  const sup = rounds[0];
  out.push({
    aim: 'volsupervisor snapshots 1,000 volumes, default paxos interval (1 s), default concurrency',
    target: '≤ 15 s per round',
    measured: sup ? `${(sup.median_ms / 1000).toFixed(1)} s median at ${sup.concurrency} jobs at once (${note(sup, 'snapshots_per_s') ?? '?'} snapshots/s)` : 'not measured',
    met: sup ? sup.median_ms <= 15_000 : null,
  });

  const passes = results.filter((r) => r.op.startsWith('scale_converge_pass_') && note(r, 'host_mounts') === 200);
  const worst = passes.reduce<ResultRow | undefined>((w, r) => ((note(r, 'cpu_ms_median') ?? 0) > (note(w, 'cpu_ms_median') ?? -1) ? r : w), undefined);
  out.push({
    aim: 'a convergence pass of a host with 200 mounts (observe + plan)',
    target: '≤ 50 ms CPU',
    measured: worst ? passes.map((r) => `${note(r, 'cpu_ms_median')} ms at ${note(r, 'volumes')} volumes`).join(', ') : 'not measured',
    met: worst ? (note(worst, 'cpu_ms_median') ?? Infinity) <= 50 : null,
  });

  const lists = results.filter((r) => r.op.startsWith('scale_list_all_')).sort((a, b) => (note(a, 'volumes') ?? 0) - (note(b, 'volumes') ?? 0));
  const per = lists.map((r) => note(r, 'us_per_volume') ?? NaN);
  const growth = lists.length >= 2 ? per[per.length - 1]! / per[per.length - 2]! : NaN;
  out.push({
    aim: 'list-all through the API: cost per volume flat from 1,000 to 10,000 volumes',
    target: '≤ 1.5× per volume',
    measured: lists.length ? lists.map((r) => `${note(r, 'us_per_volume')} µs/volume at ${note(r, 'volumes')}`).join(', ') : 'not measured',
    met: Number.isFinite(growth) && lists.length >= 3 ? growth <= 1.5 : null,
  });
  return out;
}
