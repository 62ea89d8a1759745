// The snapshotter dies while a volume is frozen for an fsfreeze-consistent snapshot: volmaster
// stops at its failpoint after-freeze (the holder froze the volume, the snapshot is not taken) and
// is killed there. The host must thaw by itself within the bound (10 s): the container's writer
// goes on, nothing is lost, and no snapshot is left of the attempt.

import { killMaster, restartMaster } from '../faults/master.js';
import { violation } from '../invariants/types.js';
import type { Round, Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, release, startWriting } from '../steps.js';
import { sleep } from '../wait.js';

/** The freeze's bound (SnapshotFreezer's default) and what a loaded machine may add to it. */
const THAW_BOUND_MS = 10_000;
const SLACK_MS = 20_000;

async function freezeAskerKilled(r: Round): Promise<void> {
  const m0 = r.world.masters[0]!;
  const name = r.world.volumeName(`f${r.index}`);
  const [tenant, volume] = [name.slice(0, name.indexOf('/')), name.slice(name.indexOf('/') + 1)];
  const host = r.rng.pick(r.world.hosts);
  await r.world.createVolume(name, host);
  await m0.api.setRuntime(tenant, volume, { snapshots: true, 'snapshots.frequency': '24h', 'snapshots.consistency': 'fsfreeze' });
  const m = await mountFresh(r, host, name);
  must(m.ok, `${name} could not be mounted: ${m.err}`);
  const writer = await startWriting(r, host, name, 3);
  const taking = m0.api.takeSnapshot(tenant, volume, 'never').then(
    () => true,
    () => false,
  );
  // Somewhere in the frozen window (the master waits a minute there).
  await sleep(r.rng.int(500, 4_000));
  await killMaster(m0);
  const killedAt = Date.now();
  r.fault();
  if (await taking) r.note('the snapshot was taken before the kill (the freeze was not reached in time)');
  const before = writer.acked;
  if (!(await writer.waitAcked(before + 3, THAW_BOUND_MS + SLACK_MS))) {
    await r.check('not-stuck', () => [
      violation('not-stuck', `${name} stayed frozen: its writer made no progress for ${Date.now() - killedAt} ms after the master that froze it was killed (bound ${THAW_BOUND_MS} ms)`, {
        writerError: writer.error,
      }),
    ]);
  }
  await restartMaster(m0);
  const left = (await m0.api.listSnapshots(tenant, volume)).map((s) => s.name);
  if (left.includes('never')) await r.check('clean-failure', () => [violation('clean-failure', `the snapshot of ${name} whose master was killed mid-freeze exists`, { left })]);
  await checkWriters(r, name);
  await release(r, { host, name, id: m.id, writer });
}

export const freezeAskerKilledScenario: Scenario = {
  name: 'freeze-asker-killed',
  fault: 'volmaster killed while a volume is frozen for a snapshot',
  count: 5,
  invariants: ['single-writer', 'durability', 'not-stuck', 'clean-failure', 'no-orphans', 'bounded'],
  hosts: 1,
  lanes: 1,
  roundTimeoutMs: 180_000,
  masterEnv: { VOLMASTER_FAILPOINTS: 'after-freeze=60000' },
  round: freezeAskerKilled,
};
