// Consistent snapshots, the snapshotter's side: a volume whose runtime options say
// `snapshots.consistency: fsfreeze` is held still by the host that mounts it for the instant of the
// snapshot (the `freeze` and `thaw` host requests; src/plugin/mounts/freeze.ts is the host's side).
//
//   1. For each such volume, the mount lock names its holder (no lock: nobody mounts it, nothing to
//      freeze). The holder is asked to freeze it with a token of ours and a bound (thawAfterMs):
//      it freezes the filesystem if mounted there, and in any case lets no Mount start there,
//      until our thaw or the bound.
//   2. The snapshot is taken (`take`).
//   3. Every holder is asked to thaw. Its answer says whether the freeze held until then, which
//      brackets the snapshot. A holder that cannot be reached for the thaw thaws by itself at the
//      bound; the freeze then provably held if the snapshot was done within the bound, counted
//      from before the freeze was asked for.
//   4. A volume that nobody held in step 1 but that is mounted now was mounted while the snapshot
//      was taken, unfrozen.
//
// A holder that does not answer the freeze, cannot freeze, or a freeze that did not hold (3, 4):
// the snapshot is refused (FREEZE_FAILED, or BUSY for 4) and what `take` made is undone
// (`undo`): a volume that asks for fsfreeze is never snapshotted otherwise, and a scheduled one is
// tried again. Whoever dies where: a dead snapshotter's freeze ends at its bound on the host; a
// dead host's volume cannot be snapshotted until its mount lock expires.

import { randomBytes } from 'node:crypto';
import { HostRequestKind } from '../state/host-requests.js';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { MountRecord, VolumeRecord } from '../state/records.js';
import type { StateStore } from '../state/store.js';
import { ApiError } from './errors.js';

export interface FreezeSettings {
  /** How long the holder has to answer a freeze (it flushes the filesystem first): default 15 s. */
  askTimeoutMs?: number;
  /** The bound the holder thaws at by itself: default 10 s (the host allows at most 60 s). */
  thawAfterMs?: number;
  /** How long a thaw is waited for (the holder thaws at the bound anyway): default 5 s. */
  thawTimeoutMs?: number;
  /** Test-only: runs once every holder froze, before the snapshot (the master's failpoint after-freeze). */
  afterFreeze?: () => Promise<void>;
}

interface Held {
  record: VolumeRecord;
  mount: MountRecord;
  token: string;
  /** performance.now() before the freeze was asked for. */
  sentAt: number;
  /** The holder's freeze answer: frozen (mounted there) or held unmounted; undefined: none yet. */
  frozen?: boolean;
}

const name = (r: VolumeRecord) => `${r.tenant}/${r.volume}`;

export function wantsFreeze(record: VolumeRecord): boolean {
  return record.runtime.snapshot.consistency === 'fsfreeze';
}

export class SnapshotFreezer {
  private readonly askTimeoutMs: number;
  private readonly thawAfterMs: number;
  private readonly thawTimeoutMs: number;

  constructor(
    private readonly store: Pick<StateStore, 'getMount' | 'askHost'>,
    private readonly log: Logger,
    private readonly settings: FreezeSettings = {},
  ) {
    this.askTimeoutMs = settings.askTimeoutMs ?? 15_000;
    this.thawAfterMs = settings.thawAfterMs ?? 10_000;
    this.thawTimeoutMs = settings.thawTimeoutMs ?? 5_000;
  }

  /**
   * Runs `take` with every record that asks for fsfreeze held still by its holder (see above), and
   * returns what it returned. When the freeze did not hold, `undo` gets that result and an ApiError
   * is thrown. The caller holds the records' operation locks.
   */
  async around<T>(records: readonly VolumeRecord[], take: () => Promise<T>, undo: (result: T) => Promise<void>): Promise<T> {
    const wanted = records.filter(wantsFreeze);
    if (wanted.length === 0) return take();
    const unheld: VolumeRecord[] = [];
    const held: Held[] = [];
    const asked = await Promise.allSettled(wanted.map((record) => this.freeze(record, held, unheld)));
    const refused = asked.find((a): a is PromiseRejectedResult => a.status === 'rejected');
    if (refused) {
      await this.thawAll(held);
      throw refused.reason;
    }
    let result: T;
    try {
      await this.settings.afterFreeze?.();
      result = await take();
    } catch (err) {
      await this.thawAll(held);
      throw err;
    }
    const problems = [...(await this.thawAll(held)), ...(await this.mountedMeanwhile(unheld))];
    if (problems.length === 0) {
      const frozen = held.filter((h) => h.frozen).map((h) => name(h.record));
      if (frozen.length > 0) this.log.info({ volumes: frozen }, 'snapshot taken with the filesystems frozen');
      return result;
    }
    await undo(result).catch((err: unknown) => this.log.error({ err, volumes: wanted.map(name) }, 'could not remove a snapshot taken without a holding freeze'));
    const first = problems[0]!;
    throw new ApiError(first.code, `${first.message}; the snapshot was not kept. Try again${first.code === 'FREEZE_FAILED' ? ', or set snapshots.consistency=crash to take it without a freeze' : ''}`);
  }

