// `pnpm bench`: starts the throw-away bench cluster unless it runs, measures every benchmark for
// the native addon, the `rbd` CLI and the C program side by side (warm-up first, then measured
// rounds, a progress line per round on stderr), prints the table and the aims, and writes
// bench/results/<date>.json, bench/results/latest.json and bench/results/chart.svg.
//
//   pnpm bench                    the full run (about 6 minutes on 2 cores)
//   pnpm bench --quick            a short run for development (numbers are not worth keeping)
//   pnpm bench --only snapshot,read   a subset: snapshot image read mount master backup paxos supervisor scale docker
//   pnpm bench --keep             leave the clusters running afterwards
//   pnpm bench --out DIR          write results elsewhere (latest.json and chart.svg too)
//   pnpm bench --docs             also put the table into docs/performance.md (between its markers)
//   pnpm bench --from FILE [--docs]   re-render table, chart and latest.md from an earlier run's JSON

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Storage } from '../src/storage/types.js';
import { backupBench } from './benchmarks/backup.js';
import { dockerRunBench } from './benchmarks/docker.js';
import { imageBench, removeVariantsBench } from './benchmarks/image.js';
import { scaleBench } from './benchmarks/scale.js';
import { supervisorBench } from './benchmarks/supervisor.js';
import { masterBench } from './benchmarks/master.js';
import { mountBench } from './benchmarks/mount.js';
import { readBench } from './benchmarks/read.js';
import { createSnapImages, snapshotBench } from './benchmarks/snapshot.js';
import type { NodeBackend } from './lib/backends.js';
import { nodeBackends, openBackend } from './lib/backends.js';
import { buildCLoop, librbdVersion } from './lib/c-loop.js';
import { chartSvg } from './lib/chart.js';
import { setCephDaemons } from './lib/cpu.js';
import { resultsMarkdown, updateDocs } from './lib/docs.js';
import type { Cluster, ClusterSpec } from './lib/cluster.js';
import { clusterSpecs, ensureCluster, removeImagesWithPrefix, repoRoot, stopCluster } from './lib/cluster.js';
import type { BenchContext } from './lib/context.js';
import { sizes } from './lib/context.js';
import type { BenchEnv } from './lib/env.js';
import type { AimResult, Comparison, ResultRow } from './lib/report.js';
import { captureEnv, machineLine } from './lib/env.js';
import type { Measurement } from './lib/harness.js';
import { progress } from './lib/harness.js';
import { checkAims, compare, toRows } from './lib/report.js';
import { checkScaleAims } from './lib/aims-scale.js';
import { aimsText, cpuTextTable, textTable } from './lib/table.js';

const BENCHES = ['snapshot', 'image', 'read', 'mount', 'master', 'backup', 'paxos', 'supervisor', 'scale', 'docker'] as const;
type BenchName = (typeof BENCHES)[number];

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string' },
    docs: { type: 'boolean', default: false },
    from: { type: 'string' },
    'scale-max': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (flags.help) {
  process.stdout.write(
    'usage: pnpm bench [--quick] [--only snapshot,image,read,mount,master,backup,paxos,supervisor,scale,docker] [--scale-max N] [--keep] [--out DIR] [--docs] [--from FILE]\n' +
      'Runs the benchmarks on a throw-away Ceph under .sandbox-bench/ and writes bench/results/.\n' +
      '--scale-max N: the scale benchmark grows to at most N volumes (100, 1000, 10000; default 10000, 1000 with --quick).\n',
  );
  process.exit(0);
}

const only = new Set<BenchName>(
  (flags.only ?? BENCHES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (!(BENCHES as readonly string[]).includes(s)) {
        process.stderr.write(`bench: unknown benchmark ${JSON.stringify(s)}; choose from ${BENCHES.join(', ')}\n`);
        process.exit(2);
      }
      return s as BenchName;
    }),
);
/** The sizes the scale benchmark grows through, up to --scale-max. */
function scaleSizes(): number[] {
  const max = flags['scale-max'] === undefined ? (flags.quick ? 1000 : 10_000) : Number(flags['scale-max']);
  if (!Number.isInteger(max) || max < 100) {
    process.stderr.write(`bench: --scale-max must be a whole number of volumes, at least 100, got ${JSON.stringify(flags['scale-max'])}\n`);
    process.exit(2);
  }
  return [100, 1000, 10_000].filter((n) => n <= max);
}
const scaleVolumes = scaleSizes();

