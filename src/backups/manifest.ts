// A volume's backup manifest: every backup the target holds, oldest first, each a diff from its
// parent (null: a full backup that starts a chain) to its own snapshot, with its file, bytes,
// checksum and times. It lives in the target (a file beside the diffs, or metadata of the replica
// image), so that the backups can be restored with nothing else: no etcd, no original cluster.
// This file is its schema and the pure rules over it: chains, when the next backup is full, what
// pruning removes.
//
// Retention (`backup.keep`, a number or tiers as a snapshot keep): the retention planner
// (src/snapshots/retention.ts, the one that decides for snapshots too) picks the restore points by
// each backup's `at`; every backup a point needs (its chain back to its full backup) stays with it,
// so pruning never removes a base still needed. A chain is at most chainLimit(keep) backups long,
// so that a restore applies a bounded number of diffs and whole old chains can be freed.

import { Type, type Static } from '@sinclair/typebox';
import { compileSchema } from '../common/schema.js';
import { ApiError } from '../api/errors.js';
import { maxKept, tiersOf, type Retention } from '../policy/retention.js';
import { planRetention } from '../snapshots/retention.js';

export const MANIFEST_FORMAT = 'volplugin-backup-manifest/1';

export const ManifestEntrySchema = Type.Object(
  {
    name: Type.String({ description: 'The backup, named after the snapshot it was taken from' }),
    parent: Type.Union([Type.String(), Type.Null()], { description: 'The backup it is a diff from; null: a full backup' }),
    file: Type.Union([Type.String(), Type.Null()], { description: 'The diff file beside the manifest; null for a Ceph target (a snapshot of the replica)' }),
    bytes: Type.Integer({ minimum: 0, description: 'Bytes of the diff stream' }),
    dataBytes: Type.Integer({ minimum: 0 }),
    sizeBytes: Type.Integer({ minimum: 0, description: 'The image size it restores to' }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Of the diff stream' }),
    source: Type.Object({ pool: Type.String(), image: Type.String() }, { additionalProperties: false }),
    startedAt: Type.String({ format: 'date-time' }),
    at: Type.String({ format: 'date-time', description: 'When it was complete' }),
    ms: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);

export const ManifestSchema = Type.Object(
  {
    format: Type.Literal(MANIFEST_FORMAT),
    tenant: Type.String(),
    volume: Type.String(),
    backups: Type.Array(ManifestEntrySchema),
  },
  { additionalProperties: false },
);

export type ManifestEntry = Static<typeof ManifestEntrySchema>;
export type Manifest = Static<typeof ManifestSchema>;

const manifestShape = compileSchema(ManifestSchema);

export function emptyManifest(tenant: string, volume: string): Manifest {
  return { format: MANIFEST_FORMAT, tenant, volume, backups: [] };
}

/** Parses a manifest's text; throws BACKUP_CHAIN_BROKEN naming `where` and the problem. */
export function parseManifest(text: string, where: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError('BACKUP_CHAIN_BROKEN', `the backup manifest ${where} is not JSON (${(err as Error).message}); restore it from a copy, or move it away to start new chains`);
  }
  const problem = manifestShape.problem(value);
  if (problem) {
    throw new ApiError('BACKUP_CHAIN_BROKEN', `the backup manifest ${where} is not one volplugin wrote: ${problem.field || 'the manifest'} ${problem.message}`);
  }
  return value as Manifest;
}

/** The chain that restores `name`: its full backup first, `name` last. BACKUP_CHAIN_BROKEN when a parent is missing. */
export function chainTo(manifest: Manifest, name: string): ManifestEntry[] {
  const byName = new Map(manifest.backups.map((b) => [b.name, b]));
  const chain: ManifestEntry[] = [];
  let current = byName.get(name);
  if (!current) throw new ApiError('BACKUP_NOT_FOUND', `${manifest.tenant}/${manifest.volume} has no backup ${name}; see volcli volume backup list ${manifest.tenant}/${manifest.volume}`);
  while (current) {
    chain.unshift(current);
    if (current.parent === null) return chain;
    const parent = byName.get(current.parent);
    if (!parent) {
      throw new ApiError('BACKUP_CHAIN_BROKEN', `backup ${current.name} of ${manifest.tenant}/${manifest.volume} is a diff from ${current.parent}, which the target no longer has; restore a backup of another chain (volcli volume backup list)`);
    }
    current = parent;
  }
  return chain;
}

/** The newest backup at or before `at`, or the one named; BACKUP_NOT_FOUND when there is none. */
export function pickBackup(manifest: Manifest, choice: { name?: string; at?: Date }): ManifestEntry {
  const ref = `${manifest.tenant}/${manifest.volume}`;
  if (choice.name !== undefined) {
    const found = manifest.backups.find((b) => b.name === choice.name);
    if (!found) throw new ApiError('BACKUP_NOT_FOUND', `${ref} has no backup ${choice.name}; see volcli volume backup list ${ref}`);
    return found;
  }
  const at = choice.at?.getTime() ?? Infinity;
  const found = manifest.backups.filter((b) => Date.parse(b.at) <= at).at(-1);
  if (!found) {
    const when = choice.at ? `at or before ${choice.at.toISOString()}` : 'at all';
    throw new ApiError('BACKUP_NOT_FOUND', `${ref} has no backup ${when}; see volcli volume backup list ${ref}`);
  }
  return found;
}

/** How many backups the chain ending at the last one has (0: no backups). */
export function lastChainLength(manifest: Manifest): number {
  const last = manifest.backups.at(-1);
  if (!last) return 0;
  try {
    return chainTo(manifest, last.name).length;
  } catch {
    return Infinity; // a broken chain: start a new one
  }
}

/** The longest chain of a tiered keep without a `last` of more: a full backup at least every 7 (weekly, for daily backups). */
export const TIERED_CHAIN = 7;

/**
 * How many backups one chain (a full backup and its diffs) holds at most under `keep`. A number N
 * (or {"last": N}): N, as it always was. Tiers: their `last`, but at least min(the sum of the
 * tiers, TIERED_CHAIN): a chain longer than the spacing of the coarse tiers' points only makes each
 * kept point hold more diffs, and a restore apply more; a shorter one makes more full backups.
 */
export function chainLimit(keep: Retention): number {
  const last = tiersOf(keep).last ?? 0;
  return Math.max(1, last, Math.min(maxKept(keep), TIERED_CHAIN));
}

/**
 * What the next backup of an image is: incremental from the last backup when that backup was taken
 * from the same image, its snapshot is still there, its chain is whole and shorter than
 * chainLimit(keep) (a bounded chain bounds a restore's diffs and lets pruning free a whole chain);
 * else a full backup that starts a new chain.
 */
export function nextBase(manifest: Manifest, source: { pool: string; image: string; snapshots: readonly string[] }, keep: Retention, chained = true): string | null {
  const last = manifest.backups.at(-1);
  if (!last) return null;
  if (last.source.pool !== source.pool || last.source.image !== source.image) return null;
  if (!source.snapshots.includes(last.name)) return null;
  return !chained || lastChainLength(manifest) < chainLimit(keep) ? last.name : null;
}

/**
 * The backups every one of `points` needs to be restored: each point and its chain back to its
 * full backup (a retention plan chooses the points, this closes them over their chains).
 */
export function neededFor(manifest: Manifest, points: readonly string[]): Set<string> {
  const needed = new Set<string>();
  for (const point of points) {
    try {
      for (const b of chainTo(manifest, point)) needed.add(b.name);
    } catch {
      needed.add(point); // a broken chain: keep what there is, verify reports it
    }
  }
  return needed;
}

/**
 * Pruning by `keep` (see the top of this file): the retention planner picks the restore points by
 * their `at`; with `chained` backups, each point's chain stays with it. Throws a RangeError for a
 * keep that keeps nothing (policy checks come first).
 */
export function planBackupPrune(manifest: Manifest, keep: Retention, chained = true): { keep: ManifestEntry[]; remove: ManifestEntry[] } {
  // Named by their place in the manifest, so that of two equal times the later entry counts as the newer.
  const dated = manifest.backups.map((b, i) => ({ name: String(i).padStart(12, '0'), time: Date.parse(b.at) }));
  const points = planRetention(dated, keep).keep.map((p) => manifest.backups[Number(p.name)]!.name);
  const needed = chained ? neededFor(manifest, points) : new Set(points);
  return {
    keep: manifest.backups.filter((b) => needed.has(b.name)),
    remove: manifest.backups.filter((b) => !needed.has(b.name)),
  };
}
