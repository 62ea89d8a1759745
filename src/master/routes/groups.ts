// Group snapshots (consistency groups): one crash-consistent snapshot of several volumes of a
// tenant at one instant; list and remove them, roll the group back, copy one member's part into a
// new volume. The work is src/snapshots/groups.ts; a rollback and a copy run as operations.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  GroupMemberCopyBody,
  GroupParams,
  GroupSnapshotList,
  GroupSnapshotParams,
  GroupSnapshotSchema,
  GroupSnapshotTakeBody,
  OperationRecordSchema,
  VolumeRecordSchema,
  WaitQuery,
  errorResponses,
} from '../../api/schemas.js';
import { assertName, assertVolumeRef } from '../../policy/names.js';
import { parseDriverOptions, type OptionValues } from '../../policy/options.js';
import { policyCopyRecord } from '../../snapshots/copy-record.js';
import type { VolumeRecord } from '../../state/records.js';
import { createPath } from './shared.js';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/groups/:tenant/:group/snapshots';

  app.get(
    base,
    {
      schema: {
        tags: ['snapshots'],
        summary: "List a consistency group's snapshots, with the volumes it holds",
        params: GroupParams,
        response: { 200: GroupSnapshotList, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      assertName('tenant', request.params.tenant);
      return { snapshots: await app.snapshots.groups.list(request.params.tenant, request.params.group) };
    },
  );

  app.post(
    base,
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Take one snapshot of several volumes at one instant (the group is made on its first snapshot)',
        params: GroupParams,
        body: GroupSnapshotTakeBody,
        response: { 201: GroupSnapshotSchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      assertName('tenant', request.params.tenant);
      const { tenant, group } = request.params;
      const taken = await app.snapshots.groups.take(tenant, group, request.body.volumes, request.body.name);
      return reply.code(201).send(taken);
    },
  );

  app.delete(
    `${base}/:snapshot`,
    {
      schema: {
        tags: ['snapshots'],
        summary: "Remove a group snapshot (the group goes with its last one, freeing its volumes)",
        params: GroupSnapshotParams,
        response: { 204: { type: 'null' }, ...errorResponses(400, 401, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      assertName('tenant', request.params.tenant);
      const { tenant, group, snapshot } = request.params;
      await app.snapshots.groups.remove(tenant, group, snapshot);
      return reply.code(204).send();
    },
  );

  app.post(
    `${base}/:snapshot/rollback`,
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Roll every volume of the group back to a group snapshot, at once (refused while any is mounted or open)',
        description:
          'No host can mount a member while it runs (all excluded in one etcd transaction, on a lease). Answers 200 with the ' +
          'operation when done, or 202 at once with ?wait=false (poll GET /v1/operations/:id). Refused, with nothing changed: ' +
          '409 VOLUME_MOUNTED / VOLUME_IN_USE naming the member, 404 GROUP_NOT_FOUND / SNAPSHOT_NOT_FOUND.',
        params: GroupSnapshotParams,
        querystring: WaitQuery,
        response: { 200: OperationRecordSchema, 202: OperationRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      assertName('tenant', request.params.tenant);
      const { tenant, group, snapshot } = request.params;
      const wait = request.query.wait !== 'false';
      const { operation } = await app.operations.run(async (accept) => {
        const { volumes } = await app.snapshots.groups.rollback(tenant, group, snapshot, {
          accept: async (message) => (await accept({ kind: 'group-rollback', tenant, volume: group, by: request.caller.name, message })).listener('steps'),
        });
        return { value: volumes, result: { group, snapshot, volumes }, message: `${volumes.map((v) => `${tenant}/${v}`).join(', ')} rolled back to ${group}@${snapshot}` };
      }, { wait });
      if (!operation) throw new Error('a group rollback ended without an operation');
      request.audit.operation = operation.id;
      if (!wait) return reply.code(202).header('location', `/v1/operations/${operation.id}`).send(operation);
      return reply.code(200).send(operation);
    },
  );

  app.post(
    `${base}/:snapshot/copy`,
    {
      schema: {
        tags: ['snapshots'],
        summary: "Copy one member's part of a group snapshot into a new volume {tenant, volume} (a full copy, an operation)",
        description:
          'Answers 201 with the new volume once copied (the operation in the Location header), or 202 at once with the operation ' +
          'with ?wait=false. A master that dies mid-copy leaves no volume and no orphan image (its create intent is cleared). ' +
          "Needs the native backend (the rbd CLI cannot read a group member's snapshot).",
        params: GroupSnapshotParams,
        querystring: WaitQuery,
        body: GroupMemberCopyBody,
        response: { 201: VolumeRecordSchema, 202: OperationRecordSchema, ...errorResponses(400, 401, 403, 404, 409, 422, 500, 503) },
      },
    },
    async (request, reply) => {
      assertName('tenant', request.params.tenant);
      const { tenant, group, snapshot } = request.params;
      const { member } = request.body;
      assertVolumeRef(tenant, member);
      const target = { tenant: request.body.tenant, volume: request.body.volume };
      assertVolumeRef(target.tenant, target.volume);
      const options = (request.body.options ?? {}) as OptionValues;
      parseDriverOptions(options); // 400 for unknown keys before anything else
      const create = createPath(app);
      const wait = request.query.wait !== 'false';
      const { operation, value } = await app.operations.run<VolumeRecord>(async (accept) => {
        const hooks = { build: policyCopyRecord(app.store, options), prepare: create.prepare, afterClone: create.mark, commit: create.commit, abandon: create.abandon };
        const record = await app.snapshots.groups.copy({ tenant, group, snapshot, volume: member }, target, hooks, {
          accept: async (message) => (await accept({ kind: 'copy', tenant, volume: member, target, by: request.caller.name, message })).listener('objects'),
        });
        return { value: record, result: { image: `${record.pool}/${record.image}` }, message: `${target.tenant}/${target.volume} is a copy of ${tenant}/${member} as of ${group}@${snapshot}` };
      }, { wait });
      if (!operation) throw new Error('a group member copy ended without an operation');
      request.audit.operation = operation.id;
      void reply.header('location', `/v1/operations/${operation.id}`);
      if (!wait) return reply.code(202).send(operation);
      return reply.code(201).send(value!);
    },
  );
};

export default routes;
