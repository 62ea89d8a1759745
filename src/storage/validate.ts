// The argument checks checked.ts runs before any backend (each a TypeError or RangeError naming the
// field), and what the backends share about librbd's values: feature bits, the defaults they fill
// in (createSpec, cloneSpec), QoS as image metadata, the error of a call after close().

import { RbdError } from './errors.js';
import type { CloneImageOptions, CreateImageOptions, ImageFeature, ParentRef, QosLimits } from './types.js';

/** librbd's feature bits (rbd/features.h), by the names `rbd info` prints. */
export const FEATURE_BITS: Readonly<Record<ImageFeature, number>> = {
  layering: 1 << 0,
  striping: 1 << 1,
  'exclusive-lock': 1 << 2,
  'object-map': 1 << 3,
  'fast-diff': 1 << 4,
  'deep-flatten': 1 << 5,
  journaling: 1 << 6,
  'data-pool': 1 << 7,
};

/** Features a caller may ask for; `striping` and `data-pool` are set by librbd itself. */
export const CREATABLE_FEATURES: readonly ImageFeature[] = [
  'layering',
  'exclusive-lock',
  'object-map',
  'fast-diff',
  'deep-flatten',
  'journaling',
];

export const DEFAULT_FEATURES: readonly ImageFeature[] = ['layering', 'exclusive-lock'];
export const DEFAULT_ORDER = 22;
export const MIN_ORDER = 12;
export const MAX_ORDER = 25;

/** Feature names in bit order for a librbd feature mask; unknown bits are dropped. */
export function featureNames(mask: number): ImageFeature[] {
  return (Object.entries(FEATURE_BITS) as [ImageFeature, number][])
    .filter(([, bit]) => (mask & bit) !== 0)
    .map(([name]) => name);
}

export function featureMask(features: readonly ImageFeature[]): number {
  return features.reduce((mask, name) => mask | FEATURE_BITS[name], 0);
}

/** Sorts feature names into librbd's bit order (the order `rbd info` prints them in). */
export function sortFeatures(features: readonly string[]): ImageFeature[] {
  return featureNames(
    features.reduce((mask, name) => mask | (FEATURE_BITS[name as ImageFeature] ?? 0), 0),
  );
}

// Names travel as argv to `rbd` and as `pool/image@snap` in logs and krbd's sysfs string: no
// separators, no whitespace or control characters, not empty. librbd itself would take more.
// eslint-disable-next-line no-control-regex
const BAD_NAME = /[/@\s\u0000-\u001f\u007f]/;
const MAX_NAME = 255;

export function checkName(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`${field} must be a string, got ${describe(value)}`);
  if (value.length === 0) throw new TypeError(`${field} must not be empty`);
  if (value.length > MAX_NAME) throw new RangeError(`${field} must be at most ${MAX_NAME} characters, got ${value.length}`);
  if (BAD_NAME.test(value)) {
    throw new TypeError(`${field} must not contain '/', '@', whitespace or control characters: ${JSON.stringify(value)}`);
  }
  return value;
}

/** A free-form string (lock cookie, tag, metadata key/value): no NUL (C strings), keys not empty. */
export function checkText(field: string, value: unknown, options: { allowEmpty?: boolean } = {}): string {
  if (typeof value !== 'string') throw new TypeError(`${field} must be a string, got ${describe(value)}`);
  if (!options.allowEmpty && value.length === 0) throw new TypeError(`${field} must not be empty`);
  if (value.includes('\u0000')) throw new TypeError(`${field} must not contain NUL characters`);
  return value;
}

/** A byte count or limit: a safe non-negative integer (librbd takes uint64). */
export function checkSize(field: string, value: unknown, options: { min?: number } = {}): number {
  const min = options.min ?? 0;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`${field} must be a number, got ${describe(value)}`);
  }
  if (!Number.isSafeInteger(value)) throw new RangeError(`${field} must be a safe integer, got ${value}`);
  if (value < min) throw new RangeError(`${field} must be >= ${min}, got ${value}`);
  return value;
}

