// The error catalogue of the volmaster API: every error a client can see, by stable code, with its
// HTTP status. The master answers errors as `{ code, message, field? }`; clients compare `code`,
// never the message. Codes with status 0 are made by ApiClient itself (the master never sends them).

export const ERROR_CATALOGUE = {
  // 400: the request is wrong; nothing was written.
  INVALID_JSON: { status: 400, description: 'The body is not JSON; the message names the line and column.' },
  INVALID_POLICY: { status: 400, description: 'The tenant policy is not valid; `field` is its dotted path.' },
  INVALID_NAME: { status: 400, description: 'A tenant or volume name is not allowed; `field` is "tenant" or "volume".' },
  INVALID_OPTION: { status: 400, description: 'A driver or runtime option is unknown or has a value of the wrong type; `field` is the key.' },
  INVALID_REQUEST: { status: 400, description: 'The request does not match the route schema (body, query or parameters).' },
  POOL_NOT_FOUND: { status: 400, description: 'The volume\'s pool does not exist in the Ceph cluster.' },
  // 401, 403
  UNAUTHORIZED: { status: 401, description: 'The master requires a bearer token and the request had none, or one it does not know (wrong, or revoked).' },
  FORBIDDEN: { status: 403, description: "The token's role may not do this (host and read-only tokens can do less than admin); the message says what it may do." },
  // 404
  NOT_FOUND: { status: 404, description: 'No such route.' },
  TENANT_NOT_FOUND: { status: 404, description: 'No such tenant (upload its policy first).' },
  REVISION_NOT_FOUND: { status: 404, description: 'No such revision in the tenant\'s history.' },
  VOLUME_NOT_FOUND: { status: 404, description: 'No such volume.' },
  MOUNT_NOT_FOUND: { status: 404, description: 'The volume is not mounted anywhere.' },
  GROUP_NOT_FOUND: { status: 404, description: 'The consistency group has no snapshots (a group exists while it has some).' },
  SNAPSHOT_NOT_FOUND: { status: 404, description: 'No such snapshot of the volume.' },
  HOST_NOT_FOUND: { status: 404, description: 'No volplugin with that host id reports (it is not running, or its lease expired).' },
  TOKEN_NOT_FOUND: { status: 404, description: 'No token has that name.' },
  ATTACHMENT_NOT_FOUND: { status: 404, description: 'The volume is attached to no host (CSI ControllerPublishVolume).' },
  BACKUP_NOT_FOUND: { status: 404, description: 'No such backup of the volume (or none at or before the time asked for).' },
  OPERATION_NOT_FOUND: { status: 404, description: 'No operation has that id (it never existed, or is older than the history keeps).' },
  // 409: the request is fine but the cluster's state does not allow it now.
  VOLUME_EXISTS: { status: 409, description: 'The volume exists with other options; `field` names the first option that differs.' },
  IMAGE_EXISTS: { status: 409, description: 'An RBD image with the volume\'s name exists but does not belong to it; remove or rename it.' },
  VOLUME_MOUNTED: { status: 409, description: 'The volume is mounted (the message names the host).' },
  VOLUME_IN_USE: { status: 409, description: 'The image has watchers: a client has it open (the message names the address).' },
  VOLUME_IN_GROUP: { status: 409, description: 'The volume is in a consistency group that has snapshots of it; remove those group snapshots first.' },
  VOLUME_HAS_CLONES: { status: 409, description: 'A snapshot of the volume has clones that depend on it.' },
  SNAPSHOT_EXISTS: { status: 409, description: 'A snapshot of that name exists.' },
  BUSY: { status: 409, description: 'Another operation holds the volume\'s lock and did not finish in time; try again.' },
  QUOTA_EXCEEDED: { status: 409, description: "The tenant has as many volumes, or as many bytes, as its limits allow (limits.volumes, limits.total-size); `field` names the limit." },
  SNAPSHOT_LIMIT: { status: 409, description: 'The volume has as many snapshots as its tenant allows (limits.snapshots); remove one first.' },
  TOKEN_EXISTS: { status: 409, description: 'A token of that name exists; revoke it first or choose another name.' },
  VOLUME_ATTACHED: { status: 409, description: 'The volume is attached to another host whose volplugin is alive (the message names it); detach it there first.' },
  ATTACHMENT_DIFFERS: { status: 409, description: 'The volume is attached to this host already, with another readonly flag.' },
  NAME_TAKEN: { status: 409, description: 'The request name (a CSI CreateVolume or CreateSnapshot name) was given for another volume or snapshot, which still exists; the message names it.' },
  BACKUPS_NOT_CONFIGURED: { status: 409, description: "The volume's tenant policy names no backup target (default-options.backup.target)." },
  BACKUP_CHAIN_BROKEN: { status: 409, description: 'A backup the restore needs is missing or damaged in the target (the message names it); restore another backup.' },
  // 413, 415, 422
  PAYLOAD_TOO_LARGE: { status: 413, description: 'The body is larger than the master accepts (1 MiB).' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, description: 'The body must be application/json.' },
  LIMIT_EXCEEDED: { status: 422, description: "An option is beyond the tenant's limits (largest volume, pools, snapshot keep, rate-limit ceilings); `field` is the option." },
  SHRINK_REFUSED: { status: 422, description: 'A resize asked for less than the volume has: volumes only grow (shrinking would cut off data); `field` is "size".' },
  // 5xx
  INTERNAL: { status: 500, description: 'A bug; the volmaster log has the details.' },
  STATE_CORRUPT: { status: 500, description: 'An etcd key holds something that is not a volplugin record (the message names the key).' },
  STORAGE_ERROR: { status: 500, description: 'Ceph refused an operation for a reason other than the ones above (the message has the errno).' },
  FILESYSTEM_NOT_GROWN: { status: 500, description: "A resize grew the image and the record, but the host holding the volume could not grow its filesystem (the message says why); it grows at the volume's next mount." },
  STATE_UNAVAILABLE: { status: 503, description: 'etcd cannot be reached.' },
  STORAGE_UNAVAILABLE: { status: 503, description: 'The Ceph cluster cannot be reached.' },
  BACKUP_TARGET_UNAVAILABLE: { status: 503, description: 'The backup target cannot be used: its directory is missing (an NFS share not mounted?) or not allowed, or its cluster is unreachable (the message says which).' },
  BACKUP_TARGET_FULL: { status: 507, description: 'The backup target has no room left (ENOSPC or a quota); nothing was counted as a backup.' },
  FREEZE_FAILED: {
    status: 503,
    description: 'A volume with snapshots.consistency=fsfreeze could not be frozen on the host that mounts it (no answer, or fsfreeze failed), or its freeze did not hold until the snapshot was taken; no snapshot was kept.',
  },
  // Made by the client.
  MASTER_UNREACHABLE: { status: 0, description: 'ApiClient could not connect to the master.' },
  MASTER_TIMEOUT: { status: 0, description: 'The master did not answer in time.' },
  BAD_RESPONSE: { status: 0, description: 'The master\'s answer was not what the API promises (wrong version?).' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function statusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].status;
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, code);
}

/** An error with a catalogue code. Thrown by the master's handlers; ApiClient throws it too. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { field?: string; status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApiError';
    this.code = code;
    this.status = options?.status ?? statusOf(code);
    this.field = options?.field;
  }
}

export function isApiError(err: unknown, code?: ErrorCode): err is ApiError {
  return err instanceof ApiError && (code === undefined || err.code === code);
}
