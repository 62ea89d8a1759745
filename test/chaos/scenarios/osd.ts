// The OSD stops and starts again while a host's containers write to two volumes: their writes
// wait and carry on, and another host then reads back every record that had been fsync'd.

import { restartOsd } from '../faults/osd.js';
import { HOLDER_INVARIANTS, type Round, type Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, pickPair, readBack, release, startWriting, takeOver, type Holding } from '../steps.js';
import { createLaneVolumes } from './race.js';

async function osdRestart(r: Round): Promise<void> {
  const [holder, next] = pickPair(r);
  const held: Holding[] = [];
  for (let i = 0; i < 2; i++) {
    const name = r.world.volumeName(i);
    const m = await mountFresh(r, holder, name);
    must(m.ok, `${holder.label} could not mount ${name}: ${m.err}`);
    await readBack(r, holder, name);
    held.push({ host: holder, name, id: m.id, writer: await startWriting(r, holder, name, 3) });
  }
  await restartOsd(r.world.options.services, r.rng.int(0, 2_000));
  r.fault();
  for (const h of held) {
    const before = h.writer!.acked;
    if (!(await h.writer!.waitAcked(before + 3, 90_000))) r.note(`a writer made no progress after the OSD came back: ${h.writer!.error ?? 'timed out'}`);
    await checkWriters(r, h.name);
  }
  for (const h of held) await release(r, h);
  for (const h of held) {
    const taken = await takeOver(r, h.name, [next], Date.now());
    if (taken) {
      await readBack(r, next, h.name);
      await release(r, taken);
    }
  }
}

export const osdRestartScenario: Scenario = {
  name: 'osd-restart',
  fault: 'the OSD stopped and started during writes',
  count: 5,
  invariants: HOLDER_INVARIANTS,
  hosts: 2,
  lanes: 1,
  roundTimeoutMs: 300_000,
  setup: (world) => createLaneVolumes(world, 2),
  round: osdRestart,
};
