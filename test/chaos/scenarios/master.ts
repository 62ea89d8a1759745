// volmaster killed in the middle of a Create (paused at a failpoint: after its intent, or after
// the image) or of a Remove (after a random delay, while it deletes snapshots and the image).
// A second volmaster runs beside it, as in production, and its janitor resolves what the dead one
// left. An acknowledged create exists; a retried create or remove succeeds; nothing is left
// half-done; a half-removed volume is never mounted as if it were empty.

import { createFailpoints, killMaster, restartMaster } from '../faults/master.js';
import { checkAckedCreates } from '../invariants/acked-creates.js';
import { lostRecords } from '../invariants/durability.js';
import { violation } from '../invariants/types.js';
import { readJournal } from '../journal.js';
import type { Round, Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, release, startWriting } from '../steps.js';
import { eventually, sleep } from '../wait.js';
import type { World } from '../world.js';

const FAILPOINT_MS = 1_500;

function split(name: string): [string, string] {
  const at = name.indexOf('/');
  return [name.slice(0, at), name.slice(at + 1)];
}

async function secondMaster(world: World): Promise<void> {
  await world.startMaster();
}

async function masterMidCreate(r: Round): Promise<void> {
  const [m0, m1] = [r.world.masters[0]!, r.world.masters[1]!];
  const name = r.world.volumeName(`c${r.index}`);
  const host = r.rng.pick(r.world.hosts);
  // The host's master pauses after the intent and after the image: kill it in one of the pauses.
  const creating = host.create(name);
  await sleep(r.rng.int(200, 2 * FAILPOINT_MS + 200));
  await killMaster(m0);
  r.fault();
  const created = await creating;
  if (created.ok) {
    r.world.ackedCreates.add(name);
    await r.check('acked-creates', () => checkAckedCreates(r.world.cluster, [name]));
  }
  // The user tries again, through the other master or through Docker once the first is back.
  const viaApi = r.rng.chance(0.5);
  await restartMaster(m0);
  const again = await eventually(async () => (viaApi ? await m1.api.createVolume(...split(name)).then(() => true) : (await host.create(name)).ok), 60_000, 1_000);
  must(again, `Create ${name} kept failing after the master was killed`);
  r.world.ackedCreates.add(name);
  const m = await mountFresh(r, host, name);
  must(m.ok, `the created ${name} could not be mounted: ${m.err}`);
  await release(r, { host, name, id: m.id, writer: await startWriting(r, host, name, 3) });
}

async function masterMidRemove(r: Round): Promise<void> {
  const m0 = r.world.masters[0]!;
  const name = r.world.volumeName(`r${r.index}`);
  const [tenant, volume] = split(name);
  const host = r.rng.pick(r.world.hosts);
  await r.world.createVolume(name, host);
  const m = await mountFresh(r, host, name);
  must(m.ok, `${name} could not be mounted: ${m.err}`);
  await release(r, { host, name, id: m.id, writer: await startWriting(r, host, name, 5) });
  for (let i = 0; i < 3; i++) await m0.api.takeSnapshot(tenant, volume, `s${i}`);

  const removing = m0.api.removeVolume(tenant, volume).then(
    () => true,
    () => false,
  );
  await sleep(r.rng.int(0, 250));
  await killMaster(m0);
  r.fault();
  const removed = await removing;
  await restartMaster(m0);
  if (!removed) {
    // Whatever state the kill left, a Mount must not present the volume as empty: either its data
    // is all there, or the Mount fails.
    const again = await mountFresh(r, host, name);
    if (again.ok) {
      await checkWriters(r, name);
      const read = await readJournal(host.mountpoint(name));
      const lost = read.ok ? r.world.journal(name).all().reduce((n, c) => n + lostRecords(c, read).lost, 0) : -1;
      if (lost !== 0) {
        await r.check('clean-failure', () => [
          violation('clean-failure', `after a remove killed half-way, ${name} mounted with ${lost < 0 ? 'unreadable' : `${lost} records missing`}: a half-removed volume was presented as a usable (reformatted?) one`, {
            read,
          }),
        ]);
      }
      await release(r, { host, name, id: again.id, writer: null });
    } else {
      r.note(`a Mount of a half-removed volume failed: ${again.err.slice(0, 120)}`);
    }
    // The user removes it again.
    const retried = await eventually(() => m0.api.removeVolume(tenant, volume).then(() => true, (err: Error) => /does not exist|VOLUME_NOT_FOUND/.test(err.message)), 60_000, 1_000);
    must(retried, `removing ${name} again kept failing`);
  }
  r.world.forget(name);
}

export const masterCreate: Scenario = {
  name: 'master-mid-create',
  fault: 'volmaster killed at a create failpoint',
  count: 10,
  invariants: ['acked-creates', 'no-orphans', 'bounded'],
  hosts: 1,
  lanes: 1,
  roundTimeoutMs: 240_000,
  orphanWaitMs: 45_000,
  masterEnv: createFailpoints(FAILPOINT_MS),
  setup: secondMaster,
  round: masterMidCreate,
};

export const masterRemove: Scenario = {
  name: 'master-mid-remove',
  fault: 'volmaster killed during a remove',
  count: 10,
  invariants: ['single-writer', 'clean-failure', 'no-orphans', 'acked-creates', 'bounded'],
  hosts: 1,
  lanes: 1,
  roundTimeoutMs: 240_000,
  orphanWaitMs: 45_000,
  round: masterMidRemove,
};