export function checkBoolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${field} must be a boolean, got ${describe(value)}`);
  return value;
}

/** What createImage makes: the options with librbd's defaults filled in and features in bit order. */
export interface ImageSpec {
  size: number;
  features: ImageFeature[];
  order: number;
  dataPool: string | null;
  /** Metadata to set on the new image, sorted by key ([] for none). */
  metadata: Array<[string, string]>;
}

/** What cloneSnapshot asks for; null is "as the parent has it" (features, order) or "none" (dataPool). */
export interface CloneSpec {
  features: ImageFeature[] | null;
  order: number | null;
  dataPool: string | null;
}

/** The spec of checked createImage options (backends call it: checked.ts has refused bad ones). */
export function createSpec(options: CreateImageOptions): ImageSpec {
  return {
    size: options.size,
    features: sortFeatures(options.features ?? DEFAULT_FEATURES),
    order: options.order ?? DEFAULT_ORDER,
    dataPool: options.dataPool ?? null,
    metadata: Object.entries(options.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  };
}

/** The spec of checked cloneSnapshot options. */
export function cloneSpec(options: CloneImageOptions | undefined): CloneSpec {
  return {
    features: options?.features === undefined ? null : sortFeatures(options.features),
    order: options?.order ?? null,
    dataPool: options?.dataPool ?? null,
  };
}

/** features, order and dataPool of create or clone options. */
function checkImageFields(options: CloneImageOptions): void {
  if (options.features !== undefined) {
    if (!Array.isArray(options.features)) {
      throw new TypeError(`options.features must be an array, got ${describe(options.features)}`);
    }
    for (const [i, name] of options.features.entries()) {
      if (!CREATABLE_FEATURES.includes(name)) {
        throw new TypeError(
          `options.features[${i}] must be one of ${CREATABLE_FEATURES.join(', ')}, got ${JSON.stringify(name)}`,
        );
      }
    }
  }
  if (options.order !== undefined) {
    const order = checkSize('options.order', options.order);
    if (order < MIN_ORDER || order > MAX_ORDER) {
      throw new RangeError(`options.order must be between ${MIN_ORDER} and ${MAX_ORDER}, got ${order}`);
    }
  }
  if (options.dataPool !== undefined) checkName('options.dataPool', options.dataPool);
}

export function checkCreateOptions(options: CreateImageOptions): ImageSpec {
  checkObject('options', options);
  checkSize('options.size', options.size, { min: 1 });
  checkImageFields(options);
  if (options.metadata !== undefined) {
    checkObject('options.metadata', options.metadata);
    for (const [key, value] of Object.entries(options.metadata)) {
      checkText('options.metadata key', key);
      checkText(`options.metadata.${key}`, value);
      // The addon writes these without librbd's check of conf_* values: admit only what it would.
      if (key.startsWith('conf_')) {
        if (!(Object.values(QOS_KEYS) as string[]).includes(key)) {
          throw new TypeError(`options.metadata.${key}: of the conf_ keys only the QoS limits (${Object.values(QOS_KEYS).join(', ')}) may be set at create; set others with setMetadata`);
        }
        if (!/^\d{1,19}$/.test(value)) throw new TypeError(`options.metadata.${key} must be an unsigned integer, got ${JSON.stringify(value)}`);
      }
    }
  }
  return createSpec(options);
}

export function checkCloneOptions(options: CloneImageOptions | undefined): CloneSpec {
  if (options !== undefined) {
    checkObject('options', options);
    if ('metadata' in options) throw new TypeError('options.metadata: a clone gets its parent\'s metadata; set keys with setMetadata after cloning');
    checkImageFields(options);
  }
  return cloneSpec(options);
}

export function checkParent(parent: ParentRef): ParentRef {
  checkObject('parent', parent);
  return {
    pool: checkName('parent.pool', parent.pool),
    image: checkName('parent.image', parent.image),
    snapshot: checkName('parent.snapshot', parent.snapshot),
  };
}

// A client address as Ceph prints it: [v1:|v2:|any:]IP:PORT/NONCE, IPv6 in brackets.
const ADDRESS = /^(?:(?:v1|v2|any):)?(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}\/\d+$/;

export function checkAddress(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`${field} must be a string, got ${describe(value)}`);
  if (!ADDRESS.test(value)) {
    throw new TypeError(`${field} must be a client address like 127.0.0.1:0/3141592653, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function checkLock(lock: { cookie: string; tag?: string; exclusive: boolean }): {
  cookie: string;
  tag: string;
  exclusive: boolean;
} {
  checkObject('lock', lock);
  const cookie = checkText('lock.cookie', lock.cookie);
  const exclusive = checkBoolean('lock.exclusive', lock.exclusive);
  const tag = lock.tag === undefined ? '' : checkText('lock.tag', lock.tag, { allowEmpty: true });
  if (exclusive && tag !== '') throw new TypeError('lock.tag is only for shared locks (exclusive: false)');
  if (!exclusive && tag === '') throw new TypeError('lock.tag must not be empty for a shared lock');
  return { cookie, tag, exclusive };
}

