// Fakes of what volplugin's mount path touches on the host (the mapper, devices and directories)
// and of the master, for the plugin's unit tests; Ceph is src/storage's MemoryStorage, etcd
// src/state's MemoryKV.
import { DeviceReadError, type DeviceContents } from '../../src/mapper/fs.js';
import type { GrowReport } from '../../src/mapper/grow.js';
import type { Mapper, Mapping, MapTarget } from '../../src/mapper/types.js';
import type { RateLimit } from '../../src/policy/types.js';
import type { VolumeRecord } from '../../src/state/records.js';
import type { MemoryStorage } from '../../src/storage/memory.js';
import type { QosLimits } from '../../src/storage/types.js';
import type { MasterClient } from '../../src/plugin/cluster/master-client.js';
import { PluginError } from '../../src/plugin/errors.js';
import type { HostOps } from '../../src/plugin/mounts/host-ops.js';
import { volumeRecord } from './fixtures.js';

/**
 * A mapper that hands out /dev/loopN devices (N counting from `first`) whose Ceph client is
 * 127.0.0.1:0/(clientBase + N). Give each "host" of a test its own: a shared one would mix their
 * mappings.
 */
export class FakeMapper implements Mapper {
  readonly kind = 'fuse' as const;
  mapped = new Map<string, Mapping>();
  /** Devices whose I/O was cut (stopIo). */
  stopped: string[] = [];
  /** The number of the next device. */
  next: number;
  failMap: Error | null = null;
  /** Map without learning the client's address (as when the new watcher cannot be told). */
  noClient = false;
  private readonly clientBase: number;
  private readonly stateDir: string;

  constructor(options: { first?: number; clientBase?: number; stateDir?: string } = {}) {
    this.next = options.first ?? 0;
    this.clientBase = options.clientBase ?? 0;
    this.stateDir = options.stateDir ?? '/state';
  }

  async map(target: MapTarget): Promise<Mapping> {
    if (this.failMap) throw this.failMap;
    const n = this.next++;
    const m: Mapping = {
      ...target,
      kind: 'fuse',
      device: `/dev/loop${n}`,
      clientAddress: this.noClient ? null : `127.0.0.1:0/${this.clientBase + n}`,
      fuseDir: `${this.stateDir}/fuse/${target.tenant}/${target.volume}`,
    };
    this.mapped.set(m.device!, m);
    return m;
  }

  async unmap(m: Mapping): Promise<void> {
    if (m.device) this.mapped.delete(m.device);
  }

  async discover(): Promise<Mapping[]> {
    return [...this.mapped.values()];
  }

  async stopIo(m: Mapping): Promise<void> {
    this.stopped.push(m.device ?? '?');
  }

  async isMapped(m: Mapping): Promise<boolean> {
    return !!m.device && this.mapped.get(m.device)?.image === m.image;
  }

  /** Devices asked to show their image's size again (refreshSize), in order. */
  refreshed: string[] = [];
  async refreshSize(m: Mapping): Promise<void> {
    this.refreshed.push(m.device ?? '?');
  }

  /** The image a device maps now (for FakeHost). */
  imageOf = (device: string): string => this.mapped.get(device)?.image ?? device;
}

/**
 * The host's devices and directories: mounts kept in a map, what each image holds in `images`
 * (shared between the fake hosts of a test, like Ceph; an image not in it reads as zeros), images
 * whose device cannot be read in `unreadable`; `fail` makes a step throw. `imageOf` tells which
 * image a device maps (give each host its mapper's: FakeMapper.imageOf).
 */
export class FakeHost implements HostOps {
  mounted = new Map<string, string>();
  readonly images: Map<string, DeviceContents>;
  unreadable = new Set<string>();
  /** Devices formatted, in order. */
  formats: string[] = [];
  /** Devices whose signatures were wiped, in order. */
  wipes: string[] = [];
  fail: Partial<Record<keyof HostOps, Error>> = {};
  private readonly imageOf: (device: string) => string;

  constructor(options: { imageOf?: (device: string) => string; images?: Map<string, DeviceContents> } = {}) {
    this.imageOf = options.imageOf ?? ((device) => device);
    this.images = options.images ?? new Map();
  }

