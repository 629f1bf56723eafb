/**
 * Raw API objects → records, leniently: real servers disagree with the spec and the SDK's types
 * (v2 servers have no environment, BOOLEAN scores as 1/0, CATEGORICAL values in stringValue), so
 * every field is checked here and an item without what events need is skipped, not fatal.
 */
import { LEVELS, type ObservationRecord, type PromptVersionRecord, type ScoreRecord, type TraceRecord } from '../events/records.js';
import type { Level } from '../events/types.js';

type Raw = Record<string, unknown>;

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
/** Already in the form toISOString() gives (what Langfuse sends): kept as it is, unparsed. */
const CANONICAL_ISO = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;
const isoOf = (v: unknown): string | null => {
  if (typeof v !== 'string') return null;
  // Days 29–31 exist only in some months: those go the long way, which rolls them over as before.
  if (CANONICAL_ISO.test(v) && (v.charCodeAt(8) < 50 || (v[8] === '2' && v[9] !== '9'))) return v;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
};
const strings = (v: unknown): string[] | null => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null);
const numberMap = (v: unknown): Record<string, number> | null => {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'number' && Number.isFinite(x)) out[k] = x;
  return out;
};
const level = (v: unknown): Level => (typeof v === 'string' && (LEVELS as string[]).includes(v) ? (v as Level) : 'DEFAULT');

export class MalformedItem extends Error {}

function need(raw: Raw, field: string, value: string | null): string {
  if (value === null || value === '') throw new MalformedItem(`missing or invalid ${field}`);
  return value;
}

export function toObservation(raw: Raw, includeIo: boolean): ObservationRecord {
  const usageDetails = numberMap(raw.usageDetails);
  const legacyUsage = raw.usage && typeof raw.usage === 'object' ? (raw.usage as Raw) : null;
  const promptTokens = num(raw.promptTokens) ?? num(usageDetails?.input) ?? num(legacyUsage?.input);
  const completionTokens = num(raw.completionTokens) ?? num(usageDetails?.output) ?? num(legacyUsage?.output);
  const totalTokens = num(raw.totalTokens) ?? num(usageDetails?.total) ?? num(legacyUsage?.total);
  const rec: ObservationRecord = {
    id: need(raw, 'id', str(raw.id)),
    traceId: need(raw, 'traceId', str(raw.traceId)),
    type: need(raw, 'type', str(raw.type)),
    name: str(raw.name),
    level: level(raw.level),
    statusMessage: str(raw.statusMessage),
    startTime: need(raw, 'startTime', isoOf(raw.startTime)),
    endTime: isoOf(raw.endTime),
    model: str(raw.providedModelName) ?? str(raw.model),
    promptTokens,
    completionTokens,
    totalTokens,
    usageDetails,
    costDetails: numberMap(raw.costDetails),
    totalCost: num(raw.totalCost) ?? num(raw.calculatedTotalCost),
    updatedAt: isoOf(raw.updatedAt),
    environment: str(raw.environment),
    userId: str(raw.userId),
    sessionId: str(raw.sessionId),
    traceName: str(raw.traceName),
    tags: strings(raw.tags),
    isRoot: raw.isRootObservation === true,
  };
  if (includeIo) {
    rec.input = raw.input ?? null;
    rec.output = raw.output ?? null;
  }
  return rec;
}

export function toTrace(raw: Raw): TraceRecord {
  return {
    id: need(raw, 'id', str(raw.id)),
    timestamp: need(raw, 'timestamp', isoOf(raw.timestamp)),
    name: str(raw.name),
    userId: str(raw.userId),
    sessionId: str(raw.sessionId),
    environment: str(raw.environment),
    tags: strings(raw.tags) ?? [],
    observationIds: strings(raw.observations),
  };
}

/** Types the value as Langfuse v3 does, in both generations. */
export function toScore(raw: Raw): ScoreRecord {
  const dataType = str(raw.dataType) ?? (typeof raw.value === 'number' ? 'NUMERIC' : 'CATEGORICAL');
  let value: number | boolean | string | null;
  let stringValue: string | null = str(raw.stringValue);
  switch (dataType) {
    case 'NUMERIC':
      value = num(raw.value);
      stringValue = null;
      break;
    case 'BOOLEAN': {
      const v = raw.value;
      value = typeof v === 'boolean' ? v : typeof v === 'number' ? v !== 0 : typeof stringValue === 'string' ? /^(true|1)$/i.test(stringValue) : null;
      stringValue = value === null ? null : value ? 'True' : 'False';
      break;
    }
    default:
      value = str(raw.value) ?? stringValue ?? (raw.value === null || raw.value === undefined ? null : String(raw.value));
      stringValue = typeof value === 'string' ? value : stringValue;
  }
  const subject = raw.subject && typeof raw.subject === 'object' ? (raw.subject as Raw) : null;
  const kind = str(subject?.kind);
  return {
    id: need(raw, 'id', str(raw.id)),
    name: need(raw, 'name', str(raw.name)),
    traceId: str(raw.traceId) ?? str(subject?.traceId) ?? (kind === 'trace' ? str(subject?.id) : null),
    observationId: str(raw.observationId) ?? (kind === 'observation' ? str(subject?.id) : null),
    sessionId: str(raw.sessionId) ?? (kind === 'session' ? str(subject?.id) : null),
    value,
    stringValue,
    dataType,
    source: str(raw.source),
    comment: str(raw.comment),
    timestamp: need(raw, 'timestamp', isoOf(raw.timestamp)),
    updatedAt: isoOf(raw.updatedAt),
  };
}

export function toPromptVersion(raw: Raw): PromptVersionRecord {
  const version = num(raw.version);
  if (version === null) throw new MalformedItem('missing or invalid version');
  return {
    name: need(raw, 'name', str(raw.name)),
    version,
    labels: strings(raw.labels) ?? [],
    tags: strings(raw.tags) ?? [],
    createdAt: isoOf(raw.createdAt),
    updatedAt: isoOf(raw.updatedAt),
    prompt: raw,
  };
}

/** Maps a page's items, skipping (and reporting) the ones that cannot become records. */
export function mapItems<T>(items: unknown, map: (raw: Raw) => T, onSkip: (why: string, raw: unknown) => void): T[] {
  if (!Array.isArray(items)) throw new MalformedItem('the page has no data array');
  const out: T[] = [];
  for (const it of items) {
    if (!it || typeof it !== 'object') {
      onSkip('not an object', it);
      continue;
    }
    try {
      out.push(map(it as Raw));
    } catch (err) {
      if (err instanceof MalformedItem) onSkip(err.message, it);
      else throw err;
    }
  }
  return out;
}
