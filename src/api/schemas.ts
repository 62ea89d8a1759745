// TypeBox schemas of everything on the wire, shared by the master's routes (validation, response
// serialisation, the OpenAPI document) and by ApiClient (types). The records are stored in etcd in
// the same shape (src/state/records.ts); the type checks at the bottom keep both in step.

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { RuntimeOptions, VolumeOptions } from '../policy/types.js';
import type { HostReport, MountRecord, TenantRecord, VolumeRecord } from '../state/records.js';

export const API_VERSION = 'v1';
export const API_PREFIX = `/${API_VERSION}`;

// ---- errors -------------------------------------------------------------------------------

export const ErrorBody = Type.Object(
  {
    code: Type.String({ description: 'Stable error code (see docs/api.md); compare this, not the message.' }),
    message: Type.String({ description: 'What went wrong and what to do, in one line.' }),
    field: Type.Optional(Type.String({ description: 'The field, option key or name the error is about.' })),
  },
  { title: 'Error' },
);
export type ErrorBody = Static<typeof ErrorBody>;

// ---- names --------------------------------------------------------------------------------

const name = (what: string) =>
  Type.String({ description: `${what} name: 1-64 ASCII letters, digits, "_", "-", "."`, maxLength: 256 });

export const TenantParams = Type.Object({ tenant: name('Tenant') });
export const RevisionParams = Type.Object({ tenant: name('Tenant'), revision: Type.Integer({ minimum: 1 }) });
export const VolumeParams = Type.Object({ tenant: name('Tenant'), volume: name('Volume') });
export const SnapshotParams = Type.Object({
  tenant: name('Tenant'),
  volume: name('Volume'),
  snapshot: Type.String({ description: 'Snapshot name', maxLength: 256 }),
});

// ---- policies and options -----------------------------------------------------------------

export const RateLimitSchema = Type.Object(
  {
    writeIops: Type.Integer({ minimum: 0 }),
    readIops: Type.Integer({ minimum: 0 }),
    writeBps: Type.Integer({ minimum: 0 }),
    readBps: Type.Integer({ minimum: 0 }),
  },
  { description: 'Operations or bytes per second; 0 is unlimited.' },
);

export const SnapshotScheduleSchema = Type.Object({
  frequency: Type.String({ description: 'Go duration, e.g. "30m"' }),
  keep: Type.Integer({ minimum: 1 }),
});

export const VolumeOptionsSchema = Type.Object({
  pool: Type.String(),
  sizeBytes: Type.Integer({ minimum: 1 }),
  snapshots: Type.Boolean(),
  snapshot: SnapshotScheduleSchema,
  filesystem: Type.String(),
  ephemeral: Type.Boolean(),
  rateLimit: RateLimitSchema,
});

export const RuntimeOptionsSchema = Type.Object(
  { snapshots: Type.Boolean(), snapshot: SnapshotScheduleSchema, rateLimit: RateLimitSchema },
  { title: 'RuntimeOptions' },
);

