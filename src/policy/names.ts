// Tenant and volume names, and the RBD image name of a tenant/volume pair.
//
// A name is 1 to 64 ASCII characters from [A-Za-z0-9_.-], starting with a letter or a digit; a
// tenant name may not contain "." at all, a volume name may not contain "..". That keeps names safe
// in etcd keys, URLs, shell commands and file names (rbd-fuse shows images as files), and makes the
// image name mapping below injective.
//
// Image name: `${tenant}.${volume}`. Because a tenant name has no ".", the first "." of an image
// name always ends the tenant: "a.b.c" can only be tenant "a", volume "b.c". Two different
// tenant/volume pairs therefore never share an image name in a pool (parseImageName inverts it).

import { PolicyError } from './errors.js';

export const NAME_MAX_LENGTH = 64;

export type NameKind = 'tenant' | 'volume';

const shellMeta = /[;&|<>$`\\"'*?![\]{}()~#^=%,:@+]/;

/** Returns why `name` is not a valid tenant or volume name, or null when it is. */
export function nameProblem(kind: NameKind, name: string): string | null {
  if (name.length === 0) return `${kind} name is empty`;
  if (name.length > NAME_MAX_LENGTH) return `${kind} name is ${name.length} characters long; the limit is ${NAME_MAX_LENGTH}`;
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(name)) return `${kind} name ${JSON.stringify(name)} contains a non-ASCII character`;
  if (/\s/.test(name)) return `${kind} name ${JSON.stringify(name)} contains whitespace`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return `${kind} name ${JSON.stringify(name)} contains a control character`;
  if (name.includes('/')) {
    return kind === 'tenant'
      ? `tenant name ${JSON.stringify(name)} contains "/"`
      : `volume name ${JSON.stringify(name)} contains "/"; write TENANT/VOLUME with exactly one "/"`;
  }
  if (name.includes('..')) return `${kind} name ${JSON.stringify(name)} contains ".."`;
  if (kind === 'tenant' && name.includes('.')) {
    return `tenant name ${JSON.stringify(name)} contains "."; tenant names may not (it separates tenant and volume in image names)`;
  }
  const meta = shellMeta.exec(name);
  if (meta) return `${kind} name ${JSON.stringify(name)} contains ${JSON.stringify(meta[0])}; use only letters, digits, "_", "-" and "."`;
  if (!/^[A-Za-z0-9]/.test(name)) return `${kind} name ${JSON.stringify(name)} must start with a letter or a digit`;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    return `${kind} name ${JSON.stringify(name)} may contain only letters, digits, "_", "-" and "."`;
  }
  return null;
}

export function isValidName(kind: NameKind, name: string): boolean {
  return nameProblem(kind, name) === null;
}

/** Throws a PolicyError (INVALID_NAME, field = kind) for a bad name. */
export function assertName(kind: NameKind, name: string): string {
  const problem = nameProblem(kind, name);
  if (problem) throw new PolicyError('INVALID_NAME', problem, kind);
  return name;
}

export interface VolumeRef {
  tenant: string;
  volume: string;
}

/** Parses "tenant/volume" (Docker's volume name for volplugin) and validates both halves. */
export function parseVolumeRef(text: string): VolumeRef {
  const slash = text.indexOf('/');
  if (slash < 0) {
    throw new PolicyError('INVALID_NAME', `${JSON.stringify(text)} is not TENANT/VOLUME; write it as e.g. tenant1/data`, 'volume');
  }
  return assertVolumeRef(text.slice(0, slash), text.slice(slash + 1));
}

/** Validates both halves of a tenant/volume pair (e.g. a route's parameters). */
export function assertVolumeRef(tenant: string, volume: string): VolumeRef {
  return { tenant: assertName('tenant', tenant), volume: assertName('volume', volume) };
}

export function formatVolumeRef(ref: VolumeRef): string {
  return `${ref.tenant}/${ref.volume}`;
}

/** The RBD image name of a tenant/volume pair (injective, see the top of this file). */
export function imageName(tenant: string, volume: string): string {
  return `${tenant}.${volume}`;
}

/** Inverts imageName; null for an image volplugin would not have named so. */
export function parseImageName(image: string): VolumeRef | null {
  const dot = image.indexOf('.');
  if (dot < 0) return null;
  const tenant = image.slice(0, dot);
  const volume = image.slice(dot + 1);
  if (!isValidName('tenant', tenant) || !isValidName('volume', volume)) return null;
  return { tenant, volume };
}

/** Ceph pool names as volplugin accepts them (a subset of what Ceph allows). */
export function poolProblem(pool: string): string | null {
  if (pool.length === 0) return 'pool name is empty';
  if (pool.length > 128) return `pool name is ${pool.length} characters long; the limit is 128`;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(pool)) {
    return `pool name ${JSON.stringify(pool)} may contain only letters, digits, "_", "-" and "." and must start with a letter or a digit`;
  }
  return null;
}
