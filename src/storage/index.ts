// The storage seam's entry point: pick a backend by name. `native` loads the C++ addon (and fails
// with an AddonLoadError that says what to install when it cannot), `cli` runs `rbd`/`ceph`, and
// `memory` is the in-memory twin for unit tests. Whichever it is, it comes wrapped once in the
// decorators every backend shares: checked.ts (refusal after close, argument checks, the caller's
// stack on errors), metered.ts (latency and errors of every call, for Prometheus) and, when a bound
// is given, timed.ts.

import { checkConfig, checked } from './checked.js';
import { CliStorage } from './cli.js';
import { MemoryStorage } from './memory.js';
import { NativeStorage } from './native.js';
import { metered } from './metered.js';
import { timed } from './timed.js';
import type { BackendKind, ClusterConfig, Storage } from './types.js';
import { TimeoutError, withTimeout } from '../common/timeout.js';

export const BACKENDS: readonly BackendKind[] = ['native', 'cli', 'memory'];

export interface OpenOptions {
  /** Bound of every call (timed.ts); none when absent or not positive. */
  callTimeoutMs?: number;
}

export async function openStorage(kind: BackendKind, config: ClusterConfig = {}, options: OpenOptions = {}): Promise<Storage> {
  checkConfig(config);
  const backend = await openBackend(kind, config);
  const bound = options.callTimeoutMs;
  return checked(metered(bound !== undefined && bound > 0 ? timed(backend, bound) : backend));
}

async function openBackend(kind: BackendKind, config: ClusterConfig): Promise<Storage> {
  switch (kind) {
    case 'native':
      return NativeStorage.open(config);
    case 'cli': {
      const storage = new CliStorage(config);
      await storage.connect();
      return storage;
    }
    case 'memory':
      return new MemoryStorage(config);
    default:
      throw new TypeError(`storage backend must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(kind)}`);
  }
}

/** How the daemons connect at start: the configured backend, bounded in time, with an error that says what to check. */
export async function connectStorage(
  kind: BackendKind,
  config: ClusterConfig,
  timeoutMs = 30_000,
  options: OpenOptions = {},
): Promise<Storage> {
  const where = `${kind} backend, ${config.confPath ?? 'default ceph.conf'}`;
  try {
    return await withTimeout(openStorage(kind, config, options), timeoutMs, `connecting to Ceph (${where})`);
  } catch (err) {
    if (err instanceof TimeoutError) err.message += ': check that the monitors answer (ceph -s) and the keyring is readable';
    throw err;
  }
}

export * from './types.js';
export { RbdError, isRbdError, errnoName, type RbdErrorFields } from './errors.js';
export { checked } from './checked.js';
export { timed } from './timed.js';
export { metered } from './metered.js';
export { CliStorage, type CliStorageOptions } from './cli.js';
export { MemoryStorage, memoryStorage, type MemoryStorageOptions, type MemoryImage, type Hang } from './memory.js';
export { NativeStorage, AddonLoadError, loadAddon, writeSysfsFile } from './native.js';
export { QOS_KEYS, FEATURE_BITS, DEFAULT_FEATURES, qosMetadata } from './validate.js';
