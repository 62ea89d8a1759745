// Every create that was acknowledged (Docker's Create answered without Err, or the API 200/201)
// exists: its record in etcd and its image in Ceph.

import type { Cluster } from './cluster-view.js';
import { violation, type Violation } from './types.js';

export async function checkAckedCreates(cluster: Cluster, names: readonly string[]): Promise<Violation[]> {
  const out: Violation[] = [];
  const images = new Set(await cluster.images());
  for (const name of names) {
    const record = await cluster.volumeRecord(name);
    const image = cluster.imageOf(name);
    if (!record || !images.has(image)) {
      out.push(violation('acked-creates', `create of ${name} was acknowledged but ${!record ? 'its record' : 'its image'} is missing`, { record, image, imageExists: images.has(image) }));
    }
  }
  return out;
}
