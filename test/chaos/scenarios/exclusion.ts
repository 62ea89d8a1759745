// A remove or a rollback races a Mount of the same volume on a host. They must exclude each other:
// either the operation happens and the Mount fails (or comes after a rollback and sees its data),
// or the Mount happens and the operation is refused without changing anything (no snapshot
// deleted, no data rolled back under the mounted filesystem). Here a rollback of these small
// images takes a few tens of milliseconds, less than a mapping: the window in which a rollback
// could change data under a mount that already read it is only reachable with a pause before the
// rollback (a failpoint the master does not have yet); the refusals and their cleanliness are.

import { violation } from '../invariants/types.js';
import { journalIo } from '../journal.js';
import type { ChaosHost } from '../hosts.js';
import type { Round, Scenario } from '../scenario.js';
import { checkWriters, mountFresh, must, pickPair, release } from '../steps.js';
import { sleep } from '../wait.js';
import path from 'node:path';

const EXTRA_SNAPSHOTS = 8;

async function writeMarker(host: ChaosHost, name: string, text: string): Promise<void> {
  const result = await journalIo(['mark', path.join(host.mountpoint(name), 'generation'), text], 20_000);
  must(result.code === 0, `writing the marker on ${host.label}: ${result.stderr || 'timed out'}`);
}

async function readMarker(host: ChaosHost, name: string): Promise<string> {
  const result = await journalIo(['cat', path.join(host.mountpoint(name), 'generation')], 20_000);
  return result.code === 0 ? result.stdout : `<unreadable: ${result.stderr.trim() || 'timed out'}>`;
}

/** Mounts, writes `text` as the generation marker, unmounts. */
async function generation(r: Round, host: ChaosHost, name: string, text: string): Promise<void> {
  const m = await mountFresh(r, host, name);
  must(m.ok, `${host.label} could not mount ${name}: ${m.err}`);
  await writeMarker(host, name, text);
  await release(r, { host, name, id: m.id, writer: null });
}

function exclusionRound(kind: 'remove' | 'rollback') {
  return async (r: Round): Promise<void> => {
    const [writer, racer] = pickPair(r);
    const name = r.world.volumeName(`${kind[0]}${r.index}`);
    const [tenant, volume] = [r.world.tenant, name.slice(r.world.tenant.length + 1)];
    const image = r.world.cluster.imageOf(name);
    const api = r.world.master.api;
    await r.world.createVolume(name, writer);
    await generation(r, writer, name, 'gen1');
    await api.takeSnapshot(tenant, volume, 'before');
    // More snapshots make a remove take longer (it deletes them before the image): a Mount that
    // starts after its checks then maps the image while it is being removed.
    for (let i = 0; i < EXTRA_SNAPSHOTS; i++) await api.takeSnapshot(tenant, volume, `extra${i}`);
    await generation(r, writer, name, 'gen2');
    const snapsBefore = await r.world.cluster.snapshots(image);

    const [mountDelay, opDelay] = [r.rng.int(0, 500), r.rng.int(0, 100)];
    r.fault();
    const [m, op] = await Promise.all([
      sleep(mountDelay).then(() => mountFresh(r, racer, name)),
      sleep(opDelay).then(() =>
        (kind === 'remove' ? api.removeVolume(tenant, volume) : api.rollbackSnapshot(tenant, volume, 'before')).then(
          () => ({ ok: true, err: '' }),
          (err: Error) => ({ ok: false, err: err.message }),
        ),
      ),
    ]);
    const seen = m.ok ? await readMarker(racer, name) : null;
    const evidence = { mount: m.ok ? 'ok' : m.err.slice(0, 200), [kind]: op.ok ? 'ok' : op.err.slice(0, 200), markerSeenByMount: seen, mountDelay, opDelay };
    if (m.ok) await checkWriters(r, name);

    if (kind === 'remove') {
      if (op.ok && m.ok) {
        await r.check('clean-failure', () => [violation('clean-failure', `${name} was removed while ${racer.label} had it mounted`, evidence)]);
      }
      if (!op.ok) {
        const snaps = await r.world.cluster.snapshots(image);
        const record = await r.world.cluster.volumeRecord(name);
        if (!record || snaps.join(',') !== snapsBefore.join(',')) {
          await r.check('clean-failure', () => [
            violation('clean-failure', `a refused remove of ${name} changed it: ${!record ? 'its record is gone' : `snapshots ${snapsBefore.join(',')} became ${snaps.join(',') || 'none'}`}`, evidence),
          ]);
        }
      }
    } else if (op.ok && m.ok && seen === 'gen2') {
      await r.check('clean-failure', () => [violation('clean-failure', `${name} was rolled back while ${racer.label} had it mounted (its mount showed the data from before the rollback)`, evidence)]);
    } else if (!op.ok && m.ok && seen !== 'gen2') {
      await r.check('clean-failure', () => [violation('clean-failure', `a refused rollback of ${name} changed its data (the mount shows ${seen})`, evidence)]);
    }
    if (m.ok) await release(r, { host: racer, name, id: m.id, writer: null });
    if (kind === 'rollback' || !op.ok) {
      // After a refused operation the data is the newest; after a rollback, the snapshot's.
      const expected = op.ok && kind === 'rollback' ? 'gen1' : 'gen2';
      const check = await mountFresh(r, writer, name);
      if (check.ok) {
        const now = await readMarker(writer, name);
        if (now !== expected) {
          await r.check('clean-failure', () => [violation('clean-failure', `${name} holds ${now} after the race, expected ${expected}`, evidence)]);
        }
        await release(r, { host: writer, name, id: check.id, writer: null });
      }
      await api.removeVolume(tenant, volume);
    }
    r.world.forget(name);
  };
}

const INVARIANTS: Scenario['invariants'] = ['clean-failure', 'single-writer', 'no-orphans', 'acked-creates', 'bounded'];

export const removeVsMount: Scenario = {
  name: 'remove-vs-mount',
  fault: 'volume remove racing a Mount',
  count: 20,
  invariants: INVARIANTS,
  hosts: 2,
  lanes: 2,
  roundTimeoutMs: 240_000,
  round: exclusionRound('remove'),
};

export const rollbackVsMount: Scenario = {
  name: 'rollback-vs-mount',
  fault: 'snapshot rollback racing a Mount',
  count: 20,
  invariants: INVARIANTS,
  hosts: 2,
  lanes: 2,
  roundTimeoutMs: 240_000,
  round: exclusionRound('rollback'),
};
