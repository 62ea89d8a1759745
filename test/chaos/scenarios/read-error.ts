// A device that cannot be read at mount time (VOLPLUGIN_FAILPOINTS=read-error-at-mount on one
// host): volplugin cannot tell an empty device from an unreadable one, so it must not format, and
// the Mount must fail, saying so. Afterwards a healthy host finds every record intact, and a fresh
// volume the flaky host could not read is formatted normally by the next host.

import { READ_ERROR_AT_MOUNT } from '../faults/read-error.js';
import type { ChaosHost } from '../hosts.js';
import { violation } from '../invariants/types.js';
import type { Round, Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, readBack, release, startWriting, stopWriting } from '../steps.js';
import { eventually } from '../wait.js';
import type { World } from '../world.js';

async function addFlakyHost(world: World): Promise<void> {
  await world.addHost({ label: 'flaky', env: READ_ERROR_AT_MOUNT });
}

/** The flaky host's Mount must fail and leave nothing behind. */
async function mustRefuse(r: Round, flaky: ChaosHost, name: string, what: string): Promise<void> {
  const m = await mountFresh(r, flaky, name);
  r.fault();
  if (m.ok) {
    await r.check('clean-failure', () => [
      violation('clean-failure', `${flaky.label} mounted ${what} ${name} although its device could not be read at mount time (VOLPLUGIN_FAILPOINTS=read-error-at-mount not honoured, or the error ignored)`, {}),
    ]);
    await checkWriters(r, name);
    const writer = r.world.journal(name).start(flaky.label, r.index, flaky.mountpoint(name), { max: 3 });
    await writer.waitAcked(3, 20_000);
    await stopWriting(r, name, writer);
    await release(r, { host: flaky, name, id: m.id, writer: null });
    return;
  }
  const clean = await eventually(async () => !(await flaky.view(name)).mounted && (await r.world.cluster.mountLock(name)) === null, 15_000);
  if (!clean) {
    await r.check('clean-failure', async () => [
      violation('clean-failure', `${flaky.label}'s failed Mount of ${name} left something behind`, { view: await flaky.view(name), lock: await r.world.cluster.mountLock(name), err: m.err }),
    ]);
  }
}

async function readErrorRound(r: Round): Promise<void> {
  const [one, two] = r.world.hosts.filter((h) => h.label !== 'flaky') as [ChaosHost, ChaosHost];
  const flaky = r.world.hosts.find((h) => h.label === 'flaky')!;
  // A volume with data.
  const used = r.world.volumeName(`d${r.index}`);
  await r.world.createVolume(used, one);
  const m = await mountFresh(r, one, used);
  must(m.ok, `${used}: ${m.err}`);
  await release(r, { host: one, name: used, id: m.id, writer: await startWriting(r, one, used, 5) });
  await mustRefuse(r, flaky, used, 'the used volume');
  const m2 = await mountFresh(r, two, used);
  must(m2.ok, `${two.label} could not mount ${used} after the flaky host: ${m2.err}`);
  await readBack(r, two, used);
  await release(r, { host: two, name: used, id: m2.id, writer: null });

  // A fresh volume, never formatted.
  const fresh = r.world.volumeName(`f${r.index}`);
  await r.world.createVolume(fresh, one);
  await mustRefuse(r, flaky, fresh, 'the fresh volume');
  const m3 = await mountFresh(r, two, fresh);
  must(m3.ok, `${two.label} could not mount the fresh ${fresh} after the flaky host: ${m3.err}`);
  await readBack(r, two, fresh);
  await release(r, { host: two, name: fresh, id: m3.id, writer: await startWriting(r, two, fresh, 3) });
  const m4 = await mountFresh(r, one, fresh);
  must(m4.ok, `${one.label} could not mount ${fresh}: ${m4.err}`);
  await readBack(r, one, fresh);
  await release(r, { host: one, name: fresh, id: m4.id, writer: null });
}

export const readError: Scenario = {
  name: 'read-error-at-mount',
  fault: 'device unreadable at mount (failpoint)',
  count: 5,
  invariants: ['clean-failure', 'durability', 'single-writer', 'no-orphans', 'acked-creates', 'bounded'],
  hosts: 2,
  lanes: 1,
  roundTimeoutMs: 240_000,
  setup: addFlakyHost,
  round: readErrorRound,
};
