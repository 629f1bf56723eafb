/**
 * A webhook sink signs every request: no secret is a setting error unless the signature is `none` by
 * name, and a secret the standard scheme cannot use is named for what is wrong with it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { standardSecretProblem } from '../src/sinks/signing.js';
import { configErrorOf } from './helpers/config-error.js';

const keys = { LANGFUSE_PUBLIC_KEY: 'pk-lf-1', LANGFUSE_SECRET_KEY: 'sk-lf-1' };
const URL = 'https://hooks.example.com/langfuse';
const GOOD = `whsec_${Buffer.from('a 24-byte test key......').toString('base64')}`;
const dir = mkdtempSync(join(tmpdir(), 'lfb-secret-'));
let files = 0;

function envError(env: Record<string, string>): string {
  return configErrorOf(() => loadConfig({ env: { ...keys, BRIDGE_WEBHOOK_URL: URL, ...env } }));
}
function fileConfig(sink: Record<string, unknown>) {
  const file = join(dir, `c${++files}.json`);
  writeFileSync(file, JSON.stringify({ sinks: [{ type: 'webhook', name: 'ops', url: URL, ...sink }] }));
  return file;
}

describe('a webhook sink without a secret', () => {
  it('stops start-up naming BRIDGE_WEBHOOK_SECRET and the way to send unsigned on purpose', () => {
    const msg = envError({});
    expect(msg).toMatch(/^BRIDGE_WEBHOOK_SECRET is required/);
    expect(msg).toContain('BRIDGE_WEBHOOK_SIGNATURE=none');
    // An empty value (compose's `${BRIDGE_WEBHOOK_SECRET:-}`) is no secret either.
    expect(envError({ BRIDGE_WEBHOOK_SECRET: '' })).toMatch(/^BRIDGE_WEBHOOK_SECRET is required/);
    expect(envError({ BRIDGE_WEBHOOK_SIGNATURE: 'hex' })).toMatch(/^BRIDGE_WEBHOOK_SECRET is required.*\(hex scheme\)/);
  });

  it('is unsigned only with BRIDGE_WEBHOOK_SIGNATURE=none, and none with a secret is a contradiction', () => {
    const c = loadConfig({ env: { ...keys, BRIDGE_WEBHOOK_URL: URL, BRIDGE_WEBHOOK_SIGNATURE: 'none' } });
    expect(c.sinks).toEqual([expect.objectContaining({ type: 'webhook', signature: 'none', secret: null })]);
    expect(envError({ BRIDGE_WEBHOOK_SIGNATURE: 'none', BRIDGE_WEBHOOK_SECRET: GOOD })).toMatch(/^BRIDGE_WEBHOOK_SECRET is set but BRIDGE_WEBHOOK_SIGNATURE is none/);
    expect(envError({ BRIDGE_WEBHOOK_SIGNATURE: 'unsigned' })).toMatch(/^BRIDGE_WEBHOOK_SIGNATURE must be one of standard, langfuse, hex, none, got "unsigned"/);
  });

  it('in the config file: the sink names its secret, and "signature": "none" is the way out', () => {
    const msg = configErrorOf(() => loadConfig({ env: keys, configFile: fileConfig({}) }));
    expect(msg).toMatch(/^sinks\[0\] \("ops"\)\.secret is required/);
    expect(msg).toContain('"signature": "none"');
    const c = loadConfig({ env: keys, configFile: fileConfig({ signature: 'none' }) });
    expect(c.sinks[0]).toMatchObject({ type: 'webhook', name: 'ops', signature: 'none', secret: null });
    expect(configErrorOf(() => loadConfig({ env: keys, configFile: fileConfig({ signature: 'none', secret: GOOD }) }))).toMatch(/^sinks\[0\] \("ops"\)\.secret is set but sinks\[0\] \("ops"\)\.signature is none/);
  });
});

describe('a secret the standard scheme cannot use says what is wrong and what to do', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['no prefix', 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0', /has no whsec_ prefix/],
    ['a prefix in the wrong case', 'WHSEC_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0', /does not start with the exact prefix whsec_/],
    ['nothing after the prefix', 'whsec_', /has nothing after its whsec_ prefix/],
    ['a character base64 does not have', 'whsec_c2VjcmV0LXNlY3JldC1z-ZWNyZXQtc2VjcmV0', /is not base64 after its whsec_ prefix \("-" at character 21/],
    ['whitespace', 'whsec_c2VjcmV0LXNlY3JldC1z ZWNyZXQtc2VjcmV0', /is not base64 .*whitespace at character 21/],
    ['missing padding', 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0cw', /is not base64 .*padding misplaced or missing/],
    ['too few bytes', `whsec_${Buffer.from('sixteen bytes!!!').toString('base64')}`, /is too short: it decodes to 16 bytes, and a Standard Webhooks secret has at least 24/],
  ];
  it.each(cases)('%s', (_name, secret, problem) => {
    const msg = envError({ BRIDGE_WEBHOOK_SECRET: secret });
    expect(msg).toMatch(/^BRIDGE_WEBHOOK_SECRET /);
    expect(msg).toMatch(problem);
    expect(msg).toContain('openssl rand -base64 32');
    expect(msg).toContain('BRIDGE_WEBHOOK_SIGNATURE=langfuse or hex');
    if (secret.length > 12) expect(msg).not.toContain(secret.slice(6, 20)); // the secret itself is never shown
  });

  it('accepts a whsec_ secret of 24 bytes or more, as the Standard Webhooks libraries decode it', () => {
    expect(standardSecretProblem(GOOD)).toBeNull();
    expect(standardSecretProblem(`whsec_${Buffer.alloc(64, 7).toString('base64')}`)).toBeNull();
    expect(loadConfig({ env: { ...keys, BRIDGE_WEBHOOK_URL: URL, BRIDGE_WEBHOOK_SECRET: GOOD } }).sinks[0]).toMatchObject({ signature: 'standard', secret: GOOD });
  });

  it('in the config file, the fix is the sink’s "signature"', () => {
    const msg = configErrorOf(() => loadConfig({ env: keys, configFile: fileConfig({ secret: 'plain-string' }) }));
    expect(msg).toMatch(/^sinks\[0\] \("ops"\)\.secret has no whsec_ prefix;.*"signature": "langfuse" on that sink or hex/);
  });
});
