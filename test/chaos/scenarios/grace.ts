// The unmount grace (issue 14.1): hosts keep a volume mapped, mounted and locked after its last
// Unmount (`--unmount-grace`, long here so that only a release or the lease lets go). A holder
// writes, fsyncs and unmounts; then, by seed, it is left alone, paused (SIGSTOP) or killed (-9)
// while it keeps the volume idle, and the other host mounts it. Left alone, the holder must let go
// when asked, at once (one Mount, no retry); paused or killed, it cannot answer, and the other host
// gets the volume within the TTL plus fencing time, never earlier than it is safe. Either way one
// writable mount only and every fsync'd record read back; a woken holder takes nothing back.

import { killVolplugin } from '../faults/kill.js';
import { pauseVolplugin, resumeVolplugin } from '../faults/pause.js';
import { violation } from '../invariants/types.js';
import type { InvariantName } from '../invariants/types.js';
import type { Round, Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, pickPair, readBack, release, startWriting, takeOver, type Holding } from '../steps.js';
import { sleep } from '../wait.js';
import { createLaneVolumes } from './race.js';

/** Longer than any round: an idle volume is let go of only when asked, or with the lease. */
const GRACE_SECONDS = 600;

async function handover(r: Round): Promise<void> {
  const name = r.world.volumeName(r.lane);
  const [holder, taker] = pickPair(r);
  const m = await mountFresh(r, holder, name);
  must(m.ok, `${holder.label} could not mount ${name} to start the round: ${m.err}`);
  await readBack(r, holder, name);
  const held: Holding = { host: holder, name, id: m.id, writer: await startWriting(r, holder, name, 3) };
  await release(r, held); // idle on the holder now

  const fault = r.rng.pick(['none', 'none', 'pause', 'kill'] as const);
  try {
    let taken: Holding | null;
    if (fault === 'none') {
      const t = await mountFresh(r, taker, name);
      if (!t.ok) {
        await r.check('not-stuck', () => [violation('not-stuck', `${holder.label} kept ${name} idle and did not let go for ${taker.label}'s Mount`, { err: t.err })]);
      }
      taken = t.ok ? { host: taker, name, id: t.id, writer: null, since: Date.now() } : null;
    } else {
      const goneAt = fault === 'kill' ? await killVolplugin(holder) : pauseVolplugin(holder);
      r.fault();
      taken = await takeOver(r, name, [taker], goneAt);
    }
    await checkWriters(r, name);
    if (taken) {
      await readBack(r, taken.host, name);
      taken.writer = await startWriting(r, taken.host, name, 3);
    }
    if (fault === 'pause') resumeVolplugin(holder);
    if (fault === 'kill') await holder.restart();
    if (fault !== 'none') {
      // A few convergence rounds of the woken holder: it must not take the volume back.
      await sleep(2_500);
      await checkWriters(r, name);
    }
    if (taken) await release(r, taken);
    r.note(`${fault}`);
  } finally {
    if (holder.isPaused) resumeVolplugin(holder);
    if (!(await holder.alive())) await holder.restart().catch(() => undefined);
  }
}

// no-orphans is left out: volumes stay idle (mapped and locked) on purpose until their host stops.
const INVARIANTS: InvariantName[] = ['single-writer', 'durability', 'not-stuck', 'acked-creates', 'bounded'];

export const graceHandover: Scenario = {
  name: 'grace-handover',
  fault: 'holder keeps the volume idle after its last Unmount (left alone, paused or killed)',
  count: 40,
  shortCount: 2,
  invariants: INVARIANTS,
  hosts: 2,
  // One lane: a killed or paused holder must not be in another lane's round.
  lanes: 1,
  roundTimeoutMs: 240_000,
  hostArgs: ['--unmount-grace', String(GRACE_SECONDS)],
  setup: (world) => createLaneVolumes(world, 1),
  round: handover,
};
