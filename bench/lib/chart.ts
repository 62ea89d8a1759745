// A hand-written SVG chart of a run: one row per operation/concurrency/cluster, grouped bars for
// the native addon, the `rbd` CLI and the C program. Left panel: throughput (ops/s, higher is
// better); right panel: median latency with a whisker to p95 (ms, lower is better). Both axes are
// logarithmic because the values span four orders of magnitude (1 s snapshots to sub-ms lists).

import type { Comparison } from './report.js';
import { fmtNum, fmtPaxos } from './table.js';

type Series = 'native' | 'cli' | 'c';
const series: Array<{ key: Series; label: string; color: string }> = [
  { key: 'native', label: 'native addon', color: '#2563eb' },
  { key: 'cli', label: 'rbd CLI (execa)', color: '#ea580c' },
  { key: 'c', label: 'C program (librbd, floor)', color: '#16a34a' },
];

const W = 1200;
const LABEL_W = 300;
const GAP = 50;
const PANEL_W = (W - LABEL_W - GAP - 30) / 2;
const BAR_H = 9;
const ROW_GAP = 10;
const TOP = 108;

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A log10 axis spanning whole decades around [min, max]. */
export function logDomain(values: readonly number[]): { lo: number; hi: number } {
  const pos = values.filter((v) => Number.isFinite(v) && v > 0);
  if (pos.length === 0) return { lo: 0, hi: 1 };
  const lo = Math.floor(Math.log10(Math.min(...pos)));
  let hi = Math.ceil(Math.log10(Math.max(...pos)));
  if (hi <= lo) hi = lo + 1;
  return { lo, hi };
}

function scale(d: { lo: number; hi: number }, width: number) {
  return (v: number) => (Math.max(Math.log10(v), d.lo) - d.lo) / (d.hi - d.lo) * width;
}

function ops(c: Comparison, s: Series): number | null {
  return s === 'native' ? c.native_ops_per_s : s === 'cli' ? c.cli_ops_per_s : c.c_ops_per_s;
}

function lat(c: Comparison, s: Series): [number | null, number | null] {
  if (s === 'native') return [c.native_median_ms, c.native_p95_ms];
  if (s === 'cli') return [c.cli_median_ms, c.cli_p95_ms];
  return [c.c_median_ms, c.c_p95_ms];
}

function rowLabel(c: Comparison): string {
  const paxos = c.cluster === 'tuned' ? '' : `, paxos ${fmtPaxos(c.paxos_propose_interval_s)}`;
  return `${c.name} (c=${c.concurrency}${paxos})`;
}

function axis(x0: number, y0: number, height: number, d: { lo: number; hi: number }, title: string): string[] {
  const out: string[] = [];
  const x = scale(d, PANEL_W);
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 - 24}" text-anchor="middle" class="axis-title">${escapeXml(title)}</text>`);
  for (let e = d.lo; e <= d.hi; e++) {
    const v = 10 ** e;
    const px = x0 + x(v);
    out.push(`<line x1="${px.toFixed(1)}" y1="${y0 - 4}" x2="${px.toFixed(1)}" y2="${y0 + height}" class="grid"/>`);
    out.push(`<text x="${px.toFixed(1)}" y="${y0 - 8}" text-anchor="middle" class="tick">${escapeXml(fmtTick(v))}</text>`);
    if (e < d.hi) {
      for (const m of [2, 5]) {
        const mx = x0 + x(m * v);
        out.push(`<line x1="${mx.toFixed(1)}" y1="${y0}" x2="${mx.toFixed(1)}" y2="${y0 + height}" class="grid minor"/>`);
      }
    }
  }
  return out;
}

function fmtTick(v: number): string {
  if (v >= 1000) return `${v / 1000}k`;
  return String(Number(v.toPrecision(3)));
}

export interface ChartMeta {
  title: string;
  subtitle: string;
}

