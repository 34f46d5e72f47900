import { defineConfig } from 'vitest/config';

// `npm run test:cluster`: suites that start clusters of their own (scripts/kafka/cluster.sh),
// kept out of `npm test` because they take minutes and most of the machine.
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default'],
    env: { FERRY_LOG_LEVEL: process.env.FERRY_LOG_LEVEL ?? 'silent' },
  },
});
