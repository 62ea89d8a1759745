// The kernel RBD client (krbd): an image becomes /dev/rbdN by writing one line to
// /sys/bus/rbd/add_single_major, and goes away by writing its id to remove_single_major — what
// `rbd map`/`rbd unmap` do, without the rbd CLI (and without a modprobe: the rbd module must be
// loaded). The kernel answers the write only when the device exists (or with an errno).
//
// The line is `<mon addrs> <options> <pool> <image> <snap>` (Documentation/ABI/testing/
// sysfs-bus-rbd): monitors as comma-separated IP:PORT (msgr v1 unless ms_mode says otherwise),
// options comma-separated (name=ID, then secret=BASE64 or key=NAME of a key in the kernel keyring,
// then the rest), "-" for no snapshot. Each mapped device shows up as /sys/bus/rbd/devices/<id>/
// with pool, name, current_snap, pool_ns, major, minor and client_addr.
//
// No machine this repository is tested on can load the rbd module: the strings, the parsing of the
// sysfs tree and the mapper's bookkeeping are unit-tested against a fake tree; the kernel part is not.

import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { MappingNotes } from './notes.js';
import type { CephClientSettings, Mapper, Mapping, MapTarget } from './types.js';

/** Writes one sysfs file with a single write(2) (src/storage's writeSysfsFile in production). */
export type SysfsWriter = (file: string, data: string) => Promise<void>;

export const RBD_SYSFS = '/sys/bus/rbd';

/** The kernel client's messenger mode (kernel >= 5.11; default legacy = msgr v1). */
export type KrbdMsMode = 'legacy' | 'crc' | 'secure' | 'prefer-crc' | 'prefer-secure';

export interface KrbdMapSpec {
  /** Monitor addresses, "IP:PORT" or "[IPv6]:PORT" (Storage.clusterInfo().monAddresses). */
  monAddresses: string[];
  /** cephx id without "client.". */
  clientId: string;
  /** The cephx key (base64), passed as secret=; or `kernelKey` instead. */
  secret?: string;
  /** Description of a key already in the kernel keyring (key=), e.g. "client.admin". */
  kernelKey?: string;
  pool: string;
  /** RADOS namespace of the image (_pool_ns=). */
  namespace?: string;
  image: string;
  /** Map a snapshot (read-only); absent = the image itself. */
  snapshot?: string;
  readOnly?: boolean;
  /** Take the exclusive lock at map time and never hand it over. */
  exclusive?: boolean;
  /** A Ceph client of its own for this device (else the kernel shares one per cluster): needed to fence one mapping. */
  noshare?: boolean;
  queueDepth?: number;
  msMode?: KrbdMsMode;
}

const TOKEN = /^[^\s,=]+$/;
const NAME = /^[^\s/@]+$/;
const ADDRESS = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function need(ok: boolean, message: string): void {
  if (!ok) throw new TypeError(message);
}

/** The exact line for /sys/bus/rbd/add_single_major. Throws TypeError for anything the kernel would misparse. */
export function krbdAddString(spec: KrbdMapSpec): string {
  need(Array.isArray(spec.monAddresses) && spec.monAddresses.length > 0, 'monAddresses must list at least one monitor');
  for (const addr of spec.monAddresses) need(ADDRESS.test(addr), `monAddresses: ${JSON.stringify(addr)} is not IP:PORT`);
  need(TOKEN.test(spec.clientId), `clientId must be a non-empty word without spaces, commas or '=': ${JSON.stringify(spec.clientId)}`);
  need(NAME.test(spec.pool) && !spec.pool.includes(','), `pool: ${JSON.stringify(spec.pool)} is not a valid pool name`);
  need(NAME.test(spec.image), `image: ${JSON.stringify(spec.image)} is not a valid image name`);
  if (spec.snapshot !== undefined) need(NAME.test(spec.snapshot) && spec.snapshot !== '-', `snapshot: ${JSON.stringify(spec.snapshot)} is not a valid snapshot name`);
  if (spec.namespace !== undefined) need(TOKEN.test(spec.namespace), `namespace: ${JSON.stringify(spec.namespace)} is not valid`);
  need(!(spec.secret !== undefined && spec.kernelKey !== undefined), 'give either secret or kernelKey, not both');
  if (spec.secret !== undefined) need(BASE64.test(spec.secret), 'secret must be a base64 cephx key');
  if (spec.kernelKey !== undefined) need(TOKEN.test(spec.kernelKey), `kernelKey: ${JSON.stringify(spec.kernelKey)} is not valid`);
  if (spec.queueDepth !== undefined) {
    need(Number.isInteger(spec.queueDepth) && spec.queueDepth > 0, `queueDepth must be a positive integer, got ${spec.queueDepth}`);
  }

  const options = [`name=${spec.clientId}`];
  if (spec.secret !== undefined) options.push(`secret=${spec.secret}`);
  if (spec.kernelKey !== undefined) options.push(`key=${spec.kernelKey}`);
  if (spec.namespace !== undefined) options.push(`_pool_ns=${spec.namespace}`);
  if (spec.readOnly || spec.snapshot !== undefined) options.push('ro');
  if (spec.exclusive) options.push('exclusive');
  if (spec.noshare) options.push('noshare');
  if (spec.queueDepth !== undefined) options.push(`queue_depth=${spec.queueDepth}`);
  if (spec.msMode !== undefined) options.push(`ms_mode=${spec.msMode}`);
  return `${spec.monAddresses.join(',')} ${options.join(',')} ${spec.pool} ${spec.image} ${spec.snapshot ?? '-'}`;
}

