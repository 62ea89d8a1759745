// A cloned host identity: a copy of a live host's state dir (host id, mount table) starts volplugin
// on another "machine". It must refuse to start (one live process per host id). If it runs anyway,
// nothing it does may give a volume two writers: it must not take over the source's volume, and a
// volume it mounts must not be released under it by the source, whose id it shares.

import { cloneStateOf } from '../faults/clone.js';
import type { ChaosHost } from '../hosts.js';
import { violation } from '../invariants/types.js';
import { HOLDER_INVARIANTS, type Round, type Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, readBack, release, startWriting, takeOver } from '../steps.js';
import { sleep } from '../wait.js';
import { createLaneVolumes } from './race.js';

async function clonedHost(r: Round): Promise<void> {
  const [source, other] = r.world.hosts as [ChaosHost, ChaosHost];
  const [held, spare] = [r.world.volumeName(0), r.world.volumeName(1)];
  const m = await mountFresh(r, source, held);
  must(m.ok, `${source.label} could not mount ${held}: ${m.err}`);
  await readBack(r, source, held);
  const writer = await startWriting(r, source, held, 3);
  r.fault();
  let clone: ChaosHost | null = null;
  try {
    clone = await r.world.addHost({ label: `clone${r.index}`, seedState: cloneStateOf(source) });
  } catch (err) {
    r.note(`the clone refused to start: ${(err as Error).message.split('\n')[0]!.slice(0, 160)}`);
  }
  if (clone) {
    await r.check('clean-failure', () => [
      violation('clean-failure', `a second volplugin (${clone!.label}) started with ${source.label}'s host id while ${source.label} runs`, {}),
    ]);
    try {
      await sleep(2_500);
      // Docker on the clone starts a container with the source's volume, and one with a free volume.
      const onClone = await mountFresh(r, clone, held);
      await checkWriters(r, held, [source, other, clone]);
      const spareOnClone = await mountFresh(r, clone, spare);
      await sleep(2_500); // the source's convergence loop sees a lock of "its" id for a volume it lacks
      if (spareOnClone.ok) {
        const stolen = await mountFresh(r, other, spare);
        await checkWriters(r, spare, [source, other, clone]);
        if (stolen.ok) await release(r, { host: other, name: spare, id: stolen.id, writer: null });
        await release(r, { host: clone, name: spare, id: spareOnClone.id, writer: null });
      }
      if (onClone.ok) await release(r, { host: clone, name: held, id: onClone.id, writer: null });
    } finally {
      await r.world.removeHost(clone);
    }
  }
  await checkWriters(r, held);
  await release(r, { host: source, name: held, id: m.id, writer });
  const next = await takeOver(r, held, [other], Date.now());
  if (next) {
    await readBack(r, other, held);
    await release(r, next);
  }
}

export const clonedHostId: Scenario = {
  name: 'cloned-host-id',
  fault: 'a copy of a live host\'s state dir starts',
  count: 5,
  invariants: [...HOLDER_INVARIANTS, 'clean-failure'],
  hosts: 2,
  lanes: 1,
  roundTimeoutMs: 240_000,
  orphanWaitMs: 45_000,
  setup: (world) => createLaneVolumes(world, 2),
  round: clonedHost,
};
