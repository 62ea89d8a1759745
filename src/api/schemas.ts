// TypeBox schemas of everything on the wire, shared by the master's routes (the validators of every
// request, without coercion; response serialisation; the OpenAPI document) and by ApiClient
// (types). Policies and options are src/policy/schema.ts's and records src/state/schemas.ts's
// (the same schemas check what users upload and what is read back from etcd); they are re-exported
// here so that the wire has one table of contents.

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { DriverOptionValuesSchema, RuntimeOptionValuesSchema } from '../policy/schema.js';
import {
  AttachmentRecordSchema,
  AuditEntrySchema,
  HostReportSchema,
  MountRecordSchema,
  OperationRecordSchema,
  RoleSchema,
  TenantRecordSchema,
  TenantUsageReport,
  TimeIdSchema,
  VolumeRecordSchema,
} from '../state/schemas.js';

export {
  DriverOptionValuesSchema,
  LimitsSchema,
  RateLimitSchema,
  RuntimeOptionValuesSchema,
  RuntimeOptionsSchema,
  SnapshotScheduleSchema,
  TenantPolicySchema,
  VolumeOptionsSchema,
} from '../policy/schema.js';
export {
  AttachmentRecordSchema,
  AuditEntrySchema,
  HostMountSchema,
  OperationRecordSchema,
  HostReportSchema,
  MountRecordSchema,
  RoleSchema,
  TenantRecordSchema,
  TenantUsageReport,
  TenantUsageSchema,
  VolumeRecordSchema,
} from '../state/schemas.js';

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
export const RevisionParams = Type.Object({
  tenant: name('Tenant'),
  // Path parameters are text; no coercion: the handler reads the digits.
  revision: Type.String({ pattern: '^[1-9][0-9]{0,9}$', 'x-expected': 'a revision number (1, 2, ...)' }),
});
export const VolumeParams = Type.Object({ tenant: name('Tenant'), volume: name('Volume') });
export const SnapshotParams = Type.Object({
  tenant: name('Tenant'),
  volume: name('Volume'),
  snapshot: Type.String({ description: 'Snapshot name', maxLength: 256 }),
});

// ---- records only the API has -------------------------------------------------------------

export const TenantSummarySchema = Type.Object({
  name: Type.String(),
  revision: Type.Integer(),
  uploadedAt: Type.String(),
});

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

export const TokenName = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
  'x-expected': 'a token name: 1-64 letters, digits, "_", "-", "." starting with a letter or digit',
  description: 'Token name, e.g. the host it is for',
});
export const TokenParams = Type.Object({ name: Type.String({ maxLength: 256 }) });
export const CreateTokenBody = Type.Object(
  { name: TokenName, role: RoleSchema },
  { additionalProperties: false, 'x-hint': 'send {"name": "host1", "role": "host"}' },
);
export const TokenSummary = Type.Object(
  { name: Type.String(), role: RoleSchema, createdAt: Type.String(), createdBy: Type.String() },
  { title: 'TokenSummary' },
);
export const CreatedToken = Type.Object(
  { ...TokenSummary.properties, token: Type.String({ description: 'The secret: shown once, never stored (only its SHA-256 is)' }) },
  { title: 'CreatedToken' },
);
export const TokenList = Type.Object({ tokens: Type.Array(TokenSummary) });
export const Caller = Type.Object(
  {
    name: Type.String({ description: 'The token name ("bootstrap" for --token-file, "anonymous" on an open API)' }),
    role: RoleSchema,
  },
  { title: 'Caller' },
);

// ---- requests and responses ---------------------------------------------------------------

/** A query flag: the text "true" or "false" (query strings are text; nothing is coerced). */
const flag = (description: string) => Type.Union([Type.Literal('true'), Type.Literal('false')], { description, 'x-expected': '"true" or "false"' });

/** A client's name for a create, repeated when it repeats the request (CSI's CreateVolume/CreateSnapshot name). */
const REQUEST_NAME =
  "The client's name for this create (its idempotency key, e.g. a CSI CreateVolume name): the same name again finds the same target; given for another target that exists it is refused (409 NAME_TAKEN)";
const requestName = (more = '') => Type.String({ minLength: 1, maxLength: 1024, description: `${REQUEST_NAME}${more}` });

export const CreateVolumeBody = Type.Object(
  { options: Type.Optional(DriverOptionValuesSchema), requestName: Type.Optional(requestName()) },
  { additionalProperties: false },
);
export const AttachBody = Type.Object(
  {
    hostId: Type.String({ minLength: 1, maxLength: 256, description: "The host's id (its volplugin's state-dir/host-id; the CSI node id)" }),
    readonly: Type.Optional(Type.Boolean({ description: 'Default false' })),
  },
  { additionalProperties: false, 'x-hint': 'send {"hostId": "<host id>"}' },
);
export const DetachQuery = Type.Object(
  { 'host-id': Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Detach only from this host (default: whichever it is attached to)' })) },
  { additionalProperties: false },
);
export const RuntimeBody = Type.Object({ options: RuntimeOptionValuesSchema }, { additionalProperties: false });
/** ?wait=false: answer 202 with the operation as soon as it is accepted, instead of at its end. */
const waitFlag = flag('false: answer 202 with the operation (GET /v1/operations/:id) once it is accepted; default true: answer when it is done');
export const WaitQuery = Type.Object({ wait: Type.Optional(waitFlag) }, { additionalProperties: false });

export const ResizeBody = Type.Object(
  { size: Type.String({ description: 'The new size: a number and a unit (KB, MB, GB, TB; binary), or a number of MB', 'x-hint': 'send {"size": "20GB"}' }) },
  { additionalProperties: false, 'x-hint': 'send {"size": "20GB"}' },
);

export const OperationParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'The operation id' }) });
export const OperationList = Type.Object({ operations: Type.Array(OperationRecordSchema) });
export const OperationListQuery = Type.Object(
  { limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$', 'x-expected': 'a number from 1 to 9999' })) },
  { additionalProperties: false },
);

export const AuditQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Entries from this time on (ISO 8601)', 'x-expected': 'an ISO time such as 2026-11-30T12:00:00Z' })),
    after: Type.Optional(TimeIdSchema),
    tenant: Type.Optional(Type.String({ maxLength: 256 })),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$', 'x-expected': 'a number from 1 to 9999' })),
  },
  { additionalProperties: false },
);
export const AuditList = Type.Object({ entries: Type.Array(AuditEntrySchema) });

