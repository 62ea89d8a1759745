// No volume stuck: once its holder is gone (killed, paused past its lease, rebooted, unmounted),
// another host mounts it within the lease TTL plus the fencing and mount time.

import { violation, type Violation } from './types.js';

export interface Takeover {
  name: string;
  /** When the holder went away (ms since epoch). */
  goneAt: number;
  /** When another host's Mount succeeded, or null if none did before the deadline. */
  mountedAt: number | null;
  /** TTL + fencing + mount allowance, in ms. */
  boundMs: number;
  by: string;
  lastError: string;
}

export function checkNotStuck(t: Takeover): Violation[] {
  const took = t.mountedAt === null ? null : t.mountedAt - t.goneAt;
  if (took !== null && took <= t.boundMs) return [];
  return [
    violation(
      'not-stuck',
      took === null
        ? `${t.by} could not mount ${t.name} within ${t.boundMs} ms after its holder was gone: ${t.lastError}`
        : `${t.by} mounted ${t.name} only ${took} ms after its holder was gone (bound ${t.boundMs} ms)`,
      { ...t, tookMs: took },
    ),
  ];
}
