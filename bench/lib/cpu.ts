// Where the time goes, in CPU: how much processor time each party spent per operation during a
// round — the bench process itself (Node, the addon, librados' threads), its child processes (the
// `rbd` CLI processes, the C program, mkfs and friends; counted when they have been waited for),
// and the cluster's ceph-mon and ceph-osd. Read from /proc, so Linux only.

import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (sysconf(_SC_CLK_TCK), 100 on Linux). */
const TICKS_PER_S = 100;

export interface CpuSample {
  self: number;
  children: number;
  mon: number;
  osd: number;
  /** The services a benchmark started and registered (volmaster processes) and etcd. */
  volmaster: number;
  etcd: number;
}

export type CpuPart = keyof CpuSample;

let daemons: { mon: number | null; osd: number | null } = { mon: null, osd: null };
let services: number[] = [];
let etcdPid: number | null = null;

function readPidFile(file: string): number | null {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

/** The ceph-mon and ceph-osd whose CPU is counted (the cluster the benchmark runs on). */
export function setCephDaemons(pidFiles: { mon: string; osd: string }): void {
  daemons = { mon: readPidFile(pidFiles.mon), osd: readPidFile(pidFiles.osd) };
}

/** Service processes (volmaster) whose CPU is counted while they run; [] when none. */
export function setServicePids(pids: readonly number[]): void {
  services = [...pids];
}

/** The etcd whose CPU is counted (the master benchmark's), or null. */
export function setEtcdPidFile(file: string | null): void {
  etcdPid = file ? readPidFile(file) : null;
}

/** Fields 14-17 of /proc/PID/stat (utime, stime, cutime, cstime), in ms. */
export function parseStatTimes(stat: string): { own: number; children: number } {
  // The command name (field 2) is in parentheses and may contain spaces: split after its ")".
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const f = (n: number) => Number(rest[n - 3]) || 0;
  const ms = (ticks: number) => (ticks * 1000) / TICKS_PER_S;
  return { own: ms(f(14) + f(15)), children: ms(f(16) + f(17)) };
}

function times(pid: number | 'self' | null): { own: number; children: number } {
  if (pid === null) return { own: 0, children: 0 };
  try {
    return parseStatTimes(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return { own: 0, children: 0 };
  }
}

/** CPU ms one process (e.g. the C program in serve mode, which runs beside the bench) has used so far. */
export function cpuOfPid(pid: number): number {
  return times(pid).own;
}

export function cpuSample(): CpuSample {
  const self = times('self');
  return {
    self: self.own,
    children: self.children,
    mon: times(daemons.mon).own,
    osd: times(daemons.osd).own,
    volmaster: services.reduce((sum, pid) => sum + times(pid).own, 0),
    etcd: times(etcdPid).own,
  };
}

const parts: readonly CpuPart[] = ['self', 'children', 'mon', 'osd', 'volmaster', 'etcd'];

function combine(a: CpuSample, b: CpuSample, f: (x: number, y: number) => number): CpuSample {
  const out = zeroCpu();
  for (const p of parts) out[p] = f(a[p], b[p]);
  return out;
}

export const cpuDelta = (a: CpuSample, b: CpuSample): CpuSample => combine(a, b, (x, y) => y - x);
export const cpuAdd = (a: CpuSample, b: CpuSample): CpuSample => combine(a, b, (x, y) => x + y);
export const cpuScale = (a: CpuSample, k: number): CpuSample => combine(a, a, (x) => x * k);

export const zeroCpu = (): CpuSample => ({ self: 0, children: 0, mon: 0, osd: 0, volmaster: 0, etcd: 0 });
