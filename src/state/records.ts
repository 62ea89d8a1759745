// The records volplugin keeps in etcd, one JSON document per key (see keys.ts for where). Every
// component reads and writes them through src/state/, never by hand. The types derive from the
// schemas (schemas.ts) that every record read back is checked against.

import type { Static } from '@sinclair/typebox';
import type {
  AcquisitionRecordSchema,
  HostMountIndexSchema,
  AttachmentRecordSchema,
  RequestNameSchema,
  BackupEntrySchema,
  BackupRecordSchema,
  AuditEntrySchema,
  OperationRecordSchema,
  ResizeIntentSchema,
  RestoreIntentSchema,
  CreateIntentSchema,
  ExclusionRecordSchema,
  HostAliveRecordSchema,
  VolumeFormatSchema,
  HostAnswerSchema,
  HostRequestSchema,
  HostReportSchema,
  MountRecordSchema,
  OperationLockRecordSchema,
  TenantRecordSchema,
  TenantUsageReport,
  TenantUsageSchema,
  TokenRecordSchema,
  VolumeRecordSchema,
} from './schemas.js';
import type { TenantPolicy } from '../policy/types.js';

export type { Role } from './schemas.js';

/** A tenant's policy revision: `revision` is 1 for the first upload, +1 for each later one; every revision is kept under tenant-history. */
export type TenantRecord = Omit<Static<typeof TenantRecordSchema>, 'policy'> & { policy: TenantPolicy };

/**
 * A volume. `pool`/`image` say where the data lives (the image name is unique per tenant/volume
 * pair, see src/policy/names.ts); `runtime` (snapshots, rate limits) changes at run time without
 * remount; `policyRevision` is the tenant policy revision it was created from; `formatCommand` is
 * the tenant's command for its filesystem at creation time (`%` is the device), which volplugin
 * runs on first mount, when blkid finds no filesystem on the device; `source` is set for a volume
 * cloned from a snapshot.
 */
export type VolumeRecord = Static<typeof VolumeRecordSchema>;

/**
 * The cross-host mount lock of one volume. It exists only while a host has it mounted and is bound
 * to that host's etcd lease: a host that dies loses it after the lease TTL.
 */
export type MountRecord = Static<typeof MountRecordSchema>;

/** What a volplugin reports about itself, refreshed by its convergence loop; bound to its lease. */
export type HostReport = Static<typeof HostReportSchema>;

/** A create in progress (intents.ts). */
export type CreateIntent = Static<typeof CreateIntentSchema>;

export type OperationLockRecord = Static<typeof OperationLockRecordSchema>;

/** A tenant's volumes (creates in progress included) and their sizes added up (usage.ts). */
export type TenantUsage = Static<typeof TenantUsageSchema>;

/** A tenant's usage beside its limits (`volcli tenant usage`). */
export type UsageReport = Static<typeof TenantUsageReport>;

/** An API token as stored: its name, role and SHA-256 (tokens.ts). */
export type TokenRecord = Static<typeof TokenRecordSchema>;

/** A request to one host and, once it acted, its answer (host-requests.ts). */
export type HostRequest = Static<typeof HostRequestSchema>;
export type HostAnswer = Static<typeof HostAnswerSchema>;

/** The last acquisition of a volume's mount lock (mounts.ts: who may take a vanished lock back). */
export type AcquisitionRecord = Static<typeof AcquisitionRecordSchema>;
export type HostMountIndex = Static<typeof HostMountIndexSchema>;

/** A remove or rollback in progress: no mount lock may be taken while it exists (exclusion.ts). */
export type ExclusionRecord = Static<typeof ExclusionRecordSchema>;

/** The one live volplugin process of a host id (hosts.ts). */
export type HostAliveRecord = Static<typeof HostAliveRecordSchema>;

/** A volume's format marks (volumes.ts markFormat). */
export type VolumeFormat = Static<typeof VolumeFormatSchema>;

/** Where a CSI CO has published a volume (attachments.ts). */
export type AttachmentRecord = Static<typeof AttachmentRecordSchema>;

/** A client's request name and what it made (request-names.ts). */
export type RequestNameRecord = Static<typeof RequestNameSchema>;
/** A volume's backups as etcd keeps them (src/backups; the target's manifest is the truth for restores). */
export type BackupRecord = Static<typeof BackupRecordSchema>;
export type BackupEntry = Static<typeof BackupEntrySchema>;

/** A long operation and its progress (progress.ts). */
export type OperationRecord = Static<typeof OperationRecordSchema>;

/** One change made through the API (audit.ts). */
export type AuditEntry = Static<typeof AuditEntrySchema>;

/** A resize whose image may still be smaller than its record says (volumes.ts growVolume). */
export type ResizeIntent = Static<typeof ResizeIntentSchema>;

/** A restore into a volume that may have left a scratch or replaced image (src/backups/restore.ts). */
export type RestoreIntent = Static<typeof RestoreIntentSchema>;
