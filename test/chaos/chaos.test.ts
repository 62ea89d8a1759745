// The short run of the fault-injection suite inside `make test`: one round of each scenario in
// SHORT_RUN on a Ceph and etcd of its own (`make chaos` plays every scenario at its full count).
// A scenario passes when it found no violation and every round could be played; a failure prints
// the seed, the round and the evidence.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChaosSession } from './chaos.js';
import { selectScenarios, SHORT_RUN } from './scenarios/index.js';
import { describeViolation } from './table.js';

const seed = Number(process.env.VOLPLUGIN_CHAOS_SEED ?? Date.now() % 1_000_000);
let session: ChaosSession;

beforeAll(async () => {
  session = await ChaosSession.open({
    seed,
    scale: 1,
    slot: 'test',
    offset: Number(process.env.VOLPLUGIN_TEST_PORT_OFFSET ?? 0),
    progress: process.env.VOLPLUGIN_TEST_VERBOSE ? (line) => process.stderr.write(`chaos: ${line}\n`) : undefined,
  });
}, 180_000);

afterAll(async () => {
  await session?.close();
}, 180_000);

describe(`fault injection, one round each (seed ${seed}; again: VOLPLUGIN_CHAOS_SEED=${seed})`, () => {
  for (const scenario of selectScenarios(SHORT_RUN.join(','))) {
    it(`${scenario.name}: ${scenario.fault}`, async () => {
      const [result] = await session.play([scenario], (s) => s.shortCount ?? 1);
      const problems = [
        ...result!.violations.map((v) => describeViolation(v, 1_500)),
        ...result!.errors.map((e) => `[seed ${seed}, scenario ${scenario.name}, round ${e.round ?? '-'}] error: ${e.message}`),
      ];
      expect(problems, problems.join('\n\n')).toEqual([]);
      expect(result!.rounds).toBeGreaterThan(0);
    }, scenario.roundTimeoutMs * 2 + 120_000);
  }
});
