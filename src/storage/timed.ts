// The time bound of a storage backend, as a decorator: librados waits for a dead cluster for
// minutes (or, for OSD operations, forever), and a request must not hang on it.

import { withTimeout } from '../common/timeout.js';
import { decorate } from './decorate.js';
import { STORAGE_CALLS, type Storage } from './types.js';

type Call = (...args: unknown[]) => Promise<unknown>;

/**
 * `storage` with every call bounded by `ms`: a call that takes longer fails with TimeoutError
 * ("Ceph <call> did not finish within <ms> ms"). The call itself cannot be cancelled; a create that
 * Ceph finishes after the timeout is what the master's intents and janitor are for. `close` and
 * `stats` are not bounded.
 */
export function timed<S extends Storage>(storage: S, ms: number): S {
  const bounded = new Map<PropertyKey, Call>();
  for (const call of STORAGE_CALLS) {
    bounded.set(call, (...args) => withTimeout((storage[call] as Call).apply(storage, args), ms, `Ceph ${call}`));
  }
  return decorate(storage, bounded);
}
