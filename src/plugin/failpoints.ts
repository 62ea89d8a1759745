// volplugin's test-only failpoints (VOLPLUGIN_FAILPOINTS, parsed by src/common/failpoints.ts), so
// that tests and the fault-injection suite can produce faults at exact points of a mount.
// Production never sets them.
//
//   read-error-at-mount   the pre-format device check and the filesystem probe fail as if the device
//                         could not be read (an I/O error): the mount fails and nothing is formatted
//   after-lock=MS         pause after the mount lock is taken, before anything is mapped
//   after-format=MS       pause after mkfs succeeded, before the volume is recorded as formatted

import { failpointPause, failpointSet, parseFailpoints, type Failpoints } from '../common/failpoints.js';
import { DeviceReadError } from '../mapper/fs.js';
import type { HostOps } from './mounts/host-ops.js';

const NAMES = ['read-error-at-mount', 'after-lock', 'after-format'] as const;

export type PluginFailpointName = (typeof NAMES)[number];
export type PluginFailpoints = Failpoints<PluginFailpointName>;

export function parsePluginFailpoints(text: string | undefined): PluginFailpoints {
  return parseFailpoints('VOLPLUGIN_FAILPOINTS', text, NAMES);
}

/** Pauses at a NAME=MS point (resolves at once otherwise). */
export function pauseAt(points: PluginFailpoints | undefined, name: 'after-lock' | 'after-format'): Promise<void> {
  return failpointPause(points, name);
}

/** The host operations with the failpoints that concern them applied. */
export function hostOpsWithFailpoints(ops: HostOps, points: PluginFailpoints | undefined): HostOps {
  if (!failpointSet(points, 'read-error-at-mount')) return ops;
  return {
    ...ops,
    probeDevice: async (device) => {
      throw new DeviceReadError(device, 'Input/output error (failpoint read-error-at-mount)');
    },
  };
}
