// The two Storage backends under test, opened the way the daemons open them
// (src/storage/index.ts `openStorage`), against a bench cluster.

import { openStorage } from '../../src/storage/index.js';
import type { Storage } from '../../src/storage/types.js';
import type { Cluster } from './cluster.js';

export type NodeBackend = 'native' | 'cli';
export const nodeBackends: readonly NodeBackend[] = ['native', 'cli'];

export function openBackend(kind: NodeBackend, cluster: Cluster): Promise<Storage> {
  return openStorage(kind, { confPath: cluster.confPath, clientId: 'admin' });
}
