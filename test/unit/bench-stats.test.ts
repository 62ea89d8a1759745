// bench/lib/stats.ts and bench/lib/report.ts: the numbers `pnpm bench` prints and the aims it checks.

import { describe, expect, it } from 'vitest';
import { median, percentile, ratio, round, summarise } from '../../bench/lib/stats.js';
import type { BenchEnv } from '../../bench/lib/env.js';
import type { Measurement } from '../../bench/lib/harness.js';
import { checkAims, compare, displayName, toRows } from '../../bench/lib/report.js';

describe('percentile', () => {
  it('interpolates linearly between the two nearest ranks', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([10, 20, 30, 40, 50], 95)).toBeCloseTo(48);
  });

  it('does not depend on the order of the input and does not reorder it', () => {
    const values = [5, 1, 4, 2, 3];
    expect(median(values)).toBe(3);
    expect(values).toEqual([5, 1, 4, 2, 3]);
  });

  it('gives the extremes at 0 and 100 and the value itself for one sample', () => {
    expect(percentile([3, 1, 2], 0)).toBe(1);
    expect(percentile([3, 1, 2], 100)).toBe(3);
    expect(percentile([7], 95)).toBe(7);
  });

  it('is NaN for no samples and refuses a percentile outside 0..100', () => {
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });
});

describe('summarise', () => {
  it('pools latencies of all rounds and divides all operations by the summed wall time', () => {
    const s = summarise([
      { latMs: [10, 20], wallMs: 30 },
      { latMs: [30, 40], wallMs: 70 },
    ]);
    expect(s.samples).toBe(4);
    expect(s.median_ms).toBe(25);
    expect(s.mean_ms).toBe(25);
    expect(s.min_ms).toBe(10);
    expect(s.max_ms).toBe(40);
    expect(s.ops_per_s).toBeCloseTo(40);
    expect(s.round_ops_per_s.map((v) => Math.round(v * 10) / 10)).toEqual([66.7, 28.6]);
  });

  it('counts concurrent operations once each, so concurrency shows in ops/s', () => {
    // 16 workers, each 1 operation of 100 ms, all at once: 160 ops/s, median 100 ms.
    const s = summarise([{ latMs: Array(16).fill(100), wallMs: 100 }]);
    expect(s.ops_per_s).toBeCloseTo(160);
    expect(s.median_ms).toBe(100);
  });
});

describe('ratio and round', () => {
  it('is NaN when a side is missing or zero', () => {
    expect(ratio(10, 2)).toBe(5);
    expect(ratio(undefined, 2)).toBeNaN();
    expect(ratio(1, 0)).toBeNaN();
  });

  it('rounds to the given decimals and leaves NaN alone', () => {
    expect(round(1.23456, 2)).toBe(1.23);
    expect(round(Number.NaN)).toBeNaN();
  });
});

const env: BenchEnv = {
  date: '2026-01-01T00:00:00.000Z',
  git_commit: 'abc1234',
  machine: { cpu_model: 'Test CPU', cores: 2, memory_gib: 24, kernel: 'Linux 6', hostname: 'h' },
  node: 'v20.20.2',
  ceph: '16.2.15 pacific',
  librbd: '1.16.0',
  uv_threadpool_size: '4 (default)',
  load: { start: [1, 1, 1], end: [1, 1, 1] },
  clusters: [
    { name: 'tuned', paxos_propose_interval_s: 0.01, mon: 'm', osd_objectstore: 'memstore' },
    { name: 'default-paxos', paxos_propose_interval_s: 1, mon: 'm', osd_objectstore: 'memstore' },
  ],
  options: {},
};

function m(op: string, backend: Measurement['backend'], concurrency: number, latMs: number[], wallMs: number, cluster = 'tuned'): Measurement {
  return { bench: 'x', op, backend, concurrency, cluster, rounds: [{ latMs, wallMs }] };
}

