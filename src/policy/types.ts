// What a volume is made of, after a tenant policy's default-options and the driver options
// (`--opt key=value`) have been merged and validated. src/policy/ owns parsing and merging; every
// other layer receives these already-checked values.

/** Rate limits in operations or bytes per second; 0 means unlimited. */
export interface RateLimit {
  writeIops: number;
  readIops: number;
  writeBps: number;
  readBps: number;
}

export interface SnapshotSchedule {
  /** Go-style duration as written by the user ("30m", "1h30m"). */
  frequency: string;
  /** How many supervisor snapshots remain after pruning (>= 1). */
  keep: number;
}

export interface VolumeOptions {
  pool: string;
  /** Image size in bytes. */
  sizeBytes: number;
  snapshots: boolean;
  snapshot: SnapshotSchedule;
  /** A key of the tenant's `filesystems` map. */
  filesystem: string;
  /** Removed (image and all) by `docker volume rm`. */
  ephemeral: boolean;
  rateLimit: RateLimit;
}

/** The options that may change while a volume is in use (no remount). */
export interface RuntimeOptions {
  snapshots: boolean;
  snapshot: SnapshotSchedule;
  rateLimit: RateLimit;
}

/** A tenant policy as users write it (JSON, kebab-case keys), after validation. */
export interface TenantPolicy {
  'default-options': Record<string, unknown>;
  /** filesystem name -> POSIX shell command containing `%` (the device). */
  filesystems: Record<string, string>;
}
