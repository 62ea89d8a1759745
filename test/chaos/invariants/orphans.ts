// Nothing left behind once every reference is unmounted: no image without a record (or record
// without image), no mount lock (nor its entry in the holder's index), create intent, operation
// lock, mount exclusion or restore intent in etcd, no host reporting a mount, no open client on an
// image, and on this machine no mount, loop device or rbd-fuse process below the scenario's
// directory. Cleanup may be asynchronous (the master's janitor, the hosts' convergence loops, a dead
// client's watch timing out), so the check waits for it, with a bound.

import { listLoopDevices } from '../../../src/mapper/loop.js';
import { isBelow, readMountInfo } from '../../../src/mapper/mountinfo.js';
import { processesBelow } from '../proc.js';
import { eventually } from '../wait.js';
import type { Cluster } from './cluster-view.js';
import { violation, type Violation } from './types.js';

/** Every orphan of the tenant in etcd and Ceph, and below `dir` on this machine, as a sentence each. */
export async function findOrphans(cluster: Cluster, dir: string): Promise<string[]> {
  const out: string[] = [];
  const k = cluster.keys;
  const records = new Set((await cluster.list(k.tenantVolumes(cluster.tenant))).map(([key]) => key.slice(k.tenantVolumes(cluster.tenant).length)));
  const images = await cluster.images();
  for (const image of images) {
    const name = image.slice(cluster.tenant.length + 1);
    if (!records.has(name)) {
      // What is left of it tells a half-removed image (no header) from a whole one.
      const info = await cluster.rbd('info', '--format', 'json', `${cluster.pool}/${image}`).then(
        (text) => `size ${(JSON.parse(text) as { size?: number }).size ?? '?'}`,
        (err: Error) => `rbd info fails: ${err.message.split('\n').pop()?.slice(0, 160)}`,
      );
      out.push(`image ${cluster.pool}/${image} has no volume record (${info})`);
    }
    const watchers = await cluster.watchers(image);
    if (watchers.length > 0) out.push(`image ${cluster.pool}/${image} is still open by ${watchers.join(', ')}`);
  }
  for (const name of records) {
    if (!images.includes(`${cluster.tenant}.${name}`)) out.push(`volume record ${cluster.tenant}/${name} has no image`);
  }
  for (const [root, what] of [
    [k.mounts, 'mount lock'],
    [`${k.prefix}/host-mounts/`, "entry of a host's mount index"],
    [k.intents, 'create intent'],
    [`${k.prefix}/operations/`, 'operation lock'],
    [`${k.prefix}/exclusive/`, 'mount exclusion'],
    [k.restores, 'restore intent'],
  ] as const) {
    for (const [key, value] of await cluster.list(root)) out.push(`${what} ${key} = ${value.slice(0, 300)}`);
  }
  for (const [key, value] of await cluster.list(k.hosts)) {
    const report = JSON.parse(value) as { host?: string; mounts?: Array<{ tenant: string; volume: string }> };
    for (const m of report.mounts ?? []) out.push(`host ${report.host ?? key} reports ${m.tenant}/${m.volume} mounted`);
  }
  for (const m of await readMountInfo()) {
    if (isBelow(m.mountPoint, dir)) out.push(`mount ${m.source} on ${m.mountPoint} (${m.fsType})`);
  }
  for (const l of await listLoopDevices()) {
    if (isBelow(l.backingFile, dir)) out.push(`loop device ${l.device} on ${l.backingFile}`);
  }
  for (const pid of await processesBelow('rbd-fuse', dir)) out.push(`rbd-fuse process ${pid}`);
  return out;
}

/** Waits up to `waitMs` for the orphans to go; what is left is a violation with the list. */
export async function checkNoOrphans(cluster: Cluster, dir: string, waitMs: number): Promise<Violation[]> {
  let last: string[] = [];
  const clean = await eventually(async () => {
    last = await findOrphans(cluster, dir);
    return last.length === 0;
  }, waitMs, 1_000);
  if (clean) return [];
  return [violation('no-orphans', `${last.length} thing(s) left behind after every reference was unmounted (waited ${waitMs} ms)`, { orphans: last })];
}
