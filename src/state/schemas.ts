// Over 400 lines: every record kind's schema and the table of which key holds which, in the one place src/state keeps them.
// The TypeBox schema of every record volplugin keeps in etcd, and which key holds which. Every
// record read back (RecordKV.parse) is checked against the schema of its key, strictly (unknown
// keys and wrong types are errors), so that whoever can write etcd by hand cannot slip a record in
// that the code would misread: it is refused as STATE_CORRUPT naming the key and the field. The
// record types (records.ts) derive from these schemas; the master's API sends the same shapes.

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { compileSchema, type SchemaProblem } from '../common/schema.js';
import { isPolicyError } from '../policy/errors.js';
import { RuntimeOptionsSchema, TenantPolicySchema, VolumeOptionsSchema } from '../policy/schema.js';
import { validatePolicy } from '../policy/validate.js';
import type { Keys } from './keys.js';

const strict = { additionalProperties: false } as const;

export const TenantRecordSchema = Type.Object(
  {
    name: Type.String(),
    policy: TenantPolicySchema,
    revision: Type.Integer({ minimum: 1 }),
    uploadedAt: Type.String({ format: 'date-time' }),
  },
  { title: 'Tenant', ...strict },
);

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
    source: Type.Optional(Type.Object({ tenant: Type.String(), volume: Type.String(), snapshot: Type.String() }, strict)),
    requestName: Type.Optional(
      Type.String({ description: "The name a client's create request gave (a CSI CreateVolume name): its idempotency key (request-names.ts)" }),
    ),
    createdAt: Type.String(),
  },
  { title: 'Volume', ...strict },
);

const MapperSchema = Type.Union([Type.Literal('krbd'), Type.Literal('nbd'), Type.Literal('fuse')]);

export const MountRecordSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    host: Type.String({ description: '--host-label of the holder' }),
    hostId: Type.String({ description: "The holder's persistent id" }),
    lease: Type.String({ description: 'etcd lease id (hex) holding the key' }),
    device: Type.String(),
    mountpoint: Type.String(),
    mapper: MapperSchema,
    clientAddress: Type.Union([Type.String(), Type.Null()], { description: 'The Ceph client address that has the image open: what fencing blocklists' }),
    since: Type.String(),
    generation: Type.Optional(Type.Integer({ minimum: 1, description: 'Which acquisition of the lock this is (see the acquisition record)' })),
  },
  { title: 'Mount', ...strict },
);

/**
 * The last acquisition of a volume's mount lock, kept after the lock is gone (not lease-bound) and
 * rewritten in the same transaction as every acquisition: a host whose lock vanished may take it
 * back only while this still names its own acquisition (then provably nobody held it in between).
 */
export const AcquisitionRecordSchema = Type.Object(
  {
    hostId: Type.String(),
    host: Type.String(),
    lease: Type.String(),
    generation: Type.Integer({ minimum: 1, description: '1 for the first acquisition of the volume, +1 for each later one' }),
    at: Type.String(),
  },
  strict,
);

/** An entry of a host's index of its mount locks (keys.hostMount): which lock to read. */
export const HostMountIndexSchema = Type.Object({ tenant: Type.String(), volume: Type.String() }, strict);

/** A remove or rollback in progress on a volume: while it exists no host may take the mount lock. */
export const ExclusionRecordSchema = Type.Object(
  {
    reason: Type.String({ description: '"remove", "snapshot rollback"' }),
    owner: Type.String({ description: 'Who: `<role>@<host>:<pid>`' }),
    since: Type.String(),
    lease: Type.String(),
  },
  strict,
);

/** The one live volplugin process of a host id, bound to its host lease. */
export const HostAliveRecordSchema = Type.Object(
  {
    hostId: Type.String(),
    host: Type.String({ description: '--host-label' }),
    bootId: Type.String({ description: "The kernel's boot id (a reboot changes it)" }),
    pid: Type.Integer(),
    hostname: Type.String({ description: 'os.hostname() of the machine it runs on' }),
    since: Type.String(),
  },
  strict,
);

/**
 * A volume's format marks, written only by the host holding its mount lock: `formatStarted` before
 * mkfs runs on a device that read as zeros, `formatted` after it succeeded (never formatted again).
 */
