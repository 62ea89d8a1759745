// The Markdown block docs/performance.md shows: the environment, the table, the aims. `pnpm bench`
// writes it to bench/results/latest.md; `pnpm bench --docs` also replaces the block between the
// markers in docs/performance.md, so the page always shows the committed latest.json.

import { readFile, writeFile } from 'node:fs/promises';
import type { BenchEnv } from './env.js';
import { machineLine } from './env.js';
import type { AimResult, Comparison, ResultRow } from './report.js';
import { aimsMarkdown, cpuMarkdownTable, markdownTable } from './table.js';

export const BEGIN = '<!-- bench:results:begin (written by `pnpm bench --docs`; edit bench/lib/docs.ts, not this block) -->';
export const END = '<!-- bench:results:end -->';

export function resultsMarkdown(
  env: BenchEnv,
  results: readonly ResultRow[],
  comparisons: readonly Comparison[], aims: readonly AimResult[], missing: readonly string[]): string {
  const clusters = env.clusters.map((c) => `\`${c.name}\`: paxos propose interval ${c.paxos_propose_interval_s} s`).join('; ');
  const lines = [
    `Run of ${env.date.slice(0, 16).replace('T', ' ')} UTC at commit \`${env.git_commit ?? 'unknown'}\`: ${machineLine(env)}, ` +
      `${env.machine.memory_gib} GiB, ${env.machine.kernel}; Node ${env.node} (libuv pool: ${env.uv_threadpool_size}; the addon runs librbd calls on threads of its own, up to 256 per connection); ` +
      `Ceph ${env.ceph.split(' ')[0]}, librbd ${env.librbd ?? '?'}; one mon + one memstore OSD on loopback (${clusters}). ` +
      `Load average ${env.load.start.join(' ')} at the start, ${env.load.end?.join(' ') ?? '?'} at the end.`,
    '',
    markdownTable(comparisons),
    '',
    'ops/s: operations divided by the wall time of the phase (all workers together); ms: median (p95) per operation; ' +
      'native/CLI: ratio of ops/s; addon over C: the native median over the C program\'s median. ' +
      'Every row with its raw samples: [bench/results/latest.json](../bench/results/latest.json).',
    '',
    '![native addon vs rbd CLI vs C](../bench/results/chart.svg)',
    '',
    aimsMarkdown(aims),
    '',
    'Where the time goes: CPU milliseconds per operation by party, over whole rounds (all phases), beside the wall time ' +
      'per operation. "bench process" is Node with the addon and librados\' threads; "child processes" are the `rbd` CLI ' +
      'processes, the C program, mkfs and the like (rbd-fuse daemonizes and is not counted).',
    '',
    cpuMarkdownTable(results),
  ];
  if (missing.length) lines.push('', 'Not measured in this run:', '', ...missing.map((m) => `- ${m}`));
  return lines.join('\n');
}

/** Replaces the block between BEGIN and END in `file`; fails when the markers are missing. */
export async function updateDocs(file: string, block: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${file} has no ${BEGIN} ... ${END} block to replace`);
  await writeFile(file, `${text.slice(0, a + BEGIN.length)}\n${block}\n${text.slice(b)}`);
}
