// Where a container's block I/O limits go: its own cgroup (throttling is not hierarchical here, see
// blkio.ts). A running container's cgroup is read from /proc/<pid>/cgroup (any cgroup driver); one
// that is about to start has none yet, but with dockerd's cgroupfs driver its path is known ahead.

import path from 'node:path';

export interface CgroupTarget {
  /** Absolute directory of the container's cgroup for blkio (v1) or its unified cgroup (v2). */
  dir: string;
  version: 1 | 2;
  /** The container is not running yet: its cgroup directory may have to be made. */
  ahead: boolean;
}

/** What dockerd says about its cgroups (GET /info). */
export interface CgroupSetup {
  CgroupDriver?: string;
  CgroupVersion?: string;
}

/** The blkio (v1) or unified (v2) cgroup path of a process, from /proc/PID/cgroup's content. */
export function cgroupOfProcess(content: string, root = '/sys/fs/cgroup'): CgroupTarget | null {
  let unified: string | null = null;
  for (const line of content.split('\n')) {
    const [, controllers, where] = /^\d+:([^:]*):(.*)$/.exec(line.trim()) ?? [];
    if (controllers === undefined || where === undefined) continue;
    if (controllers.split(',').includes('blkio')) return { dir: path.join(root, 'blkio', where), version: 1, ahead: false };
    if (controllers === '') unified = where;
  }
  return unified === null ? null : { dir: path.join(root, unified), version: 2, ahead: false };
}

/**
 * Where dockerd's cgroupfs driver will put a container that is not running yet (cgroup v1):
 * <cgroup-parent or /docker>/<id> under the blkio hierarchy. Null with the systemd driver, whose
 * scopes systemd makes itself.
 */
export function plannedCgroup(info: CgroupSetup, id: string, cgroupParent: string | undefined, root = '/sys/fs/cgroup'): CgroupTarget | null {
  if ((info.CgroupDriver ?? 'cgroupfs') !== 'cgroupfs') return null;
  if (info.CgroupVersion === '2') return null;
  const parent = cgroupParent && cgroupParent !== '' ? cgroupParent : '/docker';
  return { dir: path.join(root, 'blkio', parent, id), version: 1, ahead: true };
}
