// Request names on the master: a client's name for a create (CSI's CreateVolume and CreateSnapshot
// names) is claimed for its target before the target is made (src/state/request-names.ts), so that
// repeating the request finds the same volume or snapshot and the same name for another target is
// refused (NAME_TAKEN), and released when the target is removed.

import { ApiError } from '../api/errors.js';
import { isRbdError } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import type { RequestNameRecord } from '../state/records.js';
import type { RequestTarget, StateStore } from '../state/store.js';

function taken(name: string, holder: RequestNameRecord): ApiError {
  const what = holder.snapshot === undefined ? `volume ${holder.tenant}/${holder.volume}` : `snapshot ${holder.snapshot} of ${holder.tenant}/${holder.volume}`;
  return new ApiError(
    'NAME_TAKEN',
    `request name ${JSON.stringify(name)} was given for ${what} (at ${holder.at}), which exists; repeat that request as it was, or use another name`,
    { field: 'requestName' },
  );
}

/** Claims `name` for a new volume; true when it was claimed now (false: it named this volume already). */
export async function claimVolumeName(store: StateStore, name: string, target: RequestTarget): Promise<boolean> {
  const result = await store.claimRequestName('volume', name, target, async (holder) => {
    const [record, intent] = await Promise.all([store.getVolume(holder.tenant, holder.volume), store.getCreateIntent(holder.tenant, holder.volume)]);
    return !record && !intent;
  });
  if (!result.ok) throw taken(name, result.holder);
  return result.created;
}

/** Claims `name` for a snapshot about to be taken; true when it was claimed now. */
export async function claimSnapshotName(store: StateStore, storage: Pick<Storage, 'listSnapshots'>, name: string, target: RequestTarget): Promise<boolean> {
  const result = await store.claimRequestName('snapshot', name, target, async (holder) => {
    const record = await store.getVolume(holder.tenant, holder.volume);
    if (!record) return true;
    try {
      return !(await storage.listSnapshots(record.pool, record.image)).some((s) => s.name === holder.snapshot);
    } catch (err) {
      if (isRbdError(err, 'ENOENT')) return true;
      throw err;
    }
  });
  if (!result.ok) throw taken(name, result.holder);
  return result.created;
}
