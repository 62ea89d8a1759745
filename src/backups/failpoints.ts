// Test-only pauses in volsupervisor's backups, so that an integration test can kill it at an exact
// step: VOLSUPERVISOR_FAILPOINTS=backup-after-export=MS pauses after a backup's diff is written to
// the target, before it is renamed into place and named by the manifest (parsed by
// src/common/failpoints.ts; unset, as always in production, nothing pauses).

import { failpointPause, parseFailpoints, type Failpoints } from '../common/failpoints.js';

const NAMES = ['backup-after-export'] as const;

export type BackupFailpoints = Failpoints<(typeof NAMES)[number]>;

export function parseBackupFailpoints(text: string | undefined): BackupFailpoints {
  return parseFailpoints('VOLSUPERVISOR_FAILPOINTS', text, NAMES);
}

/** The hook BackupService runs after an export (undefined when the point is not set). */
export function afterExportHook(points: BackupFailpoints, onPause: () => void): (() => Promise<void>) | undefined {
  if (points['backup-after-export'] === undefined) return undefined;
  return async () => {
    onPause();
    await failpointPause(points, 'backup-after-export');
  };
}
