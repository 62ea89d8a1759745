// The front door of every backend: openStorage wraps each one in `checked()` once, so that what
// follows holds whichever backend runs, and each backend only does its own work.
//
// - A call after close() is refused (ENOTCONN) without reaching the backend.
// - Every argument is checked before the backend sees it: a caller's mistake is a TypeError or
//   RangeError naming the field (validate.ts), and never reaches Ceph, where the same mistake would
//   give a backend-specific error or none. Backends trust their arguments and only fill in defaults
//   (createSpec/cloneSpec).
// - An RbdError gets the stack of the code that made the call: the addon builds its errors on a
//   worker's completion and the CLI backend after a process exits, neither with the caller's frames.

import { decorate } from './decorate.js';
import { callSite, withCallSite } from './errors.js';
import { STORAGE_CALLS, type ClusterConfig, type Storage, type StorageCall } from './types.js';
import {
  checkAddress,
  checkBoolean,
  checkCloneOptions,
  checkCreateOptions,
  checkDiffOptions,
  checkLock,
  checkName,
  checkObject,
  checkParent,
  checkPath,
  checkProgress,
  checkQos,
  checkSize,
  checkText,
  closedError,
} from './validate.js';

type Checks = { [C in StorageCall]: (...args: Parameters<Storage[C]>) => void };

/** Each argument that is a name (pool, image, snapshot), in the order the call takes them. */
function names(fields: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(fields)) checkName(field, value);
}

/** What every call must be given. Throwing here is the whole check: backends get the same arguments. */
const CHECKS: Checks = {
  createImage: (pool, name, options) => {
    names({ pool, name });
    checkCreateOptions(options);
  },
  removeImage: (pool, name, options) => {
    names({ pool, name });
    checkProgress(options);
  },
  resizeImage: (pool, name, size, options = {}) => {
    names({ pool, name });
    checkSize('size', size);
    if (options.allowShrink !== undefined) checkBoolean('options.allowShrink', options.allowShrink);
    checkProgress(options);
  },
  renameImage: (pool, from, to) => names({ pool, from, to }),
  imageInfo: (pool, name) => names({ pool, name }),
  listImages: (pool) => names({ pool }),
  imageExists: (pool, name) => names({ pool, name }),

  createSnapshot: (pool, image, snapshot) => names({ pool, image, snapshot }),
  listSnapshots: (pool, image) => names({ pool, image }),
  removeSnapshot: (pool, image, snapshot) => names({ pool, image, snapshot }),
  rollbackSnapshot: (pool, image, snapshot) => names({ pool, image, snapshot }),
  protectSnapshot: (pool, image, snapshot) => names({ pool, image, snapshot }),
  unprotectSnapshot: (pool, image, snapshot) => names({ pool, image, snapshot }),
  cloneSnapshot: (parent, pool, name, options) => {
    checkParent(parent);
    names({ pool, name });
    checkCloneOptions(options);
  },
  listChildren: (parent) => void checkParent(parent),
  flattenImage: (pool, name, options) => {
    names({ pool, name });
    checkProgress(options);
  },

  createGroup: (pool, group) => names({ pool, group }),
  removeGroup: (pool, group) => names({ pool, group }),
  addGroupImage: (pool, group, member) => {
    names({ pool, group });
    checkObject('member', member);
    names({ 'member.pool': member.pool, 'member.image': member.image });
  },
  listGroupImages: (pool, group) => names({ pool, group }),
  createGroupSnapshot: (pool, group, snapshot) => names({ pool, group, snapshot }),
  listGroupSnapshots: (pool, group) => names({ pool, group }),
  removeGroupSnapshot: (pool, group, snapshot) => names({ pool, group, snapshot }),
  rollbackGroupSnapshot: (pool, group, snapshot, options) => {
    names({ pool, group, snapshot });
    checkProgress(options);
  },
  listMemberSnapshots: (pool, image) => names({ pool, image }),
  copySnapshot: (source, pool, name, options) => {
    checkObject('source', source);
    names({ 'source.pool': source.pool, 'source.image': source.image });
    checkSize('source.snapshotId', source.snapshotId, { min: 0 });
    names({ pool, name });
    checkCloneOptions(options);
    checkProgress(options);
  },

  listWatchers: (pool, image) => names({ pool, image }),
  addLock: (pool, image, lock) => {
    names({ pool, image });
    checkLock(lock);
  },
  listLocks: (pool, image) => names({ pool, image }),
  breakLock: (pool, image, lock) => {
    names({ pool, image });
    checkObject('lock', lock);
    checkText('lock.owner', lock.owner);
    checkText('lock.cookie', lock.cookie);
  },
  blocklistAdd: (address, seconds) => {
    checkAddress('address', address);
    checkSize('seconds', seconds, { min: 1 });
  },
  blocklistRemove: (address) => void checkAddress('address', address),

  getMetadata: (pool, image) => names({ pool, image }),
  setMetadata: (pool, image, key, value) => {
    names({ pool, image });
    checkText('key', key);
    checkText('value', value);
  },
  removeMetadata: (pool, image, key) => {
    names({ pool, image });
    checkText('key', key);
  },
  getQos: (pool, image) => names({ pool, image }),
  setQos: (pool, image, limits) => {
    names({ pool, image });
    checkQos(limits);
  },

  clusterInfo: () => undefined,

  exportDiff: (pool, image, range, file, options) => {
    names({ pool, image });
    checkObject('range', range);
    if (range.from !== null) checkName('range.from', range.from);
    checkName('range.to', range.to);
    checkPath('file', file);
    checkDiffOptions(options, true);
  },
  applyDiff: (pool, image, file, options) => {
    names({ pool, image });
    checkPath('file', file);
    checkDiffOptions(options, false);
  },
  inspectDiff: (file) => void checkPath('file', file),
};

/** How to reach the cluster: each field optional, each a string without NUL when given. */
export function checkConfig(config: ClusterConfig): void {
  checkObject('config', config);
  for (const field of ['confPath', 'keyring', 'clientId'] as const) {
    if (config[field] !== undefined) checkText(`config.${field}`, config[field]);
  }
}

type Call = (...args: unknown[]) => Promise<unknown>;

/**
 * `backend` behind the checks above. The result is `backend` itself for everything else: a
 * backend's own members (the memory twin's test hooks, for one) stay reachable, unchecked.
 */
export function checked<S extends Storage>(backend: S): S {
  let closed = false;
  const doors = new Map<PropertyKey, Call>();
  for (const call of STORAGE_CALLS) {
    const check = CHECKS[call] as (...args: unknown[]) => void;
    const door = (...args: unknown[]): Promise<unknown> => {
      if (closed) return Promise.reject(closedError(call));
      const site = callSite(door);
      try {
        check(...args);
      } catch (err) {
        return Promise.reject(err);
      }
      return (backend[call] as Call).apply(backend, args).catch((err: unknown) => {
        throw withCallSite(err, site);
      });
    };
    doors.set(call, door);
  }
  doors.set('close', () => {
    closed = true;
    return backend.close();
  });
  return decorate(backend, doors);
}
