// JSON records over the KV, as every module of the store reads and changes them: one record per
// key, checked against the schema of its key (schemas.ts) as it is read, a corrupt one reported as
// StateCorruptError naming its key and field, and compare-and-swap writes retried by one named
// policy (casRetry) when another writer got there first.

import { handleWhenResult, retry, type RetryPolicy } from 'cockatiel';
import { StateCorruptError } from './errors.js';
import type { Keys } from './keys.js';
import type { Entry, KV } from './kv.js';
import { recordSpecs } from './schemas.js';

/** How many times a compare-and-swap is tried before it gives up. */
export const CAS_ATTEMPTS = 20;

/** What an attempt returns when the key changed between its read and its write. */
export const CONFLICT: unique symbol = Symbol('compare-and-swap conflict');

/**
 * casRetry: an attempt that lost a compare-and-swap race is tried again at once (it reads the key
 * afresh, so it works on the winner's value), up to CAS_ATTEMPTS attempts in all. No backoff: a
 * lost race means someone else made progress.
 */
const casRetry = retry(
  handleWhenResult((result) => result === CONFLICT),
  { maxAttempts: CAS_ATTEMPTS - 1 },
);

export class RecordKV {
  private readonly specs: ReturnType<typeof recordSpecs>;

  constructor(
    readonly kv: KV,
    readonly keys: Keys,
  ) {
    this.specs = recordSpecs(keys);
  }

  /** The record in `entry`, checked against the schema of its key; StateCorruptError when it does not match. */
  parse<T>(entry: Entry): T {
    let value: unknown;
    try {
      value = JSON.parse(entry.value);
    } catch (err) {
      throw new StateCorruptError(entry.key, `invalid JSON: ${(err as Error).message}`, { cause: err });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new StateCorruptError(entry.key, 'not a JSON object');
    }
    const spec = this.specs.find(([root]) => entry.key.startsWith(root))?.[1];
    if (!spec) throw new StateCorruptError(entry.key, 'no record kind has this key (add its schema to src/state/schemas.ts)');
    const problem = spec.problem(value);
    if (problem) throw new StateCorruptError(entry.key, `not ${spec.what}: ${problem.field === '' ? problem.message : `${problem.field}: ${problem.message}`}`);
    return value as T;
  }

  /** The record, or null when it is unreadable (for callers that can do without it). */
  parseOrNull<T>(entry: Entry): T | null {
    try {
      return this.parse<T>(entry);
    } catch {
      return null;
    }
  }

  async read<T>(key: string): Promise<T | null> {
    const entry = await this.kv.get(key);
    return entry ? this.parse<T>(entry) : null;
  }

  /** Every record under `prefix`; with `onCorrupt`, a corrupt one is reported there and skipped instead of failing the whole list. */
  async readAll<T>(prefix: string, onCorrupt?: (err: StateCorruptError) => void): Promise<T[]> {
    const records: T[] = [];
    for (const entry of await this.kv.list(prefix)) {
      try {
        records.push(this.parse<T>(entry));
      } catch (err) {
        if (!onCorrupt || !(err instanceof StateCorruptError)) throw err;
        onCorrupt(err);
      }
    }
    return records;
  }

  /**
   * Runs a compare-and-swap `attempt` under casRetry (or `policy`). `attempt` returns its result,
   * or CONFLICT when its conditional write found the key changed. When the policy gives up: an
   * error naming `what`.
   */
  async cas<T>(what: string, attempt: () => Promise<T | typeof CONFLICT>, policy: RetryPolicy = casRetry): Promise<T> {
    const result = await policy.execute(attempt);
    if (result === CONFLICT) throw new Error(`${what}: gave up after too many concurrent modifications; try again`);
    return result;
  }
}
