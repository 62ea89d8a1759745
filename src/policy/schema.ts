// The TypeBox schemas of what users write: tenant policies (with their limits) and driver and
// runtime options. They are the validators, not documentation: validate.ts and options.ts check
// every policy and option set against them first (no coercion: `"write-iops": true` and
// `"pool": 5` are errors naming the field), the master validates request bodies with them, and the
// state layer checks every tenant record it reads back from etcd with them. The semantic rules a
// JSON schema cannot say well (sizes with units, durations, a filesystem that exists) follow in
// validate.ts, options.ts and limits.ts. The volume's resolved options are here too (the records
// embed them).

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { RETENTION_EXPECTED, RetentionSchema, RetentionTiersSchema } from './retention.js';

const optional = <T extends TSchema>(schema: T) => Type.Optional(schema);

/** `x-code` tells the master's validator which error code a problem inside this schema gets. */
const code = (c: 'INVALID_POLICY' | 'INVALID_OPTION') => ({ 'x-code': c });

// ---- tenant policies --------------------------------------------------------------------------

const sizeText = (example: string) =>
  Type.String({ 'x-expected': `a string with a unit (KB, MB, GB, TB), e.g. "${example}"`, description: `A size with a unit (binary: 1 MB = 1024 KB), e.g. "${example}"` });

/**
 * How a snapshot of a mounted volume is taken: `crash` (the default: as after a power cut) or
 * `fsfreeze` (the host that mounts it freezes the filesystem for the instant of the snapshot;
 * docs/snapshots.md).
 */
export const CONSISTENCY_MODES = ['crash', 'fsfreeze'] as const;
export type ConsistencyMode = (typeof CONSISTENCY_MODES)[number];
export const ConsistencySchema = Type.Union([Type.Literal('crash'), Type.Literal('fsfreeze')], {
  'x-expected': '"crash" or "fsfreeze"',
  description: 'crash (default): as after a power cut; fsfreeze: the mounting host freezes the filesystem for the snapshot',
});

const rateLimitText = (minimum: number, description: string) =>
  Type.Object(
    {
      'write-iops': optional(Type.Integer({ minimum })),
      'read-iops': optional(Type.Integer({ minimum })),
      'write-bps': optional(Type.Integer({ minimum })),
      'read-bps': optional(Type.Integer({ minimum })),
    },
    { additionalProperties: false, description },
  );

// Backups (src/backups, docs/backups.md): where they go and how often. The target and the hook are
// the tenant's (admin's) alone: no driver option can name a directory or a program.
const pathText = (description: string) => Type.String({ description, 'x-expected': 'a string: an absolute path' });

