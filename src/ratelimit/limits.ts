// A volume's rate limits as values: "no limit", comparing two sets, and the librbd QoS settings
// they become. The volume record keeps them (runtime.rateLimit); the master sets them on the image
// when a volume is created or changed, volplugin again when it mounts one.

import type { RateLimit } from '../policy/types.js';
import type { QosLimits } from '../storage/types.js';

export const UNLIMITED: RateLimit = Object.freeze({ writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 });

export function sameLimits(a: RateLimit | null | undefined, b: RateLimit | null | undefined): boolean {
  if (!a || !b) return a === b;
  return a.writeIops === b.writeIops && a.readIops === b.readIops && a.writeBps === b.writeBps && a.readBps === b.readBps;
}

/** librbd QoS keys for a volume's limits (0 removes a limit). */
export function qosOf(limits: RateLimit): QosLimits {
  return { writeIops: limits.writeIops, readIops: limits.readIops, writeBps: limits.writeBps, readBps: limits.readBps };
}
