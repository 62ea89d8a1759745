// A host reboots while its containers write to three volumes (power off: volplugin, rbd-fuse,
// writers, mounts and loop devices all gone; power on: a new boot id, volplugin on the same state
// dir). Meanwhile the other hosts start containers on other volumes, which takes the loop devices
// the reboot freed. Afterwards the rebooted host must hold nothing it lost: the others take its
// volumes over within the TTL plus fencing time and read back every record it had fsync'd; when its
// Docker restarts the old containers, it never mounts a device that now maps another image; and it
// can use its volumes again once they are free.

import { powerOff, powerOn } from '../faults/reboot.js';
import { HOLDER_INVARIANTS, type Round, type Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, readBack, release, startWriting, takeOver, type Holding } from '../steps.js';
import { settleAll } from '../wait.js';
import type { World } from '../world.js';

const OWN = 3;
const OTHER = 3;

async function createVolumes(world: World): Promise<void> {
  for (let i = 0; i < OWN; i++) await world.createVolume(world.volumeName(i));
  for (let i = 0; i < OTHER; i++) await world.createVolume(world.volumeName(`x${i}`));
}

async function reboot(r: Round): Promise<void> {
  const victim = r.rng.pick(r.world.hosts);
  const others = r.world.hosts.filter((h) => h !== victim);
  const held: Holding[] = [];
  for (let i = 0; i < OWN; i++) {
    const name = r.world.volumeName(i);
    const m = await mountFresh(r, victim, name);
    must(m.ok, `${victim.label} could not mount ${name}: ${m.err}`);
    await readBack(r, victim, name);
    held.push({ host: victim, name, id: m.id, writer: await startWriting(r, victim, name, 3) });
  }
  const goneAt = await powerOff(victim);
  r.fault();
  for (const h of held) r.world.journal(h.name).settle(h.writer!);
  // Containers start elsewhere and take the loop devices the reboot freed.
  const elsewhere: Holding[] = [];
  for (let i = 0; i < OTHER; i++) {
    const name = r.world.volumeName(`x${i}`);
    const host = r.rng.pick(others);
    const m = await mountFresh(r, host, name);
    if (m.ok) elsewhere.push({ host, name, id: m.id, writer: null });
  }
  await powerOn(victim);

  const taken = await Promise.all(held.map((h) => takeOver(r, h.name, others, goneAt)));
  r.units(1);
  for (const [i, t] of taken.entries()) {
    if (!t) continue;
    await checkWriters(r, held[i]!.name);
    await readBack(r, t.host, held[i]!.name);
  }
  // Docker on the rebooted host restarts its containers: new Mounts of its old volumes.
  for (const h of held) {
    const m = await mountFresh(r, victim, h.name);
    await checkWriters(r, h.name);
    if (m.ok) await release(r, { host: victim, name: h.name, id: m.id, writer: null });
  }
  for (const e of elsewhere) await checkWriters(r, e.name);
  for (const t of taken) if (t) await release(r, t);
  for (const e of elsewhere) await release(r, e);
  // Free again: the rebooted host can use its volumes.
  const freedAt = Date.now();
  await settleAll(
    held.map(async (h) => {
      const again = await takeOver(r, h.name, [victim], freedAt);
      if (again) {
        await checkWriters(r, h.name);
        await readBack(r, victim, h.name);
        await release(r, { ...again, writer: await startWriting(r, victim, h.name, 3) });
      }
    }),
  );
}

export const rebootScenario: Scenario = {
  name: 'reboot',
  fault: 'simulated reboot of the holder (new boot id)',
  count: 5,
  invariants: HOLDER_INVARIANTS,
  hosts: 3,
  lanes: 1,
  roundTimeoutMs: 300_000,
  orphanWaitMs: 60_000,
  setup: createVolumes,
  round: reboot,
};
