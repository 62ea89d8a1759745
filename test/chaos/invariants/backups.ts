// Backups that count are good: every backup a target's manifest names reads back whole (volplugin's
// own verify, through the master's API), and, checked independently of volplugin, the chain of
// the newest one imported with the real `rbd import-diff` into a fresh image (or, for a Ceph
// target, the replica's snapshot) reads exactly as the volume's snapshot of that backup.

import { randomBytes } from 'node:crypto';
import type { BackupVerifyBody } from '../../../src/api/backups.js';
import type { ManifestEntry } from '../../../src/backups/manifest.js';
import { chainOf, exportDigest, type BackupView } from './backup-view.js';
import { violation, type Violation } from './types.js';

/**
 * A problem of the target as a whole that a killed or stopped backup may leave, which the next
 * backup repairs (a replica's unfinished apply: it is rolled back). It concerns no counted backup.
 */
export const REPAIRED_BY_NEXT_BACKUP = /an apply to the replica did not finish/;

/** Every backup the manifest counts verifies, and verify saw exactly those. */
export function checkVerified(name: string, report: BackupVerifyBody, counted: readonly ManifestEntry[]): Violation[] {
  const out: Violation[] = [];
  for (const b of report.backups) {
    if (!b.ok) out.push(violation('good-backups', `backup ${b.name} of ${name}, counted in the manifest, does not verify: ${b.problems.join('; ')}`, { report }));
  }
  const general = report.problems.filter((p) => !REPAIRED_BY_NEXT_BACKUP.test(p));
  if (general.length > 0) out.push(violation('good-backups', `verify of ${name}'s backups finds problems of the target: ${general.join('; ')}`, { report }));
  const seen = report.backups.map((b) => b.name).join(',');
  const named = counted.map((b) => b.name).join(',');
  if (seen !== named) out.push(violation('good-backups', `verify of ${name} read backups ${seen || 'none'}, the manifest names ${named || 'none'}`, { report, counted }));
  return out;
}

/**
 * The newest counted backup, restored without volplugin, reads as the volume's snapshot of it.
 * Returns null when that snapshot is gone from the volume (nothing to compare with).
 */
export async function checkChainReadsBack(view: BackupView, counted: readonly ManifestEntry[]): Promise<Violation[] | null> {
  const entry = counted.at(-1);
  if (!entry) return [];
  const { cluster } = view;
  const want = await exportDigest(cluster.cephConf, `${cluster.pool}/${view.image}@${entry.name}`);
  if (want === null) return null;
  if (view.kind === 'ceph') {
    const got = await exportDigest(cluster.cephConf, `${view.where}/${view.image}@${entry.name}`);
    if (got === want) return [];
    return [violation('good-backups', `the replica's snapshot ${view.describe}@${entry.name} does not read as the volume's snapshot ${entry.name}`, { got, want })];
  }
  const chain = chainOf(counted, entry);
  if (!chain) return [violation('good-backups', `the chain of ${entry.name} in ${view.describe} misses a parent`, { counted })];
  // Not the tenant's prefix: the orphan checks must never take it for a volume's image.
  const scratch = `${cluster.pool}/chk-${cluster.tenant}-${randomBytes(3).toString('hex')}`;
  try {
    await cluster.rbd('create', '--size', '1M', scratch);
    for (const b of chain) {
      const imported = await cluster.rbd('import-diff', '--no-progress', view.file(b), scratch).then(
        () => null,
        (err: Error) => err.message.slice(-400),
      );
      if (imported !== null) return [violation('good-backups', `the real \`rbd import-diff\` refuses ${view.file(b)} (chain of ${entry.name}): ${imported}`, { chain: chain.map((c) => c.name) })];
    }
    const got = await exportDigest(cluster.cephConf, `${scratch}@${entry.name}`);
    if (got === want) return [];
    return [
      violation('good-backups', `the chain of ${entry.name} (${chain.length} diff(s)) imported with the real \`rbd import-diff\` does not read as the volume's snapshot ${entry.name}`, {
        got,
        want,
        chain: chain.map((c) => ({ name: c.name, parent: c.parent, file: c.file, sha256: c.sha256 })),
      }),
    ];
  } finally {
    await cluster.rbd('snap', 'purge', '--no-progress', scratch).catch(() => undefined);
    await cluster.rbd('rm', '--no-progress', scratch).catch(() => undefined);
  }
}
