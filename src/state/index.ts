// The state layer: everything volplugin keeps in etcd. StateStore is the one door; EtcdKV (and its
// memory twin MemoryKV) is what it runs on.
export * from './kv.js';
export * from './keys.js';
export type * from './records.js';
export { KVElection, ElectionResignedError } from './election.js';
export { EtcdKV, DEFAULT_TIMEOUT_MS, type EtcdKVOptions } from './etcd.js';
export { MemoryKV } from './memory.js';
export * from './store.js';
