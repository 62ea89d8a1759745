// Whether a process runs, from /proc (this host's processes only).

import { readFile } from 'node:fs/promises';

/** True while `pid` runs; a zombie counts as gone (PID 1 may reap it late). */
export function processAlive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return Promise.resolve(false);
  return readFile(`/proc/${pid}/status`, 'utf8').then(
    (text) => !/^State:\s*Z/m.test(text),
    () => false,
  );
}