export const QOS_KEYS: Readonly<Record<keyof QosLimits, string>> = {
  iops: 'conf_rbd_qos_iops_limit',
  bps: 'conf_rbd_qos_bps_limit',
  readIops: 'conf_rbd_qos_read_iops_limit',
  writeIops: 'conf_rbd_qos_write_iops_limit',
  readBps: 'conf_rbd_qos_read_bps_limit',
  writeBps: 'conf_rbd_qos_write_bps_limit',
};

export function checkQos(limits: QosLimits): QosLimits {
  checkObject('limits', limits);
  const out: QosLimits = {};
  for (const [key, value] of Object.entries(limits)) {
    if (!(key in QOS_KEYS)) {
      throw new TypeError(`limits.${key} is not a QoS limit (known: ${Object.keys(QOS_KEYS).join(', ')})`);
    }
    if (value === undefined) continue;
    out[key as keyof QosLimits] = checkSize(`limits.${key}`, value);
  }
  return out;
}

/** QoS limits read back from image metadata; unparsable or zero values count as unlimited. */
export function qosFromMetadata(meta: Record<string, string>): QosLimits {
  const out: QosLimits = {};
  for (const [field, key] of Object.entries(QOS_KEYS) as [keyof QosLimits, string][]) {
    const raw = meta[key];
    if (raw === undefined) continue;
    const value = Number(raw);
    if (Number.isSafeInteger(value) && value > 0) out[field] = value;
  }
  return out;
}

/**
 * Applies QoS limits through metadata calls of any backend: a positive limit is set, 0 removes the
 * key (an absent key is fine), absent fields are left alone.
 */
/** The metadata that sets `limits` on an image that has none yet (a new one): the limits above 0. */
export function qosMetadata(limits: QosLimits): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(limits) as [keyof QosLimits, number | undefined][]) {
    if (value !== undefined && value > 0) out[QOS_KEYS[field]] = String(value);
  }
  return out;
}

export async function applyQos(
  ops: {
    setMetadata(pool: string, image: string, key: string, value: string): Promise<void>;
    removeMetadata(pool: string, image: string, key: string): Promise<void>;
  },
  pool: string,
  image: string,
  limits: QosLimits,
): Promise<void> {
  for (const [field, value] of Object.entries(limits) as [keyof QosLimits, number | undefined][]) {
    if (value === undefined) continue;
    const key = QOS_KEYS[field];
    if (value > 0) {
      await ops.setMetadata(pool, image, key, String(value));
    } else {
      try {
        await ops.removeMetadata(pool, image, key);
      } catch (err) {
        if (!(err instanceof RbdError && err.code === 'ENOENT' && err.op === 'rbd_metadata_remove')) throw err;
      }
    }
  }
}

/** The error a call after close() gets (checked.ts). */
export function closedError(op: string): RbdError {
  return new RbdError({ errno: -107 /* ENOTCONN */, op, detail: 'storage is closed' });
}

/** What a diff call gives when its signal was aborted: ECANCELED, as the addon's cancellation. */
export function cancelledError(op: string, target: { pool?: string; image?: string } = {}): RbdError {
  return new RbdError({ errno: -125 /* ECANCELED */, op, ...target, detail: 'cancelled' });
}

/** A file a diff is written to or read from: an absolute path (it goes to `rbd` as an argument), no NUL. */
export function checkPath(field: string, value: unknown): string {
  checkText(field, value);
  if (!(value as string).startsWith('/')) throw new TypeError(`${field} must be an absolute path, got ${JSON.stringify(value)}`);
  return value as string;
}

/** The options of exportDiff/applyDiff: an object (or absent) of onProgress, signal and wholeObject. */
export function checkDiffOptions(options: unknown, withWholeObject: boolean): void {
  if (options === undefined) return;
  checkObject('options', options);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!['onProgress', 'signal', ...(withWholeObject ? ['wholeObject'] : [])].includes(key)) throw new TypeError(`options.${key} is not an option of this call`);
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError(`options.onProgress must be a function, got ${describe(o.onProgress)}`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError(`options.signal must be an AbortSignal, got ${describe(o.signal)}`);
  if (o.wholeObject !== undefined) checkBoolean('options.wholeObject', o.wholeObject);
}

/** `options.onProgress`, when given, is a function. */
export function checkProgress(options: { onProgress?: unknown } | undefined): void {
  if (options === undefined) return;
  checkObject('options', options);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new TypeError(`options.onProgress must be a function (done, total) => void, got ${typeof options.onProgress}`);
  }
}

export function checkObject(field: string, value: unknown): void {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${field} must be an object, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return `number ${value}`;
  return typeof value;
}
