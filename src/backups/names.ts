// The snapshots backups take, by name: `vb-<UTC time>` (`vb-20261201T120000Z`, `-2`, `-3` for a
// second one in the same second). A backup is named after its snapshot.
//
// Backups keep their own snapshot on the volume's image: the one the last backup was taken from,
// which the next backup's diff starts at (older ones are removed once the next backup is safe in
// the target). The snapshot scheduler prunes only its own `vs-` snapshots, so it never removes the
// base of a chain; snapshotsNeededByBackups says which snapshots a pruner must keep for backups.

import { parseSnapshotName, supervisorSnapshotName } from '../snapshots/names.js';

export const BACKUP_PREFIX = 'vb-';
const BACKUP_NAME = /^vb-\d{8}T\d{6}Z(?:-[1-9]\d{0,5})?$/;

/** The name of a backup (and of its snapshot) taken at `at`; `seq` > 1 for a later one in the same second. */
export function backupName(at: number, seq = 1): string {
  // The supervisor's time format (names.ts), with the backups' prefix.
  const time = supervisorSnapshotName(Math.floor(at / 1000) * 1000).slice('vs-'.length);
  return `${BACKUP_PREFIX}${time}${seq > 1 ? `-${seq}` : ''}`;
}

export function isBackupName(name: string): boolean {
  return BACKUP_NAME.test(name) && parseSnapshotName(`vs-${name.slice(BACKUP_PREFIX.length).replace(/-\d+$/, '')}`) !== null;
}

/** When a backup was taken, from its name (whole seconds), or null for another name. */
export function backupTime(name: string): Date | null {
  if (!isBackupName(name)) return null;
  return parseSnapshotName(`vs-${name.slice(BACKUP_PREFIX.length).replace(/-\d+$/, '')}`)!.time;
}

/**
 * Of a volume's snapshot names, those its backups need (the base of the next incremental backup):
 * a pruner of snapshots must leave these alone. Pure, so that a retention plan can call it.
 */
export function snapshotsNeededByBackups(snapshotNames: readonly string[]): string[] {
  return snapshotNames.filter(isBackupName);
}
