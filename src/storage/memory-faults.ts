// The memory twin's fault hooks: what a unit test of the layers above needs to make Ceph misbehave
// the way the real backends do. Each call of the twin goes through `FaultHooks.call()`, which logs
// it, holds it while a hang() says so, and fails it while the cluster is unreachable or when a
// failNext() is waiting for it. The errors are RbdErrors with the errno, the librbd function and
// the pool/image/snapshot that the native backend would report.

import { getSystemErrorMap } from 'node:util';
import { constants } from 'node:os';
import { RbdError } from './errors.js';
import type { ParentRef, StorageCall } from './types.js';

/** The librbd/librados function behind each call, as the native backend names it in its errors. */
const OPS: Record<StorageCall, string> = {
  createImage: 'rbd_create4',
  removeImage: 'rbd_remove',
  resizeImage: 'rbd_resize2',
  renameImage: 'rbd_rename',
  imageInfo: 'rbd_stat',
  listImages: 'rbd_list2',
  imageExists: 'rbd_open_read_only',
  createSnapshot: 'rbd_snap_create',
  listSnapshots: 'rbd_snap_list',
  removeSnapshot: 'rbd_snap_remove',
  rollbackSnapshot: 'rbd_snap_rollback',
  protectSnapshot: 'rbd_snap_protect',
  unprotectSnapshot: 'rbd_snap_unprotect',
  cloneSnapshot: 'rbd_clone3',
  listChildren: 'rbd_list_children3',
  flattenImage: 'rbd_flatten',
  createGroup: 'rbd_group_create',
  removeGroup: 'rbd_group_remove',
  addGroupImage: 'rbd_group_image_add',
  listGroupImages: 'rbd_group_image_list',
  createGroupSnapshot: 'rbd_group_snap_create',
  listGroupSnapshots: 'rbd_group_snap_list',
  removeGroupSnapshot: 'rbd_group_snap_remove',
  rollbackGroupSnapshot: 'rbd_group_snap_rollback',
  listMemberSnapshots: 'rbd_snap_list',
  copySnapshot: 'rbd_copy_with_progress4',
  listWatchers: 'rbd_watchers_list',
  addLock: 'rbd_lock_exclusive',
  listLocks: 'rbd_list_lockers',
  breakLock: 'rbd_break_lock',
  blocklistAdd: 'rados_mon_command',
  blocklistRemove: 'rados_mon_command',
  getMetadata: 'rbd_metadata_list',
  setMetadata: 'rbd_metadata_set',
  removeMetadata: 'rbd_metadata_remove',
  getQos: 'rbd_metadata_list',
  setQos: 'rbd_metadata_set',
  clusterInfo: 'rados_mon_command',
  exportDiff: 'rbd_diff_iterate2',
  applyDiff: 'rbd_diff_v1',
  inspectDiff: 'rbd_diff_v1',
};

const SNAPSHOT_CALLS = new Set<StorageCall>(['createSnapshot', 'removeSnapshot', 'rollbackSnapshot', 'protectSnapshot', 'unprotectSnapshot']);

/** A hang(): calls it holds do not settle until release(). */
export interface Hang {
  /** Resolves when the first call is held. */
  readonly reached: Promise<void>;
  /** How many calls are held now. */
  readonly held: number;
  /**
   * Stops holding calls; the held ones then run as usual, or fail with `error` (an errno name or
   * number) when it is given. Resolves once they have settled.
   */
  release(error?: string | number): Promise<void>;
}

class Gate implements Hang {
  readonly reached: Promise<void>;
  private reach!: () => void;
  private open!: (errno: number | null) => void;
  private readonly opened: Promise<number | null>;
  private readonly waiting: Promise<unknown>[] = [];
  released = false;

  constructor(readonly call: StorageCall | null) {
    this.reached = new Promise((resolve) => (this.reach = resolve));
    this.opened = new Promise((resolve) => (this.open = resolve));
  }

  get held(): number {
    return this.released ? 0 : this.waiting.length;
  }

  holds(call: StorageCall): boolean {
    return !this.released && (this.call === null || this.call === call);
  }

  /** Holds `run` until release(); returns what it returns, or the error `fail` makes. */
  hold<T>(run: () => T | Promise<T>, fail: (errno: number) => Error): Promise<T> {
    const result = this.opened.then((errno) => {
      if (errno !== null) throw fail(errno);
      return run();
    });
    this.waiting.push(result);
    this.reach();
    return result;
  }

  async release(error?: string | number): Promise<void> {
    this.released = true;
    this.open(error === undefined ? null : errnoOf(error));
    await Promise.allSettled(this.waiting);
  }
}

