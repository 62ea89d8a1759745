// What etcd and Ceph say about a scenario's tenant, read from outside the system under test: the
// raw keys under the scenario's etcd prefix and the `rbd` CLI, as an operator would look.

import { run } from '../../../src/mapper/exec.js';
import type { KV } from '../../../src/state/kv.js';
import { keys } from '../../../src/state/keys.js';
import type { MountRecord, VolumeRecord } from '../../../src/state/records.js';

export class Cluster {
  readonly keys: ReturnType<typeof keys>;

  constructor(
    readonly kv: KV,
    readonly prefix: string,
    readonly tenant: string,
    readonly pool: string,
    readonly cephConf: string,
  ) {
    this.keys = keys(prefix);
  }

  /** tenant/volume -> its image name (policy/names.ts: tenant.volume). */
  imageOf(name: string): string {
    return name.replace('/', '.');
  }

  private split(name: string): [string, string] {
    const at = name.indexOf('/');
    return [name.slice(0, at), name.slice(at + 1)];
  }

  async rbd(...args: string[]): Promise<string> {
    return (await run('rbd', ['-c', this.cephConf, ...args], { timeoutMs: 60_000 })).stdout;
  }

  /** The tenant's images in the pool. */
  async images(): Promise<string[]> {
    const all = JSON.parse(await this.rbd('ls', '--format', 'json', this.pool)) as string[];
    return all.filter((i) => i.startsWith(`${this.tenant}.`));
  }

  async watchers(image: string): Promise<string[]> {
    const out = await this.rbd('status', '--format', 'json', `${this.pool}/${image}`).catch(() => '{"watchers":[]}');
    return (JSON.parse(out) as { watchers: Array<{ address: string }> }).watchers.map((w) => w.address);
  }

  /** Snapshot names of `image` in the tenant's pool (or in `pool`). */
  async snapshots(image: string, pool = this.pool): Promise<string[]> {
    const out = await this.rbd('snap', 'ls', '--format', 'json', `${pool}/${image}`).catch(() => '[]');
    return (JSON.parse(out) as Array<{ name: string }>).map((s) => s.name);
  }

  async volumeRecord(name: string): Promise<VolumeRecord | null> {
    const entry = await this.kv.get(this.keys.volume(...this.split(name)));
    return entry ? (JSON.parse(entry.value) as VolumeRecord) : null;
  }

  async mountLock(name: string): Promise<MountRecord | null> {
    const entry = await this.kv.get(this.keys.mount(...this.split(name)));
    return entry ? (JSON.parse(entry.value) as MountRecord) : null;
  }

  /** Every key below `root` (one of keys()'s roots), as [key, value]. */
  async list(root: string): Promise<Array<[string, string]>> {
    return (await this.kv.list(root)).map((e) => [e.key, e.value]);
  }
}
