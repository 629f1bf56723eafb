/**
 * The config file's published JSON Schema is generated from the zod schemas the file is validated with,
 * types sinks and rules field by field, and is accepted as `"$schema"`; an unknown key lists the valid ones.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { configJsonSchema } from '../src/config/json-schema.js';
import { configErrorOf } from './helpers/config-error.js';
import { ROOT } from './helpers/cli.js';

/** Parsed JSON Schema, walked loosely. */
type Json = Record<string, any>;
const committedFile = path.join(ROOT, 'schema', 'config.schema.json');
const committed = JSON.parse(readFileSync(committedFile, 'utf8')) as Json;
const dir = mkdtempSync(path.join(tmpdir(), 'lfb-schema-'));
const keys = { LANGFUSE_PUBLIC_KEY: 'pk-lf-1', LANGFUSE_SECRET_KEY: 'sk-lf-1' };
let n = 0;
function write(body: unknown): string {
  const file = path.join(dir, `c${++n}.json`);
  writeFileSync(file, JSON.stringify(body));
  return file;
}
function readmeSection(heading: string): string {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const from = readme.indexOf(`\n${heading}\n`);
  expect(from).toBeGreaterThan(-1);
  const to = readme.indexOf('\n## ', from + heading.length + 2);
  return readme.slice(from, to === -1 ? undefined : to);
}
function fileError(body: unknown): string {
  return configErrorOf(() => loadConfig({ env: keys, configFile: write(body) }));
}

describe('schema/config.schema.json', () => {
  it('is what the zod schemas generate (run `npm run schema` after changing them)', () => {
    expect(committed).toEqual(JSON.parse(JSON.stringify(configJsonSchema())));
  });

  it('is shipped in the package and exported', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Json;
    expect(pkg.files).toContain('schema');
    expect(pkg.exports['./config.schema.json']).toBe('./schema/config.schema.json');
  });

  it('is closed at every level and takes "$schema"', () => {
    expect(committed.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(committed.additionalProperties).toBe(false);
    expect(committed.properties.$schema).toMatchObject({ type: 'string' });
    for (const k of ['langfuse', 'retry', 'queue']) expect(committed.properties[k].additionalProperties, k).toBe(false);
    expect(committed.properties.projects.items.additionalProperties).toBe(false);
    expect(committed.properties.retry.properties.maxAttempts.description).toContain('BRIDGE_RETRY_MAX_ATTEMPTS');
    expect(committed.properties.pollIntervalSeconds).toMatchObject({ type: 'integer', minimum: 1 });
  });

  it('types each sink type field by field', () => {
    const options = committed.properties.sinks.items.oneOf as Json[];
    const byType = Object.fromEntries(options.map((o) => [o.properties.type.const, o]));
    expect(Object.keys(byType).sort()).toEqual(['handler', 'pagerduty', 'slack', 'stdout', 'webhook']);
    for (const o of options) expect(o.additionalProperties).toBe(false);
    expect(byType.webhook.required).toEqual(['type', 'url']);
    expect(byType.webhook.properties.signature.enum).toEqual(['standard', 'langfuse', 'hex', 'none']);
    expect(Object.keys(byType.webhook.properties)).toEqual(['type', 'name', 'url', 'secret', 'signature', 'events', 'timeoutSeconds', 'concurrency']);
    expect(byType.pagerduty.required).toEqual(['type', 'routingKey']);
    expect(byType.handler.required).toEqual(['type', 'module']);
    expect(byType.slack.properties.secret).toBeUndefined();
    expect(byType.stdout.properties.pretty).toMatchObject({ type: 'boolean' });
  });

  it('types rules field by field', () => {
    const rule = committed.properties.rules.items as Json;
    expect(rule.additionalProperties).toBe(false);
    expect(rule.required).toEqual(['name', 'sinks']);
    expect(rule.properties.when.additionalProperties).toBe(false);
    expect(rule.properties.when.properties.level.enum).toEqual(['WARNING', 'ERROR']);
    expect(rule.properties.when.properties.scoreBelow).toMatchObject({ type: 'number' });
    expect(rule.properties.when.properties.costAbove.description).toMatch(/USD/);
    expect(rule.properties.mode.enum).toEqual(['once', 'every']);
    expect(rule.properties.resolveWhen.properties.scoreAtLeast).toMatchObject({ type: 'number' });
  });
});