const outDir = path.resolve(flags.out ?? path.join(repoRoot, 'bench', 'results'));
/** What this run could not measure, and why: printed at the end and kept in the JSON. */
const missing: string[] = [];

async function openBackends(cluster: Cluster): Promise<Pick<BenchContext, 'backends' | 'storage'>> {
  const storage: Partial<Record<NodeBackend, Storage>> = {};
  for (const kind of nodeBackends) {
    try {
      storage[kind] = await openBackend(kind, cluster);
    } catch (err) {
      const why = `${kind} backend: could not be opened (${(err as Error).message.split('\n')[0]})`;
      if (!missing.includes(why)) missing.push(why);
      progress(`WARNING: ${why}; its rows are left out`);
    }
  }
  return { backends: nodeBackends.filter((k) => storage[k]), storage };
}

async function closeBackends(ctx: Pick<BenchContext, 'storage'>): Promise<void> {
  for (const s of Object.values(ctx.storage)) await s?.close();
}

async function clusterRecord(env: BenchEnv, cluster: Cluster): Promise<void> {
  env.clusters.push({
    name: cluster.name,
    paxos_propose_interval_s: cluster.paxosInForce,
    mon: `127.0.0.1:${cluster.monV2} (v2), one mon, one memstore OSD, pool size 1`,
    osd_objectstore: 'memstore',
  });
  progress(`cluster ${cluster.name}: ${cluster.confPath}, paxos propose interval ${cluster.paxosInForce} s${cluster.startedHere ? ' (started now)' : ' (reused)'}`);
}

async function withCluster<T>(spec: ClusterSpec, env: BenchEnv, fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const cluster = await ensureCluster(spec);
  await clusterRecord(env, cluster);
  setCephDaemons({ mon: path.join(spec.dir, 'ceph', 'run', 'mon.a.pid'), osd: path.join(spec.dir, 'ceph', 'run', 'osd.0.pid') });
  const leftovers = await removeImagesWithPrefix(cluster, 'bench-');
  if (leftovers) progress(`removed ${leftovers} images left by an earlier run`);
  try {
    return await fn(cluster);
  } finally {
    if (cluster.startedHere && !flags.keep) {
      await stopCluster(spec);
      progress(`cluster ${cluster.name} stopped`);
    }
  }
}

