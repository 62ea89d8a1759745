// A storm of Mounts and Unmounts of one volume on one host: many "containers" start and stop at
// once, some with a repeated ID (Docker retrying) or an Unmount of an ID that holds nothing, while
// another host tries to get the volume. Every reference that was answered holds a mounted,
// writable volume until its Unmount; the other host gets it only when none is held; when the storm
// is over nothing is mounted, mapped or locked.

import path from 'node:path';
import { violation } from '../invariants/types.js';
import { journalIo } from '../journal.js';
import type { Round, Scenario } from '../scenario.js';
import { checkWriters, mountFresh, pickPair, release } from '../steps.js';
import { eventually, settleAll, sleep } from '../wait.js';
import { createLaneVolumes } from './race.js';

async function storm(r: Round): Promise<void> {
  const [host, other] = pickPair(r);
  const name = r.world.volumeName(r.lane);
  const containers = r.rng.int(8, 16);
  r.fault();
  const container = async (n: number) => {
    const rng = r.rng.derive(`c${n}`);
    await sleep(rng.int(0, 600));
    const id = rng.mountId();
    const m = await host.mount(name, id);
    if (!m.ok) {
      if (!/mounted on|taken over/.test(m.err)) r.note(`a storm Mount failed: ${m.err.slice(0, 100)}`);
      return;
    }
    if (rng.chance(0.2)) await host.mount(name, id); // Docker repeating the request
    const view = await host.view(name);
    const wrote = await journalIo(['mark', path.join(host.mountpoint(name), `c-${id.slice(0, 8)}`), id], 20_000);
    if (!view.mounted || wrote.code !== 0) {
      await r.check('clean-failure', () => [
        violation('clean-failure', `${host.label} answered Mount ${id.slice(0, 8)} of ${name} but the volume is ${view.mounted ? 'not writable' : 'not mounted'} while the reference is held`, { view, write: wrote.stderr.trim() }),
      ]);
    }
    await sleep(rng.int(0, 400));
    if (rng.chance(0.2)) await host.unmount(name, rng.mountId()); // an ID that holds nothing
    const u = await host.unmount(name, id);
    if (!u.ok) r.note(`a storm Unmount failed: ${u.err.slice(0, 100)}`);
  };
  const intruder = async () => {
    for (let i = 0; i < 3; i++) {
      await sleep(r.rng.int(0, 800));
      const m = await mountFresh(r, other, name);
      if (m.ok) {
        await checkWriters(r, name);
        await release(r, { host: other, name, id: m.id, writer: null });
      }
    }
  };
  await settleAll([...Array.from({ length: containers }, (_, n) => container(n)), intruder()]);
  const clean = await eventually(async () => !(await host.view(name)).mounted && (await r.world.cluster.mountLock(name)) === null, 15_000);
  if (!clean) {
    await r.check('clean-failure', async () => [
      violation('clean-failure', `after the storm every reference of ${name} was unmounted, yet it is still mounted or locked`, {
        view: await host.view(name),
        lock: await r.world.cluster.mountLock(name),
      }),
    ]);
  }
}

export const mountStorm: Scenario = {
  name: 'mount-storm',
  fault: 'Mount/Unmount storm on one host',
  count: 10,
  invariants: ['single-writer', 'clean-failure', 'no-orphans', 'acked-creates', 'bounded'],
  hosts: 2,
  lanes: 2,
  roundTimeoutMs: 240_000,
  setup: (world) => createLaneVolumes(world, 2),
  round: storm,
};
