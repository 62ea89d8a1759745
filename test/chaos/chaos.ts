// A whole chaos run, as `make chaos` and the short run inside `make test` start it: its own
// services (env.ts), the chosen scenarios one after another, the results. Leftovers of an earlier
// run in the same directory (a runner that was killed) are cleaned first: only below that
// directory, never anything else on the machine.

import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ChaosServices, chaosPorts, chaosRoot } from './env.js';
import { cleanupBelow, killAll, processesBelow } from './proc.js';
import { runScenarios, type ScenarioResult } from './runner.js';
import type { ChaosSettings, Scenario } from './scenario.js';

export interface ChaosOptions {
  seed: number;
  scale: number;
  scenarios: readonly Scenario[];
  /** 'run': make chaos (.sandbox-chaos[-N]); 'test': inside make test (.sandbox-test[-N]/chaos). */
  slot: 'run' | 'test';
  /** VOLPLUGIN_TEST_PORT_OFFSET. */
  offset: number;
  /** Leave Ceph and etcd running afterwards. */
  keep?: boolean;
  settings?: Partial<ChaosSettings>;
  progress?: (line: string) => void;
}

export const DEFAULT_SETTINGS: ChaosSettings = { lockTtl: 3, takeoverSlackMs: 20_000 };

/** Runs whose directories (daemon logs) are kept for a look; older ones are removed. */
const KEEP_RUNS = 3;

/** Stops what earlier runs below `runs` left (processes, mounts, loop devices); keeps the newest logs. */
async function clearEarlierRuns(runs: string): Promise<void> {
  for (const name of ['volplugin', 'volmaster', 'journal-io']) killAll(await processesBelow(name, runs));
  await cleanupBelow(runs);
  // Directory names start with the run's UTC time: sorted, the newest are last.
  const entries = (await readdir(runs).catch(() => [] as string[])).sort();
  for (const entry of entries.slice(0, Math.max(0, entries.length - (KEEP_RUNS - 1)))) {
    await rm(path.join(runs, entry), { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * For a runner that is interrupted (Ctrl-C): stops every daemon and mount of the runs below the
 * chaos directory, then its Ceph and etcd. Bounded: each step has its own deadline.
 */
export async function emergencyStop(offset: number, slot: 'run' | 'test'): Promise<void> {
  const root = chaosRoot(offset, slot);
  const runs = path.join(root, 'runs');
  for (const name of ['volplugin', 'volmaster', 'journal-io']) killAll(await processesBelow(name, runs));
  await cleanupBelow(runs, 60_000);
  await new ChaosServices(root, chaosPorts(offset, slot)).down().catch(() => undefined);
}

/** The run's services and directory, open for scenarios to be played on (the vitest file plays one per test). */
export class ChaosSession {
  readonly started = Date.now();

  private constructor(
    readonly options: Omit<ChaosOptions, 'scenarios'>,
    readonly services: ChaosServices,
    readonly runDir: string,
  ) {}

  static async open(options: Omit<ChaosOptions, 'scenarios'>): Promise<ChaosSession> {
    const root = chaosRoot(options.offset, options.slot);
    const services = new ChaosServices(root, chaosPorts(options.offset, options.slot));
    const runs = path.join(root, 'runs');
    await clearEarlierRuns(runs);
    const runDir = path.join(runs, `${new Date().toISOString().replace(/[:.]/g, '')}-seed${options.seed}`);
    options.progress?.(`services under ${root} (mon ${services.ports.monV2}, etcd ${services.ports.etcd})`);
    await services.up();
    return new ChaosSession(options, services, runDir);
  }

  play(scenarios: readonly Scenario[], countOf?: (scenario: Scenario) => number): Promise<ScenarioResult[]> {
    return runScenarios(scenarios, {
      countOf,
      seed: this.options.seed,
      scale: this.options.scale,
      services: this.services,
      runDir: this.runDir,
      settings: { ...DEFAULT_SETTINGS, ...this.options.settings },
      progress: this.options.progress,
    });
  }

  /** Stops the services (unless `keep`); the run's logs stay in runDir (the newest three runs are kept). */
  async close(): Promise<void> {
    if (!this.options.keep) await this.services.down().catch((err: Error) => this.options.progress?.(`stopping the services: ${err.message}`));
  }
}

export async function runChaos(options: ChaosOptions): Promise<{ results: ScenarioResult[]; seconds: number; runDir: string }> {
  const session = await ChaosSession.open(options);
  try {
    const results = await session.play(options.scenarios);
    return { results, seconds: (Date.now() - session.started) / 1000, runDir: session.runDir };
  } finally {
    await session.close();
  }
}