async function main(): Promise<void> {
  const quick = flags.quick;
  const env = await captureEnv({ quick, only: [...only], uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? null });
  progress(`bench on ${machineLine(env)}, Node ${env.node}, Ceph ${env.ceph}, load ${env.load.start.join(' ')}${quick ? ' (--quick)' : ''}`);
  await mkdir(outDir, { recursive: true });
  await buildCLoop();
  env.librbd = await librbdVersion();

  const runId = Date.now().toString(36).slice(-5);
  const prefix = `bench-${runId}-`;
  const measurements: Measurement[] = [];

  const tunedBenches = (['snapshot', 'image', 'read', 'mount', 'master', 'backup', 'scale'] as const).filter((b) => only.has(b));
  if (tunedBenches.length) {
    await withCluster(clusterSpecs.tuned, env, async (cluster) => {
      const ctx: BenchContext = { cluster, prefix, quick, keep: flags.keep, ...(await openBackends(cluster)) };
      try {
        if (only.has('snapshot') || only.has('read')) await createSnapImages(ctx, cluster, 16);
        if (only.has('snapshot')) {
          measurements.push(
            ...(await snapshotBench(ctx, [
              { concurrency: 1, cli: true, sizes: sizes(ctx, { warmup: 1, rounds: 8, count: 10 }, { warmup: 1, rounds: 2, count: 3 }) },
              { concurrency: 16, cli: true, sizes: sizes(ctx, { warmup: 1, rounds: 4, count: 4 }, { warmup: 0, rounds: 1, count: 1 }) },
            ])),
          );
        }
        if (only.has('image')) {
          measurements.push(...(await imageBench(ctx, 1, sizes(ctx, { warmup: 1, rounds: 4, count: 8 }, { warmup: 0, rounds: 1, count: 2 }))));
          measurements.push(...(await removeVariantsBench(ctx, sizes(ctx, { warmup: 0, rounds: 2, count: 4 }, { warmup: 0, rounds: 1, count: 2 }))));
        }
        if (only.has('read')) {
          measurements.push(...(await readBench(ctx, 1, sizes(ctx, { warmup: 1, rounds: 4, count: 20 }, { warmup: 1, rounds: 1, count: 5 }))));
        }
        if (only.has('mount')) {
          measurements.push(...(await mountBench(ctx, sizes(ctx, { warmup: 1, rounds: 4, count: 1 }, { warmup: 0, rounds: 1, count: 1 }), missing)));
        }
        if (only.has('master')) {
          measurements.push(...(await masterBench(ctx, sizes(ctx, { warmup: 1, rounds: 3, count: 12 }, { warmup: 0, rounds: 1, count: 3 }), missing)));
        }
        if (only.has('scale')) {
          measurements.push(...(await scaleBench(ctx, { volumes: scaleVolumes, rounds: quick ? 1 : 3 }, missing)));
        }
        if (only.has('backup') && ctx.backends.includes('native')) {
          measurements.push(...(await backupBench(ctx, sizes(ctx, { warmup: 1, rounds: 3, count: 1 }, { warmup: 0, rounds: 1, count: 1 }))));
        }
      } finally {
        await removeImagesWithPrefix(cluster, prefix, ctx.storage.native).catch((err: Error) => progress(`cleanup: ${err.message}`));
        await closeBackends(ctx);
      }
    });
  }

  if (only.has('docker')) {
    // On the `make up` stack (started here unless it runs, and stopped again afterwards).
    env.clusters.push({ name: 'make-up', paxos_propose_interval_s: 0.01, mon: 'the `make up` sandbox (.sandbox/): one mon, one memstore OSD, pool size 1', osd_objectstore: 'memstore' });
    measurements.push(...(await dockerRunBench(quick ? { warmup: 0, rounds: 1, count: 1 } : { warmup: 1, rounds: 5, count: 1 }, flags.keep, missing)));
  }

  if (only.has('paxos') || only.has('supervisor')) {
    // Ceph's default interval, as real clusters run: every snapshot waits for a mon commit (~1 s),
    // so what concurrency buys is the point, not per-call speed. The addon against the C program
    // at 16, 64 and 256 in flight (the CLI at 1 and 16 only: 256 `rbd` processes at once measure
    // the machine). Counts are small: each phase costs about a second per wave plus its pause.
    await withCluster(clusterSpecs.defaultPaxos, env, async (cluster) => {
      const ctx: BenchContext = { cluster, prefix, quick, keep: flags.keep, ...(await openBackends(cluster)) };
      try {
        if (only.has('supervisor')) {
          measurements.push(...(await supervisorBench(ctx, quick ? { volumes: 100, rounds: 1, oldVolumes: 20 } : { volumes: 1000, rounds: 2, oldVolumes: 100 }, missing)));
        }
        if (only.has('paxos')) {
          await createSnapImages(ctx, cluster, 256);
          measurements.push(
            ...(await snapshotBench(ctx, [
              { concurrency: 1, cli: true, sizes: sizes(ctx, { warmup: 0, rounds: 2, count: 1 }, { warmup: 0, rounds: 1, count: 1 }) },
              { concurrency: 16, cli: true, sizes: sizes(ctx, { warmup: 0, rounds: 3, count: 2 }, { warmup: 0, rounds: 1, count: 1 }) },
              { concurrency: 64, cli: false, sizes: sizes(ctx, { warmup: 0, rounds: 3, count: 2 }, { warmup: 0, rounds: 1, count: 1 }) },
              // Three waves: one wave of 256 mostly measures which calls catch the first proposal.
              { concurrency: 256, cli: false, sizes: sizes(ctx, { warmup: 0, rounds: 3, count: 3 }, { warmup: 0, rounds: 1, count: 1 }) },
            ])),
          );
        }
      } finally {
        await removeImagesWithPrefix(cluster, prefix, ctx.storage.native).catch((err: Error) => progress(`cleanup: ${err.message}`));
        await closeBackends(ctx);
      }
    });
  }

  env.load.end = os.loadavg().map((v) => Math.round(v * 100) / 100);
  const results = toRows(measurements, env);
  const report: Report = { env, results, comparisons: [], aims: [], missing, samples: samplesOf(measurements) };
  const stamp = env.date.replace(/[:.]/g, '-');
  await writeOutputs(report, stamp);
}

