// Errors of snapshot operations, each with a stable code. The master maps the codes to HTTP
// statuses through the API's error catalogue; volcli prints the message as is. Every one of them
// is raised before anything was changed.

export type SnapshotErrorCode =
  /** The volume has no record (404). */
  | 'VOLUME_NOT_FOUND'
  /** A copy's target tenant has no policy (404). */
  | 'TENANT_NOT_FOUND'
  /** The volume has no snapshot of that name (404). */
  | 'SNAPSHOT_NOT_FOUND'
  /** A copy's target volume (or its image) exists already (409). */
  | 'VOLUME_EXISTS'
  /** Rollback of a mounted volume, or of an image some client has open (409). */
  | 'VOLUME_IN_USE'
  /** Removal of a snapshot that clones depend on (409). */
  | 'SNAPSHOT_IN_USE'
  /** A driver option that a copy cannot take (size, filesystem) (400). */
  | 'INVALID_COPY_OPTION'
  /** A malformed snapshot name in a request (400). */
  | 'INVALID_SNAPSHOT_NAME'
  /** The volume's record names an image that is not in Ceph (500: the state is inconsistent). */
  | 'IMAGE_MISSING';

export const snapshotErrorStatus: Record<SnapshotErrorCode, number> = {
  VOLUME_NOT_FOUND: 404,
  TENANT_NOT_FOUND: 404,
  SNAPSHOT_NOT_FOUND: 404,
  VOLUME_EXISTS: 409,
  VOLUME_IN_USE: 409,
  SNAPSHOT_IN_USE: 409,
  INVALID_SNAPSHOT_NAME: 400,
  INVALID_COPY_OPTION: 400,
  IMAGE_MISSING: 500,
};

export class SnapshotError extends Error {
  readonly code: SnapshotErrorCode;
  constructor(code: SnapshotErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SnapshotError';
    this.code = code;
  }

  get status(): number {
    return snapshotErrorStatus[this.code];
  }
}

export function isSnapshotError(err: unknown, code?: SnapshotErrorCode): err is SnapshotError {
  return err instanceof SnapshotError && (code === undefined || err.code === code);
}

/** An external call did not answer in time. */
export class TimeoutError extends Error {
  readonly code = 'TIMEOUT';
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Resolves or rejects like `promise`, or rejects with TimeoutError after `ms`. The operation itself
 * is not cancelled (librbd calls cannot be): the caller stops waiting for it.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  if (!Number.isFinite(ms) || ms <= 0) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
    timer.unref?.();
  });
  promise.catch(() => undefined); // a late rejection after the timeout must not go unhandled
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
