// Capacity ranges (CreateVolume, ControllerExpandVolume, NodeExpandVolume): `required_bytes` at
// least, `limit_bytes` at most, 0 for unset. volplugin sizes volumes in whole MiB where the range
// allows (a filesystem wants whole blocks), else whole KiB; a range nothing fits is OUT_OF_RANGE.

import { invalidArgument, outOfRange } from './errors.js';
import type { CapacityRange } from './proto.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export interface Range {
  /** 0: unset. */
  required: number;
  /** 0: unset. */
  limit: number;
}

function bytes(text: string | undefined, field: string): number {
  const value = BigInt(text && text !== '' ? text : '0');
  if (value < 0n) throw invalidArgument(`${field} is negative (${value}); give a number of bytes, or 0 for none`);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw outOfRange(`${field} ${value} is larger than volplugin can make (${Number.MAX_SAFE_INTEGER} bytes)`);
  return Number(value);
}

/** The range of a request; an absent one is {0, 0}. OUT_OF_RANGE when nothing can be in it. */
export function parseRange(range: CapacityRange | null | undefined, field = 'capacity_range'): Range {
  const required = bytes(range?.required_bytes, `${field}.required_bytes`);
  const limit = bytes(range?.limit_bytes, `${field}.limit_bytes`);
  if (limit > 0 && required > limit) throw outOfRange(`${field}: required_bytes ${required} is more than limit_bytes ${limit}`);
  if (limit > 0 && limit < MiB) throw outOfRange(`${field}: limit_bytes ${limit} is less than 1 MiB, the smallest volume volplugin makes`);
  return { required, limit };
}

const up = (n: number, unit: number) => Math.ceil(n / unit) * unit;
const down = (n: number, unit: number) => Math.floor(n / unit) * unit;

/** Whether a volume of `size` bytes is in the range. */
export function fits(size: number, range: Range): boolean {
  return (range.required === 0 || size >= range.required) && (range.limit === 0 || size <= range.limit);
}

/** The size of a new volume: the tenant's default (`defaultBytes`) when the range allows it, else the smallest size in it. */
export function sizeFor(range: Range, defaultBytes: number | null): number {
  if (range.required === 0) {
    if (defaultBytes !== null && fits(defaultBytes, range)) return defaultBytes;
    if (range.limit > 0) return down(range.limit, MiB);
    throw invalidArgument('the tenant policy sets no default size: give capacity_range.required_bytes');
  }
  for (const unit of [MiB, KiB]) {
    const size = Math.max(MiB, up(range.required, unit));
    if (fits(size, range)) return size;
  }
  throw outOfRange(`no volume size between ${range.required} and ${range.limit} bytes: volplugin sizes volumes in whole KiB, at least 1 MiB`);
}
