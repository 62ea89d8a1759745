// Growing a volume's filesystem on this host, the policy of it (the commands are mapper/grow.ts):
// at a first mount when the filesystem is smaller than its device (a resize that happened while no
// host could grow it: never lost), and on a resize's `resize-fs` request while it stays mounted.

import type { DeviceContents } from '../../mapper/fs.js';
import { GROW_SLACK_BYTES, growsUnmounted, type GrowReport } from '../../mapper/grow.js';
import type { Mapper } from '../../mapper/types.js';
import { PluginError, messageOf } from '../errors.js';
import type { HostOps } from './host-ops.js';
import type { LocalVolume } from './local-state.js';
import { volumeKey } from './local-state.js';

/** What growing needs of the mounter's parts. */
export interface GrowParts {
  mapper: Mapper;
  hostOps: HostOps;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** How long a resize waits for the mapped device to show the image's new size. */
const DEVICE_GROW_WAIT_MS = 30_000;

/** A filesystem smaller than its device, and when to grow it. */
export interface Growth {
  when: 'before-mount' | 'after-mount';
  type: string;
  filesystemBytes: number;
  deviceBytes: number;
}

/**
 * A filesystem smaller than its device: the volume was resized while no host held it mounted, or
 * while its holder did not answer or could not grow it online (a takeover, a host down, ext
 * without CAP_SYS_RESOURCE). The host that mounts it grows it, so no resize is lost: ext before
 * mounting (offline, no capability needed), xfs and btrfs after (they grow only mounted).
 */
export function growthPending(contents: DeviceContents): Growth | null {
  if (contents.kind !== 'filesystem' || contents.sizeBytes == null || contents.deviceBytes === undefined) return null;
  if (contents.deviceBytes - contents.sizeBytes < GROW_SLACK_BYTES) return null;
  const when = growsUnmounted(contents.type) ? 'before-mount' : 'after-mount';
  return { when, type: contents.type, filesystemBytes: contents.sizeBytes, deviceBytes: contents.deviceBytes };
}

/** Grows the filesystem to its device (growthPending); a failure is logged and the mount goes on with it as it is (retried at the next mount). */
export async function growToDevice(parts: GrowParts, name: string, device: string, mountpoint: string, growth: Growth): Promise<void> {
  const { hostOps, log } = parts;
  const about = { volume: name, device, type: growth.type, filesystemBytes: growth.filesystemBytes, deviceBytes: growth.deviceBytes };
  try {
    if (growth.when === 'before-mount') await hostOps.growUnmounted(growth.type, device);
    else await hostOps.growFilesystem(device, mountpoint);
    log.info(about, 'filesystem grown to its device at mount (the volume was resized)');
  } catch (err) {
    log.warn({ ...about, err: messageOf(err) }, 'could not grow the filesystem to its device; mounted as it is, retried at the next mount');
  }
}

/**
 * A resize's `resize-fs` request (manager.ts): makes the mapped device show the image's new size
 * (`sizeBytes`), waiting for it up to a deadline, then grows the mounted filesystem to it.
 */
export async function growMounted(parts: GrowParts, entry: LocalVolume, sizeBytes: number): Promise<GrowReport> {
  const { mapper, hostOps } = parts;
  const device = entry.mapping.device;
  const name = volumeKey(entry.tenant, entry.volume);
  if (!device) throw new PluginError('INTERNAL', `${name} is mounted without a device`);
  await mapper.refreshSize(entry.mapping);
  const deadline = Date.now() + DEVICE_GROW_WAIT_MS;
  let bytes = await hostOps.deviceBytes(device);
  while (bytes < sizeBytes) {
    if (Date.now() > deadline) {
      throw new PluginError(
        'INTERNAL',
        `the device ${device} of ${name} still shows ${bytes} bytes after ${DEVICE_GROW_WAIT_MS / 1000} s, not the image's ${sizeBytes}: ` +
          'check rbd info of the image; the filesystem grows at the next mount',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    await mapper.refreshSize(entry.mapping);
    bytes = await hostOps.deviceBytes(device);
  }
  const report = await hostOps.growFilesystem(device, entry.mountpoint);
  parts.log.info({ volume: name, device, ...report }, 'filesystem grown online (resize)');
  return report;
}
