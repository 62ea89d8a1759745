// Opening a tenant's backup target for one volume: a directory (directory.ts) or a Ceph cluster
// (ceph.ts), whose connection is opened once per conf/keyring/client and kept until close(). The
// conf and keyring of a Ceph target must lie inside this daemon's --backup-allow directories, as a
// directory target must: a policy cannot make a root daemon read (or, through a conf's log
// settings, write) files elsewhere.

import { realpath } from 'node:fs/promises';
import { ApiError } from '../api/errors.js';
import { insideAllowed, targetProblem, type BackupTarget } from '../policy/backup.js';
import { connectStorage } from '../storage/index.js';
import type { BackendKind, ClusterConfig, Storage } from '../storage/types.js';
import type { BackupConfig } from './config.js';
import { CephTarget } from './ceph.js';
import { DirectoryTarget } from './directory.js';
import type { TargetVolume } from './target.js';

export class TargetConnections {
  private readonly open: (config: ClusterConfig) => Promise<Storage>;
  private readonly clusters = new Map<string, Promise<Storage>>();
  private fsid: Promise<string> | null = null;

  constructor(
    private readonly storage: Storage,
    private readonly config: BackupConfig,
    open?: (config: ClusterConfig) => Promise<Storage>,
  ) {
    // The memory twin has no second cluster: a test hands in its own.
    this.open = open ?? ((c) => connectStorage(storage.kind as BackendKind, c, 30_000));
  }

  async target(target: BackupTarget, tenant: string, volume: string, image: string): Promise<TargetVolume> {
    // A record in etcd is not trusted: the policy's rules again, right before use.
    const problem = targetProblem(target);
    if (problem) throw new ApiError('BACKUP_TARGET_UNAVAILABLE', `the backup target of tenant ${tenant}: ${problem[0]} ${problem[1]}`);
    if ('directory' in target) return DirectoryTarget.open(target.directory, tenant, volume, this.config.allow, this.storage);
    const c = target.ceph;
    for (const file of [c.conf, c.keyring]) {
      if (file === undefined) continue;
      const real = await realpath(file).catch(() => null);
      if (real === null) throw new ApiError('BACKUP_TARGET_UNAVAILABLE', `backup target of tenant ${tenant}: ${file} does not exist`);
      if (!insideAllowed(real, this.config.allow)) {
        throw new ApiError('BACKUP_TARGET_UNAVAILABLE', `backup target of tenant ${tenant}: ${file} is not under an allowed directory of this daemon (--backup-allow: ${this.config.allow.join(', ') || 'none'})`);
      }
    }
    const describe = `ceph pool ${c.pool} (conf ${c.conf}${c.client ? `, client ${c.client}` : ''})`;
    const storage = await this.cluster({ confPath: c.conf, keyring: c.keyring, clientId: c.client }, describe);
    const sourceFsid = () => (this.fsid ??= this.storage.clusterInfo().then((i) => i.fsid));
    return new CephTarget({ target: storage, sourceFsid, pool: c.pool, describe, stagingDir: this.config.stagingDir }, tenant, volume, image);
  }

  private cluster(config: ClusterConfig, describe: string): Promise<Storage> {
    const key = JSON.stringify(config);
    let pending = this.clusters.get(key);
    if (!pending) {
      pending = this.open(config).catch((err: unknown) => {
        this.clusters.delete(key);
        throw new ApiError('BACKUP_TARGET_UNAVAILABLE', `backup target ${describe} cannot be reached: ${(err as Error).message}`, { cause: err });
      });
      this.clusters.set(key, pending);
    }
    return pending;
  }

  async close(): Promise<void> {
    const all = [...this.clusters.values()];
    this.clusters.clear();
    for (const p of all) await p.then((s) => s.close()).catch(() => undefined);
  }
}
