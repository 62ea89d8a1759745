// Checks of what a volcli command was given that commander cannot make itself: names, TENANT/VOLUME
// pairs, KEY=VALUE options. Anything wrong is a UsageError (exit code 2).

import { Option } from 'commander';
import { isPolicyError } from '../policy/errors.js';
import { assertName, parseVolumeRef, type VolumeRef } from '../policy/names.js';
import { parseOptionPairs } from '../policy/options.js';

/** A malformed command line that commander itself cannot see (e.g. TENANT/VOLUME without "/"). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Runs a policy check; its PolicyError becomes a UsageError. */
function asUsage<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (isPolicyError(err)) throw new UsageError(err.message);
    throw err;
  }
}

export function volumeRef(text: string): VolumeRef {
  return asUsage(() => parseVolumeRef(text));
}

export function tenantName(text: string): string {
  return asUsage(() => assertName('tenant', text));
}

/** KEY=VALUE pairs, checked by `check` (driver or runtime options). */
export function optionPairs(pairs: string[] | undefined, check: (values: Record<string, string>) => unknown): Record<string, string> {
  return asUsage(() => {
    const values = parseOptionPairs(pairs ?? []);
    check(values);
    return values;
  });
}

/** A repeatable option's values, in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** --opt KEY=VALUE, repeatable. */
export const optOption = () => new Option('--opt <key=value>', 'option, repeatable').argParser(collect);