export const VolumeFormatSchema = Type.Object(
  {
    formatStarted: Type.Optional(Type.String()),
    formatted: Type.Optional(Type.String()),
    /** The host that wrote the last mark. */
    by: Type.Optional(Type.String()),
  },
  strict,
);

export const HostMountSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    device: Type.String(),
    mountpoint: Type.String(),
    mapper: MapperSchema,
    references: Type.Integer({ description: 'Docker Mount IDs holding a reference' }),
  },
  strict,
);

export const HostIdleSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    device: Type.String(),
    mountpoint: Type.String(),
    mapper: MapperSchema,
    until: Type.String({ description: 'When the grace ends and the host lets go of it (ISO time)' }),
  },
  strict,
);

export const HostReportSchema = Type.Object(
  {
    hostId: Type.String({ description: "The host's persistent id" }),
    host: Type.String({ description: 'Its --host-label' }),
    pid: Type.Integer(),
    version: Type.String(),
    reportedAt: Type.String(),
    mounts: Type.Array(HostMountSchema, { description: 'What the host has mounted for containers, as its volplugin sees it' }),
    idle: Type.Optional(
      Type.Array(HostIdleSchema, {
        description:
          'Volumes no container uses that the host keeps mapped, mounted and locked for a short grace (volplugin --unmount-grace); ' +
          'released at once when another host or a remove asks (host request "release")',
      }),
    ),
    problems: Type.Array(Type.String(), { description: 'What its convergence loop saw and could not fix' }),
  },
  { title: 'HostReport', description: "A volplugin's report about itself; bound to its lease, gone when the host is.", ...strict },
);

export const CreateIntentSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    pool: Type.String(),
    image: Type.String(),
    /** The master that wrote it (`host:pid`). */
    owner: Type.String(),
    since: Type.String(),
    /** The size it reserved in the tenant's usage (absent in intents written before usage was counted). */
    sizeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  strict,
);

export const OperationLockRecordSchema = Type.Object(
  { reason: Type.String(), owner: Type.String(), since: Type.String(), lease: Type.String() },
  strict,
);

export const ScheduleRecordSchema = Type.Object({ at: Type.String({ format: 'date-time' }) }, strict);

/** One backup as the etcd record keeps it (the target's manifest has the file and its checksum too). */
export const BackupEntrySchema = Type.Object(
  {
    name: Type.String({ description: 'The backup: the name of the snapshot it was taken from' }),
    parent: Type.Union([Type.String(), Type.Null()], { description: 'The backup it is a diff from; null: a full backup' }),
    bytes: Type.Integer({ minimum: 0, description: 'Bytes written to the target (the stream)' }),
    dataBytes: Type.Integer({ minimum: 0, description: 'Image data in it' }),
    sizeBytes: Type.Integer({ minimum: 0, description: 'The volume size it restores to' }),
    ms: Type.Integer({ minimum: 0, description: 'How long it took' }),
    at: Type.String({ format: 'date-time', description: 'When it was complete' }),
  },
  { title: 'Backup', ...strict },
);

/** A volume's backups (src/backups): what the target holds, by whom, the schedule and the last error. */
export const BackupRecordSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    target: Type.String({ description: 'Where they are, e.g. "directory /backups" or "ceph backups (conf /etc/ceph/b.conf)"' }),
    backups: Type.Array(BackupEntrySchema, { description: 'Kept backups, oldest first' }),
    lastSlot: Type.Optional(Type.String({ format: 'date-time', description: 'The last schedule slot backed up' })),
    lastError: Type.Optional(Type.Object({ at: Type.String(), message: Type.String() }, strict)),
    lastHook: Type.Optional(
      Type.Object({ at: Type.String(), backup: Type.String(), ok: Type.Boolean(), message: Type.Optional(Type.String()) }, { ...strict, description: 'The backup hook after the last backup' }),
    ),
    updatedAt: Type.String(),
  },
  { title: 'VolumeBackups', ...strict },
);

export const TenantUsageSchema = Type.Object(
  {
    tenant: Type.String(),
    volumes: Type.Integer({ minimum: 0, description: 'Volume records and creates in progress' }),
    bytes: Type.Integer({ minimum: 0, description: 'Their sizes added up' }),
  },
  { title: 'TenantUsage', ...strict },
);

