// The host operations a mount performs on devices and directories, behind one interface so that
// unit tests can run the mount path with a fake host (test/helpers/plugin-fakes.ts).

import { rmdir } from 'node:fs/promises';
import * as fs from '../../mapper/fs.js';
import type { DeviceContents, ProbeOptions } from '../../mapper/fs.js';
import { growMountedFilesystem, growUnmounted, type GrowReport } from '../../mapper/grow.js';
import { deviceNumberOf, type DeviceNumber } from '../../ratelimit/index.js';

export interface HostOps {
  /** What the device holds (see mapper/fs.ts probeDevice); DeviceReadError when it cannot be read. */
  probeDevice(device: string, options?: ProbeOptions): Promise<DeviceContents>;
  formatDevice(command: string, device: string): Promise<void>;
  /** Removes every filesystem signature (before formatting again after an unfinished first format). */
  wipeSignatures(device: string): Promise<void>;
  mountDevice(device: string, dir: string): Promise<void>;
  unmountAll(dir: string): Promise<void>;
  mountsAt(dir: string): Promise<number>;
  /** Writes the filesystem mounted at `dir` to its device (syncfs), as an unmount would. */
  syncFilesystem(dir: string): Promise<void>;
  deviceNumber(device: string): Promise<DeviceNumber>;
  removeDir(dir: string): Promise<void>;
  /** The device's size in bytes (an ioctl, no I/O). */
  deviceBytes(device: string): Promise<number>;
  /** Grows the filesystem mounted at `dir` from `device` to the device's size (mapper/grow.ts); GrowError when it cannot. */
  growFilesystem(device: string, dir: string): Promise<GrowReport>;
  /** Grows the unmounted filesystem of `type` (ext only) on `device` to the device's size. */
  growUnmounted(type: string, device: string): Promise<void>;
}

/** The real host; `mkfsAllow` is the programs a filesystem command may run here (--mkfs-allow). */
export function realHostOps(options: { mkfsAllow?: readonly string[] } = {}): HostOps {
  return {
    probeDevice: fs.probeDevice,
    formatDevice: (command, device) => fs.formatDevice(command, device, { allowed: options.mkfsAllow }),
    wipeSignatures: fs.wipeSignatures,
    mountDevice: fs.mountDevice,
    unmountAll: fs.unmountAll,
    mountsAt: fs.mountsAt,
    syncFilesystem: fs.syncFilesystem,
    deviceNumber: deviceNumberOf,
    removeDir: (dir) => rmdir(dir).catch(() => undefined),
    deviceBytes: fs.deviceSize,
    growFilesystem: growMountedFilesystem,
    growUnmounted,
  };
}