/** The exact line for /sys/bus/rbd/remove_single_major: "<id>" or "<id> force" (fails I/O in flight). */
export function krbdRemoveString(id: string | number, options: { force?: boolean } = {}): string {
  const text = String(id);
  need(/^\d+$/.test(text), `device id must be a non-negative integer, got ${JSON.stringify(text)}`);
  return options.force ? `${text} force` : text;
}

/** The cephx key of `entity` (e.g. "client.admin") in a keyring file's text. */
export function keyringSecret(text: string, entity: string): string | null {
  let section: string | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!.trim();
      continue;
    }
    const kv = /^key\s*=\s*(\S+)\s*$/.exec(line);
    if (kv && section === entity) return kv[1]!;
  }
  return null;
}

/** The `keyring` setting of a ceph.conf ([client.ID], [client] or [global]), with $cluster/$name expanded. */
export function keyringFromConf(text: string, clientId: string): string | null {
  const wanted = [`client.${clientId}`, 'client', 'global'];
  const found = new Map<string, string>();
  let section = 'global';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!.trim();
      continue;
    }
    const kv = /^keyring\s*=\s*(.+)$/.exec(line);
    if (kv && !found.has(section)) found.set(section, kv[1]!.trim());
  }
  for (const s of wanted) {
    const value = found.get(s);
    if (value) return value.replace(/\$cluster/g, 'ceph').replace(/\$name/g, `client.${clientId}`);
  }
  return null;
}

/** One mapped device as /sys/bus/rbd/devices/<id>/ describes it. */
export interface KrbdDevice {
  id: string;
  pool: string;
  namespace: string;
  image: string;
  /** "-" for the image itself. */
  snapshot: string;
  major: number | null;
  minor: number | null;
  /** The kernel client's address (what fencing blocklists), when the kernel shows it. */
  clientAddress: string | null;
  device: string;
}