  /** Step 1 for one record: asks its holder (if any) to freeze it; throws the refusal. */
  private async freeze(record: VolumeRecord, held: Held[], unheld: VolumeRecord[]): Promise<void> {
    const mount = await this.store.getMount(record.tenant, record.volume);
    if (!mount) {
      unheld.push(record);
      return;
    }
    const hold: Held = { record, mount, token: randomBytes(12).toString('base64url'), sentAt: performance.now() };
    held.push(hold);
    const where = `host ${mount.host} (host id ${mount.hostId})`;
    let answer;
    try {
      answer = await this.store.askHost(
        mount.hostId,
        { kind: HostRequestKind.Freeze, tenant: record.tenant, volume: record.volume, params: { token: hold.token, thawAfterMs: this.thawAfterMs } },
        this.askTimeoutMs,
      );
    } catch (err) {
      // No answer: a late freeze there ends at its bound; a thaw is sent without waiting for it.
      held.splice(held.indexOf(hold), 1);
      this.store
        .askHost(mount.hostId, { kind: HostRequestKind.Thaw, tenant: record.tenant, volume: record.volume, params: { token: hold.token } }, this.thawTimeoutMs)
        .catch(() => undefined);
      throw new ApiError(
        'FREEZE_FAILED',
        `${name(record)} is mounted on ${where}, which did not answer the request to freeze it (${(err as Error).message}); ` +
          'a volume with snapshots.consistency=fsfreeze is only snapshotted frozen, so none was taken. Try again once that host answers, or set snapshots.consistency=crash',
        { cause: err },
      );
    }
    if (!answer.ok) {
      const why = answer.code === 'UNKNOWN_KIND' ? 'its volplugin does not know freeze requests (an older version: upgrade it)' : (answer.error ?? answer.code ?? 'refused');
      throw new ApiError('FREEZE_FAILED', `${where} could not freeze ${name(record)}: ${why}; no snapshot was taken. Try again, or set snapshots.consistency=crash`);
    }
    hold.frozen = answer.result?.frozen === true;
  }

  /** Step 3: thaws every hold; the problems of those whose freeze did not provably hold. */
  private async thawAll(held: readonly Held[]): Promise<Array<{ code: 'FREEZE_FAILED'; message: string }>> {
    const out = await Promise.all(
      held.map(async (h) => {
        const where = `host ${h.mount.host}`;
        try {
          const answer = await this.store.askHost(h.mount.hostId, { kind: HostRequestKind.Thaw, tenant: h.record.tenant, volume: h.record.volume, params: { token: h.token } }, this.thawTimeoutMs);
          if (answer.ok && answer.result?.thawed === true) return null;
          const why = answer.ok ? String(answer.result?.reason ?? 'not held') : (answer.error ?? answer.code);
          return { code: 'FREEZE_FAILED' as const, message: `the freeze of ${name(h.record)} on ${where} did not hold until the snapshot was taken (${why})` };
        } catch (err) {
          // The host thaws by itself at the bound, counted from after our request was sent.
          const elapsed = performance.now() - h.sentAt;
          if (h.frozen !== undefined && elapsed < this.thawAfterMs) {
            this.log.warn({ volume: name(h.record), host: h.mount.host, err: (err as Error).message }, 'thaw not confirmed; the host thaws at its bound, and the snapshot was taken within it');
            return null;
          }
          return { code: 'FREEZE_FAILED' as const, message: `${name(h.record)} on ${where} could not be asked to thaw and the snapshot took longer than the freeze's bound (${this.thawAfterMs} ms)` };
        }
      }),
    );
    return out.filter((p): p is { code: 'FREEZE_FAILED'; message: string } => p !== null);
  }

  /** Step 4: volumes nobody held that are mounted now were mounted during the snapshot. */
  private async mountedMeanwhile(unheld: readonly VolumeRecord[]): Promise<Array<{ code: 'BUSY'; message: string }>> {
    const now = await Promise.all(unheld.map(async (r) => ({ r, mount: await this.store.getMount(r.tenant, r.volume) })));
    return now
      .filter((x) => x.mount !== null)
      .map((x) => ({ code: 'BUSY' as const, message: `${name(x.r)} was mounted on host ${x.mount!.host} while the snapshot was taken, so it was not frozen` }));
  }
}
