/**
 * A --config file that holds a secret as written (not a `${VAR}` reference) and that other users can
 * read or write gets one warning naming the file and its mode; a private file, or one whose secrets
 * all come from the environment, gets none.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { assertBuilt, bridgeEnv, runCli, tempDir, webhookSecret } from './helpers/cli.js';

const tmp = tempDir('lfb-cfgmode-');
afterAll(() => tmp.cleanup());

const SECRET = webhookSecret();
const ENV = { LANGFUSE_PUBLIC_KEY: 'pk-lf-x', LANGFUSE_SECRET_KEY: 'sk-lf-x', HOOK_SECRET: SECRET, PD_KEY: 'R0UTINGKEY0000000000000000000000', SLACK_URL: 'https://hooks.slack.com/services/T0/B0/XXXX' };

let n = 0;
function configFile(json: unknown, mode: number): string {
  const file = path.join(tmp.dir, `c${++n}.json`);
  writeFileSync(file, JSON.stringify(json));
  chmodSync(file, mode);
  return file;
}

function warnings(file: string): Array<{ message: string; fields: Record<string, unknown> }> {
  const out: Array<{ message: string; fields: Record<string, unknown> }> = [];
  loadConfig({ env: ENV, configFile: file, onWarning: (message, fields) => out.push({ message, fields }) });
  return out;
}

const literal = {
  langfuse: { secretKey: 'sk-lf-literal' },
  sinks: [
    { type: 'webhook', url: 'http://127.0.0.1:9/hook', secret: SECRET },
    { type: 'pagerduty', routingKey: 'R0UTINGKEY0000000000000000000000' },
    { type: 'slack', url: 'https://hooks.slack.com/services/T0/B0/XXXX' },
  ],
  queue: { redisUrl: 'redis://:hunter2@127.0.0.1:6379' },
};
const referenced = {
  sinks: [
    { type: 'webhook', url: 'http://127.0.0.1:9/hook', secret: '${HOOK_SECRET}' },
    { type: 'pagerduty', routingKey: '${PD_KEY}' },
  ],
};

describe('config file permissions', () => {
  it('warns once about a world-readable file with secrets written in it, naming the file, its mode and where the secrets are', () => {
    const file = configFile(literal, 0o644);
    const w = warnings(file);
    expect(w).toHaveLength(1);
    expect(w[0]!.message).toBe(
      `config file ${file} holds secrets as plain text and other users can read it (mode 0644): chmod 600 it, or write them as \${VAR} and set VAR in the environment`,
    );
    expect(w[0]!.fields).toEqual({ file, mode: '0644', secrets: ['langfuse.secretKey', 'sinks[0].secret', 'sinks[1].routingKey', 'sinks[2].url', 'queue.redisUrl'] });
  });

  it('says "read and write" for a group-writable file', () => {
    const w = warnings(configFile({ sinks: [literal.sinks[0]] }, 0o660));
    expect(w).toHaveLength(1);
    expect(w[0]!.message).toMatch(/other users can read and write it \(mode 0660\)/);
  });

  it('is silent for a private file, and for secrets that are ${VAR} references', () => {
    expect(warnings(configFile(literal, 0o600))).toEqual([]);
    expect(warnings(configFile(literal, 0o400))).toEqual([]);
    expect(warnings(configFile(referenced, 0o644))).toEqual([]);
    expect(warnings(configFile({ queue: { redisUrl: 'redis://127.0.0.1:6379' }, sinks: [{ type: 'slack', url: '${SLACK_URL}' }] }, 0o644))).toEqual([]);
  });
});

describe('the CLI', () => {
  beforeAll(() => assertBuilt());

  it('logs the warning once on stderr and carries on', async () => {
    const file = configFile({ sinks: [{ type: 'pagerduty', routingKey: 'R0UTINGKEY0000000000000000000000' }] }, 0o644);
    const env = bridgeEnv({ langfuseUrl: 'http://127.0.0.1:9', database: path.join(tmp.dir, 'cli.db') });
    const p = await runCli(['--config', file, 'test-event'], env, 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    const w = p.logs().filter((l) => String(l.msg).includes(file));
    expect(w, p.stderr).toHaveLength(1);
    expect(w[0]).toMatchObject({ level: 40, mode: '0644', secrets: ['sinks[0].routingKey'] });
    expect(p.stderr).not.toContain('R0UTINGKEY');
  });
});
