// Reading a volume's backups back and checking them (volcli volume backup verify): the manifest's
// chains are whole (every diff's parent is there, before it), and the target's data matches the
// manifest (a directory: each file's size, checksum and stream, as applyDiff would check it; a
// replica: its snapshots, their sizes, and their data read back). Nothing is changed.

import type { BackupService } from './service.js';
import type { OnBackupProgress } from './target.js';

export interface VerifyReport {
  tenant: string;
  volume: string;
  target: string;
  ok: boolean;
  backups: Array<{ name: string; ok: boolean; problems: string[] }>;
  /** Problems of the target as a whole (a missing replica, an unfinished apply). */
  problems: string[];
}

export async function verifyBackups(service: BackupService, tenant: string, volume: string, onProgress?: OnBackupProgress): Promise<VerifyReport> {
  const record = await service.store.getVolume(tenant, volume);
  const settings = await service.settings(tenant, record, volume);
  const target = await service.openTarget(settings, tenant, volume, record?.image ?? `${tenant}.${volume}`);
  const manifest = await target.readManifest();
  const problems = new Map<string, string[]>(manifest.backups.map((b) => [b.name, []]));
  const general: string[] = [];
  for (const finding of await target.verify(manifest, onProgress)) {
    if (finding.backup !== null && problems.has(finding.backup)) problems.get(finding.backup)!.push(finding.problem);
    else general.push(finding.backup ? `${finding.backup}: ${finding.problem}` : finding.problem);
  }
  if (target.chained) {
    // A diff restores only if every backup before it in its chain does.
    const seen = new Set<string>();
    const bad = new Set<string>();
    for (const b of manifest.backups) {
      const own = problems.get(b.name)!;
      if (b.parent !== null && !seen.has(b.parent)) {
        own.push(`it is a diff from ${b.parent}, which ${manifest.backups.some((x) => x.name === b.parent) ? 'comes after it' : 'the target no longer has'}: its chain is broken`);
      } else if (b.parent !== null && bad.has(b.parent)) {
        own.push(`it needs ${b.parent}, which cannot be restored: its chain is broken`);
      }
      if (own.length > 0) bad.add(b.name);
      seen.add(b.name);
    }
  }
  const backups = manifest.backups.map((b) => ({ name: b.name, ok: problems.get(b.name)!.length === 0, problems: problems.get(b.name)! }));
  const ok = general.length === 0 && backups.every((b) => b.ok);
  service.log.info({ tenant, volume, target: target.describe, backups: backups.length, ok }, 'backups verified');
  return { tenant, volume, target: target.describe, ok, backups, problems: general };
}