export const BackupTargetSchema = Type.Union(
  [
    Type.Object({ directory: pathText('A local directory or a mounted NFS share (under one of the daemons\' --backup-allow directories)') }, { additionalProperties: false }),
    Type.Object(
      {
        ceph: Type.Object(
          {
            conf: pathText("The second cluster's ceph.conf (the same cluster's, with another pool, also works)"),
            keyring: optional(pathText('Its keyring; else what the conf names')),
            client: optional(Type.String({ description: 'The cephx id without "client." (default admin)' })),
            pool: Type.String({ description: 'The pool the replica images go to' }),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
  ],
  { 'x-expected': 'an object: {"directory": "/backups"} or {"ceph": {"conf": "/etc/ceph/backup.conf", "pool": "backups"}}' },
);

export const BackupBlockSchema = Type.Object(
  {
    frequency: optional(Type.String({ description: 'Go duration, at least 1s (default 24h)', examples: ['24h'] })),
    // Default 7; the chains the kept backups need stay too (docs/backups.md, "Retention").
    keep: optional(RetentionSchema),
    target: optional(BackupTargetSchema),
    hook: optional(
      Type.Array(Type.String(), {
        minItems: 1,
        maxItems: 32,
        description: 'A program and its arguments, run without a shell after each backup with TENANT/VOLUME, SNAPSHOT and FILE appended (the program must be on the daemons\' --backup-hook-allow)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const DefaultOptionsSchema = Type.Object(
  {
    pool: Type.String({ description: 'Ceph pool (required)', 'x-hint': 'name the Ceph pool for this tenant\'s volumes, e.g. "pool": "rbd"' }),
    size: optional(sizeText('10GB')),
    snapshots: optional(Type.Boolean()),
    snapshot: optional(
      Type.Object(
        {
          frequency: optional(Type.String({ description: 'Go duration, at least 1s', examples: ['30m'] })),
          keep: optional(RetentionSchema),
          consistency: optional(ConsistencySchema),
        },
        { additionalProperties: false },
      ),
    ),
    filesystem: optional(Type.String({ description: 'A key of `filesystems` (default ext4)' })),
    ephemeral: optional(Type.Boolean()),
    'rate-limit': optional(rateLimitText(0, 'Operations or bytes per second; 0 is unlimited.')),
    backups: optional(Type.Boolean({ description: 'Back volumes up on schedule (needs backup.target)' })),
    backup: optional(BackupBlockSchema),
  },
  { additionalProperties: false, 'x-hint': 'it must contain at least "pool", e.g. {"default-options": {"pool": "rbd"}}' },
);

export const LimitsSchema = Type.Object(
  {
    size: optional(sizeText('100GB')),
    'total-size': optional(sizeText('1TB')),
    volumes: optional(Type.Integer({ minimum: 0, description: 'How many volumes the tenant may have (creates in progress count)' })),
    snapshots: optional(Type.Integer({ minimum: 1, description: 'How many snapshots one volume may have, and the largest snapshot keep' })),
    pools: optional(Type.Array(Type.String(), { minItems: 1, description: 'The pools volumes may be in' })),
    'rate-limit': optional(rateLimitText(1, 'Ceilings: every volume has a rate limit of at most this (0, unlimited, is above any ceiling).')),
  },
  { additionalProperties: false, description: 'What no driver option can exceed. Absent: no limit.' },
);

export const TenantPolicySchema = Type.Object(
  {
    'default-options': DefaultOptionsSchema,
    filesystems: optional(
      Type.Record(Type.String(), Type.String({ description: 'The format command; `%` is the device, `%%` a literal %' }), {
        description: 'Default: {"ext4": "mkfs.ext4 -m0 -E lazy_journal_init=1 %"}',
      }),
    ),
    limits: optional(LimitsSchema),
  },
  { title: 'TenantPolicy', additionalProperties: false, ...code('INVALID_POLICY') },
);

export type TenantPolicyInput = Static<typeof TenantPolicySchema>;
export type PolicyLimitsInput = Static<typeof LimitsSchema>;

// ---- driver and runtime options ----------------------------------------------------------------
// Values arrive as strings from Docker (`--opt k=v`) and volcli; JSON clients may also send the
// option's own JSON type (a boolean for snapshots, a whole number for a count). Nothing else: a
// number is not a pool name.

const boolOption = Type.Union([Type.Boolean(), Type.String()], {
  'x-expected': "true or false (or, as a string, one of Go's ParseBool spellings: 1 t T TRUE true True 0 f F FALSE false False)",
});
const countOption = Type.Union([Type.Integer(), Type.String()], { 'x-expected': 'a whole number (or its digits as a string)' });
const keepOption = Type.Union([Type.Integer(), Type.String(), RetentionTiersSchema], {
  'x-expected': `${RETENTION_EXPECTED}; as a string "20" or "last:3,hourly:24,daily:7"`,
});

const DRIVER_OPTIONS = {
  pool: optional(Type.String({ 'x-expected': 'a string: a Ceph pool name' })),
  size: optional(Type.String({ 'x-expected': 'a string: a size such as "10GB" (a bare number is MB)' })),
  snapshots: optional(boolOption),
  'snapshots.frequency': optional(Type.String({ 'x-expected': 'a string: a Go duration such as "30m"' })),
  'snapshots.keep': optional(keepOption),
  'snapshots.consistency': optional(Type.String({ 'x-expected': 'a string: "crash" or "fsfreeze"' })),
  filesystem: optional(Type.String({ 'x-expected': "a string: one of the tenant's filesystems" })),
  ephemeral: optional(boolOption),
  'rate-limit.write.iops': optional(countOption),
  'rate-limit.read.iops': optional(countOption),
  'rate-limit.read.bps': optional(countOption),
  'rate-limit.write.bps': optional(countOption),
  backups: optional(boolOption),
  'backups.frequency': optional(Type.String({ 'x-expected': 'a string: a Go duration such as "24h"' })),
  'backups.keep': optional(keepOption),
};

/** Spellings users borrow from the policy file, mapped to the option key they meant (for "did you mean"). */
export const OPTION_ALIASES: Readonly<Record<string, string>> = {
  'snapshot.frequency': 'snapshots.frequency',
  'snapshot.keep': 'snapshots.keep',
  'snapshot.consistency': 'snapshots.consistency',
  'rate-limit.write-iops': 'rate-limit.write.iops',
  'rate-limit.read-iops': 'rate-limit.read.iops',
  'rate-limit.write-bps': 'rate-limit.write.bps',
  'rate-limit.read-bps': 'rate-limit.read.bps',
  snapshot: 'snapshots',
  backup: 'backups',
  'backup.frequency': 'backups.frequency',
  'backup.keep': 'backups.keep',
};

const optionObject = { additionalProperties: false, 'x-key-noun': 'option', 'x-aliases': OPTION_ALIASES, ...code('INVALID_OPTION') };

export const DriverOptionValuesSchema = Type.Object(DRIVER_OPTIONS, {
  ...optionObject,
  description: 'Option keys as for `docker volume create --opt`, e.g. {"size": "10GB", "snapshots.keep": "5"}',
});

const RUNTIME_OPTIONS = {
  snapshots: DRIVER_OPTIONS.snapshots,
  'snapshots.frequency': DRIVER_OPTIONS['snapshots.frequency'],
  'snapshots.keep': DRIVER_OPTIONS['snapshots.keep'],
  'snapshots.consistency': DRIVER_OPTIONS['snapshots.consistency'],
  'rate-limit.write.iops': DRIVER_OPTIONS['rate-limit.write.iops'],
  'rate-limit.read.iops': DRIVER_OPTIONS['rate-limit.read.iops'],
  'rate-limit.read.bps': DRIVER_OPTIONS['rate-limit.read.bps'],
  'rate-limit.write.bps': DRIVER_OPTIONS['rate-limit.write.bps'],
  backups: DRIVER_OPTIONS.backups,
  'backups.frequency': DRIVER_OPTIONS['backups.frequency'],
  'backups.keep': DRIVER_OPTIONS['backups.keep'],
};

export const RuntimeOptionValuesSchema = Type.Object(RUNTIME_OPTIONS, {
  ...optionObject,
  'x-key-noun': 'runtime option',
  description: 'The options that may change while a volume is in use, e.g. {"snapshots.keep": "5"}',
});

// ---- the resolved options of a volume (what its record holds) ----------------------------------

export const RateLimitSchema = Type.Object(
  {
    writeIops: Type.Integer({ minimum: 0 }),
    readIops: Type.Integer({ minimum: 0 }),
    writeBps: Type.Integer({ minimum: 0 }),
    readBps: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false, description: 'Operations or bytes per second; 0 is unlimited.' },
);

export const SnapshotScheduleSchema = Type.Object(
  {
    frequency: Type.String({ description: 'Go duration, e.g. "30m"' }),
    keep: RetentionSchema,
    /** Absent: crash (records from before it existed, and every crash-consistent volume). */
    consistency: Type.Optional(ConsistencySchema),
  },
  { additionalProperties: false },
);

/** A volume's backup schedule; the target and hook come from its tenant's policy when a backup runs. */
export const BackupScheduleSchema = Type.Object(
  {
    frequency: Type.String({ description: 'Go duration, e.g. "24h"' }),
    keep: RetentionSchema,
  },
  { additionalProperties: false },
);

export const VolumeOptionsSchema = Type.Object(
  {
    pool: Type.String(),
    sizeBytes: Type.Integer({ minimum: 1 }),
    snapshots: Type.Boolean(),
    snapshot: SnapshotScheduleSchema,
    filesystem: Type.String(),
    ephemeral: Type.Boolean(),
    rateLimit: RateLimitSchema,
    // Optional: records written before backups existed have neither (no backups).
    backups: optional(Type.Boolean()),
    backup: optional(BackupScheduleSchema),
  },
  { additionalProperties: false },
);

export const RuntimeOptionsSchema = Type.Object(
  {
    snapshots: Type.Boolean(),
    snapshot: SnapshotScheduleSchema,
    rateLimit: RateLimitSchema,
    backups: optional(Type.Boolean()),
    backup: optional(BackupScheduleSchema),
  },
  { title: 'RuntimeOptions', additionalProperties: false },
);
