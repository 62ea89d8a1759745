// What the CSI node service has staged and published on this host, in <state-dir>/csi.json: the
// staging path and target paths of each volume and the capability they were made with, so that a
// repeated NodeStage/NodePublish can be told from an incompatible one (OK vs ALREADY_EXISTS) and
// a second target from a first. The host agent's own table (mounts.json) holds the volume's
// mount and its reference (one per staging path); this file holds only CSI's bind mounts on top,
// and the RPCs check the host's mounts before trusting it. Written atomically after each change;
// forgotten after a reboot (the bind mounts it describes are gone then).

import { readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { StateFileWriter } from '../common/state-file.js';

export interface StageEntry {
  volumeId: string;
  stagingPath: string;
  mode: string;
  fsType: string;
  since: string;
}

export interface PublishEntry {
  volumeId: string;
  targetPath: string;
  stagingPath: string;
  mode: string;
  readonly: boolean;
  flags: string[];
  since: string;
}

interface StateFile {
  version: 1;
  bootId: string;
  stages: StageEntry[];
  publishes: PublishEntry[];
}

export class NodeState {
  private stages = new Map<string, StageEntry>();
  private publishes = new Map<string, PublishEntry>();

  private readonly writer: StateFileWriter;

  private constructor(
    readonly file: string,
    private readonly bootId: string,
  ) {
    this.writer = new StateFileWriter(file);
  }

  /** The table of `stateDir`, empty when there is none, it is unreadable (moved aside) or describes another boot. */
  static async load(stateDir: string, bootId: string): Promise<{ state: NodeState; problem: string | null }> {
    const state = new NodeState(path.join(stateDir, 'csi.json'), bootId);
    let text: string;
    try {
      text = await readFile(state.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state, problem: null };
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as StateFile;
      if (parsed.version !== 1 || !Array.isArray(parsed.stages) || !Array.isArray(parsed.publishes)) throw new Error('not a version 1 file');
      if (parsed.bootId !== bootId) return { state, problem: `${state.file} describes another boot (${parsed.bootId}): its bind mounts are gone; forgot it` };
      for (const s of parsed.stages) state.stages.set(s.volumeId, s);
      for (const p of parsed.publishes) state.publishes.set(p.targetPath, p);
      return { state, problem: null };
    } catch (err) {
      const aside = `${state.file}.corrupt-${Date.now()}`;
      await rename(state.file, aside);
      return { state, problem: `${state.file} was unreadable (${(err as Error).message}); moved to ${aside}` };
    }
  }

  stage(volumeId: string): StageEntry | undefined {
    return this.stages.get(volumeId);
  }

  setStage(entry: StageEntry): void {
    this.stages.set(entry.volumeId, entry);
  }

  deleteStage(volumeId: string): void {
    this.stages.delete(volumeId);
  }

  publish(targetPath: string): PublishEntry | undefined {
    return this.publishes.get(targetPath);
  }

  /** The targets a volume is published at. */
  publishesOf(volumeId: string): PublishEntry[] {
    return [...this.publishes.values()].filter((p) => p.volumeId === volumeId);
  }

  setPublish(entry: PublishEntry): void {
    this.publishes.set(entry.targetPath, entry);
  }

  deletePublish(targetPath: string): void {
    this.publishes.delete(targetPath);
  }

  /** Writes the table (serialised: the last save wins, none interleave). */
  save(): Promise<void> {
    const snapshot: StateFile = { version: 1, bootId: this.bootId, stages: [...this.stages.values()], publishes: [...this.publishes.values()] };
    return this.writer.write(snapshot);
  }
}
