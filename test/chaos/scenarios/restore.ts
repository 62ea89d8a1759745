// volmaster killed (SIGKILL) at a seeded random moment of `volcli volume backup restore`, which
// runs in the master that answers it: into the volume itself (unmounted) or into a new volume.
// The volume has a session of records before its backup and one after, so that a restore into it
// shows. Afterwards: the operation lock and the mount exclusion lapse with their leases; no image
// of the restore is left (`<image>:restoring`, `<image>:replaced`, a new volume's image without a
// record); the volume either reads as before or exactly as the backup (never half of it) and can
// be mounted again with its records; the new volume either does not exist or is complete; and the
// user's second try succeeds.

import { mkdir } from 'node:fs/promises';
import { testPolicy } from '../../helpers/plugin-harness.js';
import { killMaster, restartMaster } from '../faults/master.js';
import { exportDigest } from '../invariants/backup-view.js';
import { checkDurability, type SessionClaim } from '../invariants/durability.js';
import { violation } from '../invariants/types.js';
import { readJournal } from '../journal.js';
import type { ChaosHost } from '../hosts.js';
import type { Round, Scenario } from '../scenario.js';
import { mountFresh, must, release, startWriting } from '../steps.js';
import { eventually, sleep } from '../wait.js';
import type { World } from '../world.js';

/** How long a whole restore took in a world (the kill's range in its next round). */
const restoreMs = new WeakMap<World, number>();

function split(name: string): [string, string] {
  const at = name.indexOf('/');
  return [name.slice(0, at), name.slice(at + 1)];
}

async function setup(world: World): Promise<void> {
  await mkdir(world.backupDir, { recursive: true });
  const policy = testPolicy({ size: '32MB' });
  await world.master.api.uploadTenant(world.tenant, { ...policy, 'default-options': { ...policy['default-options'], backups: false, backup: { keep: 7, target: { directory: world.backupDir } } } });
}

/** One container's session on the volume: mount, write some records, stop, unmount. */
async function session(r: Round, host: ChaosHost, name: string): Promise<void> {
  const m = await mountFresh(r, host, name);
  must(m.ok, `${name} could not be mounted: ${m.err}`);
  await release(r, { host, name, id: m.id, writer: await startWriting(r, host, name, 5) });
}

/** Mounts `name` (retrying while a dead restore's exclusion lapses) and reads `claims` back. */
async function mountAndRead(r: Round, host: ChaosHost, name: string, claims: SessionClaim[], why: string): Promise<void> {
  let last = '';
  let id: string | null = null;
  await eventually(async () => {
    const m = await mountFresh(r, host, name);
    if (m.ok) id = m.id;
    else last = m.err;
    return m.ok;
  }, 30_000, 1_000);
  if (id === null) {
    await r.check('not-stuck', () => [violation('not-stuck', `${name} cannot be mounted after a restore of it was killed (${why}): ${last}`, {})]);
    return;
  }
  await r.check('clean-failure', async () => checkDurability(name, host.label, claims, await readJournal(host.mountpoint(name))));
  await release(r, { host, name, id, writer: null });
}

