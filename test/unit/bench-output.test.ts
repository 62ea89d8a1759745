// bench/lib/table.ts and bench/lib/chart.ts: the terminal/Markdown table and the SVG chart.

import { describe, expect, it } from 'vitest';
import { chartSvg, escapeXml, logDomain } from '../../bench/lib/chart.js';
import type { Comparison } from '../../bench/lib/report.js';
import { aimsMarkdown, aimsText, fmtNum, markdownTable, textTable } from '../../bench/lib/table.js';

const row = (over: Partial<Comparison> = {}): Comparison => ({
  name: 'snapshot create',
  concurrency: 1,
  cluster: 'tuned',
  paxos_propose_interval_s: 0.01,
  native_ops_per_s: 80,
  cli_ops_per_s: 11.5,
  c_ops_per_s: 85,
  native_median_ms: 12.25,
  cli_median_ms: 87,
  c_median_ms: 11.5,
  native_p95_ms: 15,
  cli_p95_ms: 120,
  c_p95_ms: 14,
  native_over_cli: 6.96,
  addon_overhead_pct: 6.5,
  ...over,
});

describe('numbers in the table', () => {
  it('keeps three significant digits or so and shows a dash for missing values', () => {
    expect(fmtNum(1234.5)).toBe('1235');
    expect(fmtNum(12.345)).toBe('12.3');
    expect(fmtNum(0.4123)).toBe('0.41');
    expect(fmtNum(null)).toBe('–');
    expect(fmtNum(Number.NaN)).toBe('–');
  });
});

describe('textTable', () => {
  it('aligns columns and shows backends side by side with the ratios', () => {
    const text = textTable([row(), row({ name: 'image list', concurrency: 16, cli_ops_per_s: null, native_over_cli: null })]);
    const lines = text.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^operation\s+conc\.\s+paxos\s+native ops\/s\s+CLI ops\/s\s+C ops\/s\s+native\/CLI/);
    expect(lines[2]).toContain('6.96×');
    expect(lines[2]).toContain('12.3 (15.0)');
    expect(lines[2]).toContain('+7%');
    expect(lines[3]).toMatch(/image list\s+16/);
    // Right-aligned columns end at the same place on every line.
    expect(new Set(lines.map((l) => l.length)).size).toBeLessThanOrEqual(2);
  });
});

describe('markdownTable', () => {
  it('is a GitHub table with one row per comparison and alignment markers', () => {
    const md = markdownTable([row(), row({ name: 'a|b' })]).split('\n');
    expect(md[0]!.startsWith('| operation | conc. |')).toBe(true);
    expect(md[1]).toMatch(/^\| :-- \| --: \|/);
    expect(md).toHaveLength(4);
    expect(md[3]).toContain('a\\|b');
  });
});

describe('aims', () => {
  const aims = [
    { aim: 'a', target: '≥ 3×', measured: '4×', met: true },
    { aim: 'b', target: '≥ 20×', measured: '2×', met: false },
    { aim: 'c', target: '≥ 5×', measured: 'not measured', met: null },
  ];
  it('marks met, missed and not measured', () => {
    expect(aimsText(aims).split('\n').map((l) => l.slice(0, 4))).toEqual(['MET ', 'MISS', 'n/a ']);
    expect(aimsMarkdown(aims)).toContain('**missed**');
    expect(aimsMarkdown(aims)).toContain('not run');
  });
});

describe('chartSvg', () => {
  it('spans whole decades on its log axes', () => {
    expect(logDomain([0.4, 1939])).toEqual({ lo: -1, hi: 4 });
    expect(logDomain([10, 10])).toEqual({ lo: 1, hi: 2 });
    expect(logDomain([Number.NaN, 0])).toEqual({ lo: 0, hi: 1 });
  });

  it('escapes text for XML', () => {
    expect(escapeXml('a<b & "c">')).toBe('a&lt;b &amp; &quot;c&quot;&gt;');
  });

  it('draws a bar per backend and value in both panels, and nothing for a missing backend', () => {
    const svg = chartSvg([row(), row({ name: 'image list', cli_ops_per_s: null, cli_median_ms: null, cli_p95_ms: null })], {
      title: 'T <1>',
      subtitle: 'S',
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('T &lt;1&gt;');
    // 2 rows × 3 backends × 2 panels, minus the missing CLI's 2 bars; the legend has 3 swatches.
    const bars = svg.match(/<rect x="\d+(\.\d+)?" y="\d+(\.\d+)?" width="[\d.]+" height="8" fill=/g) ?? [];
    expect(bars).toHaveLength(10);
    expect(svg).toContain('snapshot create (c=1)');
    expect(svg).toContain('median 12.3 ms, p95 15.0 ms');
  });

  it('labels rows of the default-paxos cluster with the interval', () => {
    expect(chartSvg([row({ cluster: 'default-paxos', paxos_propose_interval_s: 1 })], { title: 't', subtitle: 's' })).toContain(
      'snapshot create (c=1, paxos 1 s)',
    );
  });
});

describe('cpuRows', () => {
  it('shows each configuration once, with the wall time per operation over all its ops', async () => {
    const { cpuRows, cpuTextTable } = await import('../../bench/lib/table.js');
    const base = {
      bench: 'snapshot',
      concurrency: 1,
      cluster: 'tuned',
      paxos_propose_interval_s: 0.01,
      mean_ms: 0,
      min_ms: 0,
      max_ms: 0,
      rounds: 1,
      round_ops_per_s: [],
      machine: 'm',
      node: 'n',
      ceph: 'c',
      median_ms: 1,
      p95_ms: 1,
    };
    const cpu = { bench_process: 1, child_processes: 40, ceph_mon: 2, ceph_osd: 3, volmaster: 0, etcd: 0 };
    const rows = [
      { ...base, name: 'snapshot create', op: 'snap_create', backend: 'cli' as const, samples: 10, ops_per_s: 10, cpu_ms_per_op: cpu },
      { ...base, name: 'snapshot remove', op: 'snap_remove', backend: 'cli' as const, samples: 10, ops_per_s: 5, cpu_ms_per_op: cpu },
      { ...base, name: 'snapshot create', op: 'snap_create', backend: 'native' as const, samples: 10, ops_per_s: 50, cpu_ms_per_op: null },
    ];
    const groups = cpuRows(rows);
    expect(groups).toHaveLength(1);
    expect(groups[0]!.ops).toBe('snapshot create + remove');
    // 10 ops at 10/s (1 s) + 10 ops at 5/s (2 s) = 3 s for 20 ops.
    expect(groups[0]!.wallMsPerOp).toBeCloseTo(150);
    expect(cpuTextTable(rows)).toMatch(/snapshot create \+ remove\s+CLI\s+1\s+0\.01 s\s+150\s+1\.00\s+40\.0\s+2\.00\s+3\.00/);
  });
});

describe('joinNames', () => {
  it('keeps a shared leading phrase once', async () => {
    const { joinNames } = await import('../../bench/lib/table.js');
    expect(joinNames(['API: volume create', 'API: volume get', 'API: volume remove'])).toBe('API: volume create + get + remove');
    expect(joinNames(['snapshot create', 'snapshot remove'])).toBe('snapshot create + remove');
    expect(joinNames(['image info', 'image list'])).toBe('image info + list');
    expect(joinNames(['a b', 'c d'])).toBe('a b + c d');
    expect(joinNames(['only'])).toBe('only');
  });
});
