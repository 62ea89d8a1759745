// Backups of a volume (src/backups, docs/backups.md): list, take now, restore (into the volume, or
// into a new one through the create path), verify. They run in this master, which must reach the
// tenant's target (the directory or NFS share, or the second cluster) as volsupervisor does.
// A take and a restore run as operations (src/master/operations.ts): once the volume is locked the
// work is under way, and GET /v1/operations/:id shows its bytes done of total and its end; with
// ?wait=false the answer is 202 with the operation at once, else the usual answer at the end.
// A verify only reads: the client waits (ApiClient's BACKUP_TIMEOUT_MS).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { BackupListSchema, BackupRestoreBody, BackupRestoreSchema, BackupSchema, BackupVerifySchema } from '../../api/backups.js';
import { OperationRecordSchema, VolumeParams, WaitQuery, errorResponses } from '../../api/schemas.js';
import { restoreInPlace, restoreIntoNew, type RestoreHooks } from '../../backups/restore.js';
import type { BackupProgress, OnBackupProgress } from '../../backups/target.js';
import { verifyBackups } from '../../backups/verify.js';
import { formatCommandFor } from '../../policy/filesystem.js';
import { assertVolumeRef } from '../../policy/names.js';
import { parseDriverOptions, type OptionValues } from '../../policy/options.js';
import { policyDefaults } from '../../policy/validate.js';
import { policyCopyRecord } from '../../snapshots/copy-record.js';
import type { VolumeRecord } from '../../state/records.js';
import type { AuditNote } from '../audit.js';
import type { Accept, OperationSpec, Progress } from '../operations.js';
import { createPath, emptyBodyIsObject } from './shared.js';

/** What an operation says it does in each phase of a backup or restore (its unit is bytes). */
const PHASE_STEP: Record<BackupProgress['phase'], string> = {
  export: 'exporting a diff stream',
  checksum: 'reading the diff back for its checksum',
  apply: 'applying a diff stream to an image',
  verify: 'checking the backup files against their checksums',
};

/**
 * The work's side of an operation: `begin` accepts it (the point of no return, see the backup
 * service) and names it in the request's audit entry (a failure too is traced to its operation),
 * `onProgress` reports each phase as a step counted in bytes.
 */