/** A tenant's usage beside its limits (null: none), as `volcli tenant usage` shows it. */
export const TenantUsageReport = Type.Object(
  {
    ...TenantUsageSchema.properties,
    limits: Type.Object({
      volumes: Type.Union([Type.Integer(), Type.Null()]),
      bytes: Type.Union([Type.Integer(), Type.Null()], { description: 'limits.total-size' }),
      sizeBytes: Type.Union([Type.Integer(), Type.Null()], { description: 'The largest volume (limits.size)' }),
      snapshots: Type.Union([Type.Integer(), Type.Null()], { description: 'Snapshots per volume' }),
      pools: Type.Union([Type.Array(Type.String()), Type.Null()]),
    }),
  },
  { title: 'TenantUsageReport' },
);

export const ROLES = ['admin', 'provisioner', 'host', 'read-only'] as const;
export const RoleSchema = Type.Union(ROLES.map((r) => Type.Literal(r)), { 'x-expected': `one of ${ROLES.join(', ')}` });

export const TokenRecordSchema = Type.Object(
  {
    name: Type.String(),
    role: RoleSchema,
    /** SHA-256 of the token (hex); the token itself is never stored. */
    hash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    createdAt: Type.String(),
    /** The caller that created it (a token name, or `etcd` for volcli --etcd). */
    createdBy: Type.String(),
  },
  { title: 'Token', ...strict },
);

/** The name index of the tokens: which hash a token name has (names are unique). */
export const TokenNameSchema = Type.Object({ hash: Type.String({ pattern: '^[0-9a-f]{64}$' }) }, strict);

export type Role = (typeof ROLES)[number];

/** What a host made of a request (host-requests.ts). */
export const HostAnswerSchema = Type.Object(
  {
    ok: Type.Boolean(),
    /** What went wrong, for a person (set when `ok` is false). */
    error: Type.Optional(Type.String()),
    /** A stable code for programs (e.g. NOT_MOUNTED, UNKNOWN_KIND, FAILED). */
    code: Type.Optional(Type.String()),
    result: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    at: Type.String(),
  },
  strict,
);

/** A request to one host, answered by it in place (host-requests.ts). */
export const HostRequestSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[0-9a-f]{16,64}$' }),
    hostId: Type.String(),
    /** What to do: a kind the host has a handler for (see src/plugin/cluster/requests.ts). */
    kind: Type.String({ pattern: '^[a-z][a-z0-9-]{0,63}$' }),
    tenant: Type.Optional(Type.String()),
    volume: Type.Optional(Type.String()),
    params: Type.Record(Type.String(), Type.Unknown()),
    /** Who asked (owner of the requesting store, e.g. volmaster@host:pid). */
    from: Type.String(),
    at: Type.String(),
    /** The requester stops waiting then (ISO time); a host does not start a request past it. */
    deadline: Type.String(),
    answer: Type.Optional(HostAnswerSchema),
  },
  { title: 'HostRequest', ...strict },
);

/**
 * A volume published to one host for a CSI CO (ControllerPublishVolume): the CO's view of where the
 * volume may be staged. Not lease-bound; it names the volume record it was made for, so that one
 * left behind by a removed volume does not bind a new volume of the same name (attachments.ts).
 */
export const AttachmentRecordSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    hostId: Type.String({ description: "The host's persistent id (the CSI node id)" }),
    host: Type.String({ description: 'Its --host-label when it was attached' }),
    readonly: Type.Boolean(),
    volumeCreatedAt: Type.String({ description: "The createdAt of the volume record it was made for" }),
    since: Type.String(),
    by: Type.String({ description: 'Who attached it (the token name)' }),
    /** The host it was taken over from, when that host's volplugin was gone. */
    takenFrom: Type.Optional(Type.String()),
  },
  { title: 'Attachment', ...strict },
);

/**
 * A client's request name (CSI CreateVolume and CreateSnapshot names) and what it made: one per
 * name, so that a name is never used for two targets (request-names.ts).
 */
