// Formatting at most once: whether a mount formats the device, only mounts it, or refuses, decided
// from the volume record (formatted, formatStarted: written by the lock holder only) and what the
// device holds (mapper/fs.ts probeDevice). Pure, so that every case is a unit test.
//
// - Recorded as formatted: never formatted again; a device without a filesystem fails the mount.
// - A first format that began (formatStarted) and did not finish: the device read as zeros when it
//   began and nothing has mounted it since, so it holds only what that mkfs wrote: format again.
// - Records from before `formatted` existed: a filesystem found is recorded; zeros are formatted;
//   anything else is refused (it may be a tenant's data).

import type { DeviceContents } from '../../mapper/fs.js';
import type { VolumeFormat } from '../../state/records.js';

export type FormatDecision =
  /** The filesystem is there: mount it (and record it as formatted when the record does not say so). */
  | { action: 'mount'; record: boolean }
  /** Format now (`again`: after an unfinished first format, wipe its signatures first). */
  | { action: 'format'; again: boolean }
  | { action: 'refuse'; message: string };

/** What to do with `device` of volume `name` (tenant/volume), given its record and contents. */
export function decideFormat(
  name: string,
  device: string,
  record: VolumeFormat,
  contents: DeviceContents,
): FormatDecision {
  if (record.formatted) {
    if (contents.kind === 'filesystem') return { action: 'mount', record: false };
    const what = contents.kind === 'empty' ? 'reads as zeros at its start and end' : `holds no filesystem blkid knows (${contents.detail})`;
    return {
      action: 'refuse',
      message:
        `${name} was formatted at ${record.formatted}, but its device ${device} ${what}. volplugin never formats a volume twice: ` +
        'check the image (rbd info, rbd du): was it replaced, or rolled back to a snapshot from before its first use? ' +
        'A damaged filesystem needs fsck on a host that maps the image by hand',
    };
  }
  if (record.formatStarted) return { action: 'format', again: true };
  switch (contents.kind) {
    case 'filesystem':
      return { action: 'mount', record: true };
    case 'empty':
      return { action: 'format', again: false };
    case 'data':
      return {
        action: 'refuse',
        message:
          `refusing to format ${name}: the device holds data (${device}: ${contents.detail}). volplugin formats only a device ` +
          'that reads as zeros; look at the image (rbd export) and, if nothing on it is needed, zero it (rbd rm and create the volume again)',
      };
  }
}

/** The error for a device that could not be read at mount time. */
export function unreadableMessage(name: string, formatted: boolean, detail: string): string {
  const what = formatted ? `cannot mount ${name}` : `refusing to format ${name}`;
  return `${what}: the device cannot be read (${detail}); check the Ceph cluster (ceph -s, ceph health detail) and this host's kernel log (dmesg), then mount again`;
}