/** The policy format, for the OpenAPI document. The master validates with src/policy (better messages). */
export const TenantPolicySchema = Type.Object(
  {
    'default-options': Type.Object(
      {
        pool: Type.String({ description: 'Ceph pool (required)' }),
        size: Type.Optional(Type.String({ description: 'With a unit: KB, MB, GB, TB (binary: 1 MB = 1024 KB)', examples: ['10GB'] })),
        snapshots: Type.Optional(Type.Boolean()),
        snapshot: Type.Optional(
          Type.Object(
            {
              frequency: Type.Optional(Type.String({ description: 'Go duration, at least 1s', examples: ['30m'] })),
              keep: Type.Optional(Type.Integer({ minimum: 1 })),
            },
            { additionalProperties: false },
          ),
        ),
        filesystem: Type.Optional(Type.String({ description: 'A key of `filesystems` (default ext4)' })),
        ephemeral: Type.Optional(Type.Boolean()),
        'rate-limit': Type.Optional(
          Type.Object(
            {
              'write-iops': Type.Optional(Type.Integer({ minimum: 0 })),
              'read-iops': Type.Optional(Type.Integer({ minimum: 0 })),
              'write-bps': Type.Optional(Type.Integer({ minimum: 0 })),
              'read-bps': Type.Optional(Type.Integer({ minimum: 0 })),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    filesystems: Type.Optional(
      Type.Record(Type.String(), Type.String({ description: 'POSIX shell command; `%` is the device, `%%` a literal %' }), {
        description: 'Default: {"ext4": "mkfs.ext4 -m0 %"}',
      }),
    ),
  },
  { title: 'TenantPolicy', additionalProperties: false },
);

/** Driver or runtime options as `key: value` (values are strings; numbers and booleans are accepted). */
export const OptionValuesSchema = Type.Record(Type.String(), Type.Unknown(), {
  description: 'Option keys as for `docker volume create --opt`, e.g. {"size": "10GB", "snapshots.keep": "5"}',
});

// ---- records ------------------------------------------------------------------------------

export const TenantRecordSchema = Type.Object(
  {
    name: Type.String(),
    policy: Type.Object({
      'default-options': Type.Record(Type.String(), Type.Unknown()),
      filesystems: Type.Record(Type.String(), Type.String()),
    }),
    revision: Type.Integer({ minimum: 1 }),
    uploadedAt: Type.String({ format: 'date-time' }),
  },
  { title: 'Tenant' },
);

export const TenantSummarySchema = Type.Object({
  name: Type.String(),
  revision: Type.Integer(),
  uploadedAt: Type.String(),
});

export const VolumeRecordSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    pool: Type.String(),
    image: Type.String({ description: 'RBD image name in `pool`: `<tenant>.<volume>`' }),
    options: VolumeOptionsSchema,
    runtime: RuntimeOptionsSchema,
    policyRevision: Type.Integer(),
    formatCommand: Type.String(),
    formatStarted: Type.Optional(Type.String({ description: 'when the first format began (set before mkfs runs)' })),
    formatted: Type.Optional(Type.String({ description: 'when the volume got its filesystem; never formatted again once set' })),
    source: Type.Optional(Type.Object({ tenant: Type.String(), volume: Type.String(), snapshot: Type.String() })),
    createdAt: Type.String(),
  },
  { title: 'Volume' },
);

export const MountRecordSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    host: Type.String(),
    hostId: Type.String(),
    lease: Type.String(),
    device: Type.String(),
    mountpoint: Type.String(),
    mapper: Type.Union([Type.Literal('krbd'), Type.Literal('nbd'), Type.Literal('fuse')]),
    clientAddress: Type.Union([Type.String(), Type.Null()]),
    since: Type.String(),
    generation: Type.Optional(Type.Integer({ description: 'which acquisition of the lock this is' })),
  },
  { title: 'Mount' },
);

export const HostMountSchema = Type.Object({
  tenant: Type.String(),
  volume: Type.String(),
  device: Type.String(),
  mountpoint: Type.String(),
  mapper: Type.Union([Type.Literal('krbd'), Type.Literal('nbd'), Type.Literal('fuse')]),
  references: Type.Integer({ description: 'Docker Mount IDs holding a reference' }),
});

export const HostReportSchema = Type.Object(
  {
    hostId: Type.String({ description: "The host's persistent id" }),
    host: Type.String({ description: 'Its --host-label' }),
    pid: Type.Integer(),
    version: Type.String(),
    reportedAt: Type.String(),
    mounts: Type.Array(HostMountSchema, { description: 'What the host has mounted, as its volplugin sees it' }),
    problems: Type.Array(Type.String(), { description: 'What its convergence loop saw and could not fix' }),
  },
  { title: 'HostReport', description: "A volplugin's report about itself; bound to its lease, gone when the host is." },
);

export const HostParams = Type.Object({ hostId: Type.String({ description: 'Host id', maxLength: 256 }) });

export const SnapshotSchema = Type.Object(
  {
    name: Type.String(),
    id: Type.Integer({ description: "Ceph's snapshot id" }),
    origin: Type.Union([Type.Literal('supervisor'), Type.Literal('manual'), Type.Literal('other')], {
      description: 'supervisor: scheduled (vs-*, pruned to `keep`); manual: taken on demand; other: made outside volplugin',
    }),
    createdAt: Type.Union([Type.String(), Type.Null()]),
    sizeBytes: Type.Integer({ description: 'Size of the image when the snapshot was taken' }),
    protected: Type.Boolean(),
    clones: Type.Array(Type.String(), { description: 'Images cloned from it ("pool/image")' }),
  },
  { title: 'Snapshot' },
);

// ---- requests and responses ---------------------------------------------------------------

export const CreateVolumeBody = Type.Object(
  { options: Type.Optional(OptionValuesSchema) },
  { additionalProperties: false },
);
export const RuntimeBody = Type.Object({ options: OptionValuesSchema }, { additionalProperties: false });
export const RemoveVolumeQuery = Type.Object({
  force: Type.Optional(
    Type.Boolean({ description: 'Delete only the records (volume and mount), never the image, with no checks: the seed\'s force-remove.' }),
  ),
  'keep-image': Type.Optional(
    Type.Boolean({
      description:
        'Delete only the volume record and leave the image (a later create adopts it); unlike force, refused (409) while the ' +
        'volume is mounted or its image open, checked under the operation lock. What `docker volume rm` does for a non-ephemeral volume.',
    }),
  ),
});
export const SnapshotTakeBody = Type.Object(
  { name: Type.Optional(Type.String({ description: 'Default: a timestamped name' })) },
  { additionalProperties: false },
);
export const SnapshotCopyBody = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    options: Type.Optional(OptionValuesSchema),
  },
  { additionalProperties: false },
);