describe('the config file', () => {
  it('accepts "$schema" pointing at the schema', () => {
    const c = loadConfig({ env: keys, configFile: write({ $schema: '../schema/config.schema.json', pollIntervalSeconds: 7, httpHost: '0.0.0.0' }) });
    expect(c).toMatchObject({ pollIntervalSeconds: 7, httpHost: '0.0.0.0' });
  });

  it('takes the README’s example as it stands', () => {
    const block = /```json\n([\s\S]*?)```/.exec(readmeSection('## Settings'))?.[1];
    expect(block).toContain('"$schema"');
    const env = { ...keys, WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}`, LEGACY_SECRET: 'legacy', SLACK_ALERTS_URL: 'https://hooks.slack.com/services/x', PD_ROUTING_KEY: 'rk' };
    const c = loadConfig({ env, configFile: write(JSON.parse(block!)) });
    expect(c.sinks.map((s) => s.name)).toEqual(['ops', 'legacy-receiver', 'slack', 'oncall', 'mine']);
  });

  it('has every key the README’s settings table names', () => {
    const known = new Set<string>();
    const walk = (node: Json, prefix: string): void => {
      for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Json>)) {
        known.add(`${prefix}${k}`);
        walk(v, `${prefix}${k}.`);
      }
    };
    walk(committed, '');
    for (const sink of committed.properties.sinks.items.oneOf as Json[]) for (const k of Object.keys(sink.properties)) known.add(k);
    const rows = readmeSection('## Settings').split('\n').filter((l) => l.startsWith('| `'));
    expect(rows.length).toBeGreaterThan(25);
    const named = rows.flatMap((row) => [...(row.split(' | ')[1] ?? '').matchAll(/`([A-Za-z$][\w.]*)`/g)].map((m) => m[1]!));
    expect(named).toEqual(expect.arrayContaining(['langfuse.publicKey', 'retry.maxAttempts', 'pollIntervalSeconds', 'httpHost', 'signature']));
    for (const key of named) expect(known, key).toContain(key);
  });

  it('names the valid keys, and the one meant, for an unknown key at any level', () => {
    expect(fileError({ pollIntervalSecs: 5 })).toMatch(/: the top level has unknown key\(s\) pollIntervalSecs \(did you mean pollIntervalSeconds\?\); valid keys here: \$schema, langfuse, database, pollIntervalSeconds, .*, sinks, rules, monitors, projects, digestCron, queue$/);
    expect(fileError({ retry: { maxAttempt: 3 } })).toMatch(/: retry has unknown key\(s\) maxAttempt \(did you mean maxAttempts\?\); valid keys here: maxAttempts, baseSeconds$/);
    expect(fileError({ langfuse: { baseURL: 'https://x' } })).toMatch(/: langfuse has unknown key\(s\) baseURL \(did you mean baseUrl\?\); valid keys here: publicKey, secretKey, baseUrl, api, maxRequestsPerMinute, timeoutSeconds$/);
    // A sink's keys are those of its type.
    expect(fileError({ sinks: [{ type: 'webhook', name: 'ops', url: 'https://x', secrte: 's' }] })).toMatch(
      /: sinks\[0\] \("ops"\) has unknown key\(s\) secrte \(did you mean secret\?\); valid keys here: type, name, url, secret, signature, events, timeoutSeconds, concurrency$/,
    );
    expect(fileError({ sinks: [{ type: 'slack', name: 's', url: 'https://x', signature: 'hex' }] })).toMatch(/: sinks\[0\] \("s"\) has unknown key\(s\) signature; valid keys here: type, name, url, events, timeoutSeconds$/);
  });

  it('names a sink’s missing or unknown type and its missing required field', () => {
    expect(fileError({ sinks: [{ type: 'webhok', url: 'https://x' }] })).toMatch(/: sinks\[0\]\.type must be one of webhook, stdout, slack, pagerduty, handler, got "webhok"$/);
    expect(fileError({ sinks: [{ url: 'https://x' }] })).toMatch(/: sinks\[0\]\.type is required: one of webhook, stdout, slack, pagerduty, handler$/);
    expect(fileError({ sinks: [{ type: 'pagerduty', name: 'oncall' }] })).toMatch(/: sinks\[0\] \("oncall"\)\.routingKey is required: .*PAGERDUTY_ROUTING_KEY/);
    expect(fileError({ sinks: [{ type: 'webhook', url: 'https://x', secret: 'x', signature: 'rsa' }] })).toMatch(/: sinks\[0\]\.signature must be one of standard, langfuse, hex, none, got "rsa"$/);
  });
});
