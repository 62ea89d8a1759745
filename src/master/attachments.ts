// Attaching volumes to hosts for a CSI CO (ControllerPublishVolume / ControllerUnpublishVolume):
// the state layer decides in one transaction (src/state/attachments.ts); this turns its answers
// into the API's errors, each saying what to do.

import type { FastifyBaseLogger } from 'fastify';
import { ApiError } from '../api/errors.js';
import { assertVolumeRef } from '../policy/names.js';
import type { AttachmentRecord, MountRecord } from '../state/records.js';
import type { StateStore } from '../state/store.js';

function holderOf(mount: MountRecord): string {
  return `${mount.host} (host id ${mount.hostId}) since ${mount.since}`;
}

/** Attaches the volume to the host; `created` is false when it was attached to it already. */
export async function attachVolume(
  store: StateStore,
  log: FastifyBaseLogger,
  request: { tenant: string; volume: string; hostId: string; readonly: boolean; by: string },
): Promise<{ record: AttachmentRecord; created: boolean }> {
  const { tenant, volume, hostId } = request;
  assertVolumeRef(tenant, volume);
  const result = await store.attachVolume(request);
  if (result.ok) {
    if (result.record.takenFrom) {
      log.warn(
        { tenant, volume, hostId, from: result.record.takenFrom, by: request.by },
        'volume attached to a new host: the host it was attached to has no live volplugin (its lease expired); the new host fences its client before it maps the image',
      );
    } else if (result.created) {
      log.info({ tenant, volume, hostId, readonly: request.readonly, by: request.by }, 'volume attached');
    }
    return { record: result.record, created: result.created };
  }
  switch (result.reason) {
    case 'no-volume':
      throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`, { field: 'volume' });
    case 'no-host':
      throw new ApiError('HOST_NOT_FOUND', `no live volplugin has host id ${hostId}: start volplugin (csi) there, or check the id (the node id its NodeGetInfo answers)`, {
        field: 'hostId',
      });
    case 'attached-elsewhere':
      throw new ApiError(
        'VOLUME_ATTACHED',
        `volume ${tenant}/${volume} is attached to host ${result.holder.host} (host id ${result.holder.hostId}) since ${result.holder.since}, whose volplugin is alive: ` +
          'detach it there first (ControllerUnpublishVolume); if that host is gone, its attachment can be taken over once its lease expires',
        { field: 'hostId' },
      );
    case 'mounted-elsewhere':
      throw new ApiError(
        'VOLUME_MOUNTED',
        `volume ${tenant}/${volume} is mounted on ${holderOf(result.mount)}: unmount it there first; if that host is down its lock expires with its lease`,
        { field: 'volume' },
      );
    case 'differs':
      throw new ApiError(
        'ATTACHMENT_DIFFERS',
        `volume ${tenant}/${volume} is attached to host id ${hostId} already with readonly=${String(result.holder.readonly)}; detach it first to change that`,
        { field: 'readonly' },
      );
  }
}

/** Detaches the volume (from `hostId` only, when given); what was removed, or null. */
export async function detachVolume(store: StateStore, log: FastifyBaseLogger, tenant: string, volume: string, hostId: string | null, by: string): Promise<AttachmentRecord | null> {
  assertVolumeRef(tenant, volume);
  const result = await store.detachVolume(tenant, volume, hostId);
  if (!result.ok) {
    throw new ApiError(
      'VOLUME_MOUNTED',
      `volume ${tenant}/${volume} is still mounted on ${holderOf(result.mount)}, the host it is attached to: unstage it there first (NodeUnstageVolume); ` +
        'if that host is gone, its lock expires with its lease and the detach then succeeds',
      { field: 'volume' },
    );
  }
  if (result.removed) log.info({ tenant, volume, hostId: result.removed.hostId, by }, 'volume detached');
  return result.removed;
}