async function masterMidRestore(r: Round): Promise<void> {
  const { world } = r;
  const { cluster } = world;
  const conf = world.options.services.cephConf;
  const m0 = world.masters[0]!;
  const name = world.volumeName(`r${r.index}`);
  const [tenant, volume] = split(name);
  const host = r.rng.pick(world.hosts);
  await world.createVolume(name, host);
  await session(r, host, name);
  let started = Date.now();
  let backup = await m0.api.takeBackup(tenant, volume);
  if (r.rng.chance(0.5)) {
    // A chain of two: the restore applies a full diff and an incremental one.
    await session(r, host, name);
    started = Date.now();
    backup = await m0.api.takeBackup(tenant, volume);
  }
  const takeMs = Date.now() - started;
  const atBackup = world.journal(name).all();
  await session(r, host, name);
  const image = `${cluster.pool}/${cluster.imageOf(name)}`;
  const before = await exportDigest(conf, image);
  const backupDigest = await exportDigest(conf, `${image}@${backup.name}`);
  must(before !== null && backupDigest !== null && before !== backupDigest, `could not read ${image} and its backup ${backup.name} apart`);

  const intoNew = r.rng.chance(0.5);
  const target = intoNew ? world.volumeName(`n${r.index}`) : name;
  const body = intoNew ? { backup: backup.name, into: { tenant, volume: split(target)[1] } } : { backup: backup.name };
  const restoring = m0.api.restoreBackup(tenant, volume, body).then(
    () => true,
    () => false,
  );
  // Anywhere from the restore's start to its end: how long the last whole restore of this world
  // took (the user's second try, below), else the backup's time.
  await sleep(Math.round(r.rng.float() * (restoreMs.get(world) ?? takeMs + 300)));
  await killMaster(m0);
  r.fault();
  const finished = await restoring;
  r.note(finished ? 'the restore had finished before the kill' : `killed mid-restore ${intoNew ? 'into a new volume' : 'into the volume'}`);
  await restartMaster(m0);

  // Its operation lock and mount exclusion go with the dead master's leases (10 s).
  const [tt, tv] = split(target);
  let held: string[] = [];
  const free = await eventually(async () => {
    held = [];
    for (const [key, what] of [
      [cluster.keys.operation(tt, tv), 'operation lock'],
      [cluster.keys.exclusive(tt, tv), 'mount exclusion'],
    ] as const) {
      const entry = await world.kv.get(key);
      if (entry) held.push(`${what} ${key} = ${entry.value.slice(0, 200)}`);
    }
    return held.length === 0;
  }, 30_000, 500);
  if (!free) await r.check('not-stuck', () => [violation('not-stuck', `30 s after the master running a restore of ${target} was killed, its locks are still held (their lease is 10 s)`, { held })]);

  // Nothing of the restore is left beside the volume (a dead client's watch on it lapses in 30 s).
  const targetImage = cluster.imageOf(target);
  let leftovers: string[] = [];
  const tidy = await eventually(async () => {
    leftovers = (await cluster.images()).filter((i) => i.startsWith(`${targetImage}:`));
    if (await world.kv.get(cluster.keys.restore(tt, tv))) leftovers.push(`restore intent of ${target}`);
    if (intoNew && !(await cluster.volumeRecord(target))) {
      if ((await cluster.images()).includes(targetImage)) leftovers.push(`${targetImage} (no volume record)`);
      if (await world.kv.get(cluster.keys.intent(tt, tv))) leftovers.push(`create intent of ${target}`);
    }
    return leftovers.length === 0;
  }, 60_000, 1_000);
  if (!tidy) await r.check('no-orphans', () => [violation('no-orphans', `a restore of ${target} killed ${finished ? 'after it finished' : 'half-way'} left ${leftovers.join(', ')} (waited 60 s)`, { leftovers })]);

  if (intoNew) {
    if (await cluster.volumeRecord(target)) {
      world.ackedCreates.add(target);
      const now = await exportDigest(conf, `${cluster.pool}/${targetImage}`);
      if (now !== backupDigest) await r.check('clean-failure', () => [violation('clean-failure', `the new volume ${target} exists after the restore into it was killed, but does not read as backup ${backup.name}`, { now, backupDigest })]);
      await mountAndRead(r, host, target, atBackup, 'into a new volume');
    } else {
      r.note('the new volume was not made');
    }
  } else {
    const now = await exportDigest(conf, image);
    const state = now === before ? 'unchanged' : now === backupDigest ? 'restored' : null;
    if (state === null) {
      await r.check('clean-failure', () => [violation('clean-failure', `${name} reads neither as before the killed restore nor as backup ${backup.name}: ${now === null ? 'it has no readable image' : 'half-restored?'}`, { now, before, backupDigest })]);
    } else {
      r.note(`the volume was ${state}`);
    }
    await mountAndRead(r, host, name, state === 'restored' ? atBackup : world.journal(name).all(), `it was ${state ?? 'neither before nor restored'}`);
  }

  // The user tries again (a new volume that exists is restored under another name).
  const again = intoNew && (await cluster.volumeRecord(target)) ? { backup: backup.name, into: { tenant, volume: `${split(target)[1]}b` } } : body;
  let err = '';
  let retriedIn: number | null = null;
  const retried = await eventually(async () => {
    const t = Date.now();
    return m0.api.restoreBackup(tenant, volume, again).then(
      () => ((retriedIn = Date.now() - t), true),
      (e: Error) => ((err = e.message), false),
    );
  },
    60_000,
    1_000,
  );
  must(retried, `the restore of ${name} tried again kept failing: ${err}`);
  if (retriedIn !== null) restoreMs.set(world, retriedIn);
  const result = again.into ? `${tenant}/${again.into.volume}` : name;
  if (again.into) world.ackedCreates.add(result);
  const now = await exportDigest(conf, `${cluster.pool}/${cluster.imageOf(result)}`);
  if (now !== backupDigest) await r.check('clean-failure', () => [violation('clean-failure', `the restore of ${backup.name} tried again made ${result}, which does not read as the backup`, { now, backupDigest })]);

  // The round's volumes go: the world stays small.
  for (const v of new Set([name, target, result])) {
    if (!(await cluster.volumeRecord(v))) continue;
    await m0.api.removeVolume(...split(v));
    world.forget(v);
  }
}

export const masterMidRestoreScenario: Scenario = {
  name: 'master-mid-restore',
  fault: 'volmaster killed during a backup restore',
  count: 20,
  invariants: ['clean-failure', 'not-stuck', 'no-orphans', 'acked-creates', 'bounded'],
  hosts: 1,
  lanes: 1,
  roundTimeoutMs: 300_000,
  orphanWaitMs: 45_000,
  setup,
  round: masterMidRestore,
};
