// What every result is measured on: the machine, the software versions and how loaded the machine
// was, so that two runs can be compared (or not) by reading their JSON.

import os from 'node:os';
import { sh, repoRoot } from './cluster.js';

export interface BenchEnv {
  date: string;
  git_commit: string | null;
  machine: { cpu_model: string; cores: number; memory_gib: number; kernel: string; hostname: string };
  node: string;
  ceph: string;
  librbd: string | null;
  /** libuv's thread pool size the Node process runs with (the native addon's calls run on it). */
  uv_threadpool_size: string;
  /** `uptime`-style load averages at the start and the end of the run. */
  load: { start: number[]; end: number[] | null };
  /** The clusters of the run, each with the paxos propose interval the mon reported. */
  clusters: Array<{ name: string; paxos_propose_interval_s: number; mon: string; osd_objectstore: string }>;
  /** Options the run was started with (quick mode, rounds). */
  options: Record<string, unknown>;
}

export async function captureEnv(options: Record<string, unknown>): Promise<BenchEnv> {
  const cpus = os.cpus();
  const ceph = (await sh('ceph', ['--version']).catch(() => 'unknown')).trim();
  const commit = (await sh('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']).catch(() => '')).trim() || null;
  return {
    date: new Date().toISOString(),
    git_commit: commit,
    machine: {
      cpu_model: cpus[0]?.model.trim() ?? 'unknown',
      cores: cpus.length,
      memory_gib: Math.round(os.totalmem() / 2 ** 30),
      kernel: `${os.type()} ${os.release()}`,
      hostname: os.hostname(),
    },
    node: process.version,
    ceph: ceph.replace(/^ceph version /, ''),
    librbd: null,
    uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
    load: { start: os.loadavg().map((v) => Math.round(v * 100) / 100), end: null },
    clusters: [],
    options,
  };
}

/** One line naming the machine, for the table's header and each result row. */
export function machineLine(env: BenchEnv): string {
  return `${env.machine.cores} × ${env.machine.cpu_model}`;
}
