// Asking a host to let go of a volume it keeps idle. After the last Unmount a volplugin keeps the
// volume mapped, mounted and locked for a short grace (--unmount-grace), so that the next Mount on
// that host reuses it; another host's Mount, a remove and a rollback must not wait for that grace.
// They ask the holder with a `release` host request (host-requests.ts): the holder tears the
// volume down and releases its lock, or refuses when containers use it. It is asked only when its
// report lists the volume as idle: a host whose report says the volume is in use, or that reports
// nothing (down, or not yet reporting), is not asked, and the caller is refused as before.

import type { HostAnswer, HostReport, MountRecord } from './records.js';
import { HostRequestKind, type HostRequestInput } from './host-requests.js';

/** How long a Mount, a remove or a rollback waits for the holder's answer. */
export const RELEASE_TIMEOUT_MS = 15_000;

/** What the holder said. */
export interface ReleaseOutcome {
  /** True when the holder was asked (its report listed the volume as idle). */
  asked: boolean;
  /** True when the holder let go: its lock is gone and the caller may try again. */
  released: boolean;
  /** Why not (for logs and errors), or what was released. */
  detail: string;
}

export interface ReleaseParts {
  getHostReport(hostId: string): Promise<HostReport | null>;
  askHost(hostId: string, request: HostRequestInput, timeoutMs: number): Promise<HostAnswer>;
}

/** True when `report` lists tenant/volume as idle (mapped for a next Mount, no container using it). */
export function reportsIdle(report: HostReport | null, tenant: string, volume: string): boolean {
  return !!report?.idle?.some((i) => i.tenant === tenant && i.volume === volume);
}

/** Asks the holder of a volume's mount lock to release the volume if it is idle there. */
export async function askRelease(parts: ReleaseParts, holder: MountRecord, timeoutMs = RELEASE_TIMEOUT_MS): Promise<ReleaseOutcome> {
  const { tenant, volume, hostId } = holder;
  const report = await parts.getHostReport(hostId);
  if (!report) return { asked: false, released: false, detail: `host ${holder.host} reports nothing (down, or not reporting yet)` };
  if (!reportsIdle(report, tenant, volume)) return { asked: false, released: false, detail: `host ${holder.host} reports it in use` };
  let answer: HostAnswer;
  try {
    answer = await parts.askHost(hostId, { kind: HostRequestKind.Release, tenant, volume }, timeoutMs);
  } catch (err) {
    return { asked: true, released: false, detail: `host ${holder.host} did not release it: ${(err as Error).message}` };
  }
  if (!answer.ok) return { asked: true, released: false, detail: `host ${holder.host} refused to release it: ${answer.error ?? answer.code ?? 'no reason given'}` };
  const released = answer.result?.released === true;
  return { asked: true, released, detail: released ? `host ${holder.host} released it` : `host ${holder.host} had nothing to release` };
}