export const TenantList = Type.Object({ tenants: Type.Array(TenantSummarySchema) });
export const TenantHistory = Type.Object({ tenant: Type.String(), revisions: Type.Array(TenantRecordSchema) });
export const VolumeList = Type.Object({ volumes: Type.Array(VolumeRecordSchema) });
export const MountList = Type.Object({ mounts: Type.Array(MountRecordSchema) });
export const HostList = Type.Object({ hosts: Type.Array(HostReportSchema) });
export const SnapshotList = Type.Object({ snapshots: Type.Array(SnapshotSchema) });
export const Health = Type.Object({ status: Type.Literal('ok'), version: Type.String() });
export const CheckResult = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()), ms: Type.Number() });
export const Readiness = Type.Object({
  ready: Type.Boolean(),
  checks: Type.Object({ etcd: CheckResult, ceph: CheckResult }),
});

export type TenantSummary = Static<typeof TenantSummarySchema>;
export type SnapshotEntry = Static<typeof SnapshotSchema>;
export type HealthBody = Static<typeof Health>;
export type ReadinessBody = Static<typeof Readiness>;

/** The standard error responses of a route, for its schema. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody]));
}

// ---- the schemas and the hand-written record types must agree -----------------------------

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree = <T extends true>(_: T): void => undefined;
agree<Same<Static<typeof VolumeOptionsSchema>, VolumeOptions>>(true);
agree<Same<Static<typeof RuntimeOptionsSchema>, RuntimeOptions>>(true);
agree<Same<Static<typeof VolumeRecordSchema>, VolumeRecord>>(true);
agree<Same<Static<typeof MountRecordSchema>, MountRecord>>(true);
agree<Same<Static<typeof HostReportSchema>, HostReport>>(true);
agree<Same<Static<typeof TenantRecordSchema>, TenantRecord>>(true);
