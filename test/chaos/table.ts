// The report of a chaos run: one line per scenario (rounds, faults injected, violations, errors,
// time), then every violation with the seed, the round and its evidence.

import type { Found, ScenarioResult } from './runner.js';

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

export function resultTable(results: readonly ScenarioResult[]): string {
  const header = ['scenario', 'fault', 'rounds', 'faults', 'violations', 'errors', 'time'];
  const rows = results.map((r) => [
    r.name,
    r.fault,
    String(r.rounds),
    String(r.faults),
    String(r.violations.length),
    String(r.errors.length),
    `${r.seconds.toFixed(0)} s`,
  ]);
  const total = results.reduce((s, r) => s + r.seconds, 0);
  rows.push([
    'total',
    '',
    String(results.reduce((s, r) => s + r.rounds, 0)),
    String(results.reduce((s, r) => s + r.faults, 0)),
    String(results.reduce((s, r) => s + r.violations.length, 0)),
    String(results.reduce((s, r) => s + r.errors.length, 0)),
    `${total.toFixed(0)} s`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => pad(c, widths[i]!, i >= 2)).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i >= 2 ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Violations by scenario and invariant, e.g. "reboot: not-stuck ×2, single-writer ×1". */
export function violationSummary(results: readonly ScenarioResult[]): string[] {
  return results
    .filter((r) => r.violations.length > 0 || r.errors.length > 0)
    .map((r) => {
      const counts = new Map<string, number>();
      for (const v of r.violations) counts.set(v.invariant, (counts.get(v.invariant) ?? 0) + 1);
      const parts = [...counts].map(([k, n]) => `${k} ×${n}`);
      if (r.errors.length > 0) parts.push(`errors ×${r.errors.length}`);
      return `${r.name}: ${parts.join(', ')}`;
    });
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** One violation with what it takes to find it again and what was seen. */
export function describeViolation(v: Found, evidenceChars = 3_000): string {
  const where = `seed ${v.seed}, scenario ${v.scenario}, ${v.round === null ? 'end of scenario' : `round ${v.round}`}`;
  return `[${where}] ${v.invariant}: ${v.message}\n  evidence: ${clip(JSON.stringify(v.evidence, null, 2), evidenceChars).replace(/\n/g, '\n  ')}\n  again: make chaos SEED=${v.seed} ONLY=${v.scenario}`;
}

export function report(results: readonly ScenarioResult[], options: { seed: number; scale: number }): string {
  const out = [`chaos run: seed ${options.seed}, scale ${options.scale}`, '', resultTable(results), ''];
  const summary = violationSummary(results);
  if (summary.length === 0) {
    out.push('no violations, no errors');
  } else {
    out.push('failing scenarios:', ...summary.map((s) => `  ${s}`), '');
    for (const r of results) {
      for (const v of r.violations) out.push(describeViolation(v), '');
      for (const e of r.errors) out.push(`[seed ${options.seed}, scenario ${r.name}, ${e.round === null ? 'setup/end' : `round ${e.round}`}] error: ${e.message}`, '');
    }
  }
  const notes = results.filter((r) => r.notes.length > 0).map((r) => `  ${r.name}: ${r.notes.join('; ')}`);
  if (notes.length > 0) out.push('notes:', ...notes);
  return out.join('\n');
}
