// kill -9 of a host's volplugin. Its mounts, loop devices and rbd-fuse clients stay (they are not
// its children), so the containers' writes go on until another host fences the old client.

import type { ChaosHost } from '../hosts.js';

export async function killVolplugin(host: ChaosHost): Promise<number> {
  await host.kill9();
  return Date.now();
}
