// One error type for every storage backend. The native addon builds it from C++ (it is handed this
// class at load time), the CLI backend maps `rbd`'s exit status and stderr to the same codes, so the
// layers above compare `err.code`, never messages.

import { constants } from 'node:os';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

/** Returns the symbolic name of a (positive or negative) errno, e.g. -2 -> "ENOENT". */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

export interface RbdErrorFields {
  /** Negative errno as librbd returns it (e.g. -2). */
  errno: number;
  /** The librbd/librados function or CLI verb that failed, e.g. "rbd_open". */
  op: string;
  pool?: string;
  image?: string;
  snapshot?: string;
  /** Human text from strerror or the CLI's stderr. */
  detail?: string;
}

export class RbdError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly op: string;
  readonly pool?: string;
  readonly image?: string;
  readonly snapshot?: string;
  /** The text behind the code (strerror, or the CLI's stderr line). */
  readonly detail?: string;

  constructor(fields: RbdErrorFields) {
    const errno = -Math.abs(fields.errno);
    const target = [fields.pool, fields.image].filter(Boolean).join('/') + (fields.snapshot ? `@${fields.snapshot}` : '');
    const code = errnoName(errno);
    super(`${fields.op}${target ? ` ${target}` : ''}: ${fields.detail ?? code} (${code})`);
    this.name = 'RbdError';
    this.code = code;
    this.errno = errno;
    this.op = fields.op;
    this.pool = fields.pool;
    this.image = fields.image;
    this.snapshot = fields.snapshot;
    this.detail = fields.detail;
  }
}

export function isRbdError(err: unknown, code?: string): err is RbdError {
  return err instanceof RbdError && (code === undefined || err.code === code);
}

/** Where a call was made: the stack of its caller, for errors that come back without one. */
export interface CallSite {
  stack?: string;
}

/** The caller's stack, without the frames of `fn` and below. */
export function callSite(fn: (...args: never[]) => unknown): CallSite {
  const site: CallSite = {};
  Error.captureStackTrace(site, fn);
  return site;
}

/** Gives an RbdError the stack of the call that caused it (its first line stays its message). */
export function withCallSite(err: unknown, site: CallSite): unknown {
  if (err instanceof RbdError && site.stack) {
    err.stack = `${err.name}: ${err.message}\n${site.stack.split('\n').slice(1).join('\n')}`;
  }
  return err;
}
