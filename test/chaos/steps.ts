// Steps that several scenarios' rounds are made of: hold a volume and write to it, read it back
// on the next holder, take a volume over from a holder that is gone, and let go of it.

import type { ChaosHost } from './hosts.js';
import { checkDurability } from './invariants/durability.js';
import { checkNotStuck } from './invariants/not-stuck.js';
import { checkSingleWriter } from './invariants/single-writer.js';
import { violation } from './invariants/types.js';
import { readJournal, type JournalWriter } from './journal.js';
import type { Round } from './scenario.js';
import { sleep } from './wait.js';

/** A volume mounted on a host for one reference, with a writer appending to it. */
export interface Holding {
  host: ChaosHost;
  name: string;
  id: string;
  writer: JournalWriter | null;
  /** When the Mount answered (ms since epoch). */
  since?: number;
}

/** `n` distinct hosts of the world, in a seeded random order. */
export function pickHosts(r: Round, n: number, from: readonly ChaosHost[] = r.world.hosts): ChaosHost[] {
  if (from.length < n) throw new Error(`the scenario needs ${n} hosts, it has ${from.length}`);
  return r.rng.shuffle(from).slice(0, n);
}

/** Two distinct hosts, in a seeded random order. */
export function pickPair(r: Round, from: readonly ChaosHost[] = r.world.hosts): [ChaosHost, ChaosHost] {
  const [a, b] = pickHosts(r, 2, from);
  return [a!, b!];
}

/** Fails the round (an error, not a violation) when a step that must work does not. */
export function must(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

/** Mounts `name` on `host` with a fresh ID; null when the Mount failed (its answer is in `err`). */
export async function mountFresh(r: Round, host: ChaosHost, name: string): Promise<{ id: string; ok: boolean; err: string; hung: boolean }> {
  const id = r.rng.mountId();
  const result = await host.mount(name, id);
  if (result.ok) {
    r.cleanup(async () => {
      if (host.refs.get(name)?.has(id) && (await host.alive()) && !host.isPaused) await host.unmount(name, id);
    });
  }
  if (result.hung) await r.check('bounded', () => [violation('bounded', `Mount of ${name} on ${host.label} did not answer`, { err: result.err })]);
  return { id, ok: result.ok, err: result.err, hung: result.hung };
}

/** Starts a writer on a mounted volume and waits for its first `acks` records. */
export async function startWriting(r: Round, host: ChaosHost, name: string, acks = 3): Promise<JournalWriter> {
  const writer = r.world.journal(name).start(host.label, r.index, host.mountpoint(name));
  r.cleanup(async () => {
    await writer.stop();
    r.world.journal(name).settle(writer);
  });
  const ok = await writer.waitAcked(acks, 30_000);
  must(ok, `writer on ${host.label} for ${name} got no ${acks} acknowledged records: ${writer.error ?? 'timed out'}`);
  return writer;
}

/** Stops a writer and records its final count of acknowledged records. */
export async function stopWriting(r: Round, name: string, writer: JournalWriter | null): Promise<void> {
  if (!writer) return;
  const gone = await writer.stop();
  r.world.journal(name).settle(writer);
  if (!gone) r.note(`a writer on ${writer.host} stayed blocked in the kernel`);
}

/** The next holder reads back every session no one verified yet (durability). */
export async function readBack(r: Round, host: ChaosHost, name: string): Promise<void> {
  const journal = r.world.journal(name);
  const claims = journal.unverified();
  if (claims.every((c) => c.acked === 0)) return;
  await r.check('durability', async () => checkDurability(name, host.label, claims, await readJournal(host.mountpoint(name))));
  journal.markVerified(claims.map((c) => c.session));
}

/** Every host's view of the volume: at most one writable mount. */
export async function checkWriters(r: Round, name: string, hosts: readonly ChaosHost[] = r.world.hosts): Promise<void> {
  await r.check('single-writer', async () => checkSingleWriter(name, r.world.cluster.imageOf(name), hosts, (await r.world.cluster.mountLock(name))?.host ?? null));
}

/** Unmounts one reference (after stopping its writer); a failure is reported as an error of the round. */
export async function release(r: Round, h: Holding): Promise<void> {
  await stopWriting(r, h.name, h.writer);
  h.writer = null;
  const result = await h.host.unmount(h.name, h.id);
  if (result.hung) await r.check('bounded', () => [violation('bounded', `Unmount of ${h.name} on ${h.host.label} did not answer`, { err: result.err })]);
  must(result.ok, `Unmount of ${h.name} on ${h.host.label}: ${result.err}`);
}

/**
 * The holder of `name` is gone since `goneAt`: the takers try to Mount it (all at once, each try
 * with fresh IDs, as restarted containers would) until one wins, within the not-stuck bound plus
 * a margin. Returns the winner's holding, or null.
 */
export async function takeOver(r: Round, name: string, takers: readonly ChaosHost[], goneAt: number): Promise<Holding | null> {
  const boundMs = r.settings.lockTtl * 1000 + r.settings.takeoverSlackMs;
  const deadline = goneAt + boundMs + 30_000;
  let lastError = '';
  let winner: Holding | null = null;
  let mountedAt: number | null = null;
  while (Date.now() < deadline && !winner) {
    const tries = await Promise.all(takers.map(async (host) => ({ host, ...(await mountFresh(r, host, name)) })));
    const won = tries.filter((t) => t.ok);
    if (won.length > 1) {
      await r.check('single-writer', () => [
        violation('single-writer', `${won.length} hosts' Mounts of ${name} succeeded at once: ${won.map((w) => w.host.label).join(', ')}`, {}),
      ]);
    }
    if (won.length > 0) {
      mountedAt = Date.now();
      winner = { host: won[0]!.host, name, id: won[0]!.id, writer: null, since: mountedAt };
      for (const extra of won.slice(1)) await extra.host.unmount(name, extra.id);
    } else {
      lastError = tries.map((t) => `${t.host.label}: ${t.err}`).join('; ');
      await sleep(300);
    }
  }
  await r.check('not-stuck', () => checkNotStuck({ name, goneAt, mountedAt, boundMs, by: takers.map((t) => t.label).join('/'), lastError }));
  return winner;
}
