// `make chaos` (tsx test/chaos/main.ts): the fault-injection suite at full scale, or a part of it.
//
//   make chaos SEED=42 SCALE=1            every scenario at its full count (see docs/chaos.md)
//   make chaos SEED=42 ONLY=reboot,mount-race SCALE=0.1
//   tsx test/chaos/main.ts --list         the scenarios, their faults, counts and invariants
//
// Exit status 0 when no scenario found a violation or an error, 1 otherwise, 2 for bad flags.

import { parseArgs } from 'node:util';
import { emergencyStop, runChaos, DEFAULT_SETTINGS } from './chaos.js';
import { INVARIANTS } from './invariants/types.js';
import { targetCount } from './runner.js';
import { SCENARIOS, selectScenarios } from './scenarios/index.js';
import { report } from './table.js';

const usage = `usage: tsx test/chaos/main.ts [--seed N] [--scale X] [--only a,b] [--lock-ttl S] [--keep] [--list]
  --seed N      seed of every random choice (default: from the clock, printed)
  --scale X     count per scenario = max(1, round(count × X)) (default 1: the full aims)
  --only a,b    only these scenarios (see --list)
  --lock-ttl S  the hosts' --lock-ttl in seconds (default ${DEFAULT_SETTINGS.lockTtl})
  --keep        leave the run's Ceph and etcd running afterwards
  --list        print the scenarios and exit
Services: .sandbox-chaos[-N]/ (N = VOLPLUGIN_TEST_PORT_OFFSET), logs in .sandbox-chaos[-N]/runs/.`;

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n${usage}\n`);
  process.exit(2);
}

let flags;
try {
  flags = parseArgs({
    options: {
      seed: { type: 'string' },
      scale: { type: 'string', default: '1' },
      only: { type: 'string' },
      'lock-ttl': { type: 'string' },
      keep: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (err) {
  fail((err as Error).message);
}

if (flags.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

const scale = Number(flags.scale);
if (!Number.isFinite(scale) || scale <= 0) fail(`--scale must be a positive number, got ${JSON.stringify(flags.scale)}`);
const seed = flags.seed === undefined || flags.seed === '' ? Date.now() % 1_000_000 : Number(flags.seed);
if (!Number.isInteger(seed) || seed < 0) fail(`--seed must be a whole number, got ${JSON.stringify(flags.seed)}`);
const lockTtl = flags['lock-ttl'] === undefined ? DEFAULT_SETTINGS.lockTtl : Number(flags['lock-ttl']);
if (!Number.isInteger(lockTtl) || lockTtl < 2) fail(`--lock-ttl must be a whole number of seconds, at least 2`);
let scenarios;
try {
  scenarios = selectScenarios(flags.only);
} catch (err) {
  fail((err as Error).message);
}

if (flags.list) {
  const width = Math.max(...SCENARIOS.map((s) => s.name.length));
  for (const s of SCENARIOS) {
    process.stdout.write(`${s.name.padEnd(width)} ${String(targetCount(s, scale)).padStart(5)} × ${s.fault}\n${' '.repeat(width + 9)}checks: ${s.invariants.join(', ')}\n`);
  }
  const named = Math.max(...Object.keys(INVARIANTS).map((k) => k.length));
  process.stdout.write(`\ninvariants:\n${Object.entries(INVARIANTS).map(([k, v]) => `  ${k.padEnd(named)} ${v}`).join('\n')}\n`);
  process.exit(0);
}

const offset = Number(process.env.VOLPLUGIN_TEST_PORT_OFFSET ?? 0);
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`chaos: ${signal}: stopping every daemon of the run and its services...\n`);
    void emergencyStop(offset, 'run').finally(() => process.exit(130));
  });
}
const stamp = () => new Date().toISOString().slice(11, 19);
process.stderr.write(`chaos: seed ${seed}, scale ${scale}, ${scenarios.length} scenario(s); repeat with make chaos SEED=${seed} SCALE=${scale}\n`);
const { results, seconds, runDir } = await runChaos({
  seed,
  scale,
  scenarios,
  slot: 'run',
  offset,
  keep: flags.keep,
  settings: { lockTtl },
  progress: (line) => process.stderr.write(`${stamp()} ${line}\n`),
});
process.stdout.write(`${report(results, { seed, scale })}\n\nwhole run: ${(seconds / 60).toFixed(1)} min; daemon logs in ${runDir}\n`);
process.exit(results.every((r) => r.violations.length === 0 && r.errors.length === 0) ? 0 : 1);