export function chartSvg(rows: readonly Comparison[], meta: ChartMeta): string {
  const rowH = series.length * BAR_H + ROW_GAP;
  const plotH = rows.length * rowH;
  const H = TOP + plotH + 40;
  const opsD = logDomain(rows.flatMap((r) => series.map((s) => ops(r, s.key) ?? Number.NaN)));
  const latD = logDomain(rows.flatMap((r) => series.flatMap((s) => lat(r, s.key).map((v) => v ?? Number.NaN))));
  const xOps = scale(opsD, PANEL_W);
  const xLat = scale(latD, PANEL_W);
  const p1 = LABEL_W;
  const p2 = LABEL_W + PANEL_W + GAP;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">`);
  out.push(`<style>
  .title { font-size: 16px; font-weight: 600; fill: #111; }
  .subtitle { font-size: 11px; fill: #555; }
  .axis-title { font-size: 12px; font-weight: 600; fill: #222; }
  .tick { font-size: 10px; fill: #555; }
  .grid { stroke: #d4d4d8; stroke-width: 1; }
  .minor { stroke: #eeeef0; }
  .label { font-size: 11px; fill: #222; }
  .value { font-size: 9px; fill: #333; }
  .legend { font-size: 11px; fill: #222; }
  .band { fill: #f6f7f9; }
</style>`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="12" y="22" class="title">${escapeXml(meta.title)}</text>`);
  out.push(`<text x="12" y="40" class="subtitle">${escapeXml(meta.subtitle)}</text>`);
  let lx = 12;
  for (const s of series) {
    out.push(`<rect x="${lx}" y="50" width="12" height="10" fill="${s.color}"/>`);
    out.push(`<text x="${lx + 16}" y="59" class="legend">${escapeXml(s.label)}</text>`);
    lx += 26 + s.label.length * 6.2;
  }
  out.push(...axis(p1, TOP, plotH, opsD, 'throughput, ops/s (log scale, higher is better)'));
  out.push(...axis(p2, TOP, plotH, latD, 'median latency, ms, whisker to p95 (log scale, lower is better)'));

  rows.forEach((r, i) => {
    const y = TOP + i * rowH;
    if (i % 2 === 0) out.push(`<rect x="4" y="${y - ROW_GAP / 2 + 2}" width="${W - 8}" height="${rowH}" class="band" opacity="0.6"/>`);
    out.push(`<text x="${LABEL_W - 8}" y="${y + (series.length * BAR_H) / 2 + 4}" text-anchor="end" class="label">${escapeXml(rowLabel(r))}</text>`);
    series.forEach((s, j) => {
      const by = y + j * BAR_H;
      const o = ops(r, s.key);
      if (o !== null && o > 0) {
        const w = Math.max(1, xOps(o));
        out.push(`<rect x="${p1}" y="${by}" width="${w.toFixed(1)}" height="${BAR_H - 1}" fill="${s.color}"><title>${escapeXml(`${rowLabel(r)} ${s.label}: ${fmtNum(o)} ops/s`)}</title></rect>`);
        out.push(`<text x="${(p1 + w + 3).toFixed(1)}" y="${by + BAR_H - 1.5}" class="value">${fmtNum(o)}</text>`);
      }
      const [m, p95] = lat(r, s.key);
      if (m !== null && m > 0) {
        const w = Math.max(1, xLat(m));
        out.push(`<rect x="${p2}" y="${by}" width="${w.toFixed(1)}" height="${BAR_H - 1}" fill="${s.color}"><title>${escapeXml(`${rowLabel(r)} ${s.label}: median ${fmtNum(m)} ms, p95 ${fmtNum(p95)} ms`)}</title></rect>`);
        let end = p2 + w;
        if (p95 !== null && p95 > m) {
          const pw = xLat(p95);
          const cy = by + (BAR_H - 1) / 2;
          out.push(`<line x1="${end.toFixed(1)}" y1="${cy}" x2="${(p2 + pw).toFixed(1)}" y2="${cy}" stroke="${s.color}" stroke-width="1"/>`);
          out.push(`<line x1="${(p2 + pw).toFixed(1)}" y1="${by + 1}" x2="${(p2 + pw).toFixed(1)}" y2="${by + BAR_H - 2}" stroke="${s.color}" stroke-width="1"/>`);
          end = p2 + pw;
        }
        out.push(`<text x="${(end + 3).toFixed(1)}" y="${by + BAR_H - 1.5}" class="value">${fmtNum(m)}</text>`);
      }
    });
  });
  out.push(`<text x="12" y="${H - 14}" class="subtitle">Regenerate with \`pnpm bench\` (bench/run.ts); numbers in bench/results/latest.json.</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
