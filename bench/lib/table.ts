// The results as a table: one line per operation, concurrency and cluster, with the native addon,
// the `rbd` CLI and the C program side by side, and the ratios the aims are about. The same table
// renders as aligned text for the terminal and as Markdown for docs/performance.md.

import type { AimResult, Comparison } from './report.js';

interface Column {
  header: string;
  align: 'left' | 'right';
  cell: (c: Comparison) => string;
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
  return v === null ? '–' : `${v >= 0 ? '+' : ''}${v.toFixed(0)}%`;
}

/** "median (p95)" in milliseconds. */
function fmtLatency(median: number | null, p95: number | null): string {
  return median === null ? '–' : `${fmtNum(median)} (${fmtNum(p95)})`;
}

export function fmtPaxos(seconds: number): string {
  return Number.isFinite(seconds) ? `${seconds} s` : '?';
}

const columns: Column[] = [
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

function grid(rows: readonly Comparison[]): string[][] {
  return [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => c.cell(r)))];
}

/** Aligned text for the terminal. */
export function textTable(rows: readonly Comparison[]): string {
  const g = grid(rows);
  const widths = columns.map((_, i) => Math.max(...g.map((line) => [...line[i]!].length)));
  const fmt = (line: string[]) =>
    line
      .map((cell, i) => (columns[i]!.align === 'left' ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const [head, ...body] = g;
  return [fmt(head!), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** GitHub Markdown. */
export function markdownTable(rows: readonly Comparison[]): string {
  const g = grid(rows);
  const [head, ...body] = g;
  const line = (cells: string[]) => `| ${cells.map(mdEscape).join(' | ')} |`;
  const sep = `|${columns.map((c) => (c.align === 'left' ? ' :-- ' : ' --: ')).join('|')}|`;
  return [line(head!), sep, ...body.map(line)].join('\n');
}

export function aimsText(aims: readonly AimResult[]): string {
  return aims.map((a) => `${a.met === null ? 'n/a ' : a.met ? 'MET ' : 'MISS'}  ${a.aim}: ${a.measured} (aim ${a.target})`).join('\n');
}

export function aimsMarkdown(aims: readonly AimResult[]): string {
  const head = '| aim | target | measured | |\n| :-- | --: | :-- | :-: |';
  const body = aims.map((a) => `| ${mdEscape(a.aim)} | ${a.target} | ${mdEscape(a.measured)} | ${a.met === null ? 'not run' : a.met ? 'met' : '**missed**'} |`);
  return [head, ...body].join('\n');
}
