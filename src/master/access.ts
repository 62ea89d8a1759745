// What each role may do: the one table of it (docs/security.md shows the same), checked in an
// onRequest hook after auth.ts has named the caller.
//
//   read-only  every GET except the token list and the audit trail: monitoring (operations' progress included).
//   host       what volplugin needs for Docker's protocol, plus every GET a read-only token has:
//              create a volume (within its tenant's policy and limits), and remove one only as
//              `docker volume rm` does: forget the record and keep the image (?keep-image=true),
//              or remove an ephemeral volume with its image. No force-remove, no data deletion of
//              other volumes, no tenant upload, no snapshots, no rollback, no runtime changes.
//   provisioner what the CSI controller needs (docs/csi.md), and all a host may: remove volumes
//              with their data, take, remove and copy snapshots, grow volumes, attach and detach
//              volumes to hosts. No tenant upload, force-remove, rollback, runtime changes,
//              mount records or tokens.
//   admin      everything, tokens included.
//
// A route missing from the table is admin-only: a new route is closed until someone decides.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../api/errors.js';
import type { Role } from '../state/records.js';
import type { VolumeRecord } from '../state/records.js';
import type { Caller } from './auth.js';

/** The least role a route needs ('public': no token at all). */
export type Access = 'public' | Role;

const RANK: Record<Role, number> = { 'read-only': 1, host: 2, provisioner: 3, admin: 4 };

export const ROUTE_ACCESS: Readonly<Record<string, Access>> = {
  'GET /v1/health': 'public',
  'GET /v1/ready': 'read-only',
  'GET /v1/openapi.json': 'read-only',
  'GET /v1/whoami': 'read-only',
  'GET /v1/tenants': 'read-only',
  'GET /v1/tenants/:tenant': 'read-only',
  'GET /v1/tenants/:tenant/history': 'read-only',
  'GET /v1/tenants/:tenant/history/:revision': 'read-only',
  'GET /v1/tenants/:tenant/usage': 'read-only',
  'PUT /v1/tenants/:tenant': 'admin',
  'DELETE /v1/tenants/:tenant': 'admin',
  'GET /v1/volumes': 'read-only',
  'GET /v1/volumes/:tenant': 'read-only',
  'GET /v1/volumes/:tenant/:volume': 'read-only',
  'PUT /v1/volumes/:tenant/:volume': 'host',
  // A host may only forget a record (keep-image) or remove an ephemeral volume: removalOf() below.
  'DELETE /v1/volumes/:tenant/:volume': 'host',
  'GET /v1/volumes/:tenant/:volume/runtime': 'read-only',
  'PATCH /v1/volumes/:tenant/:volume/runtime': 'admin',
  'GET /v1/mounts': 'read-only',
  'GET /v1/mounts/:tenant/:volume': 'read-only',
  'DELETE /v1/mounts/:tenant/:volume': 'admin',
  'GET /v1/hosts': 'read-only',
  'GET /v1/hosts/:hostId': 'read-only',
  'GET /v1/volumes/:tenant/:volume/snapshots': 'read-only',
  'POST /v1/volumes/:tenant/:volume/snapshots': 'provisioner',
  'DELETE /v1/volumes/:tenant/:volume/snapshots/:snapshot': 'provisioner',
  'POST /v1/volumes/:tenant/:volume/snapshots/:snapshot/copy': 'provisioner',
  'POST /v1/volumes/:tenant/:volume/snapshots/:snapshot/rollback': 'admin',
  'GET /v1/attachments': 'read-only',
  'GET /v1/volumes/:tenant/:volume/attachment': 'read-only',
  'PUT /v1/volumes/:tenant/:volume/attachment': 'provisioner',
  'DELETE /v1/volumes/:tenant/:volume/attachment': 'provisioner',
  'GET /v1/volumes/:tenant/:volume/backups': 'read-only',
  'POST /v1/volumes/:tenant/:volume/backups': 'admin',
  'POST /v1/volumes/:tenant/:volume/backups/restore': 'admin',
  // Reads every backup back: heavy on the target, so not for monitoring tokens.
  'POST /v1/volumes/:tenant/:volume/backups/verify': 'admin',
  // The CSI controller's ControllerExpandVolume (and the grow of a copy to its capacity range).
  'POST /v1/volumes/:tenant/:volume/resize': 'provisioner',
  // Progress of long operations: monitoring may watch them; they name the token that started each.
  'GET /v1/operations': 'read-only',
  'GET /v1/operations/:id': 'read-only',
  // The audit trail names every token and what it did (read-only may not list tokens either).
  'GET /v1/audit': 'admin',
  'GET /v1/groups/:tenant/:group/snapshots': 'read-only',
  'POST /v1/groups/:tenant/:group/snapshots': 'admin',
  'DELETE /v1/groups/:tenant/:group/snapshots/:snapshot': 'admin',
  'POST /v1/groups/:tenant/:group/snapshots/:snapshot/rollback': 'admin',
  'POST /v1/groups/:tenant/:group/snapshots/:snapshot/copy': 'admin',
  'GET /v1/tokens': 'admin',
  'POST /v1/tokens': 'admin',
  'DELETE /v1/tokens/:name': 'admin',
};

export function may(caller: Caller, access: Access): boolean {
  return access === 'public' || RANK[caller.role] >= RANK[access];
}

function forbidden(caller: Caller, what: string, instead: string): ApiError {
  return new ApiError('FORBIDDEN', `token ${caller.name} (role ${caller.role}) may not ${what}; ${instead}`);
}

/** Installs the hook that refuses (403) a route the caller's role does not reach. */
export function installAccess(app: FastifyInstance): void {
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const url = request.routeOptions.url;
    if (url === undefined) return; // no such route: the 404 handler answers
    const access = ROUTE_ACCESS[`${request.method} ${url}`] ?? 'admin';
    if (!may(request.caller, access)) {
      throw forbidden(request.caller, `${request.method} ${url}`, `it needs a token of role ${access}${access === 'admin' ? ' (volcli with the admin token)' : ''}`);
    }
  });
}

export type Removal = 'force' | 'keep-image' | 'destroy';

/** 403 unless the caller may make this kind of removal (a host: keep-image only, destroy only if ephemeral: see authorizeDestroy). */
export function checkRemoval(caller: Caller, removal: Removal): void {
  if (caller.role === 'admin') return;
  if (removal === 'force') throw forbidden(caller, 'force-remove volumes', 'only an admin may (volcli volume force-remove)');
}

/** Run under the volume's lock, with the record: a host may delete the data of ephemeral volumes only. */
export function authorizeDestroy(caller: Caller, record: VolumeRecord): void {
  if (may(caller, 'provisioner') || record.options.ephemeral) return;
  throw forbidden(
    caller,
    `remove ${record.tenant}/${record.volume} with its data (it is not ephemeral)`,
    'a host may only forget the record (?keep-image=true, what docker volume rm does); an admin or provisioner removes data (volcli volume remove)',
  );
}
