// The scenarios of `make chaos`, in the order they run: each a name, the fault it injects, its
// count at scale 1, the invariants checked after each round, and the round it plays.

import type { Scenario } from '../scenario.js';
import { supervisorMidBackup, supervisorMidBackupCeph } from './backup.js';
import { clonedHostId } from './clone.js';
import { copyOfMountedScenario } from './copy.js';
import { etcdCreate, etcdMount } from './etcd.js';
import { graceHandover } from './grace.js';
import { freezeAskerKilledScenario } from './freeze.js';
import { removeVsMount, rollbackVsMount } from './exclusion.js';
import { masterCreate, masterRemove } from './master.js';
import { osdRestartScenario } from './osd.js';
import { mountRace } from './race.js';
import { readError } from './read-error.js';
import { masterMidRestoreScenario } from './restore.js';
import { rebootScenario } from './reboot.js';
import { mountStorm } from './storm.js';
import { killHolder, pausePastTtl, pauseWithin } from './takeover.js';

export const SCENARIOS: readonly Scenario[] = [
  mountRace,
  killHolder,
  pausePastTtl,
  pauseWithin,
  etcdMount,
  etcdCreate,
  masterCreate,
  masterRemove,
  osdRestartScenario,
  readError,
  rebootScenario,
  clonedHostId,
  copyOfMountedScenario,
  removeVsMount,
  rollbackVsMount,
  mountStorm,
  graceHandover,
  freezeAskerKilledScenario,
  supervisorMidBackup,
  supervisorMidBackupCeph,
  masterMidRestoreScenario,
];

/**
 * What `make test` plays, one round each (test/chaos/chaos.test.ts), about 2.5 minutes: one
 * scenario per kind of fault, leaving out repeats of a kind (a pause within the TTL, etcd
 * mid-create, the remove kill, the rollback race, backups to a replica) and the OSD restart, which
 * `make chaos` plays.
 */
export const SHORT_RUN: readonly string[] = [
  'mount-race',
  'kill-holder',
  'pause-past-ttl',
  'etcd-mid-mount',
  'master-mid-create',
  'read-error-at-mount',
  'reboot',
  'cloned-host-id',
  'remove-vs-mount',
  'mount-storm',
  'supervisor-mid-backup',
  'master-mid-restore',
];

/** The scenarios named in `only` (comma-separated), in table order; all when empty. */
export function selectScenarios(only?: string): Scenario[] {
  const names = (only ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) return [...SCENARIOS];
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  return SCENARIOS.filter((s) => names.includes(s.name));
}
