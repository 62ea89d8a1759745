// Statistics for the benchmarks: percentiles over every measured operation's latency, and
// throughput as operations over the wall time they took (so concurrency shows up in ops/s, not in
// latency). Pure functions: unit-tested in test/unit/bench-stats.test.ts.

/**
 * The p-th percentile (0..100) of `values` by linear interpolation between the two nearest ranks
 * (the definition numpy and most spreadsheets use by default). NaN for an empty list.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

export const median = (values: readonly number[]): number => percentile(values, 50);

export interface Summary {
  /** Measured operations (warm-up excluded). */
  samples: number;
  median_ms: number;
  p95_ms: number;
  mean_ms: number;
  min_ms: number;
  max_ms: number;
  /** All operations divided by the wall time of the phases that ran them. */
  ops_per_s: number;
  /** ops/s of each measured round: their spread shows how steady the machine was. */
  round_ops_per_s: number[];
}

export interface PhaseSample {
  latMs: readonly number[];
  wallMs: number;
}

/** Summarises the measured rounds of one operation. */
export function summarise(rounds: readonly PhaseSample[]): Summary {
  const all = rounds.flatMap((r) => r.latMs);
  const wall = rounds.reduce((sum, r) => sum + r.wallMs, 0);
  const mean = all.length ? all.reduce((s, v) => s + v, 0) / all.length : Number.NaN;
  return {
    samples: all.length,
    median_ms: median(all),
    p95_ms: percentile(all, 95),
    mean_ms: mean,
    min_ms: all.length ? Math.min(...all) : Number.NaN,
    max_ms: all.length ? Math.max(...all) : Number.NaN,
    ops_per_s: wall > 0 ? (all.length * 1000) / wall : Number.NaN,
    round_ops_per_s: rounds.map((r) => (r.wallMs > 0 ? (r.latMs.length * 1000) / r.wallMs : Number.NaN)),
  };
}

/** a / b, or NaN when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return Number.NaN;
  return a / b;
}

/** Rounds to `digits` significant decimals for JSON and tables (keeps integers readable). */
export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
