// Turns whatever a handler throws into the API's error body `{ code, message, field? }` with the
// catalogue's status (src/api/errors.ts). 5xx messages that could leak internals are replaced by a
// generic text; the full error goes to the log.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, ERROR_CATALOGUE, type ErrorBody, type ErrorCode } from '../api/index.js';
import { isPolicyError } from '../policy/errors.js';
import { StateUnavailableError } from '../state/kv.js';
import { QuotaExceededError, StateBusyError, StateCorruptError } from '../state/store.js';
import { RbdError } from '../storage/errors.js';
import { TimeoutError } from '../common/timeout.js';

/** errno names that mean "the Ceph cluster cannot be reached", not "the operation was refused". */
const CEPH_CONNECTION_CODES = new Set([
  'ETIMEDOUT',
  'ENOTCONN',
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ESHUTDOWN',
  'ECONNABORTED',
]);

export function isCephUnavailable(err: unknown): boolean {
  if (err instanceof RbdError) return CEPH_CONNECTION_CODES.has(err.code);
  return err instanceof TimeoutError;
}

/** An RbdError as the API reports it (other errors are returned unchanged). */
export function fromStorageError(err: unknown, what: string): unknown {
  if (err instanceof TimeoutError) {
    return new ApiError('STORAGE_UNAVAILABLE', `the Ceph cluster did not answer in time while ${what} (${err.message}); check ceph -s`, { cause: err });
  }
  if (!(err instanceof RbdError)) return err;
  if (isCephUnavailable(err)) {
    return new ApiError('STORAGE_UNAVAILABLE', `the Ceph cluster cannot be reached (${err.code} while ${what}); check the monitors and the volmaster's --ceph-conf`, { cause: err });
  }
  return new ApiError('STORAGE_ERROR', `Ceph refused ${what}: ${err.code} (${err.op}); see the volmaster log`, { cause: err });
}

/** Errors from Fastify's own (ajv) validation, should a schema ever bypass validation.ts. */
function fieldOfValidation(err: FastifyError): string | undefined {
  const first = err.validation?.[0];
  if (!first) return undefined;
  const path = first.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const missing = (first.params as { missingProperty?: string; additionalProperty?: string } | undefined) ?? {};
  const leaf = missing.missingProperty ?? missing.additionalProperty;
  return [path, leaf].filter(Boolean).join('.') || undefined;
}

/** Classifies an error: the code, status, message for the client and whether to log it as an error. */
export function toErrorBody(err: unknown): { status: number; body: ErrorBody; internal: boolean } {
  const make = (code: ErrorCode, message: string, field?: string, status?: number) => ({
    status: status ?? ERROR_CATALOGUE[code].status,
    body: field === undefined ? { code, message } : { code, message, field },
    internal: (status ?? ERROR_CATALOGUE[code].status) >= 500,
  });

  if (err instanceof ApiError) return make(err.code, err.message, err.field, err.status);
  if (isPolicyError(err)) return make(err.code, err.message, err.field);
  if (err instanceof StateUnavailableError) {
    return make('STATE_UNAVAILABLE', `etcd cannot be reached (${err.message}); check etcd and the volmaster's --etcd`);
  }
  if (err instanceof StateBusyError) return make('BUSY', err.message);
  if (err instanceof QuotaExceededError) return make('QUOTA_EXCEEDED', err.message, err.field);
  if (err instanceof StateCorruptError) return make('STATE_CORRUPT', err.message);
  if (err instanceof TimeoutError) {
    return make('STORAGE_UNAVAILABLE', `the Ceph cluster did not answer in time (${err.message}); check ceph -s`);
  }
  if (err instanceof RbdError) {
    const mapped = fromStorageError(err, `${err.op} on ${[err.pool, err.image].filter(Boolean).join('/') || 'the cluster'}`) as ApiError;
    return make(mapped.code, mapped.message);
  }

  const fe = err as FastifyError;
  if (fe && typeof fe === 'object' && Array.isArray(fe.validation)) {
    const where = fe.validationContext ?? 'request';
    const first = fe.validation[0];
    const path = first ? `${where}${first.instancePath.replace(/\//g, '.')}` : where;
    return make('INVALID_REQUEST', `${path} ${first?.message ?? 'is not valid'}`, fieldOfValidation(fe));
  }
  switch (fe?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return make('PAYLOAD_TOO_LARGE', 'the request body is larger than 1 MiB');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return make('UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON with Content-Type: application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return make('INVALID_JSON', 'the body is empty; send a JSON document');
  }
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return make('INVALID_REQUEST', fe.message, undefined, fe.statusCode);
  }
  return make('INTERNAL', 'internal error in volmaster; its log has the details');
}

export function errorHandler(this: FastifyInstance, err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, internal } = toErrorBody(err);
  if (internal) request.log.error({ err, code: body.code }, 'request failed');
  else request.log.info({ code: body.code, msg: body.message }, 'request refused');
  if (body.code === 'UNAUTHORIZED') void reply.header('www-authenticate', 'Bearer realm="volmaster"');
  void reply.code(status).type('application/json').send(body);
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply
    .code(404)
    .type('application/json')
    .send({ code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}; the API is under /v1 (see /v1/openapi.json)` });
}
