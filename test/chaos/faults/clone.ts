// A cloned host identity: a second machine made from a copy of a host's disk (a cloned VM, a copied
// state dir) starts volplugin with the same host id and mount table. Only the files are copied;
// the rbd-fuse mountpoints below the state dir are the source host's live mounts and stay there.

import { copyFile, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { ChaosHost } from '../hosts.js';

/** A seedState for World.addHost: copies `source`'s identity and tables into the new state dir. */
export function cloneStateOf(source: ChaosHost): (stateDir: string) => Promise<void> {
  return async (stateDir) => {
    await mkdir(stateDir, { recursive: true });
    for (const entry of await readdir(source.stateDir, { withFileTypes: true })) {
      if (entry.isFile()) await copyFile(path.join(source.stateDir, entry.name), path.join(stateDir, entry.name));
    }
  };
}
