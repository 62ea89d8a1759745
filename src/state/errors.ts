// The errors the state layer throws besides StateUnavailableError (kv.ts: etcd cannot be reached).

import type { OperationLockRecord } from './operations.js';
import type { MountRecord } from './records.js';

/** A stored record is not valid JSON (or not an object): someone wrote the key by hand. */
export class StateCorruptError extends Error {
  readonly code = 'STATE_CORRUPT';
  constructor(
    readonly key: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`etcd key ${key} does not hold a valid volplugin record (${detail}): fix or delete that key`, options);
    this.name = 'StateCorruptError';
  }
}

/** An operation lock on the volume is held by someone else and was not released in time. */
export class StateBusyError extends Error {
  readonly code = 'BUSY';
  constructor(
    readonly tenant: string,
    readonly volume: string,
    readonly holder: Pick<OperationLockRecord, 'reason' | 'owner' | 'since'> | null,
  ) {
    super(
      holder
        ? `volume ${tenant}/${volume} is busy: ${holder.reason} by ${holder.owner} since ${holder.since}; try again later`
        : `volume ${tenant}/${volume} is busy with another operation; try again later`,
    );
    this.name = 'StateBusyError';
  }
}

/** A create would take a tenant beyond a counting limit (usage.ts); `field` names the limit. */
export class QuotaExceededError extends Error {
  readonly code = 'QUOTA_EXCEEDED';
  constructor(
    readonly field: 'limits.volumes' | 'limits.total-size',
    message: string,
  ) {
    super(message);
    this.name = 'QuotaExceededError';
  }
}

/** A host holds the volume's mount lock: a remove or rollback was refused before it changed anything. */
export class StateMountedError extends Error {
  readonly code = 'MOUNTED';
  constructor(
    readonly tenant: string,
    readonly volume: string,
    /** Null when the lock record is unreadable. */
    readonly holder: MountRecord | null,
    /** True when thrown by the exclusion itself, before the excluded operation started. */
    readonly beforeStart = false,
  ) {
    super(
      holder
        ? `volume ${tenant}/${volume} is mounted on host ${holder.host} at ${holder.mountpoint} since ${holder.since}`
        : `volume ${tenant}/${volume} is mounted (its mount lock is unreadable)`,
    );
    this.name = 'StateMountedError';
  }
}
