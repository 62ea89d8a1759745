// What volplugin asks the volmaster: volume records, and volume creation and removal (the master
// owns intent; volplugin only maps and mounts). Every call has a deadline; a master that does not
// answer becomes a PluginError that tells the user what to check.

import type { VolumeRecord } from '../../state/records.js';
import type { ApiClient } from '../../api/client.js';
import { ApiError, type ErrorCode } from '../../api/errors.js';
import { PluginError } from '../errors.js';

export interface MasterClient {
  /** The volume's record; PluginError VOLUME_NOT_FOUND when there is none. */
  getVolume(tenant: string, volume: string, signal?: AbortSignal): Promise<VolumeRecord>;
  listVolumes(signal?: AbortSignal): Promise<VolumeRecord[]>;
  /** Creates the volume (or returns the existing one when the options agree). */
  createVolume(tenant: string, volume: string, options: Record<string, string>, signal?: AbortSignal): Promise<VolumeRecord>;
  /**
   * Removes the volume: its image and records, or with `keepImage` only its record (the image
   * stays). Either way the master refuses (IN_USE) while any host has it mounted or its image open;
   * it checks under the volume's operation lock.
   */
  removeVolume(tenant: string, volume: string, options: { keepImage: boolean }, signal?: AbortSignal): Promise<void>;
}

/** Maps the master's error codes (src/api/errors.ts) to what volplugin tells Docker. */
export function pluginCodeOf(code: ErrorCode): PluginError['code'] {
  switch (code) {
    case 'INVALID_NAME':
      return 'INVALID_NAME';
    case 'INVALID_OPTION':
    case 'LIMIT_EXCEEDED':
    case 'QUOTA_EXCEEDED':
    case 'POOL_NOT_FOUND':
    case 'VOLUME_EXISTS':
    case 'IMAGE_EXISTS':
      return 'INVALID_OPTION';
    case 'TENANT_NOT_FOUND':
      return 'TENANT_NOT_FOUND';
    case 'VOLUME_NOT_FOUND':
      return 'VOLUME_NOT_FOUND';
    case 'VOLUME_MOUNTED':
    case 'VOLUME_IN_USE':
    case 'VOLUME_HAS_CLONES':
      return 'IN_USE';
    case 'STATE_UNAVAILABLE':
      return 'STATE_UNAVAILABLE';
    case 'MASTER_TIMEOUT':
    case 'MASTER_UNREACHABLE':
    case 'BAD_RESPONSE':
    case 'UNAUTHORIZED':
    case 'FORBIDDEN':
    case 'STORAGE_UNAVAILABLE':
      return 'MASTER_UNAVAILABLE';
    default:
      return 'INTERNAL';
  }
}

function translate(err: unknown, what: string): Error {
  if (err instanceof ApiError) {
    const hint =
      err.code === 'UNAUTHORIZED'
        ? " (give volplugin a host token with --token-file: volcli token create --role host --name HOST --file FILE)"
        : err.code === 'FORBIDDEN'
          ? ' (an admin can do it with volcli)'
          : '';
    return new PluginError(pluginCodeOf(err.code), `${err.message}${hint}`, { cause: err });
  }
  if (err instanceof PluginError) return err;
  return new PluginError('INTERNAL', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** Stops waiting for the master when `signal` aborts (the request itself has ApiClient's deadline). */
async function race<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new PluginError('TIMEOUT', 'the request was canceled'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    work.catch(() => undefined);
  }
}

/** MasterClient on the shared volmaster API client (src/api/client.ts). */
export class ApiMasterClient implements MasterClient {
  constructor(private readonly api: ApiClient) {}

  async getVolume(tenant: string, volume: string, signal?: AbortSignal): Promise<VolumeRecord> {
    try {
      return await race(this.api.getVolume(tenant, volume), signal);
    } catch (err) {
      throw translate(err, `reading volume ${tenant}/${volume} from volmaster`);
    }
  }

  async listVolumes(signal?: AbortSignal): Promise<VolumeRecord[]> {
    try {
      return await race(this.api.listVolumes(), signal);
    } catch (err) {
      throw translate(err, 'listing volumes from volmaster');
    }
  }

  async createVolume(tenant: string, volume: string, options: Record<string, string>, signal?: AbortSignal): Promise<VolumeRecord> {
    try {
      return (await race(this.api.createVolume(tenant, volume, options), signal)).volume;
    } catch (err) {
      throw translate(err, `creating volume ${tenant}/${volume}`);
    }
  }

  async removeVolume(tenant: string, volume: string, options: { keepImage: boolean }, signal?: AbortSignal): Promise<void> {
    try {
      await race(this.api.removeVolume(tenant, volume, { keepImage: options.keepImage }), signal);
    } catch (err) {
      throw translate(err, `removing volume ${tenant}/${volume}`);
    }
  }
}
