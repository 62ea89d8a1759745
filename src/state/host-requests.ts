// Requests to one host: how a master (or the supervisor) asks the volplugin that holds a volume to
// do something only that host can do (grow a mounted filesystem, freeze it for a snapshot, let go of
// an idle mapping) and waits for its answer.
//
// A request is one key, `host-requests/<hostId>/<id>`, bound to a lease of the requester's, so a
// request whose requester died vanishes after that lease's TTL and no host acts on it later. The
// host answers by rewriting the same key with an `answer` (keeping the requester's lease), in a
// transaction conditioned on the key being unchanged since the host read it: an answer never lands
// on a request that was withdrawn or replaced. The requester watches the key, reads the answer and
// revokes its lease, which deletes the key. Nothing is left behind on either side.

import { randomBytes } from 'node:crypto';
import { StateUnavailableError, type Watch } from './kv.js';
import type { Keys } from './keys.js';
import type { RecordKV } from './record-kv.js';
import type { HostAnswer, HostRequest } from './records.js';

/** The kinds of request in use, named once for both sides (docs/plugin.md "Requests from the masters"). */
export const HostRequestKind = {
  Ping: 'ping',
  /** A resize grew the image of a volume the host holds: grow its mounted filesystem (params.sizeBytes). */
  ResizeFs: 'resize-fs',
  /** Another host, a remove or a rollback wants a volume the host keeps idle after its last Unmount (release.ts). */
  Release: 'release',
  /** Hold a mounted volume still for an fsfreeze-consistent snapshot (params.token, params.thawAfterMs); the host thaws by itself. */
  Freeze: 'freeze',
  /** End that freeze (params.token). */
  Thaw: 'thaw',
} as const;

/** What a requester asks for (the store fills in id, host, times and who asked). */
export interface HostRequestInput {
  kind: string;
  tenant?: string;
  volume?: string;
  params?: Record<string, unknown>;
}

/** The host did not answer in time (down, paused, or busy longer than the requester waits). */
export class HostRequestTimeoutError extends Error {
  readonly code = 'HOST_TIMEOUT';
  constructor(
    readonly hostId: string,
    readonly kind: string,
    ms: number,
  ) {
    super(`host ${hostId} did not answer a ${kind} request within ${ms} ms (is its volplugin running and connected to etcd?)`);
    this.name = 'HostRequestTimeoutError';
  }
}

/** A request as a host sees it: the record and the revision its answer is conditioned on. */
export interface PendingHostRequest {
  request: HostRequest;
  modRevision: string;
}

export async function ask(
  db: RecordKV,
  keys: Keys,
  from: string,
  hostId: string,
  input: HostRequestInput,
  timeoutMs: number,
): Promise<HostAnswer> {
  const id = randomBytes(12).toString('hex');
  const key = keys.hostRequest(hostId, id);
  const now = Date.now();
  const request: HostRequest = {
    id,
    hostId,
    kind: input.kind,
    ...(input.tenant !== undefined ? { tenant: input.tenant } : {}),
    ...(input.volume !== undefined ? { volume: input.volume } : {}),
    params: input.params ?? {},
    from,
    at: new Date(now).toISOString(),
    deadline: new Date(now + timeoutMs).toISOString(),
  };
  // The key outlives a dead requester by at most this TTL (a whole number of seconds, at least 2).
  const lease = await db.kv.lease(Math.max(2, Math.ceil(timeoutMs / 1000) + 1));
  let watch: Watch | null = null;
  try {
    let settle: (answer: HostAnswer | Error) => void = () => undefined;
    const outcome = new Promise<HostAnswer | Error>((resolve) => (settle = resolve));
    const look = async () => {
      const entry = await db.kv.get(key);
      if (!entry) return settle(new StateUnavailableError(`the ${input.kind} request to host ${hostId} vanished before it was answered (its lease ended)`));
      const answer = db.parse<HostRequest>(entry).answer;
      if (answer) settle(answer);
    };
    // Watch before writing, so that an answer given at once cannot be missed.
    watch = await db.kv.watch(key, (event) => {
      if (event.key === key) look().catch((err: unknown) => settle(err as Error));
    });
    if (!(await db.kv.create(key, JSON.stringify(request), { lease }))) {
      throw new Error(`host request ${id} exists already (an id collision): try again`);
    }
    lease.onLost((err) => settle(new StateUnavailableError(`lost the lease of a ${input.kind} request to host ${hostId}: ${err.message}`)));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Error>((resolve) => {
      timer = setTimeout(() => resolve(new HostRequestTimeoutError(hostId, input.kind, timeoutMs)), timeoutMs);
    });
    const result = await Promise.race([outcome, timeout]).finally(() => clearTimeout(timer));
    if (result instanceof Error) throw result;
    return result;
  } finally {
    if (watch) await watch.close().catch(() => undefined);
    await lease.revoke().catch(() => undefined);
  }
}

/** The requests to `hostId` that have no answer yet, oldest first (an unreadable one is skipped). */
export async function pending(db: RecordKV, keys: Keys, hostId: string): Promise<PendingHostRequest[]> {
  const out: PendingHostRequest[] = [];
  for (const entry of await db.kv.list(keys.hostRequests(hostId))) {
    const request = db.parseOrNull<HostRequest>(entry);
    if (request && !request.answer && request.hostId === hostId) out.push({ request, modRevision: entry.modRevision });
  }
  return out.sort((a, b) => a.request.at.localeCompare(b.request.at));
}

/** Calls `onRequest` whenever a request to `hostId` is written (the host then reads `pending`). */
export function watchRequests(db: RecordKV, keys: Keys, hostId: string, onRequest: () => void): Promise<Watch> {
  return db.kv.watch(keys.hostRequests(hostId), (event) => {
    if (event.type === 'put') onRequest();
  });
}

/**
 * Writes the host's answer into the request, keeping the requester's lease. False when the request
 * is gone or changed meanwhile (the requester gave up): the answer is dropped.
 */
export async function answer(db: RecordKV, keys: Keys, pendingRequest: PendingHostRequest, result: Omit<HostAnswer, 'at'>): Promise<boolean> {
  const { request, modRevision } = pendingRequest;
  const key = keys.hostRequest(request.hostId, request.id);
  const answered: HostRequest = { ...request, answer: { ...result, at: new Date().toISOString() } };
  try {
    return await db.kv.transaction({ unchanged: [{ key, modRevision }], put: [{ key, value: JSON.stringify(answered), keepLease: true }] });
  } catch (err) {
    // The key vanished between the condition and the write (its lease ended): nobody waits for it.
    if (/key not found/.test((err as Error).message)) return false;
    throw err;
  }
}
