// Attachments: where a CSI CO has published each volume (ControllerPublishVolume), one host per
// volume. An attachment is the CO's side of the picture; the mount lock (mounts.ts) stays the
// guard of the data: a host may only stage a volume attached to it, and still only mounts it under
// the lock, fencing a previous holder first.
//
// Attaching is one transaction, conditioned on everything it looked at:
// - the volume record exists (unchanged), and the host's volplugin is alive (its host-alive
//   record, bound to its lease, exists): a CO cannot publish to a node that is not there;
// - no other host holds the volume's mount lock (a Docker host, or a node still staging it);
// - the volume is attached to nobody, or to this host already (idempotent), or to a host whose
//   volplugin is gone (no host-alive record: its lease expired, and with it its mount locks).
//   That last case is a takeover: the new host's mount fences the old one's Ceph client before it
//   maps the image (src/fencing), as for any holder that did not let go.
// Detaching is refused while the attached host still holds the mount lock (it has the volume
// staged); the lock vanishes with that host's lease if it is gone.

import { CONFLICT, type RecordKV } from './record-kv.js';
import type { AttachmentRecord, HostAliveRecord, MountRecord, VolumeRecord } from './records.js';

export type AttachResult =
  | { ok: true; record: AttachmentRecord; created: boolean }
  | { ok: false; reason: 'no-volume' | 'no-host' }
  /** Attached to another host whose volplugin is alive. */
  | { ok: false; reason: 'attached-elsewhere'; holder: AttachmentRecord }
  /** Another host holds the mount lock. */
  | { ok: false; reason: 'mounted-elsewhere'; mount: MountRecord }
  /** Attached to this host already, with another readonly flag. */
  | { ok: false; reason: 'differs'; holder: AttachmentRecord };

export type DetachResult = { ok: true; removed: AttachmentRecord | null } | { ok: false; reason: 'still-mounted'; mount: MountRecord };

export interface AttachRequest {
  tenant: string;
  volume: string;
  hostId: string;
  readonly: boolean;
  /** Who asks (a token name). */
  by: string;
}

/** The attachment of the volume as it is now: null when there is none or it was made for a volume record that no longer exists. */
export async function getAttachment(db: RecordKV, tenant: string, volume: string): Promise<AttachmentRecord | null> {
  const [entry, vol] = await Promise.all([db.kv.get(db.keys.attachment(tenant, volume)), db.kv.get(db.keys.volume(tenant, volume))]);
  if (!entry || !vol) return null;
  const record = db.parse<AttachmentRecord>(entry);
  return record.volumeCreatedAt === db.parse<VolumeRecord>(vol).createdAt ? record : null;
}

export function attach(db: RecordKV, request: AttachRequest): Promise<AttachResult> {
  const { tenant, volume, hostId } = request;
  const key = db.keys.attachment(tenant, volume);
  const volumeKey = db.keys.volume(tenant, volume);
  const mountKey = db.keys.mount(tenant, volume);
  return db.cas(`attachment of ${tenant}/${volume}`, async () => {
    const vol = await db.kv.get(volumeKey);
    if (!vol) return { ok: false as const, reason: 'no-volume' as const };
    const record = db.parse<VolumeRecord>(vol);
    const alive = await db.kv.get(db.keys.hostAlive(hostId));
    if (!alive) return { ok: false as const, reason: 'no-host' as const };
    const host = db.parse<HostAliveRecord>(alive).host;

    const entry = await db.kv.get(key);
    const current = entry ? db.parse<AttachmentRecord>(entry) : null;
    // An attachment of an earlier volume of the same name binds nothing.
    const holder = current && current.volumeCreatedAt === record.createdAt ? current : null;
    let takenFrom: string | undefined;
    if (holder) {
      if (holder.hostId === hostId) {
        return holder.readonly === request.readonly ? { ok: true as const, record: holder, created: false } : { ok: false as const, reason: 'differs' as const, holder };
      }
      if (await db.kv.get(db.keys.hostAlive(holder.hostId))) return { ok: false as const, reason: 'attached-elsewhere' as const, holder };
      takenFrom = holder.hostId;
    }
    const mount = await db.kv.get(mountKey);
    const lock = mount ? db.parse<MountRecord>(mount) : null;
    if (lock && lock.hostId !== hostId) return { ok: false as const, reason: 'mounted-elsewhere' as const, mount: lock };

    const next: AttachmentRecord = {
      tenant,
      volume,
      hostId,
      host,
      readonly: request.readonly,
      volumeCreatedAt: record.createdAt,
      since: new Date().toISOString(),
      by: request.by,
      ...(takenFrom ? { takenFrom } : {}),
    };
    const ok = await db.kv.transaction({
      present: [db.keys.hostAlive(hostId)],
      absent: [...(entry ? [] : [key]), ...(mount ? [] : [mountKey]), ...(takenFrom ? [db.keys.hostAlive(takenFrom)] : [])],
      unchanged: [
        { key: volumeKey, modRevision: vol.modRevision },
        ...(entry ? [{ key, modRevision: entry.modRevision }] : []),
        ...(mount ? [{ key: mountKey, modRevision: mount.modRevision }] : []),
      ],
      put: [{ key, value: JSON.stringify(next) }],
    });
    return ok ? { ok: true as const, record: next, created: true } : CONFLICT;
  });
}

/**
 * Removes the volume's attachment (to `hostId` only, when given); nothing to remove is success.
 * Refused while the attached host holds the mount lock.
 */
export function detach(db: RecordKV, tenant: string, volume: string, hostId: string | null): Promise<DetachResult> {
  const key = db.keys.attachment(tenant, volume);
  const mountKey = db.keys.mount(tenant, volume);
  return db.cas(`attachment of ${tenant}/${volume}`, async () => {
    const entry = await db.kv.get(key);
    if (!entry) return { ok: true as const, removed: null };
    const current = db.parse<AttachmentRecord>(entry);
    if (hostId !== null && current.hostId !== hostId) return { ok: true as const, removed: null };
    const mount = await db.kv.get(mountKey);
    const lock = mount ? db.parse<MountRecord>(mount) : null;
    if (lock && lock.hostId === current.hostId) return { ok: false as const, reason: 'still-mounted' as const, mount: lock };
    const ok = await db.kv.transaction({
      absent: mount ? [] : [mountKey],
      unchanged: [{ key, modRevision: entry.modRevision }, ...(mount ? [{ key: mountKey, modRevision: mount.modRevision }] : [])],
      delete: [key],
    });
    return ok ? { ok: true as const, removed: current } : CONFLICT;
  });
}