export const RequestNameSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('volume'), Type.Literal('snapshot')]),
    name: Type.String(),
    tenant: Type.String(),
    volume: Type.String(),
    snapshot: Type.Optional(Type.String()),
    at: Type.String(),
  },
  strict,
);

/** A time-sorted id (timeline.ts): `20261130T174823123Z-9f3a1c2b`. */
export const TimeIdSchema = Type.String({ pattern: '^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$', 'x-expected': 'an id such as 20261130T174823123Z-9f3a1c2b' });

export const OPERATION_STATES = ['running', 'done', 'failed', 'interrupted'] as const;

/** What went wrong, as the API reports errors (code of the catalogue, or one of the operation's own). */
const OperationErrorSchema = Type.Object({ code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) }, strict);

/** A long operation and its progress (progress.ts): what `GET /v1/operations/:id` answers. */
export const OperationRecordSchema = Type.Object(
  {
    id: TimeIdSchema,
    kind: Type.String({ pattern: '^[a-z][a-z-]{0,31}$', description: 'resize, remove, copy, backup, restore, group-rollback' }),
    tenant: Type.String(),
    volume: Type.String(),
    /** A copy's new volume. */
    target: Type.Optional(Type.Object({ tenant: Type.String(), volume: Type.String() }, strict)),
    state: Type.Union(OPERATION_STATES.map((s) => Type.Literal(s)), {
      description: 'running; done; failed (error says why); interrupted (the master running it stopped: what it did so far stays)',
    }),
    done: Type.Number({ minimum: 0, description: 'How far the current step is, of `total` (in `unit`)' }),
    total: Type.Number({ minimum: 0 }),
    unit: Type.String({ description: 'objects (librbd), percent (the rbd CLI), bytes, steps' }),
    message: Type.String({ description: 'What it is doing now, or what it did' }),
    result: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    error: Type.Optional(OperationErrorSchema),
    by: Type.String({ description: 'The token that started it' }),
    owner: Type.String({ description: 'The volmaster running it (`volmaster@host:pid`)' }),
    startedAt: Type.String(),
    updatedAt: Type.String(),
    finishedAt: Type.Optional(Type.String()),
  },
  { title: 'Operation', ...strict },
);

/** Exists while the master running an operation lives (bound to its lease). */
export const OperationAliveSchema = Type.Object({ owner: Type.String() }, strict);

/** Who made a request, as auth.ts named the caller. */
const AuditCallerSchema = Type.Object(
  { name: Type.String(), role: Type.String(), via: Type.String({ description: 'bootstrap, token, open, etcd (volcli --etcd)' }) },
  strict,
);

/** One change made through the API (or with volcli --etcd): audit.ts. */
export const AuditEntrySchema = Type.Object(
  {
    id: TimeIdSchema,
    at: Type.String({ description: 'When the request arrived' }),
    who: AuditCallerSchema,
    method: Type.String(),
    route: Type.String({ description: 'The route, e.g. /v1/volumes/:tenant/:volume' }),
    path: Type.String(),
    query: Type.Optional(Type.Record(Type.String(), Type.String())),
    tenant: Type.Optional(Type.String()),
    volume: Type.Optional(Type.String()),
    body: Type.Optional(Type.Unknown({ description: 'A summary of the body: secrets removed, long values cut' })),
    outcome: Type.Union([Type.Literal('pending'), Type.Literal('ok'), Type.Literal('refused'), Type.Literal('failed')], {
      description: 'pending: no answer was recorded (the master stopped while handling it); ok: 2xx; refused: 4xx; failed: 5xx',
    }),
    status: Type.Optional(Type.Integer()),
    code: Type.Optional(Type.String({ description: 'The error code of a refused or failed request' })),
    message: Type.Optional(Type.String()),
    operation: Type.Optional(Type.String({ description: 'The operation it started (GET /v1/operations/:id)' })),
    ms: Type.Optional(Type.Number()),
    master: Type.String({ description: 'Which volmaster handled it' }),
  },
  { title: 'AuditEntry', ...strict },
);

/** A resize between the record's new size and the image's (volumes.ts growVolume). */
export const ResizeIntentSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    fromBytes: Type.Integer({ minimum: 0 }),
    toBytes: Type.Integer({ minimum: 0 }),
    owner: Type.String(),
    since: Type.String(),
    operation: Type.Optional(Type.String()),
  },
  strict,
);

