// Plays scenarios: for each, a fresh world (hosts, master, tenant) on the run's services, its
// rounds in parallel loops until its count is reached, every round under a deadline (a round that
// hangs is reported, the world's daemons are killed and the scenario ends), then the end-of-scenario
// checks. Violations carry the seed, the scenario, the round and their evidence.

import path from 'node:path';
import { INVARIANTS, violation, type Violation } from './invariants/types.js';
import { Rng } from './rng.js';
import type { ChaosSettings, Round, Scenario } from './scenario.js';
import type { ChaosServices } from './env.js';
import { DeadlineError, withDeadline } from './wait.js';
import { World } from './world.js';

export interface Found extends Violation {
  seed: number;
  scenario: string;
  /** null: found at the end of the scenario (orphans) or in its setup. */
  round: number | null;
}

export interface ScenarioResult {
  name: string;
  fault: string;
  /** Units played (rounds, or takeovers). */
  rounds: number;
  faults: number;
  violations: Found[];
  /** Rounds that could not be played (a step that must work failed): not a verdict, but not a pass. */
  errors: Array<{ round: number | null; message: string }>;
  seconds: number;
  notes: string[];
}

export interface RunOptions {
  seed: number;
  /** Count per scenario = max(1, round(count × scale)). */
  scale: number;
  services: ChaosServices;
  /** Where the scenarios' directories go. */
  runDir: string;
  settings: ChaosSettings;
  /** Units to play per scenario (default: targetCount with `scale`). */
  countOf?: (scenario: Scenario) => number;
  /** One line per event worth seeing while it runs (stderr in `make chaos`). */
  progress?: (line: string) => void;
}

export function targetCount(scenario: Scenario, scale: number): number {
  return Math.max(1, Math.round(scenario.count * scale));
}

export async function runScenario(scenario: Scenario, options: RunOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const target = options.countOf?.(scenario) ?? targetCount(scenario, options.scale);
  const rng = new Rng(options.seed, scenario.name);
  const result: ScenarioResult = { name: scenario.name, fault: scenario.fault, rounds: 0, faults: 0, violations: [], errors: [], seconds: 0, notes: [] };
  const notes = new Map<string, number>();
  const say = options.progress ?? (() => undefined);
  const found = (round: number | null, v: Violation) => {
    result.violations.push({ ...v, seed: options.seed, scenario: scenario.name, round });
    say(`${scenario.name} round ${round ?? '-'}: VIOLATION ${v.invariant}: ${v.message}`);
  };

  const world = new World({
    scenario: scenario.name,
    runDir: options.runDir,
    services: options.services,
    hosts: scenario.hosts,
    lockTtl: options.settings.lockTtl,
    masterEnv: scenario.masterEnv,
    hostArgs: scenario.hostArgs,
  });
  try {
    await world.open();
    await scenario.setup?.(world, options.settings);
    say(`${scenario.name}: world up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (err) {
    result.errors.push({ round: null, message: `setup: ${(err as Error).message}` });
    await world.shutdown().catch(() => undefined);
    result.seconds = (Date.now() - started) / 1000;
    return result;
  }

  let next = 0;
  let aborted = false;
  let reported = 0;
  const step = Math.max(1, Math.ceil(target / 10));
  const lane = async (laneIndex: number) => {
    while (!aborted && result.rounds < target && next < target) {
      const index = next++;
      let counted: number | null = null;
      const undo: Array<() => Promise<unknown>> = [];
      const round: Round = {
        world,
        index,
        lane: laneIndex,
        rng: rng.derive(index),
        settings: options.settings,
        check: async (invariant, checker) => {
          if (!scenario.invariants.includes(invariant)) return;
          for (const v of await checker()) found(index, v);
        },
        fault: (n = 1) => void (result.faults += n),
        units: (n) => void (counted = (counted ?? 0) + n),
        note: (text) => void notes.set(text, (notes.get(text) ?? 0) + 1),
        cleanup: (fn) => void undo.push(fn),
      };
      try {
        await withDeadline(scenario.round(round), scenario.roundTimeoutMs, `${scenario.name} round ${index}`);
      } catch (err) {
        if (err instanceof DeadlineError) {
          found(index, violation('bounded', `round did not finish within ${scenario.roundTimeoutMs} ms: the scenario is stopped and its daemons killed`, {
            logs: Object.fromEntries(await Promise.all(world.hosts.map(async (h) => [h.label, await h.logTail(800)] as const))),
          }));
          aborted = true;
          return;
        }
        result.errors.push({ round: index, message: (err as Error).message });
        say(`${scenario.name} round ${index}: ERROR ${(err as Error).message}`);
      }
      for (const fn of undo.reverse()) await withDeadline(fn(), 150_000, 'round clean-up').catch(() => undefined);
      result.rounds += counted ?? 1;
      if (result.rounds >= reported + step || (result.rounds >= target && reported < target)) {
        reported = result.rounds;
        say(`${scenario.name}: ${Math.min(result.rounds, target)}/${target} (${result.violations.length} violations, ${Math.round((Date.now() - started) / 1000)} s)`);
      }
    }
  };
  await Promise.all(Array.from({ length: scenario.lanes }, (_, i) => lane(i)));

  say(`${scenario.name}: rounds done at ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (aborted) {
    await world.shutdown();
  } else {
    try {
      const end = await withDeadline(world.close(scenario.orphanWaitMs ?? 30_000), 600_000, `${scenario.name}: the end of the scenario`);
      for (const v of end) if (scenario.invariants.includes(v.invariant)) found(null, v);
    } catch (err) {
      result.errors.push({ round: null, message: `end of scenario: ${(err as Error).message}` });
      await world.shutdown().catch(() => undefined);
    }
  }
  say(`${scenario.name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  result.notes = [...notes].map(([text, n]) => (n > 1 ? `${text} (×${n})` : text));
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

export async function runScenarios(scenarios: readonly Scenario[], options: RunOptions): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    options.progress?.(`${scenario.name}: ${options.countOf?.(scenario) ?? targetCount(scenario, options.scale)} × ${scenario.fault}`);
    results.push(await runScenario(scenario, { ...options, runDir: path.resolve(options.runDir) }));
  }
  return results;
}

export { INVARIANTS };
