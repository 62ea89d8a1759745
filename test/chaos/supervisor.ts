// A volsupervisor of a scenario's world, started from dist/ as users start it (bin/volsupervisor.cjs)
// on the world's etcd prefix and Ceph, with its own cephx key: it takes the scheduled backups
// (every 200 ms it looks for due ones) under a 2 s election TTL, so that a killed leader's lease
// and operation locks lapse quickly. The backup scenarios kill it with SIGKILL and start it again.

import path from 'node:path';
import { cephArgs, Proc } from '../helpers/plugin-harness.js';
import { repoRoot, testBackend as backend } from '../helpers/sandbox.js';

export interface SupervisorOptions {
  dir: string;
  etcdUrl: string;
  prefix: string;
  cephConf: string;
  /** --backup-allow: where the world's targets are. */
  backupAllow: string[];
  staging: string;
}

export class ChaosSupervisor {
  private proc: Proc | null = null;
  private starts = 0;

  constructor(private readonly options: SupervisorOptions) {}

  /** Starts it (again); it leads once the previous leader's lease is gone. */
  async start(): Promise<void> {
    const o = this.options;
    const proc = new Proc('volsupervisor', path.join(o.dir, `volsupervisor.${this.starts++}.log`));
    await proc.spawn([
      path.join(repoRoot, 'bin', 'volsupervisor.cjs'),
      '--etcd', o.etcdUrl,
      '--prefix', o.prefix,
      '--backend', backend,
      ...cephArgs('volsupervisor', o.cephConf),
      '--election-ttl', '2',
      '--tick-ms', '500',
      '--backup-tick-ms', '200',
      '--backup-allow', o.backupAllow.join(','),
      '--backup-staging', o.staging,
    ]);
    this.proc = proc;
  }

  get pid(): number {
    return this.proc?.pid ?? 0;
  }

  /** kill -9: no clean-up of any kind. */
  async kill9(): Promise<void> {
    await this.proc?.kill9();
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  async logTail(chars = 1_500): Promise<string> {
    return (await this.proc?.logs())?.slice(-chars) ?? '';
  }
}
