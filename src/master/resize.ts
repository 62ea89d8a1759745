// Growing a volume while it may be in use: the one place of the master's side of a resize (the API
// route, the janitor and, later, a CSI ControllerExpandVolume call it; the host's side, growing a
// mounted filesystem, is src/plugin/mounts/grow.ts).
//
// Order, and what a master dying at each step leaves:
//   1. checks (size parses, the volume exists, no shrink, limits.size): a refusal changes nothing;
//   2. under the volume's operation lock, one etcd transaction sets the record's size, adds the
//      growth to the tenant's usage (within limits.total-size) and writes a resize intent: from now
//      on the record is the truth;
//   3. the image is grown to the record's size (an image that cannot be grown for a reason other
//      than an unreachable cluster puts the record back); then the intent goes. A master that dies
//      between 2 and here leaves the intent, and the janitor (any master) grows the image later;
//   4. the host holding the volume's mount lock is asked to grow its filesystem (a `resize-fs`
//      request through etcd, src/state/host-requests.ts). A host that does not answer (down, cut
//      off, mid-takeover) loses nothing: every volplugin grows a filesystem smaller than its device
//      when it mounts the volume, and the same resize again (same size) asks the holder again.

import type { FastifyBaseLogger } from 'fastify';
import { ApiError } from '../api/errors.js';
import { limitsOf, quotaOf } from '../policy/limits.js';
import { assertVolumeRef } from '../policy/names.js';
import { formatSize, parseSize } from '../policy/units.js';
import type { MountRecord, ResizeIntent, VolumeRecord } from '../state/records.js';
import { HostRequestKind } from '../state/host-requests.js';
import { HostRequestTimeoutError, LockReason, StateBusyError, type StateStore } from '../state/store.js';
import type { Storage } from '../storage/types.js';
import { fromStorageError } from './errors.js';
import type { Accept, Progress, WorkResult } from './operations.js';

/** The host request that grows a mounted filesystem (handled by volplugin: MountManager.growFilesystem). */
const RESIZE_FS_REQUEST = HostRequestKind.ResizeFs;

/** The answers of a host that did not grow the filesystem and leaves it to the volume's next mount (src/plugin/mounts/manager.ts, mapper/grow.ts). */
const DEFERRING_CODES: ReadonlySet<string> = new Set(['NOT_MOUNTED', 'LOST', 'UNKNOWN_KIND', 'GROW_DEFERRED']);

/** What a resize did. */
export interface ResizeResult {
  tenant: string;
  volume: string;
  sizeBytes: number;
  previousBytes: number;
  /** grown: the holder grew its filesystem; not-mounted: it grows at the first mount; pending: at the next mount (see detail). */
  filesystem: 'grown' | 'not-mounted' | 'pending';
  host?: string;
  /** Why the filesystem is pending. */
  detail?: string;
  /** What the host reported (its device and filesystem sizes, the filesystem type). */
  hostResult?: Record<string, unknown>;
}

export interface ResizerParts {
  store: StateStore;
  /** Ceph for short calls (image info), bounded by the master's call timeout. */
  storage: Storage;
  /** Ceph for the resize itself, with a long bound. */
  longStorage: Storage;
  log: FastifyBaseLogger;
  lockTtlSeconds: number;
  lockWaitMs: number;
  /** How long to wait for the holder to grow its filesystem (default 60 s). */
  hostTimeoutMs?: number;
}

export class VolumeResizer {
  constructor(private readonly parts: ResizerParts) {}

  /** A size as the API takes it ("10GB", or a number of MB as driver options): 400 naming `size` otherwise. */
  static parseSize(text: string): number {
    return parseSize(text, { field: 'size', defaultUnit: 'MB' });
  }

