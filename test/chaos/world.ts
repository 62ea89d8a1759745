// One scenario's world: its own etcd prefix, tenant, volmaster(s) and volplugin hosts on the run's
// services, the volumes it made with what their writers acknowledged, and the end of it all:
// unmount what Docker still holds, check that nothing is left, stop the daemons, and clean up
// (only below the scenario's own directory) whatever a failed check left.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { EtcdKV } from '../../src/state/etcd.js';
import { startMaster, testPolicy, uniq, type DaemonPlacement, type TestMaster } from '../helpers/plugin-harness.js';
import type { ChaosServices } from './env.js';
import { ChaosHost, type HostOptions } from './hosts.js';
import { Cluster } from './invariants/cluster-view.js';
import { checkAckedCreates } from './invariants/acked-creates.js';
import { checkNoOrphans } from './invariants/orphans.js';
import type { Violation } from './invariants/types.js';
import { VolumeJournal } from './journal.js';
import { settleAll } from './wait.js';
import { cleanupBelow, killAll, processesBelow } from './proc.js';
import { ChaosSupervisor } from './supervisor.js';

export interface WorldOptions {
  scenario: string;
  /** The run's directory for scenarios; this one lives in <runDir>/<scenario>. */
  runDir: string;
  services: ChaosServices;
  hosts: number;
  lockTtl: number;
  /** Extra environment of the volmaster (VOLMASTER_FAILPOINTS). */
  masterEnv?: Record<string, string>;
  /** Extra volplugin flags of every host (the scenario's hostArgs). */
  hostArgs?: string[];
}

export const POOL = 'rbd';

export class World {
  readonly dir: string;
  readonly tenant: string;
  readonly prefix: string;
  readonly placement: DaemonPlacement;
  readonly hosts: ChaosHost[] = [];
  readonly masters: TestMaster[] = [];
  readonly supervisors: ChaosSupervisor[] = [];
  readonly journals = new Map<string, VolumeJournal>();
  /** Creates that were acknowledged: they must exist (unless removed on purpose, see forget()). */
  readonly ackedCreates = new Set<string>();
  readonly kv: EtcdKV;
  readonly cluster: Cluster;
  private hostCounter = 0;
  private readonly atEnd: Array<() => Promise<unknown>> = [];

  constructor(readonly options: WorldOptions) {
    this.dir = path.join(options.runDir, options.scenario);
    const run = uniq();
    this.tenant = `c${run}`;
    this.prefix = `/chaos-${run}`;
    this.placement = { etcd: ['--etcd', options.services.etcdUrl], cephConf: options.services.cephConf };
    this.kv = new EtcdKV({ endpoints: [options.services.etcdUrl] });
    this.cluster = new Cluster(this.kv, this.prefix, this.tenant, POOL, options.services.cephConf);
  }

  /** Starts the master, uploads the tenant, starts the hosts. On failure, shutdown() stops what started. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const master = await this.startMaster(this.options.masterEnv);
    await master.api.uploadTenant(this.tenant, testPolicy({ size: '32MB' }));
    await settleAll(Array.from({ length: this.options.hosts }, () => this.addHost()));
    // Started in parallel, kept in label order: seeded choices among hosts must not depend on timing.
    this.hosts.sort((a, b) => a.label.localeCompare(b.label));
  }

  get master(): TestMaster {
    return this.masters[0]!;
  }

  get lockTtl(): number {
    return this.options.lockTtl;
  }

  /** Where the world's directory backup target is (the backup scenarios make it). */
  get backupDir(): string {
    return path.join(this.dir, 'backups');
  }

  /** Where the world's daemons stage a diff bound for a Ceph target. */
  get stagingDir(): string {
    return path.join(this.dir, 'staging');
  }

  /** What the world's volmasters and volsupervisors may use as backup targets: its backup directory and the Ceph conf's. */
  private get backupFlags(): string[] {
    return ['--backup-allow', `${this.backupDir},${path.dirname(this.options.services.cephConf)}`, '--backup-staging', this.stagingDir];
  }

  /** A volmaster on this world's prefix (its janitor every 2 s, so that dead creates resolve quickly). */
  async startMaster(env?: Record<string, string>): Promise<TestMaster> {
    const master = await startMaster(path.join(this.dir, `master${this.masters.length}`), this.prefix, {
      ...this.placement,
      env,
      extraArgs: ['--janitor-seconds', '2', ...this.backupFlags],
    });
    this.masters.push(master);
    return master;
  }

