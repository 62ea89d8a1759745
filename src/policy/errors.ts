// The one error type of src/policy: every rejection names the field it concerns (a dotted path such
// as `default-options.snapshot.keep`, or a driver option key such as `snapshots.keep`) and carries a
// stable code that the master maps to HTTP 400 and volcli prints as is.

export type PolicyErrorCode =
  /** The text is not JSON (message has line and column). */
  | 'INVALID_JSON'
  /** A tenant policy is well-formed JSON but not a valid policy. */
  | 'INVALID_POLICY'
  /** A tenant or volume name is not allowed. */
  | 'INVALID_NAME'
  /** A driver or runtime option: unknown key or a value of the wrong type. */
  | 'INVALID_OPTION';

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
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case 'number':
      return `the number ${value}`;
    case 'boolean':
      return `${value}`;
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}
