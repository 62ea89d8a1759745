// Errors as CSI wants them: a gRPC status code from the spec's tables and a message for a person
// (the CO may show it to users), with empty details. The master's error codes (src/api/errors.ts)
// and the host agent's (src/plugin/errors.ts) map to one code each; the RPCs give NOT_FOUND and
// the like their own meaning where the spec asks for one.

import { status } from '@grpc/grpc-js';
import { ApiError, type ErrorCode } from '../api/errors.js';
import { messageOf } from '../common/errors.js';
import { GrowError } from '../mapper/grow.js';
import { PluginError, type PluginErrorCode } from '../plugin/errors.js';
import { isPolicyError } from '../policy/errors.js';

export { status };

/** A failed RPC: the status code the CO acts on and what to tell its user. */
export class CsiError extends Error {
  constructor(
    readonly code: status,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CsiError';
  }
}

export const invalidArgument = (message: string) => new CsiError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new CsiError(status.NOT_FOUND, message);
export const failedPrecondition = (message: string) => new CsiError(status.FAILED_PRECONDITION, message);
export const alreadyExists = (message: string) => new CsiError(status.ALREADY_EXISTS, message);
export const outOfRange = (message: string) => new CsiError(status.OUT_OF_RANGE, message);

/** INVALID_ARGUMENT naming `field` when it is empty (proto3 sends an unset string as ""). */
export function requireField(value: string | null | undefined, field: string): string {
  if (value === undefined || value === null || value === '') throw invalidArgument(`${field} is required`);
  return value;
}

const API_CODES: Partial<Record<ErrorCode, status>> = {
  VOLUME_NOT_FOUND: status.NOT_FOUND,
  SNAPSHOT_NOT_FOUND: status.NOT_FOUND,
  HOST_NOT_FOUND: status.NOT_FOUND,
  ATTACHMENT_NOT_FOUND: status.NOT_FOUND,
  TENANT_NOT_FOUND: status.INVALID_ARGUMENT,
  INVALID_JSON: status.INVALID_ARGUMENT,
  INVALID_POLICY: status.INVALID_ARGUMENT,
  INVALID_NAME: status.INVALID_ARGUMENT,
  INVALID_OPTION: status.INVALID_ARGUMENT,
  INVALID_REQUEST: status.INVALID_ARGUMENT,
  POOL_NOT_FOUND: status.INVALID_ARGUMENT,
  VOLUME_EXISTS: status.ALREADY_EXISTS,
  IMAGE_EXISTS: status.ALREADY_EXISTS,
  NAME_TAKEN: status.ALREADY_EXISTS,
  SNAPSHOT_EXISTS: status.ALREADY_EXISTS,
  ATTACHMENT_DIFFERS: status.ALREADY_EXISTS,
  VOLUME_ATTACHED: status.FAILED_PRECONDITION,
  VOLUME_MOUNTED: status.FAILED_PRECONDITION,
  VOLUME_IN_USE: status.FAILED_PRECONDITION,
  VOLUME_HAS_CLONES: status.FAILED_PRECONDITION,
  BUSY: status.ABORTED,
  QUOTA_EXCEEDED: status.RESOURCE_EXHAUSTED,
  SNAPSHOT_LIMIT: status.RESOURCE_EXHAUSTED,
  UNAUTHORIZED: status.UNAUTHENTICATED,
  FORBIDDEN: status.PERMISSION_DENIED,
  STATE_UNAVAILABLE: status.UNAVAILABLE,
  STORAGE_UNAVAILABLE: status.UNAVAILABLE,
  MASTER_UNREACHABLE: status.UNAVAILABLE,
  MASTER_TIMEOUT: status.UNAVAILABLE,
};

const PLUGIN_CODES: Partial<Record<PluginErrorCode, status>> = {
  INVALID_NAME: status.INVALID_ARGUMENT,
  INVALID_OPTION: status.INVALID_ARGUMENT,
  BAD_REQUEST: status.INVALID_ARGUMENT,
  VOLUME_NOT_FOUND: status.NOT_FOUND,
  TENANT_NOT_FOUND: status.NOT_FOUND,
  LOCKED: status.FAILED_PRECONDITION,
  IN_USE: status.FAILED_PRECONDITION,
  LOST: status.FAILED_PRECONDITION,
  NOT_MOUNTED: status.NOT_FOUND,
  UNSAFE_DEVICE: status.FAILED_PRECONDITION,
  MASTER_UNAVAILABLE: status.UNAVAILABLE,
  STATE_UNAVAILABLE: status.UNAVAILABLE,
  TIMEOUT: status.DEADLINE_EXCEEDED,
};

/** What the controller's credentials need, added to the master's refusal of them. */
function credentialHint(code: ErrorCode): string {
  if (code === 'UNAUTHORIZED') return ' (give volplugin csi a token with --token-file: volcli token create --role provisioner --name csi-controller --file FILE)';
  if (code === 'FORBIDDEN') return ' (the CSI controller needs a token of role provisioner)';
  return '';
}

/** Any error as the CSI status to answer with. */
export function toCsiError(err: unknown): CsiError {
  if (err instanceof CsiError) return err;
  if (err instanceof ApiError) {
    let code = API_CODES[err.code] ?? status.INTERNAL;
    if (err.code === 'LIMIT_EXCEEDED') code = err.field === 'size' ? status.OUT_OF_RANGE : status.INVALID_ARGUMENT;
    return new CsiError(code, `${err.message}${credentialHint(err.code)}`, { cause: err });
  }
  // Growing a filesystem (NodeExpandVolume): deferred is ext without CAP_SYS_RESOURCE, which grows at the next stage.
  if (err instanceof GrowError) return new CsiError(err.code === 'GROW_DEFERRED' ? status.FAILED_PRECONDITION : status.INTERNAL, err.message, { cause: err });
  if (err instanceof PluginError) return new CsiError(PLUGIN_CODES[err.code] ?? status.INTERNAL, err.message, { cause: err });
  if (isPolicyError(err)) return new CsiError(err.code === 'LIMIT_EXCEEDED' && err.field === 'size' ? status.OUT_OF_RANGE : status.INVALID_ARGUMENT, err.message, { cause: err });
  return new CsiError(status.INTERNAL, `volplugin csi: ${messageOf(err)}`, { cause: err });
}

/** The code of an ApiError, or null for anything else. */
export function apiCode(err: unknown): ErrorCode | null {
  return err instanceof ApiError ? err.code : null;
}
