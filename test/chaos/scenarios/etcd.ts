// etcd crashes (kill -9) and comes back on its data while a Mount or a Create is under way. A
// Mount either works, and then its host alone holds the volume (another host is refused, only one
// mount is writable), or it fails and leaves nothing on its host. A Create that was acknowledged
// exists; one that was not may be retried, and nothing half-done is left either way.

import { etcdCrash } from '../faults/etcd.js';
import { violation } from '../invariants/types.js';
import { checkAckedCreates } from '../invariants/acked-creates.js';
import { HOLDER_INVARIANTS, type Round, type Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, pickPair, readBack, release, startWriting, takeOver } from '../steps.js';
import { eventually, sleep } from '../wait.js';
import { createLaneVolumes } from './race.js';

async function etcdMidMount(r: Round): Promise<void> {
  const name = r.world.volumeName(r.lane);
  const [a, b] = pickPair(r);
  const mounting = mountFresh(r, a, name);
  await sleep(r.rng.int(0, 400));
  await etcdCrash(r.world.options.services, r.rng.int(500, 4_000));
  r.fault();
  const m = await mounting;
  // Give every daemon time to reconnect and converge.
  await sleep(r.settings.lockTtl * 1000 + 2_000);
  if (m.ok) {
    const other = await mountFresh(r, b, name);
    // An outage longer than the lease lets the lease lapse after the Mount answered: the volume is
    // then lost to its host (I/O stopped, reported lost: README "The holder stops first"), and
    // another host may take it. Only a holder that did not lose it makes a second Mount wrong.
    const lost = await a.lostReason(name);
    if (other.ok) {
      if (!lost) await r.check('single-writer', () => [violation('single-writer', `${b.label} mounted ${name} while ${a.label}'s Mount (answered during the etcd outage) holds it`, {})]);
      await checkWriters(r, name);
      if (lost) r.note(`${a.label} lost ${name} with its lease during the outage; ${b.label} took it`);
      await release(r, { host: b, name, id: other.id, writer: null });
    }
    await checkWriters(r, name);
    if (!lost) await readBack(r, a, name);
    await release(r, { host: a, name, id: m.id, writer: lost ? null : await startWriting(r, a, name, 3) });
  } else {
    r.note('a Mount failed during the etcd outage');
    const clean = await eventually(async () => !(await a.view(name)).mounted && (await r.world.cluster.mountLock(name))?.host !== a.label, 20_000);
    if (!clean) {
      await r.check('clean-failure', async () => [
        violation('clean-failure', `${a.label}'s failed Mount of ${name} left a mount or its lock behind`, { view: await a.view(name), lock: await r.world.cluster.mountLock(name), err: m.err }),
      ]);
    }
  }
  const next = await takeOver(r, name, [b], Date.now());
  if (next) {
    await readBack(r, b, name);
    await release(r, { ...next, writer: await startWriting(r, b, name, 3) });
  }
}

async function etcdMidCreate(r: Round): Promise<void> {
  const name = r.world.volumeName(`c${r.index}`);
  const host = r.rng.pick(r.world.hosts);
  const creating = host.create(name);
  await sleep(r.rng.int(0, 300));
  await etcdCrash(r.world.options.services, r.rng.int(500, 3_000));
  r.fault();
  const created = await creating;
  if (created.ok) {
    r.world.ackedCreates.add(name);
    await r.check('acked-creates', () => checkAckedCreates(r.world.cluster, [name]));
  } else {
    r.note('a Create failed during the etcd outage');
    // The user runs `docker volume create` again.
    const again = await eventually(async () => (await host.create(name)).ok, 60_000, 1_000);
    must(again, `Create ${name} kept failing after etcd came back`);
    r.world.ackedCreates.add(name);
  }
  // The volume works.
  const m = await mountFresh(r, host, name);
  must(m.ok, `the created ${name} could not be mounted: ${m.err}`);
  await release(r, { host, name, id: m.id, writer: await startWriting(r, host, name, 3) });
}

export const etcdMount: Scenario = {
  name: 'etcd-mid-mount',
  fault: 'etcd killed and restarted during a Mount',
  count: 10,
  invariants: [...HOLDER_INVARIANTS, 'clean-failure'],
  hosts: 2,
  lanes: 1,
  roundTimeoutMs: 240_000,
  setup: (world) => createLaneVolumes(world, 1),
  round: etcdMidMount,
};

export const etcdCreate: Scenario = {
  name: 'etcd-mid-create',
  fault: 'etcd killed and restarted during a Create',
  count: 10,
  invariants: ['acked-creates', 'no-orphans', 'bounded'],
  hosts: 1,
  lanes: 1,
  roundTimeoutMs: 240_000,
  orphanWaitMs: 45_000,
  round: etcdMidCreate,
};