function operationHooks(accept: Accept, spec: OperationSpec, audit: AuditNote): { begin: () => Promise<void>; onProgress: OnBackupProgress } {
  let op: Progress | null = null;
  let phase: string | null = null;
  return {
    begin: async () => {
      op = await accept(spec);
      audit.operation = op.id;
    },
    onProgress: (p) => {
      if (!op) return;
      if (p.phase !== phase) {
        phase = p.phase;
        op.step(PHASE_STEP[p.phase], { done: p.done, total: p.total, unit: 'bytes' });
      } else op.report(p.done, p.total);
    },
  };
}

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/volumes/:tenant/:volume/backups';

  app.get(
    base,
    {
      schema: {
        tags: ['backups'],
        summary: "List a volume's backups, oldest first (read from its target; the volume itself may be gone)",
        params: VolumeParams,
        response: { 200: BackupListSchema, ...errorResponses(400, 401, 404, 409, 503) },
      },
    },
    async (request) => {
      const { tenant, volume } = assertVolumeRef(request.params.tenant, request.params.volume);
      return app.backups.list(tenant, volume);
    },
  );

  app.post(
    base,
    {
      schema: {
        tags: ['backups'],
        summary: "Take a backup now (full, or incremental from the last one) to the tenant's target",
        description:
          'Runs as an operation once the volume is locked: answers 201 with the backup at its end, or 202 at once with ?wait=false ' +
          '(poll GET /v1/operations/:id: bytes done of total, then the backup as `result`, or the error). A refusal (no such volume, ' +
          'no target configured, the volume busy) is an error answer without an operation.',
        params: VolumeParams,
        querystring: WaitQuery,
        response: { 201: BackupSchema, 202: OperationRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 503, 507) },
      },
    },
    async (request, reply) => {
      const { tenant, volume } = assertVolumeRef(request.params.tenant, request.params.volume);
      const wait = request.query.wait !== 'false';
      const { operation, value } = await app.operations.run(async (accept) => {
        const hooks = operationHooks(accept, { kind: 'backup', tenant, volume, by: request.caller.name, message: "backing up to the tenant's target" }, request.audit);
        const backup = await app.backups.take(tenant, volume, hooks);
        const message = `took ${backup.kind} backup ${backup.name} of ${tenant}/${volume}: ${backup.bytes} bytes in ${(backup.ms / 1000).toFixed(1)} s (${backup.location})`;
        return { value: backup, result: { ...backup }, message };
      }, { wait });
      if (!wait && operation) return reply.code(202).header('location', `/v1/operations/${operation.id}`).send(operation);
      if (value === undefined) throw new Error('a backup ended without its result');
      return reply.code(201).send(value);
    },
  );

  app.post(
    `${base}/restore`,
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: ['backups'],
        summary: 'Restore a backup (by name, or the newest at or before a time) into the volume (refused while mounted) or into a new volume',
        description:
          'Into the volume: its image is replaced by the backup, its previous data and snapshots are gone. Into a new volume ({"into": {"tenant", "volume"}}): ' +
          "made under the target tenant's policy and limits, with the backup's size. A volume whose record is gone is made again under its own name. " +
          'Runs as an operation once the volume is locked: answers 200 with the restore at its end, or 202 at once with ?wait=false ' +
          '(poll GET /v1/operations/:id: bytes done of total, then the restore as `result`, or the error).',
        params: VolumeParams,
        querystring: WaitQuery,
        body: BackupRestoreBody,
        response: { 200: BackupRestoreSchema, 202: OperationRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 422, 503) },
      },
    },
    async (request, reply) => {
      const source = assertVolumeRef(request.params.tenant, request.params.volume);
      const body = request.body ?? {};
      const wait = request.query.wait !== 'false';
      const choice = { backup: body.backup, at: body.at === undefined ? undefined : new Date(body.at) };
      const existing = await app.store.getVolume(source.tenant, source.volume);
      const inPlace = body.into === undefined && existing !== null;
      const into = inPlace ? source : assertVolumeRef(body.into?.tenant ?? source.tenant, body.into?.volume ?? source.volume);
      const hooksOfNew = inPlace ? null : restoreHooks((body.into?.options ?? {}) as OptionValues); // 400 for unknown options, before anything else
      const { operation, value } = await app.operations.run(async (accept) => {
        const spec: OperationSpec = { kind: 'restore', ...source, ...(inPlace ? {} : { target: into }), by: request.caller.name, message: `restoring a backup of ${source.tenant}/${source.volume}` };
        const hooks = operationHooks(accept, spec, request.audit);
        const result = hooksOfNew ? await restoreIntoNew(app.backups, source, choice, into, hooksOfNew, hooks) : await restoreInPlace(app.backups, source.tenant, source.volume, choice, hooks);
        request.log.warn({ source: `${source.tenant}/${source.volume}`, ...result }, 'backup restored');
        const where = result.created ? `new volume ${result.tenant}/${result.volume}` : `${result.tenant}/${result.volume}`;
        return { value: result, result: { ...result }, message: `restored backup ${result.backup} of ${source.tenant}/${source.volume} into ${where}` };
      }, { wait });
      if (!wait && operation) return reply.code(202).header('location', `/v1/operations/${operation.id}`).send(operation);
      if (value === undefined) throw new Error('a restore ended without its result');
      return reply.code(200).send(value);
    },
  );

  app.post(
    `${base}/verify`,
    {
      schema: {
        tags: ['backups'],
        summary: "Read a volume's backups back and check them: chains whole, sizes, checksums, streams (nothing is changed)",
        params: VolumeParams,
        response: { 200: BackupVerifySchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request) => {
      const { tenant, volume } = assertVolumeRef(request.params.tenant, request.params.volume);
      return verifyBackups(app.backups, tenant, volume, (p) => request.log.debug({ progress: p }, 'verify progress'));
    },
  );

  /** The create path of a new volume from a backup: the record under the target tenant's policy, as a snapshot copy makes it. */
  function restoreHooks(options: OptionValues): RestoreHooks {
    parseDriverOptions(options); // 400 for unknown keys before anything else
    const create = createPath(app);
    return {
      build: async ({ target, sizeBytes, source, backup }) => {
        const sourceRecord = source ?? (await recordOfGoneVolume(target.tenant));
        return policyCopyRecord(app.store, options)({ target, sizeBytes, sourceRecord, snapshot: backup });
      },
      prepare: create.prepare,
      afterRestore: create.mark,
      commit: create.commit,
      abandon: create.abandon,
    };
  }

  /** What a copy takes from its source, for a volume whose record is gone: the tenant's default filesystem. */
  async function recordOfGoneVolume(tenant: string): Promise<VolumeRecord> {
    const policy = (await app.volumes.requireTenant(tenant)).policy;
    const filesystem = policyDefaults(policy).filesystem;
    return { options: { filesystem }, formatCommand: formatCommandFor(policy, filesystem) } as VolumeRecord;
  }
};

export default routes;
