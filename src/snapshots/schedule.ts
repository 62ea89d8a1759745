// The snapshot schedule as pure functions of a volume's runtime options, the last slot taken and
// the time: no I/O, so that unit tests drive it with any clock.
//
// Time is cut into slots of `frequency` counted from the Unix epoch (a 30m schedule has slots at
// :00 and :30 of every hour, UTC). A volume is due when the slot the clock is in is later than the
// last slot taken; the snapshot is named after the slot (see names.ts). So:
//  - a supervisor that starts, or a new leader that takes over, takes the current slot at once if
//    no one took it yet, never one per missed slot, and never the same slot twice;
//  - changing the frequency takes effect at the next slot boundary of the new frequency.

import { parseFrequency } from '../policy/units.js';
import type { RuntimeOptions } from '../policy/types.js';
import { retentionValueProblem, type Retention } from '../policy/retention.js';

export interface ScheduleSettings {
  frequencyMs: number;
  keep: Retention;
}

export type ScheduleOf =
  | { state: 'off' }
  | { state: 'on'; settings: ScheduleSettings }
  /** The record holds settings the policy layer would have refused (written by hand or by an old version). */
  | { state: 'invalid'; problem: string };

/** The schedule a volume's runtime options ask for. */
export function scheduleOf(runtime: Pick<RuntimeOptions, 'snapshots' | 'snapshot'> | undefined): ScheduleOf {
  if (!runtime || runtime.snapshots !== true) return { state: 'off' };
  const frequency = runtime.snapshot?.frequency;
  const keep = runtime.snapshot?.keep;
  if (typeof frequency !== 'string') return { state: 'invalid', problem: 'snapshots.frequency is not set' };
  let frequencyMs: number;
  try {
    frequencyMs = parseFrequency(frequency, { field: 'snapshots.frequency' });
  } catch (err) {
    return { state: 'invalid', problem: (err as Error).message };
  }
  const keepProblem = retentionValueProblem(keep);
  if (keepProblem) return { state: 'invalid', problem: `snapshots.keep: ${keepProblem}, got ${JSON.stringify(keep)}` };
  return { state: 'on', settings: { frequencyMs, keep: keep as Retention } };
}

/** The start (ms since the epoch) of the slot `nowMs` falls in. */
export function slotOf(nowMs: number, frequencyMs: number): number {
  if (!(frequencyMs >= 1)) throw new RangeError(`frequency must be at least 1 ms, got ${frequencyMs}`);
  return Math.floor(nowMs / frequencyMs) * frequencyMs;
}

/**
 * The slot to take now, or null when the current slot was already taken. `lastSlotMs` is the slot
 * the last scheduled snapshot was taken for (null: never). A last slot in the future (the previous
 * leader's clock ran ahead) defers the next snapshot until the clock passes it.
 */
export function dueSlot(nowMs: number, frequencyMs: number, lastSlotMs: number | null): number | null {
  const slot = slotOf(nowMs, frequencyMs);
  if (lastSlotMs === null || slot > lastSlotMs) return slot;
  return null;
}

/** When the next snapshot falls due (ms since the epoch), for status output. */
export function nextDueAt(nowMs: number, frequencyMs: number, lastSlotMs: number | null): number {
  const slot = slotOf(nowMs, frequencyMs);
  if (lastSlotMs === null || slot > lastSlotMs) return nowMs;
  return slotOf(lastSlotMs, frequencyMs) + frequencyMs;
}