  /** A volsupervisor on this world's prefix (scheduled backups; see supervisor.ts), started. */
  async startSupervisor(): Promise<ChaosSupervisor> {
    const supervisor = new ChaosSupervisor({
      dir: path.join(this.dir, `supervisor${this.supervisors.length}`),
      etcdUrl: this.options.services.etcdUrl,
      prefix: this.prefix,
      cephConf: this.options.services.cephConf,
      backupAllow: [this.backupDir, path.dirname(this.options.services.cephConf)],
      staging: this.stagingDir,
    });
    this.supervisors.push(supervisor);
    await supervisor.start();
    return supervisor;
  }

  /** Runs `fn` when the world shuts down, after its daemons stopped (e.g. remove a pool a scenario made). */
  onShutdown(fn: () => Promise<unknown>): void {
    this.atEnd.push(fn);
  }

  /** Starts one more host (labels host1, host2, ...). */
  async addHost(extra: Partial<Pick<HostOptions, 'env' | 'seedState' | 'label'>> = {}): Promise<ChaosHost> {
    const host = await ChaosHost.start({
      label: extra.label ?? `host${++this.hostCounter}`,
      root: this.dir,
      master: this.master,
      placement: { ...this.placement, extraArgs: this.options.hostArgs },
      lockTtl: this.options.lockTtl,
      env: extra.env,
      seedState: extra.seedState,
    });
    this.hosts.push(host);
    return host;
  }

  /** Unmounts what the host's Docker holds, stops it for good and takes it out of the world. */
  async removeHost(host: ChaosHost): Promise<void> {
    if (await host.alive()) for (const [name, id] of host.heldRefs()) await host.unmount(name, id);
    await host.stop();
    this.hosts.splice(this.hosts.indexOf(host), 1);
  }

  volumeName(n: number | string): string {
    return `${this.tenant}/v${n}`;
  }

  journal(name: string): VolumeJournal {
    let j = this.journals.get(name);
    if (!j) {
      j = new VolumeJournal(name);
      this.journals.set(name, j);
    }
    return j;
  }

  /** Creates a volume through a host, as `docker volume create` does; throws when it fails. */
  async createVolume(name: string, via: ChaosHost = this.hosts[0]!): Promise<void> {
    const result = await via.create(name);
    if (!result.ok) throw new Error(`Create ${name} via ${via.label}: ${result.err}`);
    this.ackedCreates.add(name);
  }

  /** A volume removed on purpose no longer has to exist. */
  forget(name: string): void {
    this.ackedCreates.delete(name);
    this.journals.delete(name);
  }

  /**
   * Ends the scenario as Docker would (unmount every reference it holds, on running hosts), checks
   * that nothing is left (waiting up to `orphanWaitMs` for asynchronous clean-up), then stops every
   * daemon and cleans whatever is left below the scenario's directory.
   */
  async close(orphanWaitMs: number): Promise<Violation[]> {
    for (const host of this.hosts) if (host.isPaused) host.resume();
    // A supervisor's backups open the images now and then: the orphan checks look at a quiet world.
    await Promise.all(this.supervisors.map((s) => s.stop().catch(() => undefined)));
    const out: Violation[] = [];
    for (const host of this.hosts) {
      if (!(await host.alive())) await host.restart().catch(() => undefined);
      for (const [name, id] of host.heldRefs()) await host.unmount(name, id);
    }
    out.push(...(await checkAckedCreates(this.cluster, [...this.ackedCreates])));
    out.push(...(await checkNoOrphans(this.cluster, this.dir, orphanWaitMs)));
    await this.shutdown();
    return out;
  }

  /** Stops every daemon of this world and removes what they left below its directory (never elsewhere). */
  async shutdown(): Promise<void> {
    await Promise.all(this.hosts.map((host) => host.stop().catch(() => undefined)));
    await Promise.all(this.masters.map((master) => master.stop().catch(() => undefined)));
    await Promise.all(this.supervisors.map((s) => s.stop().catch(() => undefined)));
    killAll([
      ...(await processesBelow('journal-io', this.dir)),
      ...(await processesBelow('volplugin', this.dir)),
      ...(await processesBelow('volmaster', this.dir)),
      ...(await processesBelow('volsupervisor', this.dir)),
    ]);
    await cleanupBelow(this.dir);
    await this.removeImages();
    for (const fn of this.atEnd.splice(0).reverse()) await fn().catch(() => undefined);
    await this.kv.close().catch(() => undefined);
  }

  /** The tenant's images go with the world (the pool is shared by every scenario of the run). */
  private async removeImages(): Promise<void> {
    for (const image of await this.cluster.images().catch(() => [] as string[])) {
      for (const snap of await this.cluster.snapshots(image)) {
        await this.cluster.rbd('snap', 'unprotect', `${POOL}/${image}@${snap}`).catch(() => undefined);
      }
      await this.cluster.rbd('snap', 'purge', '--no-progress', `${POOL}/${image}`).catch(() => undefined);
      await this.cluster.rbd('rm', '--no-progress', `${POOL}/${image}`).catch(() => undefined);
    }
  }
}
