// Choosing the mapper: --mapper krbd|nbd|fuse forces one (and fails at start when it cannot work
// here); auto takes krbd where the kernel has the rbd bus, rbd-nbd where /dev/nbd0 exists and the
// tool runs, else rbd-fuse + loop devices.

import { access } from 'node:fs/promises';
import path from 'node:path';
import { FuseMapper, checkFuseAvailable } from './fuse.js';
import { NbdMapper, checkNbdAvailable } from './nbd.js';
import type { CephClientSettings, Mapper, MapperKind, WatcherSource } from './types.js';
import { MapperUnavailableError } from './types.js';

export interface MapperSetup {
  kind: 'auto' | MapperKind;
  /** volplugin's state dir: each mapper keeps its files in <stateDir>/<kind>. */
  stateDir: string;
  ceph: CephClientSettings;
  watchers: WatcherSource;
  log?: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  /** Makes the kernel (krbd) mapper; absent until the krbd sysfs writer is available. */
  krbd?: (setup: MapperSetup) => Promise<Mapper>;
}

async function krbdAvailable(): Promise<void> {
  try {
    await access('/sys/bus/rbd/add_single_major');
  } catch {
    throw new MapperUnavailableError('krbd', 'the kernel has no rbd bus (/sys/bus/rbd): load the rbd module (modprobe rbd) or use --mapper fuse');
  }
}

async function make(kind: MapperKind, setup: MapperSetup): Promise<Mapper> {
  switch (kind) {
    case 'krbd':
      await krbdAvailable();
      if (!setup.krbd) throw new MapperUnavailableError('krbd', 'this volplugin build has no krbd mapper: use --mapper nbd or fuse');
      return setup.krbd(setup);
    case 'nbd':
      await checkNbdAvailable();
      return new NbdMapper({ root: path.join(setup.stateDir, 'nbd'), ceph: setup.ceph, watchers: setup.watchers });
    case 'fuse':
      await checkFuseAvailable();
      return new FuseMapper({ root: path.join(setup.stateDir, 'fuse'), ceph: setup.ceph, watchers: setup.watchers, log: setup.log });
  }
}

/** The mapper to use, and why (for the start-up log). */
export async function selectMapper(setup: MapperSetup): Promise<{ mapper: Mapper; why: string }> {
  if (setup.kind !== 'auto') return { mapper: await make(setup.kind, setup), why: `--mapper ${setup.kind}` };
  const skipped: string[] = [];
  for (const kind of ['krbd', 'nbd', 'fuse'] as const) {
    try {
      return { mapper: await make(kind, setup), why: skipped.length ? `auto (${skipped.join('; ')})` : 'auto' };
    } catch (err) {
      if (!(err instanceof MapperUnavailableError)) throw err;
      skipped.push(`${kind}: ${err.message}`);
    }
  }
  throw new MapperUnavailableError('fuse', `no way to map RBD images on this host: ${skipped.join('; ')}`);
}
