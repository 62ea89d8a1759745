// Test-only pauses at named points of the create flow, so that integration tests can kill a master
// at an exact step ("master killed mid-request"). Set VOLMASTER_FAILPOINTS to a comma-separated list
// of NAME=MILLISECONDS (parsed by src/common/failpoints.ts); with it unset (always, in production)
// every pause resolves at once.
//
//   after-intent        the intent is written, the image not yet created
//   after-image-create  the image exists, the record is not yet written
//   after-freeze        the holders of a snapshot's fsfreeze volumes froze them, the snapshot is not yet taken
//   backup-after-export a backup's diff is written and checksummed, not yet part of the target (its
//                       operation shows the bytes counted meanwhile)
//   before-group-rollback  a group rollback excluded mounts of its volumes and was accepted; librbd has not rolled back

import { failpointPause, parseFailpoints as parse, type Failpoints as Points } from '../common/failpoints.js';

const NAMES = ['after-intent', 'after-image-create', 'after-freeze', 'backup-after-export', 'before-group-rollback'] as const;

export type FailpointName = (typeof NAMES)[number];

export type Failpoints = Points<FailpointName>;

export function parseFailpoints(text: string | undefined): Failpoints {
  return parse('VOLMASTER_FAILPOINTS', text, NAMES);
}

export function failpoint(points: Failpoints | undefined, name: FailpointName): Promise<void> {
  return failpointPause(points, name);
}