describe('rows, comparisons and aims', () => {
  const measurements = [
    m('snap_create', 'native', 1, [10, 10], 20),
    m('snap_create', 'cli', 1, [50, 50], 100),
    m('snap_create', 'c', 1, [9, 9], 18),
    m('snap_create', 'native', 16, [10, 10], 1),
    m('snap_create', 'cli', 16, [50, 50], 100),
    m('snap_create', 'native', 1, [1000], 1000, 'default-paxos'),
  ];
  const rows = toRows(measurements, env);
  const cmp = compare(rows);

  it('names the machine, versions, backend, concurrency and paxos interval on every row', () => {
    expect(rows[0]).toMatchObject({
      name: 'snapshot create',
      backend: 'native',
      concurrency: 1,
      paxos_propose_interval_s: 0.01,
      machine: '2 × Test CPU',
      node: 'v20.20.2',
      ceph: '16.2.15 pacific',
      ops_per_s: 100,
      median_ms: 10,
      p95_ms: 10,
    });
    expect(rows[5]!.paxos_propose_interval_s).toBe(1);
  });

  it('groups native, CLI and C of one operation, concurrency and cluster side by side', () => {
    expect(cmp).toHaveLength(3);
    expect(cmp[0]).toMatchObject({ name: 'snapshot create', concurrency: 1, native_over_cli: 5, addon_overhead_pct: 11.1 });
    expect(cmp[1]).toMatchObject({ concurrency: 16, native_over_cli: 100, addon_overhead_pct: null });
    expect(cmp[2]).toMatchObject({ cluster: 'default-paxos', cli_ops_per_s: null, native_over_cli: null });
  });

  it('checks each aim against the tuned cluster and says when one was not measured', () => {
    const aims = checkAims(cmp);
    const find = (text: string) => aims.find((a) => a.aim.includes(text))!;
    expect(find('15% of C per operation: snapshot create').met).toBe(true);
    expect(find('3× the CLI').met).toBe(true);
    expect(find('20× the CLI\'s throughput: snapshot create, concurrency 16').met).toBe(true);
    expect(find('image info').met).toBeNull();
    expect(find('image info').measured).toBe('not measured');
  });

  it('misses the overhead aim above 15%', () => {
    const aims = checkAims(compare(toRows([m('image_create', 'native', 1, [12], 12), m('image_create', 'c', 1, [10], 10)], env)));
    expect(aims.find((a) => a.aim.includes('15% of C per operation: image create'))).toMatchObject({ met: false, measured: '+20% (median 12 ms vs C 10 ms)' });
  });

  it('gives mount steps and librbd variants readable names', () => {
    expect(displayName('mount_mkfs')).toBe('mount path: mkfs');
    expect(displayName('image_remove_trash_move')).toBe('image remove via trash (user-visible)');
    expect(displayName('something_else')).toBe('something else');
  });
});

describe('CPU accounting', () => {
  it('reads utime+stime and cutime+cstime from /proc/PID/stat, also with spaces in the name', async () => {
    const { parseStatTimes } = await import('../../bench/lib/cpu.js');
    // Fields: pid (comm) state ppid ... field 14 utime=250 15 stime=50 16 cutime=1000 17 cstime=200
    const stat = '4242 (rbd loop) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 1000 200 20 0 3 0 1 2 3';
    expect(parseStatTimes(stat)).toEqual({ own: 3000, children: 12000 });
  });

  it('puts the CPU of a round on every op of that configuration, per operation', () => {
    const rows = toRows(
      [
        { ...m('snap_create', 'cli', 1, [80, 80], 160), cpuMsPerOp: { self: 1, children: 40, mon: 2, osd: 3, volmaster: 0, etcd: 0 } },
        { ...m('snap_remove', 'cli', 1, [100, 100], 200), cpuMsPerOp: { self: 1, children: 40, mon: 2, osd: 3, volmaster: 0, etcd: 0 } },
      ],
      env,
    );
    expect(rows[0]!.cpu_ms_per_op).toEqual({ bench_process: 1, child_processes: 40, ceph_mon: 2, ceph_osd: 3, volmaster: 0, etcd: 0 });
  });
});
