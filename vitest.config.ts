import { configDefaults, defineConfig } from 'vitest/config';

// `*.isolated.test.ts` files disturb shared services (they restart a broker): they run in a
// second group, after every other file has finished.
const isolated = 'test/**/*.isolated.test.ts';
// test/cluster starts clusters of its own: `npm run test:cluster` (vitest.cluster.config.ts).
const cluster = 'test/cluster/**';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    env: { FERRY_LOG_LEVEL: process.env.FERRY_LOG_LEVEL ?? 'silent' },
    projects: [
      {
        extends: true,
        test: {
          name: 'shared',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, isolated, cluster],
        },
      },
      {
        extends: true,
        test: {
          name: 'isolated',
          include: [isolated],
          exclude: [...configDefaults.exclude, cluster],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
