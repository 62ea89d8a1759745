// How the decorators (checked.ts, timed.ts) wrap a backend: the calls they replace are theirs,
// everything else is the backend's own, with `this` the backend (so that a backend's extra members,
// such as the memory twin's test hooks, keep working through any number of decorators).

import type { Storage } from './types.js';

type Member = (...args: unknown[]) => unknown;

export function decorate<S extends Storage>(backend: S, replaced: ReadonlyMap<PropertyKey, Member>): S {
  return new Proxy(backend, {
    get(target, key) {
      const own = replaced.get(key);
      if (own) return own;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as Member).bind(target) : value;
    },
    set: (target, key, value) => Reflect.set(target, key, value, target),
  });
}
