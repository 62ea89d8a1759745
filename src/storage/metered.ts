// The metrics of a storage backend, as a decorator (like timed.ts): every call's latency and every
// failure by call and error code (src/metrics/families.ts), and the backend's running and queued
// calls in the gauges for as long as it is open. openStorage wraps every backend in it once.

import { cephCallDuration, cephCallErrors, trackStorage } from '../metrics/families.js';
import { decorate } from './decorate.js';
import { STORAGE_CALLS, type Storage } from './types.js';

type Call = (...args: unknown[]) => Promise<unknown>;

/** The error code label of a failed call: the errno name of an RbdError, TIMEOUT for a time bound, else "other". */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(E[A-Z0-9]{1,15}|TIMEOUT)$/.test(code) ? code : 'other';
}

export function metered<S extends Storage>(storage: S): S {
  const untrack = trackStorage(() => {
    const { running, queued } = storage.stats();
    return { running, queued };
  });
  const replaced = new Map<PropertyKey, Call>();
  for (const call of STORAGE_CALLS) {
    replaced.set(call, async (...args) => {
      const end = cephCallDuration.startTimer({ call });
      try {
        return await (storage[call] as Call).apply(storage, args);
      } catch (err) {
        cephCallErrors.inc({ call, code: errorCode(err) });
        throw err;
      } finally {
        end();
      }
    });
  }
  replaced.set('close', async () => {
    untrack();
    await storage.close();
  });
  return decorate(storage, replaced);
}
