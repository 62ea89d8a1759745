// Backups of a volume (src/backups, docs/backups.md): list, take now, restore (into the volume, or
// into a new one through the create path), verify. They run in this master, which must reach the
// tenant's target (the directory or NFS share, or the second cluster) as volsupervisor does.
// Long: the client waits (ApiClient's BACKUP_TIMEOUT_MS); each reports progress through a
// callback that the operations API can take over.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { BackupListSchema, BackupRestoreBody, BackupRestoreSchema, BackupSchema, BackupVerifySchema } from '../../api/backups.js';
import { VolumeParams, errorResponses } from '../../api/schemas.js';
import { restoreInPlace, restoreIntoNew, type RestoreHooks } from '../../backups/restore.js';
import { verifyBackups } from '../../backups/verify.js';
import { formatCommandFor } from '../../policy/filesystem.js';
import { assertVolumeRef } from '../../policy/names.js';
import { parseDriverOptions, type OptionValues } from '../../policy/options.js';
import { policyDefaults } from '../../policy/validate.js';
import { policyCopyRecord } from '../../snapshots/copy-record.js';
import type { VolumeRecord } from '../../state/records.js';
import { createPath, emptyBodyIsObject } from './shared.js';

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
        summary: 'Take a backup now (full, or incremental from the last one) to the tenant\'s target',
        params: VolumeParams,
        response: { 201: BackupSchema, ...errorResponses(400, 401, 403, 404, 409, 503, 507) },
      },
    },
    async (request, reply) => {
      const { tenant, volume } = assertVolumeRef(request.params.tenant, request.params.volume);
      const backup = await app.backups.take(tenant, volume, { onProgress: (p) => request.log.debug({ progress: p }, 'backup progress') });
      return reply.code(201).send(backup);
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
          "made under the target tenant's policy and limits, with the backup's size. A volume whose record is gone is made again under its own name.",
        params: VolumeParams,
        body: BackupRestoreBody,
        response: { 200: BackupRestoreSchema, ...errorResponses(400, 401, 403, 404, 409, 422, 503) },
      },
    },
    async (request) => {
      const source = assertVolumeRef(request.params.tenant, request.params.volume);
      const body = request.body ?? {};
      const choice = { backup: body.backup, at: body.at === undefined ? undefined : new Date(body.at) };
      const onProgress = (p: unknown) => request.log.debug({ progress: p }, 'restore progress');
      const existing = await app.store.getVolume(source.tenant, source.volume);
      const result =
        body.into === undefined && existing
          ? await restoreInPlace(app.backups, source.tenant, source.volume, choice, { onProgress })
          : await restoreIntoNew(app.backups, source, choice, assertVolumeRef(body.into?.tenant ?? source.tenant, body.into?.volume ?? source.volume), restoreHooks((body.into?.options ?? {}) as OptionValues), { onProgress });
      request.log.warn({ source: `${source.tenant}/${source.volume}`, ...result }, 'backup restored');
      return result;
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
