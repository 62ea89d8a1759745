// The two Storage backends under test, opened the way the daemons open them
// (src/storage/index.ts `openStorage`), against a bench cluster.

import type { Storage } from '../../src/storage/types.js';
import type { Cluster } from './cluster.js';

export type NodeBackend = 'native' | 'cli';
export const nodeBackends: readonly NodeBackend[] = ['native', 'cli'];

interface StorageModule {
  openStorage(kind: NodeBackend, config: { confPath?: string; clientId?: string }): Storage | Promise<Storage>;
}

export async function openBackend(kind: NodeBackend, cluster: Cluster): Promise<Storage> {
  const specifier = '../../src/storage/index.js';
  const mod = (await import(specifier)) as StorageModule;
  return mod.openStorage(kind, { confPath: cluster.confPath, clientId: 'admin' });
}
