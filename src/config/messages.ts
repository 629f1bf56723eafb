/**
 * Setting errors: one line that names the setting as the user wrote it (an environment variable, or a
 * key of the config file), what it must be, and what it got.
 */
import type { z } from 'zod';
import { MUST, show } from './fields.js';
import { settingsSchema } from './schema.js';

/** `sinks[2] ("oncall")`: an entry of a list in the config file, by index and, when it has one, name. */
export function entryLabel(list: string, i: number, name: unknown): string {
  return typeof name === 'string' && name.trim() ? `${list}[${i}] (${JSON.stringify(name.trim())})` : `${list}[${i}]`;
}

/** `projects[1] ("b").streams`: where a value sits in the file, entries of named lists shown with their name. */
export function fileKey(path: readonly PropertyKey[], data: unknown): string {
  let out = '';
  let value: unknown = data;
  for (let i = 0; i < path.length; i++) {
    const p = path[i]!;
    const next = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[p] : undefined;
    if (typeof p === 'number') {
      const listName = String(path[i - 1] ?? '');
      const name = next && typeof next === 'object' ? (next as Record<string, unknown>).name : undefined;
      out = (listName === 'sinks' || listName === 'projects') && out.endsWith(listName) ? `${out.slice(0, -listName.length)}${entryLabel(listName, p, name)}` : `${out}[${p}]`;
    } else out += `${out ? '.' : ''}${String(p)}`;
    value = next;
  }
  return out;
}

type AnySchema = z.core.$ZodType;

/** The schema found at `path`, following the data through optionals, arrays and a sink's `type`. */
function schemaAt(path: readonly PropertyKey[], data: unknown): AnySchema | null {
  let schema: AnySchema | null = settingsSchema;
  let value: unknown = data;
  const unwrap = (s: AnySchema, v: unknown): AnySchema | null => {
    let cur: AnySchema = s;
    for (;;) {
      const def = cur._zod.def as unknown as { type: string; innerType?: AnySchema; options?: AnySchema[]; discriminator?: string };
      if ((def.type === 'optional' || def.type === 'nullable' || def.type === 'default') && def.innerType) cur = def.innerType;
      else if (def.type === 'union' && def.options) {
        const d = def.discriminator;
        const wanted = d && v && typeof v === 'object' ? (v as Record<string, unknown>)[d] : undefined;
        const match = def.options.find((o) => (o._zod as { propValues?: Record<string, Set<unknown>> }).propValues?.[d ?? '']?.has(wanted));
        if (!match) return null;
        cur = match;
      } else return cur;
    }
  };
  for (const p of path) {
    if (!schema) return null;
    schema = unwrap(schema, value);
    if (!schema) return null;
    const def = schema._zod.def as unknown as { type: string; shape?: Record<string, AnySchema>; element?: AnySchema };
    if (def.type === 'object' && typeof p === 'string') schema = def.shape?.[p] ?? null;
    else if (def.type === 'array' && typeof p === 'number') schema = def.element ?? null;
    else return null;
    value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[p] : undefined;
  }
  return schema ? unwrap(schema, value) : null;
}

function mustAt(path: readonly PropertyKey[], data: unknown): string | undefined {
  const schema = schemaAt(path, data);
  return schema ? MUST.get(schema)?.must : undefined;
}

function validKeys(schema: AnySchema | null): string[] {
  const def = schema?._zod.def as { type?: string; shape?: Record<string, unknown> } | undefined;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

/** The closest of `candidates` to a mistyped `key`, when one is close enough to be what was meant. */
function closest(key: string, candidates: readonly string[]): string | null {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const cur = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
        prev = cur;
      }
    }
    return row[b.length]!;
  };
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(key, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== null && bestD <= Math.max(1, Math.floor(key.length / 3)) ? best : null;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((v, p) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined), data);
}

/** One line for the first thing wrong with the file, naming the key, what is allowed and what it got. */
export function fileIssueMessage(issue: z.core.$ZodIssue, data: unknown): string {
  const where = fileKey(issue.path, data) || 'the top level';
  const got = valueAt(data, issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = validKeys(schemaAt(issue.path, data));
    const meant = issue.keys.length === 1 ? closest(issue.keys[0]!, keys) : null;
    return `${where} has unknown key(s) ${issue.keys.join(', ')}${meant ? ` (did you mean ${meant}?)` : ''}; valid keys here: ${keys.join(', ')}`;
  }
  if (issue.code === 'invalid_union' && 'discriminator' in issue && 'options' in issue) {
    const options = (issue as { options: unknown[] }).options.map(String).join(', ');
    return got === undefined ? `${where} is required: one of ${options}` : `${where} must be one of ${options}, got ${JSON.stringify(got)}`;
  }
  const description = (schemaAt(issue.path, data) as { description?: string } | null)?.description;
  if (got === undefined && issue.code === 'invalid_type') return `${where} is required${description ? `: ${description}` : ''}`;
  if (issue.code === 'invalid_value') return `${where} must be one of ${issue.values.map((v) => String(v)).join(', ')}, got ${JSON.stringify(got)}`;
  const must = mustAt(issue.path, data);
  if (must) return `${where} must be ${must}, got ${JSON.stringify(got)}`;
  return `${where} is invalid: ${issue.message}, got ${JSON.stringify(got)}`;
}

/**
 * Which environment variable stands for each key (keyed by its path joined with dots) and, when it is
 * set, its text as written.
 */
export type EnvNames = Map<string, { name: string; raw?: string }>;

export const pathKey = (path: readonly PropertyKey[]): string => path.map(String).join('.');

/**
 * One line for the first thing wrong with the environment's settings, named by the variable: the
 * nearest path above the issue that a variable set (BRIDGE_STREAMS for one of its items).
 */
export function envIssueMessage(issue: z.core.$ZodIssue, data: unknown, names: EnvNames): string {
  for (let n = issue.path.length; n >= 0; n--) {
    const field = issue.path.slice(0, n);
    const at = names.get(pathKey(field));
    if (!at) continue;
    const exact = n === issue.path.length;
    const got = exact ? (at.raw ?? valueAt(data, issue.path)) : valueAt(data, issue.path);
    if (exact && issue.code === 'invalid_value') return `${at.name} must be one of ${issue.values.map((v) => String(v)).join(', ')}, got ${show(got)}`;
    const must = mustAt(field, data);
    return must ? `${at.name} must be ${must}, got ${show(got)}` : `${at.name} is invalid: ${issue.message}, got ${show(got)}`;
  }
  return `${pathKey(issue.path) || 'the environment'} is invalid: ${issue.message}`;
}
