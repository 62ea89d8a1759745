// Attachments: which host a CSI CO has published each volume to (ControllerPublishVolume). List,
// get, attach (idempotent PUT), detach. The rules are src/state/attachments.ts's.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../../api/errors.js';
import { AttachBody, AttachmentList, AttachmentRecordSchema, DetachQuery, VolumeParams, errorResponses } from '../../api/schemas.js';
import { assertVolumeRef } from '../../policy/names.js';
import { attachVolume, detachVolume } from '../attachments.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/attachments',
    { schema: { tags: ['attachments'], summary: 'List every attachment record (those of removed volumes included)', response: { 200: AttachmentList, ...errorResponses(401, 503) } } },
    async () => ({ attachments: await app.store.listAttachments() }),
  );

  app.get(
    '/v1/volumes/:tenant/:volume/attachment',
    {
      schema: {
        tags: ['attachments'],
        summary: 'The host a volume is attached to',
        params: VolumeParams,
        response: { 200: AttachmentRecordSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { tenant, volume } = request.params;
      assertVolumeRef(tenant, volume);
      const record = await app.store.getAttachment(tenant, volume);
      if (!record) throw new ApiError('ATTACHMENT_NOT_FOUND', `volume ${tenant}/${volume} is attached to no host`, { field: 'volume' });
      return record;
    },
  );

  app.put(
    '/v1/volumes/:tenant/:volume/attachment',
    {
      schema: {
        tags: ['attachments'],
        summary: 'Attach a volume to a host (201), or return the attachment when it is attached there already (200)',
        description:
          'One host per volume. Refused while the volume is attached to another host whose volplugin is alive (409 VOLUME_ATTACHED) ' +
          'or mounted by another host (409 VOLUME_MOUNTED); attached to a host whose volplugin is gone, it is taken over, and that ' +
          "host's Ceph client is fenced by the new host before it maps the image.",
        params: VolumeParams,
        body: AttachBody,
        response: { 200: AttachmentRecordSchema, 201: AttachmentRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      const { tenant, volume } = request.params;
      const { record, created } = await attachVolume(app.store, request.log, {
        tenant,
        volume,
        hostId: request.body.hostId,
        readonly: request.body.readonly ?? false,
        by: request.caller.name,
      });
      return reply.code(created ? 201 : 200).send(record);
    },
  );

  app.delete(
    '/v1/volumes/:tenant/:volume/attachment',
    {
      schema: {
        tags: ['attachments'],
        summary: 'Detach a volume (from the host given by ?host-id only, when given); nothing to detach is success',
        description: 'Refused (409 VOLUME_MOUNTED) while the attached host still holds the mount lock.',
        params: VolumeParams,
        querystring: DetachQuery,
        response: { 204: { type: 'null' }, ...errorResponses(400, 401, 403, 409, 503) },
      },
    },
    async (request, reply) => {
      const { tenant, volume } = request.params;
      await detachVolume(app.store, request.log, tenant, volume, request.query['host-id'] ?? null, request.caller.name);
      return reply.code(204).send();
    },
  );
};

export default routes;
