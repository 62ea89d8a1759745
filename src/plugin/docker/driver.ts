// The VolumeDriver behind the protocol server: checks names and options, reads volume records
// (from etcd, as the master does), asks the master to create and remove volumes, and hands Mount
// and Unmount to the mount manager.

import { PolicyError } from '../../policy/errors.js';
import { parseVolumeRef, type VolumeRef } from '../../policy/names.js';
import { parseDriverOptions } from '../../policy/options.js';
import { PluginError, isPluginError } from '../errors.js';
import type { KeyedMutex } from '../mounts/keyed-mutex.js';
import type { LocalState } from '../mounts/local-state.js';
import { volumeKey } from '../mounts/local-state.js';
import type { MasterClient } from '../cluster/master-client.js';
import type { MountManager } from '../mounts/manager.js';
import type { DockerVolume, VolumeDriver } from './protocol.js';

/** Parses Docker's volume name; errors say how to write one. */
export function parseName(name: string): VolumeRef {
  try {
    return parseVolumeRef(name);
  } catch (err) {
    if (err instanceof PolicyError) {
      throw new PluginError('INVALID_NAME', `${err.message}. volplugin volumes are named TENANT/VOLUME, e.g. docker volume create -d volplugin --name tenant1/data`);
    }
    throw err;
  }
}

export interface DriverOptions {
  /** Creates and removes volumes. */
  master: MasterClient;
  /** Reads volume records (cluster/volume-records.ts: etcd, one read instead of a request to the master). */
  volumes: Pick<MasterClient, 'getVolume'>;
  /** Who has the volume mounted (lock holder or a host's report), or null. */
  mountedWhere: (tenant: string, volume: string) => Promise<string | null>;
  manager: MountManager;
  local: LocalState;
  mutex: KeyedMutex;
}

export class Driver implements VolumeDriver {
  constructor(private readonly o: DriverOptions) {}

  async create(name: string, opts: Record<string, string>, signal: AbortSignal): Promise<void> {
    const { tenant, volume } = parseName(name);
    try {
      parseDriverOptions(opts);
    } catch (err) {
      if (err instanceof PolicyError) throw new PluginError('INVALID_OPTION', `${err.message} (docker volume create --opt KEY=VALUE)`);
      throw err;
    }
    await this.o.master.createVolume(tenant, volume, opts, signal);
  }

  async remove(name: string, signal: AbortSignal): Promise<void> {
    const { tenant, volume } = parseName(name);
    await this.o.mutex.run(volumeKey(tenant, volume), async () => {
      const entry = this.o.local.get(tenant, volume);
      if (entry && entry.refs.length > 0) {
        throw new PluginError(
          'IN_USE',
          `${name} is mounted on this host (${entry.refs.length} reference${entry.refs.length === 1 ? '' : 's'}): stop the containers that use it, then remove it`,
        );
      }
      // Kept idle after its last Unmount (or waiting for its teardown): let go of it now.
      if (entry) await this.o.manager.letGo(entry);
      // `docker volume rm` drops the records; the data goes too only for an ephemeral volume.
      const record = await this.o.volumes.getVolume(tenant, volume, signal);
      if (record.options.ephemeral) {
        await this.o.master.removeVolume(tenant, volume, { keepImage: false }, signal);
        return;
      }
      // A quick refusal with this host's view of the lock; the master checks again (mount record,
      // host reports, watchers) under the volume's operation lock before it deletes the record.
      const holder = await this.o.mountedWhere(tenant, volume);
      if (holder) throw new PluginError('IN_USE', `${name} is mounted on ${holder}: stop the containers that use it there, then remove it`);
      await this.o.master.removeVolume(tenant, volume, { keepImage: true }, signal);
    });
  }

  async mount(name: string, id: string, signal: AbortSignal): Promise<string> {
    const { tenant, volume } = parseName(name);
    return this.o.manager.mount(tenant, volume, id, signal);
  }

  async unmount(name: string, id: string, signal: AbortSignal): Promise<void> {
    const { tenant, volume } = parseName(name);
    await this.o.manager.unmount(tenant, volume, id, signal);
  }

  async path(name: string): Promise<string> {
    const { tenant, volume } = parseName(name);
    return this.o.local.get(tenant, volume)?.mountpoint ?? '';
  }

  async get(name: string, signal: AbortSignal): Promise<DockerVolume> {
    const { tenant, volume } = parseName(name);
    const entry = this.o.local.get(tenant, volume);
    try {
      const record = await this.o.volumes.getVolume(tenant, volume, signal);
      return {
        Name: name,
        Mountpoint: entry?.mountpoint ?? '',
        CreatedAt: record.createdAt,
        Status: {
          pool: record.pool,
          image: record.image,
          size: record.options.sizeBytes,
          filesystem: record.options.filesystem,
          ...(entry ? { device: entry.mapping.device, mapper: entry.mapping.kind, references: entry.refs.length } : {}),
        },
      };
    } catch (err) {
      if (isPluginError(err, 'VOLUME_NOT_FOUND')) {
        throw new PluginError('VOLUME_NOT_FOUND', `volume ${name} does not exist: create it with docker volume create -d volplugin --name ${name}`);
      }
      // Docker asks Get before Unmount: with etcd down, a mounted volume still answers.
      if (entry && (isPluginError(err, 'STATE_UNAVAILABLE') || isPluginError(err, 'MASTER_UNAVAILABLE'))) return { Name: name, Mountpoint: entry.mountpoint };
      throw err;
    }
  }

  async list(signal: AbortSignal): Promise<DockerVolume[]> {
    const records = await this.o.master.listVolumes(signal);
    return records.map((r) => ({ Name: `${r.tenant}/${r.volume}`, Mountpoint: this.o.local.get(r.tenant, r.volume)?.mountpoint ?? '' }));
  }
}
