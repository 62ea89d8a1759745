// The rbd-nbd mapper: `rbd-nbd map POOL/IMAGE` attaches the image to a free /dev/nbdN through a
// userspace librbd client (one rbd-nbd process per mapping, so each volume has its own Ceph client
// address for fencing). Needs the nbd kernel module; it is loaded on real hosts, missing here, so
// this mapper is not exercised by this repository's tests.

import { access } from 'node:fs/promises';
import path from 'node:path';
import { run } from './exec.js';
import { MappingNotes } from './notes.js';
import type { CephClientSettings, Mapper, Mapping, MapTarget, WatcherSource } from './types.js';
import { MapperUnavailableError, cephToolArgs, findNewClient, noClientError } from './types.js';

export interface NbdMapperOptions {
  /** <state-dir>/nbd: notes of this volplugin's mappings. */
  root: string;
  ceph: CephClientSettings;
  watchers: WatcherSource;
  timeoutMs?: number;
  /** Runs rbd-nbd (default exec.ts run; unit tests give a fake). */
  run?: typeof run;
  /** Sends a signal to a process (default process.kill). */
  kill?: (pid: number, signal: NodeJS.Signals) => void;
  /** How long to look for the new client's watcher (findNewClient). */
  clientSearch?: { attempts?: number; everyMs?: number };
}

interface NbdListed {
  pid?: number;
  pool?: string;
  namespace?: string;
  image?: string;
  snap?: string;
  device?: string;
}

export interface NbdMapped {
  pid: number | null;
  pool: string;
  image: string;
  device: string;
  snap: string;
}

/** Parses `rbd-nbd list-mapped --format json`. */
export function parseNbdList(text: string): NbdMapped[] {
  if (!text.trim()) return [];
  const parsed = JSON.parse(text) as NbdListed[];
  return parsed
    .filter((e) => typeof e.device === 'string' && typeof e.image === 'string')
    .map((e) => ({ pid: typeof e.pid === 'number' ? e.pid : null, pool: e.pool ?? 'rbd', image: e.image!, device: e.device!, snap: e.snap ?? '-' }));
}

export async function checkNbdAvailable(): Promise<void> {
  try {
    await access('/dev/nbd0');
  } catch {
    throw new MapperUnavailableError('nbd', 'no /dev/nbd0: load the nbd kernel module (modprobe nbd) or use --mapper fuse');
  }
  try {
    await run('rbd-nbd', ['--version'], { timeoutMs: 10_000 });
  } catch (err) {
    throw new MapperUnavailableError('nbd', `rbd-nbd does not run here (${(err as Error).message}): install the rbd-nbd package`);
  }
}

export class NbdMapper implements Mapper {
  readonly kind = 'nbd' as const;
  private readonly notes: MappingNotes;
  private readonly run: typeof run;

  constructor(private readonly options: NbdMapperOptions) {
    this.notes = new MappingNotes(path.resolve(options.root));
    this.run = options.run ?? run;
  }

  async map(target: MapTarget): Promise<Mapping> {
    const before = await this.options.watchers.listWatchers(target.pool, target.image);
    const { stdout } = await this.run('rbd-nbd', [...cephToolArgs(this.options.ceph), 'map', `${target.pool}/${target.image}`], {
      timeoutMs: this.options.timeoutMs ?? 60_000,
    });
    const device = stdout.trim().split('\n').pop() ?? '';
    const mapping: Mapping = { ...target, kind: 'nbd', device, clientAddress: null };
    try {
      if (!/^\/dev\/nbd\d+$/.test(device)) throw new Error(`rbd-nbd map printed ${JSON.stringify(device)}, not /dev/nbdN`);
      // rbd-nbd's own client is the watcher that appeared: what fencing blocklists.
      const client = await findNewClient(this.options.watchers, target, before, this.options.clientSearch);
      if (!client.address) throw noClientError('nbd', target, client.candidates);
      mapping.clientAddress = client.address;
      await this.notes.write(mapping);
      return mapping;
    } catch (err) {
      if (/^\/dev\/nbd\d+$/.test(device)) await this.run('rbd-nbd', ['unmap', device], { timeoutMs: 30_000 }).catch(() => undefined);
      throw err;
    }
  }

  async unmap(mapping: Mapping): Promise<void> {
    if (await this.isMapped(mapping)) {
      await this.run('rbd-nbd', ['unmap', mapping.device!], { timeoutMs: 30_000 });
    }
    await this.notes.remove(mapping.tenant, mapping.volume);
  }

  /** The rbd-nbd mapping of this image on the mapping's device, if there still is one. */
  private async live(mapping: Mapping): Promise<NbdMapped | null> {
    if (!mapping.device) return null;
    return (await this.listMapped()).find((m) => m.device === mapping.device && m.pool === mapping.pool && m.image === mapping.image) ?? null;
  }

  async isMapped(mapping: Mapping): Promise<boolean> {
    return (await this.live(mapping)) !== null;
  }

  /** rbd-nbd watches the image's header and resizes the nbd device by itself: nothing to ask. */
  async refreshSize(): Promise<void> {}

  /**
   * Kills the mapping's rbd-nbd process: the nbd device then fails every request at once, without
   * the cluster. unmap() afterwards finds it gone and only drops the note.
   */
  async stopIo(mapping: Mapping): Promise<void> {
    const live = await this.live(mapping);
    if (!live?.pid) return;
    try {
      (this.options.kill ?? process.kill)(live.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }

  private async listMapped(): Promise<NbdMapped[]> {
    const { stdout } = await this.run('rbd-nbd', ['list-mapped', '--format', 'json'], { timeoutMs: 10_000 });
    return parseNbdList(stdout);
  }

  async discover(): Promise<Mapping[]> {
    const mapped = await this.listMapped();
    const out: Mapping[] = [];
    for (const note of await this.notes.all()) {
      const live = mapped.find((m) => m.device === note.device && m.pool === note.pool && m.image === note.image);
      out.push({ ...note, kind: 'nbd', device: live ? note.device : null });
    }
    return out;
  }
}
