// Volume records as volplugin reads them: straight from etcd, where the master keeps them (its
// `GET /v1/volumes/T/V` reads the same key and nothing else), so a Mount or a Docker Get costs one
// etcd read instead of an HTTP request to the master. volplugin's etcd user may read volume
// records, never write them; creating and removing volumes still goes through the master.

import { StateUnavailableError } from '../../state/kv.js';
import type { VolumeRecord } from '../../state/records.js';
import type { StateStore } from '../../state/store.js';
import { PluginError } from '../errors.js';
import type { MasterClient } from './master-client.js';

export class VolumeRecords implements Pick<MasterClient, 'getVolume'> {
  constructor(private readonly store: Pick<StateStore, 'getVolume'>) {}

  /** The volume's record; PluginError VOLUME_NOT_FOUND when there is none, STATE_UNAVAILABLE when etcd does not answer. */
  async getVolume(tenant: string, volume: string, signal?: AbortSignal): Promise<VolumeRecord> {
    signal?.throwIfAborted();
    let record: VolumeRecord | null;
    try {
      record = await this.store.getVolume(tenant, volume);
    } catch (err) {
      if (err instanceof StateUnavailableError) {
        throw new PluginError('STATE_UNAVAILABLE', `${err.message}: volplugin reads volume records from etcd; check --etcd and that etcd runs`, { cause: err });
      }
      throw err;
    }
    if (!record) throw new PluginError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist`);
    return record;
  }
}
