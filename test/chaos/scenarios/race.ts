// Two hosts Mount one volume at the same moment (fresh IDs, as two `docker run`s would): exactly
// one wins, only it has a writable mount, it reads back everything the previous winner fsync'd,
// writes its own records and lets go.

import { violation } from '../invariants/types.js';
import { HOLDER_INVARIANTS, type Round, type Scenario } from '../scenario.js';
import { checkWriters, mountFresh, pickPair, readBack, release, startWriting, type Holding } from '../steps.js';
import type { World } from '../world.js';

async function createLaneVolumes(world: World, lanes: number): Promise<void> {
  for (let lane = 0; lane < lanes; lane++) await world.createVolume(world.volumeName(lane));
}

async function race(r: Round): Promise<void> {
  const name = r.world.volumeName(r.lane);
  const [a, b] = pickPair(r);
  const [ra, rb] = await Promise.all([mountFresh(r, a, name), mountFresh(r, b, name)]);
  const winners = [
    { host: a, ...ra },
    { host: b, ...rb },
  ].filter((t) => t.ok);
  if (winners.length === 2) {
    await r.check('single-writer', () => [violation('single-writer', `both ${a.label} and ${b.label} mounted ${name}`, { a: ra, b: rb })]);
  }
  if (winners.length === 0) {
    await r.check('not-stuck', () => [violation('not-stuck', `neither ${a.label} nor ${b.label} could mount ${name}`, { [a.label]: ra.err, [b.label]: rb.err })]);
  }
  await checkWriters(r, name);
  for (const [n, w] of winners.entries()) {
    const holding: Holding = { host: w.host, name, id: w.id, writer: null };
    if (n === 0) {
      await readBack(r, w.host, name);
      holding.writer = await startWriting(r, w.host, name, 3);
    }
    await release(r, holding);
  }
}

export const mountRace: Scenario = {
  name: 'mount-race',
  fault: 'two hosts Mount one volume at once',
  count: 1000,
  shortCount: 6,
  invariants: HOLDER_INVARIANTS,
  hosts: 2,
  lanes: 4,
  roundTimeoutMs: 240_000,
  setup: (world) => createLaneVolumes(world, 4),
  round: race,
};

export { createLaneVolumes };
