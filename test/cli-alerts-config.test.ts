/** The built CLI refuses a bad rules file or handler path at start: exit 2, one line naming it. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const cli = join(import.meta.dirname, '..', 'dist', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'cli-cfg-'));
const env = { ...process.env, LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk', LANGFUSE_BASE_URL: 'http://127.0.0.1:9', BRIDGE_DATABASE: join(dir, 'b.db'), CI: '1' };

function run(args: string[], extra: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { env: { ...env, ...extra }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stderr: r.stderr.trim(), stdout: r.stdout };
}

beforeAll(() => {
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does)');
});

describe('alert configuration errors', () => {
  it('a bad rule exits 2 naming the rule and the field', () => {
    const file = join(dir, 'rules.json');
    writeFileSync(file, JSON.stringify({ sinks: [{ type: 'slack', name: 'slack', url: 'https://hooks.slack.com/services/x' }], rules: [{ name: 'low-score', when: { scoreBelow: 'x' }, sinks: ['slack'] }] }), { mode: 0o600 });
    const r = run(['--config', file, 'run']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/rules\[0\] \("low-score"\)\.when\.scoreBelow must be a number/);
  });

  it('a rule naming an unknown sink exits 2', () => {
    const file = join(dir, 'rules2.json');
    writeFileSync(file, JSON.stringify({ rules: [{ name: 'errors', when: { level: 'ERROR' }, sinks: ['nowhere'] }] }));
    const r = run(['--config', file, 'run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nowhere/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a missing handler module exits 2 naming the path', () => {
    const r = run(['run'], { BRIDGE_HANDLERS: './no-such-handlers.mjs' });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no-such-handlers\.mjs/);
  });
});
