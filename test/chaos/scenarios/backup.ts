// volsupervisor killed (SIGKILL) at a seeded random moment while it takes a volume's scheduled
// backups (every second, `keep` 3, so that chains end and new ones start), to a directory or to a
// replica in a second pool, while a container writes to the volume on a host (records, and a few
// MiB rewritten again and again, so that every backup has something to export). After the kill,
// before anything runs again: every backup the manifest counts verifies, and the newest one,
// restored without volplugin (the real `rbd import-diff` of its chain, or the replica's snapshot),
// reads as the volume's snapshot of it. Then a new volsupervisor must take the next backup, which
// continues the chain from the last counted backup or starts a new one, and must remove what the
// killed one left (a partial or unnamed file, a stray snapshot, a half-applied replica).

import { mkdir } from 'node:fs/promises';
import { run } from '../../../src/mapper/exec.js';
import { testPolicy } from '../../helpers/plugin-harness.js';
import type { ManifestEntry } from '../../../src/backups/manifest.js';
import { BackupView, type BackupTargetKind } from '../invariants/backup-view.js';
import { checkChainReadsBack, checkVerified, REPAIRED_BY_NEXT_BACKUP } from '../invariants/backups.js';
import { violation } from '../invariants/types.js';
import type { Round, Scenario } from '../scenario.js';
import { mountFresh, must, release, startWriting } from '../steps.js';
import { runBounded } from '../proc.js';
import { eventually, sleep } from '../wait.js';
import type { World } from '../world.js';

/** The volume whose backups a round breaks (one per world: the scenario has one lane). */
const VOLUME = 'b0';

function replicaPool(world: World): string {
  return `bk${world.tenant}`;
}

function viewOf(world: World, kind: BackupTargetKind): BackupView {
  return new BackupView(world.cluster, kind, world.volumeName(VOLUME), kind === 'directory' ? world.backupDir : replicaPool(world));
}

/** The tenant's policy with backups on, every second, to the scenario's target; its volume; the supervisor. */
function setupFor(kind: BackupTargetKind) {
  return async (world: World): Promise<void> => {
    const ceph = (...args: string[]) => run('ceph', ['-c', world.options.services.cephConf, ...args], { timeoutMs: 60_000 });
    let target: object;
    if (kind === 'directory') {
      await mkdir(world.backupDir, { recursive: true });
      target = { directory: world.backupDir };
    } else {
      const pool = replicaPool(world);
      await ceph('osd', 'pool', 'create', pool, '8', '8');
      world.onShutdown(() => ceph('osd', 'pool', 'rm', pool, pool, '--yes-i-really-really-mean-it'));
      await run('rbd', ['-c', world.options.services.cephConf, 'pool', 'init', pool], { timeoutMs: 60_000 });
      target = { ceph: { conf: world.options.services.cephConf, pool } };
    }
    const policy = testPolicy({ size: '32MB' });
    await world.master.api.uploadTenant(world.tenant, { ...policy, 'default-options': { ...policy['default-options'], backups: true, backup: { frequency: '1s', keep: 3, target } } });
    await world.createVolume(world.volumeName(VOLUME));
    await world.startSupervisor();
    // The round starts it again after each kill; the world's end stops it.
    await world.supervisors[0]!.stop();
  };
}

async function verify(r: Round, name: string) {
  const [tenant, volume] = name.split('/') as [string, string];
  return r.world.master.api.verifyBackups(tenant, volume);
}

