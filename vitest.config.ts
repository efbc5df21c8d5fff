import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    globalSetup: './test/support/global-setup.ts',
    // The default output, plus the clusters' health after each file (see test/health.ts).
    reporters: ['default', './test/support/health.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
    // The test files share the two clusters (and the machine has 2 cores).
    fileParallelism: false,
  },
});
