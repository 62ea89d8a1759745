// The wire schemas of backups (src/master/routes/backups.ts, ApiClient, volcli volume backup): what
// a backup, a listing, a restore and a verification look like on the API. The shapes are
// src/backups' (BackupView, BackupListing, RestoreResult, VerifyReport), written once here as
// TypeBox so that the routes validate and serialise with them.

import { Type, type Static } from '@sinclair/typebox';
import { DriverOptionValuesSchema } from '../policy/schema.js';

export const BackupSchema = Type.Object(
  {
    name: Type.String({ description: 'The backup, named after the vb-* snapshot it was taken from' }),
    parent: Type.Union([Type.String(), Type.Null()], { description: 'The backup it is a diff from; null: a full backup' }),
    kind: Type.Union([Type.Literal('full'), Type.Literal('incremental')]),
    bytes: Type.Integer({ description: 'Bytes stored in the target' }),
    dataBytes: Type.Integer({ description: 'Image data in it' }),
    sizeBytes: Type.Integer({ description: 'The volume size it restores to' }),
    at: Type.String({ description: 'When it was complete' }),
    ms: Type.Integer({ description: 'How long it took' }),
    location: Type.String({ description: 'Its file, or pool/image@snapshot of the replica' }),
  },
  { title: 'Backup' },
);

export const BackupListSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    target: Type.String(),
    backups: Type.Array(BackupSchema, { description: 'Oldest first' }),
    lastError: Type.Optional(Type.Object({ at: Type.String(), message: Type.String() }, { description: 'The last failed backup (cleared by a good one)' })),
    lastHook: Type.Optional(Type.Object({ at: Type.String(), backup: Type.String(), ok: Type.Boolean(), message: Type.Optional(Type.String()) })),
  },
  { title: 'BackupList' },
);

export const BackupRestoreBody = Type.Object(
  {
    backup: Type.Optional(Type.String({ description: "A backup's name (default: the newest, or the newest at or before `at`)", maxLength: 256 })),
    at: Type.Optional(Type.String({ format: 'date-time', 'x-expected': 'an ISO time such as "2026-12-01T12:00:00Z"', description: 'Restore the newest backup at or before this time' })),
    into: Type.Optional(
      Type.Object(
        { tenant: Type.String(), volume: Type.String(), options: Type.Optional(DriverOptionValuesSchema) },
        { additionalProperties: false, description: 'A new volume to restore into; absent: into the volume itself (refused while mounted)' },
      ),
    ),
  },
  { additionalProperties: false },
);

export const BackupRestoreSchema = Type.Object(
  {
    backup: Type.String(),
    tenant: Type.String(),
    volume: Type.String(),
    pool: Type.String(),
    image: Type.String(),
    sizeBytes: Type.Integer(),
    created: Type.Boolean({ description: 'Whether a new volume was made' }),
    ms: Type.Integer(),
  },
  { title: 'BackupRestore' },
);

export const BackupVerifySchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    target: Type.String(),
    ok: Type.Boolean(),
    backups: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), problems: Type.Array(Type.String()) })),
    problems: Type.Array(Type.String(), { description: 'Problems of the target as a whole' }),
  },
  { title: 'BackupVerify' },
);

export type BackupEntryBody = Static<typeof BackupSchema>;
export type BackupListBody = Static<typeof BackupListSchema>;
export type BackupRestoreBodyIn = Static<typeof BackupRestoreBody>;
export type BackupRestoreResultBody = Static<typeof BackupRestoreSchema>;
export type BackupVerifyBody = Static<typeof BackupVerifySchema>;