async function killDuringBackups(r: Round, kind: BackupTargetKind): Promise<void> {
  const { world } = r;
  const name = world.volumeName(VOLUME);
  const view = viewOf(world, kind);
  const supervisor = world.supervisors[0]!;
  const host = r.rng.pick(world.hosts);
  const m = await mountFresh(r, host, name);
  must(m.ok, `${name} could not be mounted: ${m.err}`);
  const writer = await startWriting(r, host, name, 3);
  const churn = churning(r, host.mountpoint(name), r.rng.int(2, 8));

  // It leads after at most the election TTL, then takes a backup a second (each in 50-300 ms here).
  // Half the kills are blind (anywhere in the schedule); the other half wait for a backup to start
  // writing and land 0-40 ms into it (export, checksum, rename, commit, prune, snapshot removal).
  await supervisor.start();
  r.cleanup(() => supervisor.stop());
  const aimed = r.rng.chance(0.5);
  const delay = aimed ? r.rng.int(0, 40) : r.rng.int(500, 6_000);
  if (aimed) {
    await sleep(r.rng.int(0, 3_000));
    const started = await eventually(() => view.exporting(world.stagingDir), 15_000, 2);
    if (!started) r.note('no backup started within 15 s of an aimed kill: killed blind');
  }
  await sleep(delay);
  await supervisor.kill9();
  r.fault();

  // Nothing runs now: what the manifest counts must be good, whatever the kill interrupted.
  const counted = await view.counted();
  const left = await view.leftovers(counted);
  const strays = (await view.sourceSnapshots()).filter((s) => s !== counted.at(-1)?.name);
  r.note(`${aimed ? 'aimed' : 'blind'} kill: ${left.length + strays.length > 0 ? `a backup half-done (left: ${describeLeft(left, strays)})` : 'between backups (nothing left)'}`);
  await r.check('good-backups', async () => checkVerified(name, await verify(r, name), counted));
  // The independent read-back costs a few seconds: every round of the short run, half of a long one.
  if (r.index === 0 || r.rng.chance(0.5)) {
    await r.check('good-backups', async () => {
      const found = await checkChainReadsBack(view, counted);
      if (found === null) r.note('the newest backup\'s snapshot was gone from the volume: chain not compared');
      return found ?? [];
    });
  }

  // A new volsupervisor: the next backup is counted, continues the chain or starts a new one.
  await supervisor.start();
  const before = new Set(counted.map((b) => b.name));
  let after: ManifestEntry[] = [];
  const resumed = await eventually(async () => {
    after = await view.counted();
    return after.some((b) => !before.has(b.name));
  }, 60_000, 300);
  await supervisor.stop();
  if (!resumed) {
    await r.check('backups-resume', async () => [
      violation('backups-resume', `no backup of ${name} was counted within 60 s of a new volsupervisor (the one before was killed)`, { counted: [...before], log: await supervisor.logTail() }),
    ]);
  } else {
    const first = after.find((b) => !before.has(b.name))!;
    const last = counted.at(-1)?.name ?? null;
    if (first.parent !== null && first.parent !== last) {
      await r.check('backups-resume', () => [violation('backups-resume', `the first backup after the kill, ${first.name}, is a diff from ${first.parent}, neither the last counted backup (${last ?? 'none'}) nor a new chain`, { counted: [...before], after })]);
    }
    r.note(first.parent === null ? 'the next backup started a new chain' : 'the next backup continued the chain');
  }
  // What the killed run left is gone (removed by the next backup), and what is counted now is good.
  const now = await view.counted();
  const remaining = new Set(await view.leftovers(now));
  // (A marker names its backup: one left by the stop above names another.)
  const still = left.filter((l) => remaining.has(l));
  const source = new Set(await view.sourceSnapshots());
  still.push(...strays.filter((s) => source.has(s) && !now.some((b) => b.name === s)).map((s) => `volume snapshot ${s}`));
  if (resumed && still.length > 0) {
    await r.check('backups-resume', () => [violation('backups-resume', `a backup of ${name} succeeded after the kill, but what the killed one left is still there: ${still.join(', ')}`, { left, strays })]);
  }
  const report = await verify(r, name);
  await r.check('good-backups', () => checkVerified(name, report, now));
  if (report.problems.some((p) => REPAIRED_BY_NEXT_BACKUP.test(p))) r.note('stopped in the middle of an apply (repaired by the next backup)');
  await churn.stop();
  await release(r, { host, name, id: m.id, writer });
}

/** What a killed backup left, by kind (for the table's notes). */
function describeLeft(left: readonly string[], strays: readonly string[]): string {
  const kinds = new Set<string>(left.map((l) => (l.endsWith('.partial') ? 'a partial file' : l.startsWith('file') ? 'an unnamed diff' : l.startsWith('apply marker') ? 'a half-applied replica' : 'a replica snapshot')));
  if (strays.length > 0) kinds.add('a volume snapshot');
  return [...kinds].sort().join(', ');
}

/**
 * Rewrites a file of `mib` MiB of random data on the volume again and again (each with an fsync),
 * so that every incremental backup has megabytes to export and a kill can land in the middle.
 */
function churning(r: Round, mountpoint: string, mib: number): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const result = await runBounded('dd', ['if=/dev/urandom', `of=${mountpoint}/churn`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none'], 30_000);
      if (result.code !== 0 && !stopped) {
        r.note(`the churn writer failed: ${result.timedOut ? 'hung' : result.stderr.trim().slice(0, 80)}`);
        await sleep(1_000);
      }
    }
  })();
  const stop = async () => {
    stopped = true;
    await loop;
  };
  r.cleanup(stop);
  return { stop };
}

const common = {
  count: 20,
  invariants: ['good-backups', 'backups-resume', 'no-orphans', 'acked-creates', 'bounded'],
  hosts: 1,
  lanes: 1,
  roundTimeoutMs: 240_000,
} satisfies Partial<Scenario>;

export const supervisorMidBackup: Scenario = {
  ...common,
  name: 'supervisor-mid-backup',
  fault: 'volsupervisor killed during scheduled backups to a directory',
  setup: setupFor('directory'),
  round: (r) => killDuringBackups(r, 'directory'),
};

export const supervisorMidBackupCeph: Scenario = {
  ...common,
  name: 'supervisor-mid-backup-ceph',
  fault: 'volsupervisor killed during scheduled backups to a replica in a second pool',
  setup: setupFor('ceph'),
  round: (r) => killDuringBackups(r, 'ceph'),
};
