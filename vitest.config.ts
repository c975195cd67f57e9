import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    // dist/ is built once before any test (test/build-dist.ts), then the shared PostgreSQL starts, then the
    // application role is created on it (roles are cluster-wide: none is created while tests run)
    globalSetup: ['test/build-dist.ts', 'test/global-setup.ts', 'test/app-role.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
