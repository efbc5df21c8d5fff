import { defineConfig } from 'vitest/config';

// Two tiers: `unit` needs no Ceph and no addon (seconds, any machine); `integration` runs
// test/integration and test/stress against real local clusters that the global setup starts.
export default defineConfig({
  test: {
    pool: 'forks',
    // The default output, plus the clusters' health after each file (see test/support/health.ts).
    reporters: ['default', './test/support/health.ts'],
    // Timeouts catch hangs, not slowness: CI runs eight release suites at once on 2 cores, where
    // tests that take 5 s alone took up to 60 s (CLI tests spawn node + tsx per command).
    testTimeout: 180_000,
    hookTimeout: 300_000,
    // The test files share the two clusters (and the machine has 2 cores).
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 30_000,
          // A unit test that loads the addon (and so librbd) fails at once instead of passing here
          // and failing on a machine without Ceph.
          env: { RBD_STREAM_ADDON: '/nonexistent/unit-tests-must-not-load-the-addon.node' },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/stress/**/*.test.ts'],
          globalSetup: './test/support/global-setup.ts',
        },
      },
    ],
  },
});
