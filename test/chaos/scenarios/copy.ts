// A copy of a snapshot made while a host holds the source and writes to it (a CSI CO's volume from
// a snapshot, or volcli's copy, on a busy cluster), then mounted on another host. librbd gives a
// clone its parent's metadata, and the source's holder note is in it: a copy that kept the note
// made its first mount fence the source's live holder, whose writes then failed. The holder must
// go on writing, and the copy must hold the data fsync'd before the snapshot.

import { violation } from '../invariants/types.js';
import { HOLDER_INVARIANTS, type Round, type Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, pickPair, readBack, release, startWriting } from '../steps.js';

async function copyOfMounted(r: Round): Promise<void> {
  const { tenant } = r.world;
  const source = `v${r.lane}`;
  const [holder, other] = pickPair(r);
  const api = r.world.master.api;
  const m = await mountFresh(r, holder, `${tenant}/${source}`);
  must(m.ok, `${holder.label} could not mount ${tenant}/${source}: ${m.err}`);
  const writer = await startWriting(r, holder, `${tenant}/${source}`, 3);
  const snapshot = `chaos-${r.index}`;
  const copy = `copy${r.lane}-${r.index}`;
  await api.takeSnapshot(tenant, source, snapshot);
  await api.copySnapshot(tenant, source, snapshot, { tenant, volume: copy });
  r.fault();
  r.cleanup(async () => {
    await api.removeVolume(tenant, copy).catch(() => undefined);
    await api.removeSnapshot(tenant, source, snapshot).catch(() => undefined);
  });
  const c = await mountFresh(r, other, `${tenant}/${copy}`);
  must(c.ok, `${other.label} could not mount the copy ${tenant}/${copy}: ${c.err}`);
  const before = writer.acked;
  const goesOn = await writer.waitAcked(before + 3, 15_000);
  await r.check('no-stray-fence', () =>
    goesOn
      ? []
      : [violation('no-stray-fence', `${holder.label}'s writes to ${tenant}/${source} stopped after ${other.label} mounted its copy ${copy}`, { acked: writer.acked, error: writer.error })],
  );
  await checkWriters(r, `${tenant}/${source}`);
  await release(r, { host: other, name: `${tenant}/${copy}`, id: c.id, writer: null });
  await release(r, { host: holder, name: `${tenant}/${source}`, id: m.id, writer });
  await api.removeVolume(tenant, copy);
  await api.removeSnapshot(tenant, source, snapshot);
  // The next round's holder reads back what this one acknowledged.
  const next = await mountFresh(r, other, `${tenant}/${source}`);
  must(next.ok, `${other.label} could not mount ${tenant}/${source} after the copy: ${next.err}`);
  await readBack(r, other, `${tenant}/${source}`);
  await release(r, { host: other, name: `${tenant}/${source}`, id: next.id, writer: null });
}

export const copyOfMountedScenario: Scenario = {
  name: 'copy-of-mounted',
  fault: 'a copy of a held volume is mounted elsewhere',
  count: 4,
  invariants: [...HOLDER_INVARIANTS, 'no-stray-fence'],
  hosts: 2,
  lanes: 1,
  roundTimeoutMs: 180_000,
  setup: async (world) => {
    await world.createVolume(world.volumeName(0));
  },
  round: copyOfMounted,
};
