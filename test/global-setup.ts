/**
 * Once per run: which machine requirements are missing (see helpers/requirements.ts). Suites that need
 * them are skipped; the run names them at its start and again at its end, with what to install.
 */
import type { TestProject } from 'vitest/node';
import { checkRequirements, type Requirement } from './helpers/requirements.js';

/** Which suites need what, for the message. */
const SUITES: Record<Requirement, string> = {
  redis: 'test/queue (Redis mode: workers, replay, lost jobs, Slack pacing)',
  'redis-server': 'test/queue/redis-outage.test.ts (starts and kills its own redis-server)',
  chromium: 'the suites that drive a browser',
};

export default async function setup(project: TestProject): Promise<() => void> {
  const missing = await checkRequirements();
  project.provide('missingRequirements', missing);
  const ci = !['', '0', 'false'].includes((process.env.CI ?? '').toLowerCase());
  const lines = Object.entries(missing).map(
    ([name, m]) => `  ${m.what} is not available (${m.reason}): ${ci ? 'FAILING' : 'skipping'} ${SUITES[name as Requirement]}. Install: ${m.install}`,
  );
  const report = (): void => {
    if (lines.length) process.stderr.write(`\nMachine requirements missing${ci ? ' (CI: the suites that need them fail)' : ''}:\n${lines.join('\n')}\n\n`);
  };
  report();
  return report;
}
