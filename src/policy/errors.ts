// The one error type of src/policy: every rejection names the field it concerns (a dotted path such
// as `default-options.snapshot.keep`, or a driver option key such as `snapshots.keep`) and carries a
// stable code that the master maps to HTTP 400 and volcli prints as is.

import { describeValue, type SchemaProblem } from '../common/schema.js';

export type PolicyErrorCode =
  /** The text is not JSON (message has line and column). */
  | 'INVALID_JSON'
  /** A tenant policy is well-formed JSON but not a valid policy. */
  | 'INVALID_POLICY'
  /** A tenant or volume name is not allowed. */
  | 'INVALID_NAME'
  /** A driver or runtime option: unknown key or a value of the wrong type. */
  | 'INVALID_OPTION'
  /** A driver or runtime option (or a policy default) beyond one of the tenant's limits. */
  | 'LIMIT_EXCEEDED';

export class PolicyError extends Error {
  readonly code: PolicyErrorCode;
  /** The offending field: a dotted path into the policy, an option key, or "tenant"/"volume". */
  readonly field: string | undefined;

  constructor(code: PolicyErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'PolicyError';
    this.code = code;
    this.field = field;
  }
}

export function isPolicyError(err: unknown): err is PolicyError {
  return err instanceof PolicyError;
}

/** Describes a JSON value's type the way users think of it, for "got ..." in messages. */
export const describeType = describeValue;

/** A schema problem (src/common/schema.ts) as a PolicyError: "field: what is wrong". */
export function schemaError(code: PolicyErrorCode, problem: SchemaProblem, whole: string): PolicyError {
  const message = problem.field === '' ? `${whole} ${problem.message}` : `${problem.field}: ${problem.message}`;
  return new PolicyError(code, message, problem.field === '' ? undefined : problem.field);
}
