// What this host has mounted for Docker and who holds references, kept in <state-dir>/mounts.json
// so that a volplugin that is killed and restarted knows which Mount IDs are still outstanding.
// Written atomically (temporary file + rename) after every change, before Docker gets its answer.
// The file names the kernel boot it describes (boot.ts): after a reboot its mounts, mappings and
// references are gone and it is forgotten.
//
// Reference counting is Docker's contract: every Mount carries a fresh random ID, its Unmount the
// same ID. A volume stays mounted while at least one ID holds it.

import { readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { StateFileWriter } from '../../common/state-file.js';
import type { Mapping } from '../../mapper/types.js';
import type { RateLimit } from '../../policy/types.js';

export interface LocalVolume {
  tenant: string;
  volume: string;
  pool: string;
  image: string;
  mapping: Mapping;
  mountpoint: string;
  /** Docker Mount IDs holding the volume, oldest first. */
  refs: string[];
  since: string;
  /** The rate limits last applied (null before the first application). */
  appliedLimits: RateLimit | null;
  /**
   * Set (why, and when noticed) when this host lost the volume: another host took its lock, or its
   * lease was not renewed in time. Its I/O was stopped; it only waits for Unmounts and never takes
   * the lock again.
   */
  lost: string | null;
  /** Which acquisition of the mount lock this mount holds (null in tables from before it existed). */
  lockGeneration: number | null;
  /**
   * Set (when the grace ends, ISO time) while the volume has no references and is kept mapped,
   * mounted and locked for a next Mount on this host (the --unmount-grace period: idle.ts).
   */
  idleUntil: string | null;
}

export function volumeKey(tenant: string, volume: string): string {
  return `${tenant}/${volume}`;
}

/** tenant and volume of a volumeKey. */
export function splitVolumeKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

interface StateFile {
  version: 1;
  /** The kernel boot the table describes (absent in files from before it existed). */
  bootId?: string;
  volumes: LocalVolume[];
}

/** Adds a reference; false when `id` already held one (Docker repeating a request). */
export function addRef(entry: LocalVolume, id: string): boolean {
  if (entry.refs.includes(id)) return false;
  entry.refs.push(id);
  return true;
}

/** Drops a reference; false when `id` held none. */
export function dropRef(entry: LocalVolume, id: string): boolean {
  const at = entry.refs.indexOf(id);
  if (at < 0) return false;
  entry.refs.splice(at, 1);
  return true;
}

export class LocalState {
  private readonly volumes = new Map<string, LocalVolume>();
  private readonly writer: StateFileWriter;
  /** The boot the table describes; null when unknown (a new or old file). */
  bootId: string | null = null;

  constructor(readonly file: string) {
    this.writer = new StateFileWriter(file);
  }

  static inDir(stateDir: string): LocalState {
    return new LocalState(path.join(stateDir, 'mounts.json'));
  }

  /** Reads the file; a missing file is an empty table. A corrupt one is kept aside and reported. */
  async load(): Promise<{ corrupt: string | null }> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { corrupt: null };
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as StateFile;
      if (parsed.version !== 1 || !Array.isArray(parsed.volumes)) throw new Error('not a version 1 state file');
      this.volumes.clear();
      this.bootId = typeof parsed.bootId === 'string' ? parsed.bootId : null;
      for (const v of parsed.volumes) {
        this.volumes.set(volumeKey(v.tenant, v.volume), {
          ...v,
          refs: [...v.refs],
          lost: v.lost ?? null,
          appliedLimits: v.appliedLimits ?? null,
          lockGeneration: v.lockGeneration ?? null,
          idleUntil: v.idleUntil ?? null,
        });
      }
      return { corrupt: null };
    } catch (err) {
      const aside = `${this.file}.corrupt-${Date.now()}`;
      await rename(this.file, aside);
      return { corrupt: `${this.file} was unreadable (${(err as Error).message}); moved to ${aside}` };
    }
  }

  get(tenant: string, volume: string): LocalVolume | undefined {
    return this.volumes.get(volumeKey(tenant, volume));
  }

  all(): LocalVolume[] {
    return [...this.volumes.values()];
  }

  set(entry: LocalVolume): void {
    this.volumes.set(volumeKey(entry.tenant, entry.volume), entry);
  }

  delete(tenant: string, volume: string): void {
    this.volumes.delete(volumeKey(tenant, volume));
  }

  /** Empties the table (not yet saved); returns what it held. */
  forgetAll(): LocalVolume[] {
    const all = this.all();
    this.volumes.clear();
    return all;
  }

  /** Writes the table to disk (serialised: the last save wins, none interleave). */
  save(): Promise<void> {
    const snapshot: StateFile = { version: 1, ...(this.bootId ? { bootId: this.bootId } : {}), volumes: this.all() };
    return this.writer.write(snapshot);
  }
}
