// The grace after the last Unmount (--unmount-grace). Docker sends two Mount/Unmount pairs per
// `docker run` (the copy-up at container create, then the container's own), and scripts run
// containers one after another: instead of unmapping at the last Unmount and mapping again
// moments later, the host keeps the volume mapped, mounted and locked, "idle", until the grace
// ends, and a Mount on this host meanwhile takes it as it is.
//
// What keeps this safe (the rules are enforced where each concern lives):
// - An idle volume has no references: another host's Mount, a remove and a rollback ask this host
//   to release it (host request `release`, state/release.ts) and it is torn down at once; one
//   that containers use is refused as before (manager.ts release).
// - It never outlives the host's lease: a lost lease marks it lost like every other volume
//   (converge/actions.ts leaseLost) and the loop tears it down; the loop also tears down an idle
//   volume whose lock is not held under the live lease (after a restart) or whose grace is over
//   (converge/plan.ts), should its timer not have fired.
// - It is reported as idle, not as mounted by containers (converge/report.ts).
// - Before it is handed out again its lock and its mapping are checked (Mounter.whyNotReusable).

import { HostRequestKind } from '../../state/host-requests.js';
import type { HostRequestInbox } from '../cluster/requests.js';
import { PluginError } from '../errors.js';
import type { LocalVolume } from './local-state.js';
import type { MountManager } from './manager.js';

/** True when the volume is kept idle: no references, not lost, a grace end set. */
export function isIdle(entry: LocalVolume): boolean {
  return entry.refs.length === 0 && entry.idleUntil !== null && !entry.lost;
}

/** True when an idle volume's grace has ended at `now` (ms since the epoch). */
export function graceOver(entry: LocalVolume, now: number): boolean {
  return entry.idleUntil !== null && Date.parse(entry.idleUntil) <= now;
}

/** One timer per idle volume: fires at the end of its grace (the handler checks again). */
export class IdleTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  /** (Re)arms the timer of `key` to call `fire` at `at` (ms since the epoch). */
  arm(key: string, at: number, fire: () => void): void {
    if (this.stopped) return;
    this.cancel(key);
    const timer = setTimeout(() => {
      if (this.timers.get(key) === timer) this.timers.delete(key);
      fire();
    }, Math.max(0, at - Date.now()));
    timer.unref();
    this.timers.set(key, timer);
  }

  cancel(key: string): void {
    const timer = this.timers.get(key);
    if (timer) clearTimeout(timer);
    this.timers.delete(key);
  }

  /** Cancels every timer; none is armed afterwards (volplugin is stopping). */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}

/**
 * Registers the `release` handler on the host's inbox: another host's Mount, a remove or a
 * rollback asks for a volume this host keeps idle (state/release.ts); MountManager.release
 * answers (torn down at once, or IN_USE while containers use it).
 */
export function handleReleaseRequests(inbox: Pick<HostRequestInbox, 'handle'>, manager: Pick<MountManager, 'release'>): void {
  inbox.handle(HostRequestKind.Release, async (request) => {
    if (!request.tenant || !request.volume) throw new PluginError('BAD_REQUEST', 'a release request names no volume');
    return manager.release(request.tenant, request.volume);
  });
}