export const RemoveVolumeQuery = Type.Object(
  {
  force: Type.Optional(
    flag('Delete only the records (volume and mount), never the image, with no checks: the seed\'s force-remove.'),
  ),
  'keep-image': Type.Optional(
    flag(
        'Delete only the volume record and leave the image (a later create adopts it); unlike force, refused (409) while the ' +
        'volume is mounted or its image open, checked under the operation lock. What `docker volume rm` does for a non-ephemeral volume.',
    ),
  ),
  wait: Type.Optional(waitFlag),
  },
  { additionalProperties: false },
);
export const SnapshotTakeBody = Type.Object(
  {
    name: Type.Optional(Type.String({ description: 'Default: a timestamped name' })),
    requestName: Type.Optional(requestName('; needs name. Taking a snapshot again for the same request answers 200 with it')),
  },
  { additionalProperties: false },
);
export const SnapshotCopyQuery = WaitQuery;
export const SnapshotCopyBody = Type.Object(
  {
    tenant: Type.String({ 'x-hint': 'the tenant of the new volume' }),
    volume: Type.String({ 'x-hint': 'the name of the new volume' }),
    options: Type.Optional(DriverOptionValuesSchema),
    requestName: Type.Optional(requestName()),
  },
  { additionalProperties: false },
);

export const TenantList = Type.Object({ tenants: Type.Array(TenantSummarySchema) });
export const TenantHistory = Type.Object({ tenant: Type.String(), revisions: Type.Array(TenantRecordSchema) });
export const VolumeList = Type.Object({ volumes: Type.Array(VolumeRecordSchema) });
export const MountList = Type.Object({ mounts: Type.Array(MountRecordSchema) });
export const HostList = Type.Object({ hosts: Type.Array(HostReportSchema) });
export const SnapshotList = Type.Object({ snapshots: Type.Array(SnapshotSchema) });
export const AttachmentList = Type.Object({ attachments: Type.Array(AttachmentRecordSchema) });
export const GroupParams = Type.Object({ tenant: name('Tenant'), group: name('Group') });
export const GroupSnapshotParams = Type.Object({
  tenant: name('Tenant'),
  group: name('Group'),
  snapshot: Type.String({ description: 'Snapshot name', maxLength: 256 }),
});
export const GroupSnapshotTakeBody = Type.Object(
  {
    volumes: Type.Array(Type.String({ maxLength: 256 }), { description: "The tenant's volumes to snapshot at one instant (one pool)", minItems: 1, maxItems: 32 }),
    name: Type.Optional(Type.String({ description: 'Default: a timestamped name' })),
  },
  { additionalProperties: false },
);
export const GroupSnapshotSchema = Type.Object(
  {
    tenant: Type.String(),
    group: Type.String(),
    name: Type.String(),
    volumes: Type.Array(Type.String(), { description: 'The volumes the group holds' }),
    complete: Type.Boolean({ description: 'False when its creation was interrupted (remove it)' }),
  },
  { additionalProperties: false },
);
export const GroupSnapshotList = Type.Object({ snapshots: Type.Array(GroupSnapshotSchema) });
export const GroupMemberCopyBody = Type.Object(
  {
    member: Type.String({ maxLength: 256, 'x-hint': 'the volume of the group whose part of the snapshot is copied' }),
    tenant: Type.String({ 'x-hint': 'the tenant of the new volume' }),
    volume: Type.String({ 'x-hint': 'the name of the new volume' }),
    options: Type.Optional(DriverOptionValuesSchema),
  },
  { additionalProperties: false },
);
export const Health = Type.Object({ status: Type.Literal('ok'), version: Type.String() });
export const CheckResult = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()), ms: Type.Number() });
export const Readiness = Type.Object({
  ready: Type.Boolean(),
  checks: Type.Object({ etcd: CheckResult, ceph: CheckResult }),
});

export type TenantSummary = Static<typeof TenantSummarySchema>;
export type GroupSnapshotEntry = Static<typeof GroupSnapshotSchema>;
export type TenantUsageBody = Static<typeof TenantUsageReport>;
export type TokenSummaryBody = Static<typeof TokenSummary>;
export type CreatedTokenBody = Static<typeof CreatedToken>;
export type CallerBody = Static<typeof Caller>;
export type SnapshotEntry = Static<typeof SnapshotSchema>;
export type HealthBody = Static<typeof Health>;
export type ReadinessBody = Static<typeof Readiness>;

/** The standard error responses of a route, for its schema. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody]));
}