/** What the real backends would give for `call` failing with `errno`. */
export function callError(call: StorageCall, args: readonly unknown[], errno: number, detail?: string): RbdError {
  const [a, b, c] = args;
  let target: { pool?: string; image?: string; snapshot?: string };
  if (call === 'cloneSnapshot') target = { pool: b as string, image: c as string };
  else if (call === 'listChildren') target = { ...(a as ParentRef) };
  else if (call.startsWith('blocklist') || call === 'clusterInfo' || call === 'inspectDiff') target = {};
  else target = { pool: a as string, image: b as string, snapshot: SNAPSHOT_CALLS.has(call) ? (c as string) : undefined };
  return new RbdError({ errno, op: OPS[call], ...target, detail: detail ?? getSystemErrorMap().get(-Math.abs(errno))?.[1] });
}

function errnoOf(error: string | number): number {
  if (typeof error === 'number') return -Math.abs(error);
  const errno = (constants.errno as Record<string, number | undefined>)[error];
  if (errno === undefined) throw new TypeError(`${error} is not an errno name (e.g. EIO, ENOSPC, ETIMEDOUT)`);
  return -errno;
}

/**
 * One line of the call log: the call and its arguments, e.g. "createSnapshot rbd t1.data s1"; a
 * parent snapshot as "pool/image@snapshot", other objects as JSON, absent arguments left out.
 */
function logLine(call: StorageCall, args: readonly unknown[]): string {
  const words = args.map((arg, i) => {
    if (arg === undefined) return null;
    if (typeof arg !== 'object' || arg === null) return String(arg);
    if (i === 0 && (call === 'cloneSnapshot' || call === 'listChildren')) {
      const p = arg as ParentRef;
      return `${p.pool}/${p.image}@${p.snapshot}`;
    }
    return JSON.stringify(arg);
  });
  return [call, ...words.filter((w) => w !== null)].join(' ');
}

export abstract class FaultHooks {
  /** Every call made so far, in order, one line each: "call arg arg ...". Tests may empty it. */
  readonly calls: string[] = [];
  /** The same calls with their arguments as given (for assertions on objects such as QoS limits). */
  readonly callArgs: Array<{ call: StorageCall; args: readonly unknown[] }> = [];
  /**
   * While true, every call fails as the real backends fail when the monitors cannot be reached:
   * ETIMEDOUT, naming the librbd function.
   */
  unreachable = false;

  private readonly failures: { call: StorageCall | null; errno: number }[] = [];
  private readonly gates: Gate[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();

  /** The arguments of every `call` made so far, oldest first. */
  argsOf(call: StorageCall): Array<readonly unknown[]> {
    return this.callArgs.filter((c) => c.call === call).map((c) => c.args);
  }

  /** The next call of `call` (of any call with '*') fails with this errno (a name or a number). */
  failNext(call: StorageCall | '*', error: string | number = 'EIO'): void {
    this.failures.push({ call: call === '*' ? null : call, errno: errnoOf(error) });
  }

  /** Calls of `call` (of every call when omitted) made from now on do not settle until release(). */
  hang(call?: StorageCall): Hang {
    const gate = new Gate(call ?? null);
    this.gates.push(gate);
    return gate;
  }

  /**
   * A failNext() armed for `call` itself (not '*'), taken: for a step a call makes inside another
   * (createImage setting its metadata, as setMetadata would), whose errno it returns; null if none.
   */
  protected takeFailure(call: StorageCall): number | null {
    const i = this.failures.findIndex((f) => f.call === call);
    return i >= 0 ? this.failures.splice(i, 1)[0]!.errno : null;
  }

  /** Calls that have not settled yet (held ones too). */
  protected get pending(): number {
    return this.inFlight.size;
  }

  /** Runs one call of the twin through the hooks: logged, maybe held, maybe failed, else `body`. */
  protected call<T>(call: StorageCall, args: readonly unknown[], body: () => T | Promise<T>): Promise<T> {
    this.calls.push(logLine(call, args));
    this.callArgs.push({ call, args });
    const run = () => {
      if (this.unreachable) throw callError(call, args, -constants.errno.ETIMEDOUT);
      const i = this.failures.findIndex((f) => f.call === null || f.call === call);
      if (i >= 0) throw callError(call, args, this.failures.splice(i, 1)[0]!.errno);
      return body();
    };
    const gate = this.gates.find((g) => g.holds(call));
    // Unheld calls run at once, as one step: no other call of the twin comes between.
    const promise = gate ? gate.hold(run, (errno) => callError(call, args, errno)) : new Promise<T>((resolve) => resolve(run()));
    this.inFlight.add(promise);
    const done = () => this.inFlight.delete(promise);
    promise.then(done, done);
    return promise;
  }
}
