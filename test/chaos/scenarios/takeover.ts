// A holder goes away while its containers write: killed (-9) or paused (SIGSTOP) past its lease.
// The other hosts take each of its volumes over within the TTL plus fencing time; the old holder's
// writes stop counting (its mount is not writable, its writer gets nothing acknowledged after the
// takeover); the new holder reads back every record the old one had fsync'd. Then the old holder
// wakes up (restarted, or SIGCONT) and must not take anything back: once the new holder lets go,
// another host mounts each volume at once. Finally the old holder's Docker lets go of its dead
// references. A short pause (within the TTL) must change nothing at all.

import { killVolplugin } from '../faults/kill.js';
import { pauseVolplugin, resumeVolplugin } from '../faults/pause.js';
import type { ChaosHost } from '../hosts.js';
import { violation } from '../invariants/types.js';
import { HOLDER_INVARIANTS, type Round, type Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, readBack, release, startWriting, stopWriting, takeOver, type Holding } from '../steps.js';
import { settleAll, sleep } from '../wait.js';
import type { World } from '../world.js';

async function createVolumes(world: World, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await world.createVolume(world.volumeName(i));
}

/** The victim mounts every volume (reading back what the last holder wrote) and writes to each. */
async function holdAll(r: Round, victim: ChaosHost, volumes: number): Promise<Holding[]> {
  return settleAll(
    Array.from({ length: volumes }, async (_, i) => {
      const name = r.world.volumeName(i);
      const m = await mountFresh(r, victim, name);
      must(m.ok, `${victim.label} could not mount ${name} to start the round: ${m.err}`);
      await readBack(r, victim, name);
      return { host: victim, name, id: m.id, writer: await startWriting(r, victim, name, 3) };
    }),
  );
}

/** The new holder: nothing acknowledged to the old writer after the takeover, one writable mount, all records there. */
async function afterTakeover(r: Round, old: Holding, taken: Holding): Promise<void> {
  const late = old.writer?.ackedAfter(taken.since ?? Date.now()) ?? 0;
  if (late > 0) {
    await r.check('single-writer', () => [
      violation('single-writer', `${old.host.label}'s writer had ${late} records of ${old.name} acknowledged after ${taken.host.label} mounted it`, {
        session: old.writer?.session,
      }),
    ]);
  }
  await checkWriters(r, old.name);
  await stopWriting(r, old.name, old.writer);
  old.writer = null;
  await readBack(r, taken.host, old.name);
  taken.writer = await startWriting(r, taken.host, old.name, 3);
}

function takeoverRound(kind: 'kill' | 'pause', volumes: number) {
  return async (r: Round): Promise<void> => {
    const victim = r.rng.pick(r.world.hosts);
    try {
      await playTakeover(r, kind, volumes, victim);
    } finally {
      // A round that failed half-way must not leave the next one a frozen or dead host.
      if (victim.isPaused) resumeVolplugin(victim);
      if (!(await victim.alive())) await victim.restart().catch(() => undefined);
    }
  };
}

async function playTakeover(r: Round, kind: 'kill' | 'pause', volumes: number, victim: ChaosHost): Promise<void> {
  const takers = r.world.hosts.filter((h) => h !== victim);
  const held = await holdAll(r, victim, volumes);
  const goneAt = kind === 'kill' ? await killVolplugin(victim) : pauseVolplugin(victim);
  r.fault();
  const taken = await Promise.all(held.map((h) => takeOver(r, h.name, takers, goneAt)));
  r.units(held.length);
  for (const [i, t] of taken.entries()) if (t) await afterTakeover(r, held[i]!, t);
  for (const h of held) {
    await stopWriting(r, h.name, h.writer);
    h.writer = null;
  }

  // The new holders let go before or after the old holder wakes up (both orders happen).
  const releaseFirst = r.rng.chance(0.5);
  let releasedAt = Date.now();
  const releaseAll = async () => {
    for (const t of taken) if (t) await release(r, t);
    releasedAt = Date.now();
  };
  if (releaseFirst) await releaseAll();
  if (kind === 'kill') await victim.restart();
  else resumeVolplugin(victim);
  // A few convergence rounds of the woken host.
  await sleep(2_500);
  for (const h of held) await checkWriters(r, h.name);
  if (!releaseFirst) await releaseAll();

  // Nobody is stuck: another host mounts each volume (before the old holder's containers let go).
  const nextHolders = held.map(() => r.rng.pick(takers));
  await settleAll(
    held.map(async (h, i) => {
      const again = await takeOver(r, h.name, [nextHolders[i]!], releasedAt);
      if (again) {
        await readBack(r, again.host, h.name);
        again.writer = await startWriting(r, again.host, h.name, 3);
        await release(r, again);
      }
    }),
  );
  // The old holder's containers die: Docker unmounts their references.
  for (const h of held) {
    const result = await victim.unmount(h.name, h.id);
    must(result.ok, `Unmount of the taken-over ${h.name} on ${victim.label}: ${result.err}`);
  }
}

async function pauseWithinTtl(r: Round): Promise<void> {
  const volumes = 2;
  const victim = r.rng.pick(r.world.hosts);
  const takers = r.world.hosts.filter((h) => h !== victim);
  const held = await holdAll(r, victim, volumes);
  const pauseMs = Math.round((r.settings.lockTtl * 1000) / r.rng.int(3, 5));
  pauseVolplugin(victim);
  r.fault();
  try {
    await sleep(pauseMs / 2);
    // A container starting elsewhere meanwhile is refused (or, if it wins, the old mount must be dead).
    for (const h of held) {
      const taker = r.rng.pick(takers);
      const m = await mountFresh(r, taker, h.name);
      if (m.ok) {
        r.note(`a Mount on another host won during a pause of ${pauseMs} ms (lease lost under load?)`);
        await checkWriters(r, h.name);
        await release(r, { host: taker, name: h.name, id: m.id, writer: null });
      }
    }
    await sleep(pauseMs / 2);
  } finally {
    resumeVolplugin(victim);
  }
  for (const h of held) {
    await checkWriters(r, h.name);
    const before = h.writer!.acked;
    if (!(await h.writer!.waitAcked(before + 3, 20_000))) r.note(`a writer made no progress after a pause within the TTL: ${h.writer!.error ?? 'timed out'}`);
  }
  for (const h of held) await release(r, h);
  for (const h of held) {
    const next = await takeOver(r, h.name, takers, Date.now());
    if (next) {
      await readBack(r, next.host, h.name);
      await release(r, next);
    }
  }
  r.units(1);
}

function takeoverScenario(kind: 'kill' | 'pause', name: string, fault: string): Scenario {
  return {
    name,
    fault,
    count: 100,
    invariants: HOLDER_INVARIANTS,
    hosts: 3,
    lanes: 1,
    roundTimeoutMs: 300_000,
    setup: (world) => createVolumes(world, 5),
    round: takeoverRound(kind, 5),
  };
}

export const killHolder = takeoverScenario('kill', 'kill-holder', 'kill -9 of the holder, restarted after the takeover');
export const pausePastTtl = takeoverScenario('pause', 'pause-past-ttl', 'SIGSTOP of the holder past its lease, SIGCONT after the takeover');

export const pauseWithin: Scenario = {
  name: 'pause-within-ttl',
  fault: 'SIGSTOP of the holder for a third of its lease',
  count: 10,
  invariants: HOLDER_INVARIANTS,
  hosts: 2,
  lanes: 1,
  roundTimeoutMs: 180_000,
  setup: (world) => createVolumes(world, 2),
  round: pauseWithinTtl,
};
