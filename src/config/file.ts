/** The config file: JSON, `${VAR}` in strings read from the environment; a warning when others can read its secrets. */
import { readFileSync, statSync } from 'node:fs';
import type { Env } from './env.js';
import { ConfigError } from '../errors.js';

function interpolate(value: unknown, env: Env, path: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new ConfigError(`${path} refers to \${${name}}, which is not set in the environment; export ${name} or edit the file`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${path}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, `${path}.${k}`)]));
  }
  return value;
}

/** The file as written (`json`) and with `${VAR}` read (`data`), not validated yet. */
export function readConfigFile(file: string, env: Env): { json: unknown; data: unknown } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`--config ${file} cannot be read (${code ?? 'error'}); pass the path of an existing JSON file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`--config ${file} is not valid JSON (${(err as Error).message}); fix the file`);
  }
  return { json, data: interpolate(json, env, file) };
}

/** Where a config file may hold a secret, as written (before `${VAR}` is read). */
function literalSecrets(json: unknown): string[] {
  const literal = (v: unknown): v is string => typeof v === 'string' && v !== '' && !v.includes('${');
  const o = (json ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  const lf = o.langfuse as Record<string, unknown> | undefined;
  if (literal(lf?.secretKey)) out.push('langfuse.secretKey');
  (Array.isArray(o.projects) ? o.projects : []).forEach((p: Record<string, unknown> | null, i) => {
    if (literal(p?.secretKey)) out.push(`projects[${i}].secretKey`);
  });
  (Array.isArray(o.sinks) ? o.sinks : []).forEach((s: Record<string, unknown> | null, i) => {
    if (literal(s?.secret)) out.push(`sinks[${i}].secret`);
    if (literal(s?.routingKey)) out.push(`sinks[${i}].routingKey`);
    // A Slack incoming-webhook URL is its own credential.
    if (s?.type === 'slack' && literal(s.url)) out.push(`sinks[${i}].url`);
  });
  const redisUrl = (o.queue as Record<string, unknown> | undefined)?.redisUrl;
  if (literal(redisUrl) && /^[a-z]+:\/\/[^/@]*:[^/@]+@/i.test(redisUrl)) out.push('queue.redisUrl');
  return out;
}

/**
 * A config file that holds a secret as written, and that other users may read or write, gets one
 * warning naming it and its mode.
 */
export function warnIfExposed(file: string, json: unknown, onWarning: (message: string, fields: Record<string, unknown>) => void): void {
  if (process.platform === 'win32') return;
  const secrets = literalSecrets(json);
  if (!secrets.length) return;
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return;
  }
  if ((mode & 0o066) === 0) return;
  const can = [mode & 0o044 ? 'read' : '', mode & 0o022 ? 'write' : ''].filter(Boolean).join(' and ');
  const shown = `0${mode.toString(8)}`;
  onWarning(`config file ${file} holds secrets as plain text and other users can ${can} it (mode ${shown}): chmod 600 it, or write them as \${VAR} and set VAR in the environment`, { file, mode: shown, secrets });
}