/** A restore into a volume whose images may be half-swapped (src/backups/restore.ts restoreInPlace). */
export const RestoreIntentSchema = Type.Object(
  {
    tenant: Type.String(),
    volume: Type.String(),
    pool: Type.String(),
    image: Type.String(),
    backup: Type.String(),
    owner: Type.String(),
    since: Type.String(),
  },
  strict,
);

/** The reverse index of a request name: the name's key, by what it made (request-names.ts). */
export const RequestTargetSchema = Type.Object({ key: Type.String() }, strict);

/** Checks one kind of record; extra rules beyond the schema (a tenant's policy) may follow. */
interface RecordSpec {
  what: string;
  problem(value: unknown): SchemaProblem | null;
}

function spec(what: string, schema: TSchema, extra?: (value: never) => SchemaProblem | null): RecordSpec {
  const checker = compileSchema(schema);
  return { what, problem: (value) => checker.problem(value) ?? (extra ? extra(value as never) : null) };
}

/** A stored policy must pass the same rules as an upload: a hand-written key gets no further. */
function policyRules(record: Static<typeof TenantRecordSchema>): SchemaProblem | null {
  try {
    validatePolicy(record.policy);
    return null;
  } catch (err) {
    if (!isPolicyError(err)) throw err;
    const field = `policy${err.field ? `.${err.field}` : ''}`;
    const message = err.field && err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message;
    return { path: field.split('.'), field, message };
  }
}

const tenant = spec('a tenant record', TenantRecordSchema, policyRules);

/** The record spec of every key root, longest root first; a key under none of them is refused. */
export function recordSpecs(keys: Keys): Array<[string, RecordSpec]> {
  const roots: Array<[string, RecordSpec]> = [
    [`${keys.prefix}/tenants/`, tenant],
    [`${keys.prefix}/tenant-history/`, tenant],
    [keys.volumes, spec('a volume record', VolumeRecordSchema)],
    [keys.mounts, spec('a mount record', MountRecordSchema)],
    [`${keys.prefix}/host-mounts/`, spec("an entry of a host's mount index", HostMountIndexSchema)],
    [keys.hosts, spec('a host report', HostReportSchema)],
    [keys.intents, spec('a create intent', CreateIntentSchema)],
    [`${keys.prefix}/operations/`, spec('an operation lock', OperationLockRecordSchema)],
    [`${keys.prefix}/supervisor/last/`, spec('a snapshot schedule', ScheduleRecordSchema)],
    [keys.backups, spec('a backup record', BackupRecordSchema)],
    [keys.usage, spec('a tenant usage record', TenantUsageSchema)],
    [keys.tokens, spec('a token record', TokenRecordSchema)],
    [keys.tokenNames, spec('a token name', TokenNameSchema)],
    [`${keys.prefix}/host-requests/`, spec('a host request', HostRequestSchema)],
    [`${keys.prefix}/acquired/`, spec('a lock acquisition record', AcquisitionRecordSchema)],
    [`${keys.prefix}/exclusive/`, spec('a mount exclusion', ExclusionRecordSchema)],
    [`${keys.prefix}/host-alive/`, spec('a host-alive record', HostAliveRecordSchema)],
    [`${keys.prefix}/formats/`, spec('the format marks of a volume', VolumeFormatSchema)],
    [keys.attachments, spec('a volume attachment', AttachmentRecordSchema)],
    [`${keys.prefix}/request-names/by-name/`, spec('a request name', RequestNameSchema)],
    [`${keys.prefix}/request-names/by-target/`, spec('a request name index entry', RequestTargetSchema)],
    [keys.progress, spec('an operation record', OperationRecordSchema)],
    [`${keys.prefix}/progress-alive/`, spec("an operation's liveness mark", OperationAliveSchema)],
    [keys.audit, spec('an audit entry', AuditEntrySchema)],
    [keys.resizes, spec('a resize intent', ResizeIntentSchema)],
    [keys.restores, spec('a restore intent', RestoreIntentSchema)],
  ];
  return roots.sort((a, b) => b[0].length - a[0].length);
}
