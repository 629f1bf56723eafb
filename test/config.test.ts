import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
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
