// The results as a table: one line per operation, concurrency and cluster, with the native addon,
// the `rbd` CLI and the C program side by side, and the ratios the aims are about. The same table
// renders as aligned text for the terminal and as Markdown for docs/performance.md.

import type { AimResult, Comparison, ResultRow } from './report.js';

interface Column<T> {
  header: string;
  align: 'left' | 'right';
  cell: (row: T) => string;
}

export function fmtNum(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function fmtRatio(v: number | null): string {
  return v === null ? '–' : `${fmtNum(v)}×`;
}

function fmtPct(v: number | null): string {
  if (v === null) return '–';
  const r = Math.round(v);
  return r === 0 ? '0%' : `${r > 0 ? '+' : ''}${r}%`;
}

/** "median (p95)" in milliseconds. */
function fmtLatency(median: number | null, p95: number | null): string {
  return median === null ? '–' : `${fmtNum(median)} (${fmtNum(p95)})`;
}

export function fmtPaxos(seconds: number): string {
  return Number.isFinite(seconds) ? `${seconds} s` : '?';
}

const columns: Column<Comparison>[] = [
  { header: 'operation', align: 'left', cell: (c) => c.name },
  { header: 'conc.', align: 'right', cell: (c) => String(c.concurrency) },
  { header: 'paxos', align: 'right', cell: (c) => fmtPaxos(c.paxos_propose_interval_s) },
  { header: 'native ops/s', align: 'right', cell: (c) => fmtNum(c.native_ops_per_s) },
  { header: 'CLI ops/s', align: 'right', cell: (c) => fmtNum(c.cli_ops_per_s) },
  { header: 'C ops/s', align: 'right', cell: (c) => fmtNum(c.c_ops_per_s) },
  { header: 'native/CLI', align: 'right', cell: (c) => fmtRatio(c.native_over_cli) },
  { header: 'native ms (p95)', align: 'right', cell: (c) => fmtLatency(c.native_median_ms, c.native_p95_ms) },
  { header: 'CLI ms (p95)', align: 'right', cell: (c) => fmtLatency(c.cli_median_ms, c.cli_p95_ms) },
  { header: 'C ms (p95)', align: 'right', cell: (c) => fmtLatency(c.c_median_ms, c.c_p95_ms) },
  { header: 'addon over C', align: 'right', cell: (c) => fmtPct(c.addon_overhead_pct) },
];

function grid<T>(cols: readonly Column<T>[], rows: readonly T[]): string[][] {
  return [cols.map((c) => c.header), ...rows.map((r) => cols.map((c) => c.cell(r)))];
}

function renderText<T>(cols: readonly Column<T>[], rows: readonly T[]): string {
  const g = grid(cols, rows);
  const widths = cols.map((_, i) => Math.max(...g.map((line) => [...line[i]!].length)));
  const fmt = (line: string[]) =>
    line
      .map((cell, i) => (cols[i]!.align === 'left' ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const [head, ...body] = g;
  return [fmt(head!), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function renderMarkdown<T>(cols: readonly Column<T>[], rows: readonly T[]): string {
  const [head, ...body] = grid(cols, rows);
  const line = (cells: string[]) => `| ${cells.map(mdEscape).join(' | ')} |`;
  const sep = `|${cols.map((c) => (c.align === 'left' ? ' :-- ' : ' --: ')).join('|')}|`;
  return [line(head!), sep, ...body.map(line)].join('\n');
}

/** Aligned text for the terminal. */
export function textTable(rows: readonly Comparison[]): string {
  return renderText(columns, rows);
}

/** GitHub Markdown. */
export function markdownTable(rows: readonly Comparison[]): string {
  return renderMarkdown(columns, rows);
}

const backendNames: Record<string, string> = { native: 'native', cli: 'CLI', c: 'C' };

/** One round kind of one configuration: the ops it measured and their shared CPU figures. */
export interface CpuRow {
  ops: string;
  first: ResultRow;
  /** Wall ms per operation over all ops of the round kind. */
  wallMsPerOp: number;
}

const cpuColumns: Column<CpuRow>[] = [
  { header: 'operations (one round)', align: 'left', cell: (r) => r.ops },
  { header: 'backend', align: 'left', cell: (r) => backendNames[r.first.backend] ?? r.first.backend },
  { header: 'conc.', align: 'right', cell: (r) => String(r.first.concurrency) },
  { header: 'paxos', align: 'right', cell: (r) => fmtPaxos(r.first.paxos_propose_interval_s) },
  { header: 'wall ms/op', align: 'right', cell: (r) => fmtNum(r.wallMsPerOp) },
  { header: 'CPU ms/op: bench process', align: 'right', cell: (r) => fmtNum(r.first.cpu_ms_per_op?.bench_process) },
  { header: 'child processes', align: 'right', cell: (r) => fmtNum(r.first.cpu_ms_per_op?.child_processes) },
  { header: 'ceph-mon', align: 'right', cell: (r) => fmtNum(r.first.cpu_ms_per_op?.ceph_mon) },
  { header: 'ceph-osd', align: 'right', cell: (r) => fmtNum(r.first.cpu_ms_per_op?.ceph_osd) },
  { header: 'volmaster', align: 'right', cell: (r) => fmtCpuOpt(r.first, r.first.cpu_ms_per_op?.volmaster) },
  { header: 'etcd', align: 'right', cell: (r) => fmtCpuOpt(r.first, r.first.cpu_ms_per_op?.etcd) },
];

/** volmaster and etcd only run in the master benchmark: a dash elsewhere. */
function fmtCpuOpt(row: ResultRow, v: number | undefined): string {
  return row.bench === 'master' ? fmtNum(v) : '–';
}

/** "API: volume create", "API: volume get" -> "API: volume create + get"; others joined with " + ". */
export function joinNames(names: readonly string[]): string {
  if (names.length < 2) return names[0] ?? '';
  const words = names.map((n) => n.split(' '));
  let common = 0;
  while (words.every((w) => w.length > common + 1 && w[common] === words[0]![common])) common++;
  if (common === 0) return names.join(' + ');
  return `${words[0]!.slice(0, common).join(' ')} ${words.map((w) => w.slice(common).join(' ')).join(' + ')}`;
}

/**
 * Groups rows by configuration (benchmark, backend, concurrency, cluster, notes): the CPU figures
 * cover every phase of a round, so they are shown once per group, beside the wall time per
 * operation of the same ops (total wall time over total operations).
 */
export function cpuRows(rows: readonly ResultRow[]): CpuRow[] {
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    if (!r.cpu_ms_per_op) continue;
    const key = `${r.bench}/${r.backend}/${r.concurrency}/${r.cluster}/${JSON.stringify(r.notes ?? {})}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((all) => {
    // The mount path's CPU is per whole cycle: show it beside the cycle's own row.
    const cycle = all.find((r) => r.op === 'mount_cycle');
    const g = cycle ? [cycle] : all;
    const ops = g.reduce((sum, r) => sum + r.samples, 0);
    const wall = g.reduce((sum, r) => sum + (r.ops_per_s > 0 ? (r.samples * 1000) / r.ops_per_s : 0), 0);
    return { ops: joinNames(g.map((r) => r.name)), first: g[0]!, wallMsPerOp: ops > 0 ? wall / ops : Number.NaN };
  });
}

export function cpuTextTable(rows: readonly ResultRow[]): string {
  return renderText(cpuColumns, cpuRows(rows));
}

export function cpuMarkdownTable(rows: readonly ResultRow[]): string {
  return renderMarkdown(cpuColumns, cpuRows(rows));
}

export function aimsText(aims: readonly AimResult[]): string {
  return aims.map((a) => `${a.met === null ? 'n/a ' : a.met ? 'MET ' : 'MISS'}  ${a.aim}: ${a.measured} (aim ${a.target})`).join('\n');
}

export function aimsMarkdown(aims: readonly AimResult[]): string {
  const head = '| aim | target | measured | |\n| :-- | --: | :-- | :-: |';
  const body = aims.map((a) => `| ${mdEscape(a.aim)} | ${a.target} | ${mdEscape(a.measured)} | ${a.met === null ? 'not run' : a.met ? 'met' : '**missed**'} |`);
  return [head, ...body].join('\n');
}