async function attr(dir: string, name: string): Promise<string | null> {
  try {
    return (await readFile(path.join(dir, name), 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Every rbd device the kernel has mapped (from <root>/devices). */
export async function listKrbdDevices(root = RBD_SYSFS): Promise<KrbdDevice[]> {
  const base = path.join(root, 'devices');
  const ids = (await readdir(base).catch(() => [] as string[])).filter((id) => /^\d+$/.test(id));
  const out: KrbdDevice[] = [];
  for (const id of ids.sort((a, b) => Number(a) - Number(b))) {
    const dir = path.join(base, id);
    const [pool, namespace, image, snapshot, major, minor, clientAddress] = await Promise.all([
      attr(dir, 'pool'),
      attr(dir, 'pool_ns'),
      attr(dir, 'name'),
      attr(dir, 'current_snap'),
      attr(dir, 'major'),
      attr(dir, 'minor'),
      attr(dir, 'client_addr'),
    ]);
    if (pool === null || image === null) continue; // going away while we looked
    out.push({
      id,
      pool,
      namespace: namespace ?? '',
      image,
      snapshot: snapshot ?? '-',
      major: major === null ? null : Number(major),
      minor: minor === null ? null : Number(minor),
      clientAddress: clientAddress || null,
      device: `/dev/rbd${id}`,
    });
  }
  return out;
}

/** The devices mapping pool/image[@snapshot] (several when it is mapped more than once). */
export async function findKrbdDevices(
  target: { pool: string; image: string; snapshot?: string; namespace?: string },
  root = RBD_SYSFS,
): Promise<KrbdDevice[]> {
  const snap = target.snapshot ?? '-';
  return (await listKrbdDevices(root)).filter(
    (d) => d.pool === target.pool && d.image === target.image && d.snapshot === snap && d.namespace === (target.namespace ?? ''),
  );
}

export interface KrbdMapperOptions {
  /** <state-dir>/krbd: notes of this volplugin's mappings. */
  root: string;
  ceph: CephClientSettings;
  /** The monitors (Storage.clusterInfo). */
  cluster: { clusterInfo(): Promise<{ monAddresses: string[] }> };
  /** Single-write sysfs writer (src/storage writeSysfsFile). */
  write: SysfsWriter;
  /** Default /sys/bus/rbd; tests point it at a fake tree. */
  sysfs?: string;
  /** The cephx key; else read from the keyring (settings, ceph.conf, /etc/ceph defaults). */
  secret?: string;
  /** Extra map options for every device. */
  map?: Pick<KrbdMapSpec, 'exclusive' | 'queueDepth' | 'msMode'>;
}

export class KrbdMapper implements Mapper {
  readonly kind = 'krbd' as const;
  private readonly notes: MappingNotes;
  private readonly sysfs: string;

  constructor(private readonly options: KrbdMapperOptions) {
    this.notes = new MappingNotes(path.resolve(options.root));
    this.sysfs = options.sysfs ?? RBD_SYSFS;
  }

  /** The cephx key for secret=: given, or from the keyring file. */
  async secret(): Promise<string> {
    if (this.options.secret) return this.options.secret;
    const id = this.options.ceph.clientId ?? 'admin';
    const candidates: string[] = [];
    if (this.options.ceph.keyring) candidates.push(this.options.ceph.keyring);
    const confPath = this.options.ceph.confPath ?? process.env.CEPH_CONF ?? '/etc/ceph/ceph.conf';
    const conf = await readFile(confPath, 'utf8').catch(() => null);
    const fromConf = conf === null ? null : keyringFromConf(conf, id);
    if (fromConf) candidates.push(...fromConf.split(',').map((p) => p.trim()));
    candidates.push(`/etc/ceph/ceph.client.${id}.keyring`, '/etc/ceph/ceph.keyring', '/etc/ceph/keyring');
    for (const file of candidates) {
      const text = await readFile(file, 'utf8').catch(() => null);
      const key = text === null ? null : keyringSecret(text, `client.${id}`);
      if (key) return key;
    }
    throw new Error(`no key for client.${id} in ${candidates.join(', ')}: give the keyring (--ceph-keyring) or the secret`);
  }

  async map(target: MapTarget): Promise<Mapping> {
    const { monAddresses } = await this.options.cluster.clusterInfo();
    const line = krbdAddString({
      monAddresses,
      clientId: this.options.ceph.clientId ?? 'admin',
      secret: await this.secret(),
      pool: target.pool,
      image: target.image,
      noshare: true, // one Ceph client per device: fencing one mapping must not fence the others
      ...this.options.map,
    });
    const before = new Set((await listKrbdDevices(this.sysfs)).map((d) => d.id));
    await this.options.write(path.join(this.sysfs, 'add_single_major'), line);
    const added = (await findKrbdDevices(target, this.sysfs)).filter((d) => !before.has(d.id));
    const device = added.at(-1);
    if (!device) throw new Error(`the kernel mapped ${target.pool}/${target.image} but no new device shows it under ${this.sysfs}/devices`);
    const mapping: Mapping = { ...target, kind: 'krbd', device: device.device, clientAddress: device.clientAddress, krbdId: device.id };
    try {
      // The kernel client's address (client_addr, Linux 5.3 and later with noshare): what fencing
      // blocklists. Without it no other host could fence this device.
      if (!device.clientAddress) {
        throw new Error(
          `krbd: the kernel shows no client_addr for ${device.device} (${this.sysfs}/devices/${device.id}; Linux before 5.3?), ` +
            'so no other host could fence it: unmapped it. Use a newer kernel or --mapper nbd|fuse',
        );
      }
      await this.notes.write(mapping);
    } catch (err) {
      await this.options.write(path.join(this.sysfs, 'remove_single_major'), krbdRemoveString(device.id)).catch(() => undefined);
      throw err;
    }
    return mapping;
  }

  async unmap(mapping: Mapping): Promise<void> {
    const live = await this.live(mapping);
    if (live) await this.options.write(path.join(this.sysfs, 'remove_single_major'), krbdRemoveString(live.id));
    await this.notes.remove(mapping.tenant, mapping.volume);
  }

  /**
   * Cuts the device off at once: a forced remove (`<id> force`) fails every request in flight and
   * every later one, without the cluster. The filesystem on it then only gets I/O errors until it
   * is unmounted; unmap() afterwards finds the device gone and only drops the note.
   */
  async stopIo(mapping: Mapping): Promise<void> {
    const live = await this.live(mapping);
    if (live) await this.options.write(path.join(this.sysfs, 'remove_single_major'), krbdRemoveString(live.id, { force: true }));
  }

  async isMapped(mapping: Mapping): Promise<boolean> {
    const live = await this.live(mapping);
    return live !== null && live.device === mapping.device;
  }

  /** The kernel follows the header by itself; writing the device's `refresh` makes it re-read it now. */
  async refreshSize(mapping: Mapping): Promise<void> {
    const live = await this.live(mapping);
    if (live) await this.options.write(path.join(this.sysfs, 'devices', live.id, 'refresh'), '1');
  }

  async discover(): Promise<Mapping[]> {
    const out: Mapping[] = [];
    for (const note of await this.notes.all()) {
      const live = await this.live(note);
      out.push({ ...note, kind: 'krbd', device: live ? live.device : null, clientAddress: live?.clientAddress ?? note.clientAddress });
    }
    return out;
  }

  /** The device a note names, if the kernel still maps that image there. */
  private async live(mapping: Mapping): Promise<KrbdDevice | null> {
    if (!mapping.krbdId) return null;
    const devices = await findKrbdDevices(mapping, this.sysfs);
    return devices.find((d) => d.id === mapping.krbdId) ?? null;
  }
}
