import { defineConfig } from 'vitest/config';

// Three projects: `unit` (fakes, no services), `integration` (real Ceph + etcd) and `e2e` (real
// dockerd too), run in that order. test/helpers/global-setup.ts starts the services under
// .sandbox-test/ on their own ports for the projects that need them and stops them afterwards, also
// when tests fail.
export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts'],
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 10_000, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          // test/chaos: the short run of the fault-injection suite (make chaos plays all of it).
          include: ['test/integration/**/*.test.ts', 'test/chaos/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
