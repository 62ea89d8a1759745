// The audit trail, written in one place: hooks on every route whose method changes something (POST,
// PUT, PATCH, DELETE), so that a route added later is audited without a line of its own. Who (the
// token's name and role, from auth.ts), when, what (method, route, tenant/volume, the query and a
// summary of the body with secrets removed) and the outcome (status, error code) go to etcd through
// the state layer (src/state/audit.ts).
//
// The entry is written twice: `pending` when the request has passed authentication and the role
// check, before its handler runs (etcd not answering refuses the request: 503, fail closed), and
// complete once the answer was sent. A master that dies in between leaves the pending entry: the
// trail shows that something was attempted and never answered. A request the role table refuses
// (403) is recorded once, complete; one without a known token (401) is not (it names nobody, and a
// flood of them must not push real entries out of the bounded history; the master's log has them).
// A create of a volume that already existed with those options changed nothing and its entry is
// dropped (routes say so through `request.audit.unchanged`).

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditEntry } from '../state/records.js';
import { timeId } from '../state/store.js';
import { toErrorBody } from './errors.js';

/** What a route may add to its request's audit entry. */
export interface AuditNote {
  /** The entry written when the request arrived (null: none yet). */
  entry: AuditEntry | null;
  /** The operation the request started (GET /v1/operations/:id). */
  operation?: string;
  /** The request changed nothing after all (an idempotent create that found the volume): no entry. */
  unchanged?: boolean;
  /** The error the request failed with, as answered. */
  error?: { code: string; message: string };
}

declare module 'fastify' {
  interface FastifyRequest {
    audit: AuditNote;
  }
}

/** How much of the trail etcd keeps: the newest 10,000 entries, none older than 30 days (the master prunes it). */
export const AUDIT_BOUNDS = { maxCount: 10_000, maxAgeMs: 30 * 86_400_000 } as const;

/** The methods that change something: every route with one of them is audited. */
export const AUDITED_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Names a body key whose value is never recorded. */
const SECRET_KEY = /token|secret|password|passphrase|credential|private/i;
/** The longest string value kept, and the most keys or items per level, and levels. */
const MAX_STRING = 200;
const MAX_ITEMS = 30;
const MAX_DEPTH = 5;
/** A summary longer than this (as JSON) is cut to a string of this length. */
const MAX_SUMMARY = 4096;

/** The body as the trail keeps it: secrets replaced, long strings, lists and nesting cut. */
export function summarizeBody(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'string') return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}… (${value.length} chars)` : value;
  if (depth >= MAX_DEPTH) return '…';
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => summarizeBody(v, depth + 1));
    return value.length > MAX_ITEMS ? [...items, `… (${value.length} items)`] : items;
  }
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    const entries = Object.entries(value as Record<string, unknown>);
    for (const [k, v] of entries.slice(0, MAX_ITEMS)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : summarizeBody(v, depth + 1);
    if (entries.length > MAX_ITEMS) out['…'] = `${entries.length} keys`;
    return out;
  }
  return String(value);
}

function bodySummary(body: unknown): unknown {
  if (body === undefined) return undefined;
  const summary = summarizeBody(body);
  const text = JSON.stringify(summary);
  return text.length > MAX_SUMMARY ? `${text.slice(0, MAX_SUMMARY)}…` : summary;
}

function audited(request: FastifyRequest): boolean {
  return AUDITED_METHODS.has(request.method) && request.routeOptions.url !== undefined;
}

/** The entry of a request as it arrived. */
function arrivalEntry(request: FastifyRequest, master: string): AuditEntry {
  const params = (request.params ?? {}) as Record<string, unknown>;
  const query = Object.fromEntries(Object.entries((request.query ?? {}) as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'));
  const at = new Date();
  return {
    id: timeId(at),
    at: at.toISOString(),
    who: { name: request.caller.name, role: request.caller.role, via: request.caller.via },
    method: request.method,
    route: request.routeOptions.url ?? request.url,
    path: request.url.split('?')[0]!,
    ...(Object.keys(query).length > 0 ? { query } : {}),
    ...(typeof params.tenant === 'string' ? { tenant: params.tenant } : {}),
    ...(typeof params.volume === 'string' ? { volume: params.volume } : {}),
    outcome: 'pending',
    master,
  };
}

/** Installs the audit hooks (after auth.ts and access.ts: its onRequest runs only for a request they let through). */
export function installAudit(app: FastifyInstance): void {
  const store = app.store;
  app.decorateRequest('audit', null as unknown as AuditNote);

  app.addHook('onRequest', async (request: FastifyRequest) => {
    request.audit = { entry: null };
    if (!audited(request)) return;
    const entry = arrivalEntry(request, store.owner);
    await store.writeAudit(entry); // etcd down: the request is refused (503), never run unrecorded
    request.audit.entry = entry;
  });

  app.addHook('onError', async (request: FastifyRequest, _reply: FastifyReply, error: FastifyError) => {
    const { body } = toErrorBody(error);
    request.audit ??= { entry: null }; // refused before the audit's own onRequest ran (403)
    request.audit.error = { code: body.code, message: body.message };
  });

  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!audited(request) || !request.caller || reply.statusCode === 401) return;
    const note = request.audit ?? { entry: null };
    try {
      if (note.unchanged && reply.statusCode < 300) {
        if (note.entry) await store.dropAudit(note.entry.id);
        return;
      }
      const status = reply.statusCode;
      const entry: AuditEntry = {
        ...(note.entry ?? arrivalEntry(request, store.owner)),
        ...(request.body !== undefined ? { body: bodySummary(request.body) } : {}),
        outcome: status < 400 ? 'ok' : status < 500 ? 'refused' : 'failed',
        status,
        ...(note.error ? { code: note.error.code, message: note.error.message.slice(0, 500) } : {}),
        ...(note.operation ? { operation: note.operation } : {}),
        ms: Math.round(reply.elapsedTime),
      };
      if (note.entry) await store.completeAudit(entry);
      else await store.writeAudit(entry);
    } catch (err) {
      request.log.error({ err, route: request.routeOptions.url, method: request.method }, 'could not complete the audit entry of a request (it stays pending)');
    }
  });
}
