// SIGSTOP of a host's volplugin (a VM pause, a long GC, a partition seen from etcd): its lease
// stops being renewed while its rbd-fuse clients, and so the containers' writes, go on. SIGCONT
// wakes it up again, possibly long after another host took its volumes over.

import type { ChaosHost } from '../hosts.js';

export function pauseVolplugin(host: ChaosHost): number {
  host.pause();
  return Date.now();
}

export function resumeVolplugin(host: ChaosHost): void {
  host.resume();
}