interface Report {
  env: BenchEnv;
  results: ResultRow[];
  comparisons: Comparison[];
  aims: AimResult[];
  missing: string[];
  samples: Record<string, { lat_ms: number[]; wall_ms: number[] }>;
}

/**
 * Comparisons and aims from the rows, then the files and the terminal report. `stamp` names a new
 * run's JSON (written with latest.json); null re-renders an earlier run (--from) without touching
 * its JSON.
 */
async function writeOutputs(report: Report, stamp: string | null): Promise<void> {
  const { env, results, missing } = report;
  report.comparisons = compare(results);
  report.aims = [...checkAims(report.comparisons), ...checkScaleAims(results)];
  const { comparisons, aims } = report;
  await mkdir(outDir, { recursive: true });
  const written: string[] = [];
  if (stamp) {
    const json = `${JSON.stringify(report, null, 1)}\n`;
    await writeFile(path.join(outDir, `${stamp}.json`), json);
    await writeFile(path.join(outDir, 'latest.json'), json);
    written.push(path.relative(process.cwd(), path.join(outDir, `${stamp}.json`)), 'latest.json');
  }
  await writeFile(
    path.join(outDir, 'chart.svg'),
    chartSvg(comparisons, {
      title: 'volplugin storage backends: native addon vs rbd CLI vs C (librbd)',
      subtitle: `${machineLine(env)}, Node ${env.node}, Ceph ${env.ceph.split(' ')[0]}, one mon + memstore OSD; load ${env.load.start.join(' ')}; ${env.date.slice(0, 16).replace('T', ' ')} UTC`,
    }),
  );
  const markdown = resultsMarkdown(env, results, comparisons, aims, missing);
  await writeFile(path.join(outDir, 'latest.md'), `${markdown}\n`);
  written.push('latest.md', 'chart.svg');
  if (flags.docs) {
    await updateDocs(path.join(repoRoot, 'docs', 'performance.md'), markdown);
    written.push('docs/performance.md');
  }

  process.stdout.write(`\n${machineLine(env)} | Node ${env.node} | Ceph ${env.ceph} | librbd ${env.librbd}\n`);
  process.stdout.write(`clusters: ${env.clusters.map((c) => `${c.name} (paxos propose interval ${c.paxos_propose_interval_s} s)`).join(', ')}\n`);
  process.stdout.write(`load average: ${env.load.start.join(' ')} at start, ${env.load.end?.join(' ') ?? '?'} at end\n\n`);
  process.stdout.write(`${textTable(comparisons)}\n\n`);
  process.stdout.write('ops/s: operations over wall time (all workers); ms: median (p95) per operation; addon over C: native median vs C median.\n\n');
  process.stdout.write(`where the time goes (CPU ms per operation by party, over whole rounds):\n${cpuTextTable(results)}\n\n`);
  process.stdout.write(`${aimsText(aims)}\n`);
  if (missing.length) process.stdout.write(`\nnot measured:\n${missing.map((m) => `  - ${m}`).join('\n')}\n`);
  process.stdout.write(`\nwrote ${written.join(', ')}\n`);
}

/** Every measured latency, keyed like the rows, for anyone who wants other statistics. */
function samplesOf(measurements: readonly Measurement[]): Record<string, { lat_ms: number[]; wall_ms: number[] }> {
  const out: Record<string, { lat_ms: number[]; wall_ms: number[] }> = {};
  for (const m of measurements) {
    out[`${m.bench}/${m.op}/${m.backend}/c${m.concurrency}/${m.cluster}`] = {
      lat_ms: m.rounds.flatMap((r) => r.latMs.map((v) => Math.round(v * 1000) / 1000)),
      wall_ms: m.rounds.map((r) => Math.round(r.wallMs * 1000) / 1000),
    };
  }
  return out;
}

const run = flags.from
  ? async () => {
      // Re-render an earlier run (e.g. after changing the table or chart code): no cluster, no JSON written.
      const report = JSON.parse(await readFile(path.resolve(flags.from!), 'utf8')) as Report;
      await writeOutputs(report, null);
    }
  : main;

run().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
