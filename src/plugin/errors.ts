// Errors volplugin hands to Docker. Docker shows the Err text to the person who ran `docker ...`,
// so every message says what happened and what to do about it.

export type PluginErrorCode =
  /** The volume name is not TENANT/VOLUME or has characters volplugin does not allow. */
  | 'INVALID_NAME'
  /** Unknown driver option or a bad value. */
  | 'INVALID_OPTION'
  | 'VOLUME_NOT_FOUND'
  | 'TENANT_NOT_FOUND'
  /** Another host holds the volume's mount lock. */
  | 'LOCKED'
  /** The volume is mounted on this host (remove refused). */
  | 'IN_USE'
  /** The device cannot be read, or holds what volplugin must not format or cannot mount. */
  | 'UNSAFE_DEVICE'
  /** The volume is not mounted on this host (a request for its holder reached another host). */
  | 'NOT_MOUNTED'
  /** This host lost the volume (another host took it, or its lease was not renewed in time). */
  | 'LOST'
  | 'MASTER_UNAVAILABLE'
  | 'STATE_UNAVAILABLE'
  /** The request took longer than volplugin allows itself (dockerd waits on it). */
  | 'TIMEOUT'
  | 'BAD_REQUEST'
  | 'INTERNAL';

export class PluginError extends Error {
  readonly code: PluginErrorCode;
  constructor(code: PluginErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PluginError';
    this.code = code;
  }
}

export function isPluginError(err: unknown, code?: PluginErrorCode): err is PluginError {
  return err instanceof PluginError && (code === undefined || err.code === code);
}

/** The message of anything thrown, for an Err or a log line (defined once, in src/common/). */
export { messageOf } from '../common/errors.js';
