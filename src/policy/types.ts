// What a volume is made of, after a tenant policy's default-options and the driver options
// (`--opt key=value`) have been merged and validated. src/policy/ owns parsing and merging; every
// other layer receives these already-checked values. The types derive from the schemas
// (schema.ts), which are also the validators: they are never written twice.

import type { Static } from '@sinclair/typebox';
import type { DefaultOptionsSchema, LimitsSchema, RateLimitSchema, RuntimeOptionsSchema, SnapshotScheduleSchema, VolumeOptionsSchema } from './schema.js';

/** Rate limits in operations or bytes per second; 0 means unlimited. */
export type RateLimit = Static<typeof RateLimitSchema>;

/** `frequency`: a Go-style duration as written by the user ("30m"); `keep`: supervisor snapshots kept (>= 1). */
export type SnapshotSchedule = Static<typeof SnapshotScheduleSchema>;

/** pool, sizeBytes, snapshot settings, filesystem (a key of the tenant's `filesystems`), ephemeral (removed with its image by `docker volume rm`), rate limits. */
export type VolumeOptions = Static<typeof VolumeOptionsSchema>;

/** The options that may change while a volume is in use (no remount). */
export type RuntimeOptions = Static<typeof RuntimeOptionsSchema>;

/** A tenant's limits as users write them (see limits.ts for their meaning). */
export type PolicyLimits = Static<typeof LimitsSchema>;

/** A tenant policy as users write it (JSON, kebab-case keys), after validation. */
export interface TenantPolicy {
  'default-options': Static<typeof DefaultOptionsSchema>;
  /** filesystem name -> its format command, containing `%` (the device). */
  filesystems: Record<string, string>;
  /** What driver options cannot exceed; absent: no limits. */
  limits?: PolicyLimits;
}
