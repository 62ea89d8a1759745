// How CSI's names and ids map onto volplugin's, in one place.
//
//   volume_id     `<tenant>.<volume>`, the volume's RBD image name (a tenant name has no dot, so
//                 the first dot ends it: the mapping is one to one, see src/policy/names.ts)
//   snapshot_id   `<tenant>.<volume>@<snapshot>`, as rbd writes a snapshot (neither volume nor
//                 snapshot names may contain "@")
//   CreateVolume name  the CO's idempotency key, recorded in the volume record (requestName) and
//                 claimed on the master; the volume is named after it: the name itself when it is a
//                 valid volume name (Kubernetes' pvc-<uid>, Nomad's and Swarm's volume names), else
//                 `csi-` and 40 hex digits of its SHA-256
//   CreateSnapshot name  likewise: the snapshot is `csi-<name>`, or `csi-` and 40 hex digits of its
//                 SHA-256; the prefix tells the snapshots the CO made (DeleteVolume keeps them)
//   ListSnapshots tokens  opaque to the CO: base64url of the last snapshot_id returned

import { createHash } from 'node:crypto';
import { imageName, isValidName, parseImageName, type VolumeRef } from '../policy/names.js';
import { snapshotNameProblem } from '../snapshots/names.js';

export const CSI_SNAPSHOT_PREFIX = 'csi-';

export function volumeId(tenant: string, volume: string): string {
  return imageName(tenant, volume);
}

/** tenant/volume of a volume_id; null for an id volplugin never made (no such volume). */
export function parseVolumeId(id: string): VolumeRef | null {
  return parseImageName(id);
}

export interface SnapshotRef extends VolumeRef {
  snapshot: string;
}

export function snapshotId(ref: SnapshotRef): string {
  return `${volumeId(ref.tenant, ref.volume)}@${ref.snapshot}`;
}

/** The parts of a snapshot_id; null for an id volplugin never made. */
export function parseSnapshotId(id: string): SnapshotRef | null {
  const at = id.indexOf('@');
  if (at < 0) return null;
  const volume = parseVolumeId(id.slice(0, at));
  const snapshot = id.slice(at + 1);
  if (!volume || snapshotNameProblem(snapshot)) return null;
  return { ...volume, snapshot };
}

function hashed(name: string): string {
  return `csi-${createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 40)}`;
}

/** The volume a CreateVolume name makes (in the tenant its parameters name). */
export function volumeNameFor(name: string): string {
  return isValidName('volume', name) ? name : hashed(name);
}

/** The RBD snapshot a CreateSnapshot name makes. */
export function snapshotNameFor(name: string): string {
  const plain = `${CSI_SNAPSHOT_PREFIX}${name}`;
  return snapshotNameProblem(plain) === null ? plain : hashed(name);
}

/** Whether a snapshot was made through CSI (its name is csi-...). */
export function isCsiSnapshot(name: string): boolean {
  return name.startsWith(CSI_SNAPSHOT_PREFIX);
}

/** The next_token after `lastId`. */
export function pageToken(lastId: string): string {
  return Buffer.from(`v1:${lastId}`, 'utf8').toString('base64url');
}

/** The snapshot_id a token continues after; null for a token this driver did not make. */
export function parsePageToken(token: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return null;
  const text = Buffer.from(token, 'base64url').toString('utf8');
  if (!text.startsWith('v1:')) return null;
  const id = text.slice(3);
  return parseSnapshotId(id) ? id : null;
}
