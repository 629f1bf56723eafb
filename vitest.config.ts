import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Checks once what some suites need from the machine (Redis, Chromium); see test/helpers/requirements.ts.
    globalSetup: ['test/global-setup.ts'],
    // The JSON report lets CI print one "N passed, N failed" line.
    reporters: ['default', 'json'],
    outputFile: { json: '.test-results/report.json' },
  },
});
