import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { configErrorOf } from './helpers/config-error.js';

const keys = { LANGFUSE_PUBLIC_KEY: 'pk-lf-1', LANGFUSE_SECRET_KEY: 'sk-lf-1' };
const bad = (env: Record<string, string>, file?: string) => {
  return configErrorOf(() => loadConfig({ env: { ...keys, ...env }, configFile: file ?? null }));
};

describe('config', () => {
  it('has the contract defaults', () => {
    const c = loadConfig({ env: keys });
    expect(c.langfuse.baseUrl).toBe('https://cloud.langfuse.com');
    expect(c).toMatchObject({ database: 'data/bridge.db', pollIntervalSeconds: 30, lookbackSeconds: 1200, retentionDays: 30, streams: ['traces', 'generations', 'scores'], includeIo: false, alertBurst: 20, httpPort: null, healthMaxAgeSeconds: 90 });
    expect(c.langfuse).toMatchObject({ api: 'auto', maxRequestsPerMinute: 30 });
    expect(c.retry).toEqual({ maxAttempts: 10, baseSeconds: 5 });
    // No event sink configured: stdout.
    expect(c.sinks.map((s) => s.type)).toEqual(['stdout']);
  });

  it('accepts the SDKs’ host variables', () => {
    expect(loadConfig({ env: { ...keys, LANGFUSE_BASEURL: 'http://lf.local:3000/' } }).langfuse.baseUrl).toBe('http://lf.local:3000');
    expect(loadConfig({ env: { ...keys, LANGFUSE_HOST: 'https://eu.example.com' } }).langfuse.baseUrl).toBe('https://eu.example.com');
  });

  it('names the setting, what it must be and what it got', () => {
    expect(bad({ BRIDGE_POLL_INTERVAL_SECONDS: 'abc' })).toBe('BRIDGE_POLL_INTERVAL_SECONDS must be a whole number of seconds from 1 to 86400, got "abc"');
    expect(bad({ BRIDGE_STREAMS: 'traces,foo' })).toMatch(/^BRIDGE_STREAMS must be a comma list of traces, generations, scores, prompts, got "foo"/);
    expect(bad({ LANGFUSE_BASE_URL: 'notaurl' })).toMatch(/^LANGFUSE_BASE_URL must be an http\(s\) URL/);
    expect(bad({ BRIDGE_LANGFUSE_API: 'v9' })).toMatch(/^BRIDGE_LANGFUSE_API must be one of auto, v4, legacy/);
    expect(bad({ BRIDGE_RETRY_BASE_SECONDS: '-1' })).toMatch(/^BRIDGE_RETRY_BASE_SECONDS must be a positive number/);
    expect(bad({ BRIDGE_START_FROM: 'yesterday' })).toMatch(/^BRIDGE_START_FROM must be an ISO 8601 time/);
    expect(() => loadConfig({ env: {} })).toThrow(/^LANGFUSE_PUBLIC_KEY is required/);
  });

  it('names a value by the key the file has it under, and by the variable when the environment set it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ pollIntervalSeconds: 0, retry: { maxAttempts: 101 } }));
    expect(bad({}, file)).toBe(`--config ${file}: pollIntervalSeconds must be a whole number of seconds from 1 to 86400, got 0`);
    writeFileSync(file, JSON.stringify({ retry: { maxAttempts: 101 } }));
    expect(bad({}, file)).toBe(`--config ${file}: retry.maxAttempts must be a whole number from 1 to 100, got 101`);
    expect(bad({ BRIDGE_RETRY_MAX_ATTEMPTS: '101' })).toBe('BRIDGE_RETRY_MAX_ATTEMPTS must be a whole number from 1 to 100, got "101"');
    // Checks past the schema's name the file's key too, not the variable that stands for it.
    writeFileSync(file, JSON.stringify({ startFrom: 'yesterday', streams: [] }));
    expect(bad({}, file)).toMatch(/^startFrom must be an ISO 8601 time/);
    writeFileSync(file, JSON.stringify({ streams: [] }));
    expect(bad({}, file)).toBe('streams must be a comma list of traces, generations, scores, prompts, got []');
    writeFileSync(file, JSON.stringify({ queue: { prefix: 'a b' } }));
    expect(bad({}, file)).toMatch(/^queue\.prefix must be a key prefix without spaces/);
    writeFileSync(file, JSON.stringify({ digestCron: 'daily' }));
    expect(bad({}, file)).toMatch(/^digestCron must be a cron expression/);
    // The environment wins over the file, and is named when it is wrong.
    writeFileSync(file, JSON.stringify({ pollIntervalSeconds: 10 }));
    expect(bad({ BRIDGE_POLL_INTERVAL_SECONDS: '0' }, file)).toBe('BRIDGE_POLL_INTERVAL_SECONDS must be a whole number of seconds from 1 to 86400, got "0"');
    expect(loadConfig({ env: { ...keys, BRIDGE_POLL_INTERVAL_SECONDS: '7' }, configFile: file }).pollIntervalSeconds).toBe(7);
    expect(bad({ BRIDGE_STREAMS: ',' })).toBe('BRIDGE_STREAMS must be a comma list of traces, generations, scores, prompts, got ","');
    expect(bad({ BRIDGE_INCLUDE_IO: 'maybe' })).toBe('BRIDGE_INCLUDE_IO must be true or false, got "maybe"');
  });

  it('compiles the rules while loading: a bad rule is a setting error then', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'rules.json');
    writeFileSync(file, JSON.stringify({ sinks: [{ type: 'slack', name: 'slack', url: 'https://hooks.slack.com/services/x' }], rules: [{ name: 'low-score', when: { scoreBelow: 'x' }, sinks: ['slack'] }] }));
    expect(bad({}, file)).toBe('rules[0] ("low-score").when.scoreBelow must be a number, got "x"');
    writeFileSync(file, JSON.stringify({ sinks: [{ type: 'slack', name: 'slack', url: 'https://hooks.slack.com/services/x' }], rules: [{ name: 'errors', when: { level: 'ERROR' }, sinks: ['slack'] }] }));
    const c = loadConfig({ env: keys, configFile: file });
    expect(c.rules.isDefault).toBe(false);
    expect(c.rules.rules.map((r) => r.name)).toEqual(['errors']);
    expect(loadConfig({ env: { ...keys, SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/y' } }).rules.rules.map((r) => r.name)).toEqual(['error-traces', 'low-scores']);
  });

  it('builds the webhook sink and checks its secret against the scheme', () => {
    const c = loadConfig({ env: { ...keys, BRIDGE_WEBHOOK_URL: 'https://hooks.example.com/x', BRIDGE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', BRIDGE_WEBHOOK_EVENTS: 'trace.*,score.created' } });
    expect(c.sinks).toHaveLength(1);
    expect(c.sinks[0]).toMatchObject({ type: 'webhook', name: 'webhook', signature: 'standard', events: ['trace.*', 'score.created'], timeoutSeconds: 10 });
    expect(bad({ BRIDGE_WEBHOOK_URL: 'https://h.example.com', BRIDGE_WEBHOOK_SECRET: 'plain' })).toMatch(/^BRIDGE_WEBHOOK_SECRET has no whsec_ prefix;.*BRIDGE_WEBHOOK_SIGNATURE=langfuse or hex/);
    expect(loadConfig({ env: { ...keys, BRIDGE_WEBHOOK_URL: 'https://h.example.com', BRIDGE_WEBHOOK_SECRET: 'plain', BRIDGE_WEBHOOK_SIGNATURE: 'hex' } }).sinks[0]).toMatchObject({ signature: 'hex', secret: 'plain' });
    expect(loadConfig({ env: { ...keys, BRIDGE_WEBHOOK_URL: 'https://h.example.com', BRIDGE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', BRIDGE_STDOUT: 'true' } }).sinks.map((s) => s.type)).toEqual(['webhook', 'stdout']);
  });

  it('reads a JSON file with ${VAR} from the environment, and reports its mistakes in one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ langfuse: { publicKey: '${PK}', secretKey: 'sk' }, pollIntervalSeconds: 5, sinks: [{ type: 'webhook', name: 'ops', url: 'https://a.example.com', secret: '${WH}', signature: 'langfuse', events: ['trace.*'] }] }));
    const c = loadConfig({ env: { PK: 'pk-from-env', WH: 's3cret' }, configFile: good });
    expect(c.langfuse.publicKey).toBe('pk-from-env');
    expect(c.pollIntervalSeconds).toBe(5);
    expect(c.sinks[0]).toMatchObject({ name: 'ops', secret: 's3cret', signature: 'langfuse' });

    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "langfuse": ');
    expect(bad({}, broken)).toMatch(/broken\.json is not valid JSON/);
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ pollIntervalSecs: 5 }));
    expect(bad({}, unknown)).toMatch(/unknown key\(s\) pollIntervalSecs/);
    const missingVar = join(dir, 'var.json');
    writeFileSync(missingVar, JSON.stringify({ database: '${NOPE}' }));
    expect(bad({}, missingVar)).toMatch(/\$\{NOPE\}, which is not set/);
    expect(bad({}, join(dir, 'absent.json'))).toMatch(/cannot be read \(ENOENT\)/);
  });
});