  /** The checks that need no lock: the volume, the size, no shrink, the tenant's largest volume (422). */
  async check(tenant: string, volume: string, size: string): Promise<{ record: VolumeRecord; sizeBytes: number }> {
    assertVolumeRef(tenant, volume);
    const sizeBytes = VolumeResizer.parseSize(size);
    const record = await this.parts.store.getVolume(tenant, volume);
    if (!record) throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} does not exist; see volcli volume list ${tenant}`, { field: 'volume' });
    this.refuseShrink(record, sizeBytes);
    const limits = await this.parts.store.volumeLimits(record);
    if (limits.maxSizeBytes !== null && sizeBytes > limits.maxSizeBytes) {
      const max = formatSize(limits.maxSizeBytes);
      throw new ApiError('LIMIT_EXCEEDED', `size: ${formatSize(sizeBytes)} is larger than the tenant's largest volume, ${max} (limits.size); ask for at most ${max}`, {
        field: 'size',
      });
    }
    return { record, sizeBytes };
  }

  private refuseShrink(record: VolumeRecord, sizeBytes: number): void {
    const current = record.options.sizeBytes;
    if (sizeBytes >= current) return;
    throw new ApiError(
      'SHRINK_REFUSED',
      `size: ${formatSize(sizeBytes)} is smaller than ${record.tenant}/${record.volume}'s ${formatSize(current)}; volumes only grow (shrinking would cut off data): give at least ${formatSize(current)}`,
      { field: 'size' },
    );
  }

  /**
   * Grows the volume to `size` (see the steps above). The same size again finishes an earlier
   * resize (image and filesystem). `accept` is called once the record has the new size.
   */
  async resize(tenant: string, volume: string, size: string, by: string, accept: Accept): Promise<WorkResult<ResizeResult>> {
    const { sizeBytes } = await this.check(tenant, volume, size);
    const { store } = this.parts;
    return store.withOperationLock(tenant, volume, { reason: LockReason.Resize, ttlSeconds: this.parts.lockTtlSeconds, waitMs: this.parts.lockWaitMs }, async () => {
      const { record } = await this.check(tenant, volume, size); // again, under the lock
      const policy = (await store.getTenant(tenant))?.policy;
      const quota = policy ? quotaOf(limitsOf(policy)) : undefined;
      const intent: ResizeIntent = { tenant, volume, fromBytes: record.options.sizeBytes, toBytes: sizeBytes, owner: store.owner, since: new Date().toISOString() };
      const grown = await store.growVolume(intent, quota); // 409 QUOTA_EXCEEDED beyond limits.total-size
      if (!grown.ok) {
        if (grown.reason === 'shrink') this.refuseShrink(grown.current, sizeBytes);
        throw new ApiError('VOLUME_NOT_FOUND', `volume ${tenant}/${volume} was removed meanwhile`, { field: 'volume' });
      }
      const stored: ResizeIntent = { ...intent, fromBytes: grown.before.options.sizeBytes };
      const op = await accept({ kind: 'resize', tenant, volume, by, message: `growing image ${record.pool}/${record.image} to ${formatSize(sizeBytes)}` });
      await this.growImage(grown.after, op, stored);
      const result = await this.growFilesystem(grown.after, grown.before.options.sizeBytes, op);
      this.parts.log.info({ tenant, volume, from: grown.before.options.sizeBytes, to: sizeBytes, filesystem: result.filesystem, host: result.host }, 'volume resized');
      return { value: result, result: { ...result }, message: describe(result) };
    });
  }

  /** Grows the image to the record's size (never shrinks it); a permanent failure puts the record back. */
  private async growImage(record: VolumeRecord, op: Progress | null, intent: ResizeIntent | null): Promise<void> {
    const { pool, image, tenant, volume } = record;
    const target = record.options.sizeBytes;
    try {
      const info = await this.parts.storage.imageInfo(pool, image);
      if (info.size < target) {
        await this.parts.longStorage.resizeImage(pool, image, target, op ? { onProgress: op.listener('objects') } : {});
      }
    } catch (err) {
      const mapped = fromStorageError(err, `growing ${pool}/${image}`);
      const unavailable = mapped instanceof ApiError && mapped.code === 'STORAGE_UNAVAILABLE';
      if (intent && !unavailable) {
        // The image cannot have this size: the record must not claim it.
        const reverted = await this.parts.store.revertGrow(intent).catch(() => false);
        this.parts.log.warn({ tenant, volume, err, reverted }, 'growing the image failed; the record keeps its old size');
      } else {
        this.parts.log.warn({ tenant, volume, err }, 'growing the image failed; the janitor grows it when Ceph answers');
      }
      throw mapped;
    }
    await this.parts.store.finishResize(tenant, volume);
  }

  /** Asks the host holding the volume to grow its filesystem; what came of it. */
  private async growFilesystem(record: VolumeRecord, previousBytes: number, op: Progress | null): Promise<ResizeResult> {
    const { tenant, volume } = record;
    const base = { tenant, volume, sizeBytes: record.options.sizeBytes, previousBytes };
    const mount = await this.parts.store.getMount(tenant, volume);
    if (!mount) return { ...base, filesystem: 'not-mounted' };
    op?.step(`asking host ${mount.host} to grow the filesystem of ${tenant}/${volume}`);
    const asked = await this.askHolder(mount, record.options.sizeBytes, this.parts.hostTimeoutMs ?? 60_000);
    if (asked.ok) return { ...base, filesystem: 'grown', host: mount.host, hostResult: asked.result };
    if (asked.failed) {
      throw new ApiError(
        'FILESYSTEM_NOT_GROWN',
        `${tenant}/${volume} is ${formatSize(record.options.sizeBytes)} now (record and image), but host ${mount.host} could not grow its filesystem: ${asked.detail}; ` +
          'it grows when the volume is next mounted (stop its containers and start them again)',
      );
    }
    return { ...base, filesystem: 'pending', host: mount.host, detail: asked.detail };
  }

  /** ok: grown; failed: the host tried and could not; neither: it did not act (pending). */
  private async askHolder(mount: MountRecord, sizeBytes: number, timeoutMs: number): Promise<{ ok: true; result: Record<string, unknown> } | { ok: false; failed: boolean; detail: string }> {
    const { tenant, volume } = mount;
    try {
      const answer = await this.parts.store.askHost(mount.hostId, { kind: RESIZE_FS_REQUEST, tenant, volume, params: { sizeBytes } }, timeoutMs);
      if (answer.ok) return { ok: true, result: answer.result ?? {} };
      const detail = answer.error ?? answer.code ?? 'no reason given';
      // A host that does not have it mounted (taken over meanwhile, or lost), an older volplugin, or one
      // that cannot grow it while mounted (GROW_DEFERRED: ext without CAP_SYS_RESOURCE) did not act:
      // the next mount grows it.
      const acted = !DEFERRING_CODES.has(answer.code ?? '');
      return { ok: false, failed: acted, detail: acted ? detail : `host ${mount.host} did not grow it (${detail}); the next host to mount it does` };
    } catch (err) {
      if (err instanceof HostRequestTimeoutError) {
        return {
          ok: false,
          failed: false,
          detail: `host ${mount.host} did not answer within ${Math.round(timeoutMs / 1000)} s (down or cut off from etcd?): the next mount grows the filesystem, or run the same resize again once the host is back`,
        };
      }
      throw err;
    }
  }

  /**
   * The janitor's pass: finishes resizes whose master died between the record and the image (the
   * image grows to the record's size, the holder is asked, the intent goes); running ones are left
   * alone (their operation lock is held). How many it finished.
   */
  async reconcile(): Promise<number> {
    let finished = 0;
    for (const intent of await this.parts.store.listResizes()) {
      const { tenant, volume } = intent;
      try {
        await this.parts.store.withOperationLock(tenant, volume, { reason: 'resize clean-up', ttlSeconds: this.parts.lockTtlSeconds, waitMs: 0 }, async () => {
          const record = await this.parts.store.getVolume(tenant, volume);
          if (!record) return this.parts.store.finishResize(tenant, volume);
          await this.growImage(record, null, null);
          await this.growFilesystem(record, intent.fromBytes, null).catch((err: unknown) => this.parts.log.warn({ err, tenant, volume }, 'the holder did not grow the filesystem; it grows at the next mount'));
          this.parts.log.warn({ tenant, volume, sizeBytes: record.options.sizeBytes, owner: intent.owner }, 'finished a resize whose master stopped half-way');
          finished++;
        });
      } catch (err) {
        if (err instanceof StateBusyError) continue; // a resize is running
        this.parts.log.warn({ err, tenant, volume }, 'could not finish an unfinished resize; will retry');
      }
    }
    return finished;
  }
}

/** The operation's closing message. */
function describe(r: ResizeResult): string {
  const size = formatSize(r.sizeBytes);
  const name = `${r.tenant}/${r.volume}`;
  if (r.filesystem === 'grown') return `${name} is ${size}; its filesystem on host ${r.host} grew with it (df shows it now)`;
  if (r.filesystem === 'not-mounted') return `${name} is ${size}; it is not mounted: its filesystem grows when it is next mounted`;
  return `${name} is ${size}; its filesystem grows later: ${r.detail}`;
}