  async probeDevice(device: string): Promise<DeviceContents> {
    if (this.fail.probeDevice) throw this.fail.probeDevice;
    const image = this.imageOf(device);
    if (this.unreadable.has(image)) throw new DeviceReadError(device, 'Input/output error');
    return this.images.get(image) ?? { kind: 'empty' };
  }
  async formatDevice(_command: string, device: string): Promise<void> {
    if (this.fail.formatDevice) throw this.fail.formatDevice;
    this.formats.push(device);
    this.images.set(this.imageOf(device), { kind: 'filesystem', type: 'ext4' });
  }
  async wipeSignatures(device: string): Promise<void> {
    if (this.fail.wipeSignatures) throw this.fail.wipeSignatures;
    this.wipes.push(device);
    this.images.delete(this.imageOf(device));
  }
  async mountDevice(device: string, dir: string): Promise<void> {
    if (this.fail.mountDevice) throw this.fail.mountDevice;
    this.mounted.set(dir, device);
  }
  async unmountAll(dir: string): Promise<void> {
    if (this.fail.unmountAll) throw this.fail.unmountAll;
    this.mounted.delete(dir);
  }
  async mountsAt(dir: string): Promise<number> {
    return this.mounted.has(dir) ? 1 : 0;
  }
  /** The mountpoints written to their devices (syncFilesystem), in order. */
  synced: string[] = [];
  async syncFilesystem(dir: string): Promise<void> {
    if (this.fail.syncFilesystem) throw this.fail.syncFilesystem;
    this.synced.push(dir);
  }
  async deviceNumber(): Promise<{ major: number; minor: number }> {
    return { major: 7, minor: 0 };
  }
  async removeDir(): Promise<void> {}
  /** Device sizes in bytes (deviceBytes; default 1 GiB), and the filesystems grown, in order. */
  sizes = new Map<string, number>();
  grown: string[] = [];
  async deviceBytes(device: string): Promise<number> {
    return this.sizes.get(device) ?? 1 << 30;
  }
  async growFilesystem(device: string, dir: string): Promise<GrowReport> {
    if (this.fail.growFilesystem) throw this.fail.growFilesystem;
    this.grown.push(dir);
    const bytes = await this.deviceBytes(device);
    return { type: 'ext4', deviceBytes: bytes, beforeBytes: 0, afterBytes: bytes };
  }
  /** Devices grown while unmounted, in order. */
  grownUnmounted: string[] = [];
  async growUnmounted(_type: string, device: string): Promise<void> {
    if (this.fail.growUnmounted) throw this.fail.growUnmounted;
    if (this.mounted.size > 0 && [...this.mounted.values()].includes(device)) throw new Error(`${device} is mounted`);
    this.grownUnmounted.push(device);
  }
}

/** The master's volume records, kept in a map ("tenant/volume"); an unknown volume is VOLUME_NOT_FOUND. */
export class FakeMaster implements MasterClient {
  volumes = new Map<string, VolumeRecord>();
  async getVolume(tenant: string, volume: string): Promise<VolumeRecord> {
    const v = this.volumes.get(`${tenant}/${volume}`);
    if (!v) throw new PluginError('VOLUME_NOT_FOUND', `no ${tenant}/${volume}`);
    return v;
  }
  async listVolumes(): Promise<VolumeRecord[]> {
    return [...this.volumes.values()];
  }
  async createVolume(): Promise<VolumeRecord> {
    throw new Error('not used');
  }
  async removeVolume(): Promise<void> {}
}

/** A volume record (test/helpers/fixtures.ts) whose run-time and option rate limits are `rateLimit`. */
export function limitedVolume(tenant: string, volume: string, rateLimit: RateLimit): VolumeRecord {
  const plain = volumeRecord(tenant, volume);
  return { ...plain, options: { ...plain.options, rateLimit }, runtime: { ...plain.runtime, rateLimit } };
}

/** The blocklist entries requested of the twin, in order. */
export function blocklistCalls(storage: MemoryStorage): Array<{ address: string; seconds: number }> {
  return storage.argsOf('blocklistAdd').map(([address, seconds]) => ({ address: address as string, seconds: seconds as number }));
}

/** The librbd QoS last set on pool/image (as given to setQos), if any. */
export function lastQos(storage: MemoryStorage, pool: string, image: string): QosLimits | undefined {
  return storage.argsOf('setQos').filter(([p, i]) => p === pool && i === image).at(-1)?.[2] as QosLimits | undefined;
}
