// What a scenario is (data: name, fault, count, invariants, and the round it plays) and what a
// round gets to play with. The runner (runner.ts) plays the rounds; scenarios/ holds the table.

import type { InvariantName, Violation } from './invariants/types.js';
import type { Rng } from './rng.js';
import type { World } from './world.js';

/** What every scenario that moves a volume between holders checks (its data, its holders, what is left). */
export const HOLDER_INVARIANTS: InvariantName[] = ['single-writer', 'durability', 'not-stuck', 'no-orphans', 'acked-creates', 'bounded'];

export interface ChaosSettings {
  /** --lock-ttl of every host, seconds. */
  lockTtl: number;
  /** What a takeover may take beyond the TTL: fencing, mapping, mounting, under load (ms). */
  takeoverSlackMs: number;
}

export interface Round {
  world: World;
  /** The round's number within its scenario (0-based). */
  index: number;
  /** Which of the scenario's parallel loops plays it (each loop has its own volume). */
  lane: number;
  rng: Rng;
  settings: ChaosSettings;
  /** Runs a checker if the scenario lists its invariant, and records what it found. */
  check(invariant: InvariantName, checker: () => Promise<Violation[]> | Violation[]): Promise<void>;
  /** Counts faults injected. */
  fault(n?: number): void;
  /** Counts what the scenario's count is about (races, takeovers...); default one per round. */
  units(n: number): void;
  /**
   * Registers what must be undone when the round ends, however it ends (stop a writer, unmount a
   * reference Docker still holds), so that a failed round does not spoil the next: run last first.
   */
  cleanup(undo: () => Promise<unknown>): void;
  /** A note for the table (e.g. "3 of 5 mounts refused as expected"). */
  note(text: string): void;
}

export interface Scenario {
  name: string;
  /** The fault, as the table shows it. */
  fault: string;
  /** Units (rounds, or takeovers where a round takes several over) at scale 1. */
  count: number;
  /** Units in the short run inside `make test` (default 1). */
  shortCount?: number;
  /** The invariants checked after each round (a checker of another invariant is skipped). */
  invariants: InvariantName[];
  hosts: number;
  /** Round loops played in parallel, each on its own volume(s). */
  lanes: number;
  /** A round that takes longer is killed and reported (bounded). */
  roundTimeoutMs: number;
  /** How long the end-of-scenario orphan check waits for asynchronous clean-up. */
  orphanWaitMs?: number;
  masterEnv?: Record<string, string>;
  /** Extra volplugin flags of every host of the scenario (e.g. --unmount-grace). */
  hostArgs?: string[];
  /** Run once before the rounds (e.g. create each lane's volume). */
  setup?(world: World, settings: ChaosSettings): Promise<void>;
  round(r: Round): Promise<void>;
}
