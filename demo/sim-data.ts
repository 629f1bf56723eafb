/**
 * In-memory data of the simulated Langfuse server: traces, observations, scores and prompt versions,
 * plus the deterministic bulk generator. Rows are plain objects; each table keeps their sort time (ms) and
 * the time from which a row is visible to list endpoints (late ingestion) in typed columns, and sorts
 * lazily (newest first, then id descending) on the first read after a change.
 */

export type ApiGeneration = 'v4' | 'v3' | 'v2';

export type SimObservationType = 'GENERATION' | 'SPAN' | 'EVENT' | 'AGENT' | 'TOOL';
export type SimLevel = 'DEBUG' | 'DEFAULT' | 'WARNING' | 'ERROR';

export interface SimObservation {
  id: string;
  traceId: string;
  type: SimObservationType;
  name: string | null;
  startTime: string;
  endTime: string | null;
  level: SimLevel;
  statusMessage: string | null;
  model: string | null;
  promptTokens: number;
  completionTokens: number;
  totalCost: number | null;
  input: unknown;
  output: unknown;
  parentObservationId: string | null;
  updatedAt: string;
  createdAt: string;
  environment: string;
}

export interface SimTrace {
  id: string;
  name: string | null;
  timestamp: string;
  userId: string | null;
  sessionId: string | null;
  tags: string[];
  environment: string;
  release: string | null;
  updatedAt: string;
  createdAt: string;
}

export interface SimScore {
  id: string;
  traceId: string | null;
  observationId: string | null;
  sessionId: string | null;
  name: string;
  dataType: 'NUMERIC' | 'BOOLEAN' | 'CATEGORICAL';
  /** NUMERIC: number, BOOLEAN: true/false, CATEGORICAL: the string label. */
  value: number | string | boolean;
  comment: string | null;
  source: 'API' | 'EVAL' | 'ANNOTATION';
  timestamp: string;
  createdAt: string;
  updatedAt: string;
  environment: string;
}

export interface SimPromptVersion {
  name: string;
  version: number;
  type: 'text' | 'chat';
  prompt: unknown;
  labels: string[];
  tags: string[];
  config: unknown;
  commitMessage: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface GenerateOptions {
  from: Date;
  to: Date;
  traces: number;
  observationsPerTrace?: number;
  scoresPerTrace?: number;
  errorRate?: number;
  warningRate?: number;
}

export interface GenerateResult {
  traces: number;
  observations: number;
  scores: number;
  generations: number;
  errorTraces: number;
}

export interface ModelInfo {
  /** internal model id, as Langfuse's model table would have it */
  id: string;
  /** USD per input token */
  input: number;
  /** USD per output token */
  output: number;
}

export const MODELS: Readonly<Record<string, ModelInfo>> = {
  'gpt-4o-mini': { id: 'clyrjp56f0000t0mzapoocd7u', input: 1.5e-7, output: 6e-7 },
  'gpt-4o': { id: 'clm0obv1u00003b6lc2etkzfu', input: 2.5e-6, output: 1e-5 },
  'claude-3-5-sonnet-20241022': { id: 'cm2krz1uf000208jjg5653iud', input: 3e-6, output: 1.5e-5 },
};

export function modelInfo(model: string | null): ModelInfo | undefined {
  return model === null ? undefined : MODELS[model];
}

/** Small fast deterministic PRNG (mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const idBuf = Buffer.alloc(16);

/** Random lowercase hex id of 16 or 32 characters (OpenTelemetry span / trace id sizes). */
export function hexId(rng: () => number, len: 16 | 32): string {
  const bytes = len / 2;
  for (let i = 0; i < bytes; i += 4) idBuf.writeUInt32BE(Math.floor(rng() * 4294967296), i);
  // a flat string straight from the buffer: cheaper than concatenating pieces
  return idBuf.toString('hex', 0, bytes);
}

const isoDate = new Date(0);
const isoBuf = Buffer.alloc(24);
let isoMinute = Number.NaN;
/**
 * ISO string of an epoch-ms time. generate() calls this a few hundred thousand times, so the
 * "YYYY-MM-DDTHH:MM:" prefix is cached per minute and the rest written as bytes (a flat string, no Date).
 */
export function iso(ms: number): string {
  if (!(ms >= 0 && ms < 253402300800000) || !Number.isInteger(ms)) {
    isoDate.setTime(ms);
    return isoDate.toISOString();
  }
  const minute = Math.floor(ms / 60000);
  if (minute !== isoMinute) {
    isoMinute = minute;
    isoDate.setTime(minute * 60000);
    isoBuf.write(isoDate.toISOString(), 0, 'latin1');
  }
  const r = ms - minute * 60000;
  const sec = Math.floor(r / 1000);
  const milli = r - sec * 1000;
  isoBuf[17] = 48 + Math.floor(sec / 10);
  isoBuf[18] = 48 + (sec % 10);
  isoBuf[20] = 48 + Math.floor(milli / 100);
  isoBuf[21] = 48 + (Math.floor(milli / 10) % 10);
  isoBuf[22] = 48 + (milli % 10);
  return isoBuf.toString('latin1', 0, 24);
}

function parseTime(value: string, what: string): number {
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new Error(`invalid ${what}: ${value}`);
  return ms;
}

/**
 * Rows of one kind. Rows are plain objects in insertion order; their sort time (ms) and the time from which
 * they are listed (`vis`, ms) live in typed columns, so a row costs no wrapper objects. `sorted()` gives row
 * indices newest first, then id descending; it is rebuilt lazily (new rows are merged in, a changed sort time
 * triggers a full sort). The id index is built lazily too.
 */
export class Table<T extends { id: string }> {
  readonly rows: T[] = [];
  ts = new Float64Array(1024);
  vis = new Float64Array(1024);
  private order = new Uint32Array(0);
  private ordered = 0;
  private dirty = false;
  private readonly byId = new Map<string, number>();
  private indexed = 0;

  get length(): number {
    return this.rows.length;
  }

  add(row: T, ts: number, vis: number): number {
    const i = this.rows.length;
    if (i === this.ts.length) {
      const ts2 = new Float64Array(i * 2);
      ts2.set(this.ts);
      this.ts = ts2;
      const vis2 = new Float64Array(i * 2);
      vis2.set(this.vis);
      this.vis = vis2;
    }
    this.rows.push(row);
    this.ts[i] = ts;
    this.vis[i] = vis;
    return i;
  }

  /** Row index of an id. */
  find(id: string): number | undefined {
    const rows = this.rows;
    for (; this.indexed < rows.length; this.indexed++) {
      this.byId.set((rows[this.indexed] as T).id, this.indexed);
    }
    return this.byId.get(id);
  }

  row(i: number): T {
    const r = this.rows[i];
    if (r === undefined) throw new Error(`no row ${i}`);
    return r;
  }

  setTs(i: number, ts: number): void {
    if (this.ts[i] !== ts) {
      this.ts[i] = ts;
      this.dirty = true;
    }
  }

  /** Negative when row a lists before row b (newer, or same time and greater id). */
  compare(a: number, b: number): number {
    const d = (this.ts[b] as number) - (this.ts[a] as number);
    if (d !== 0) return d;
    const x = (this.rows[a] as T).id;
    const y = (this.rows[b] as T).id;
    return x < y ? 1 : x > y ? -1 : 0;
  }

  /** Row indices, newest first, then id descending. */
  sorted(): Uint32Array {
    const n = this.rows.length;
    if (!this.dirty && this.ordered === n) return this.order;
    const next = new Uint32Array(n);
    if (!this.dirty && n - this.ordered <= 64) {
      // a few new rows (a trickle): insert them one by one
      next.set(this.order.subarray(0, this.ordered));
      let len = this.ordered;
      for (let i = this.ordered; i < n; i++) {
        let lo = 0;
        let hi = len;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (this.compare(next[mid] as number, i) < 0) lo = mid + 1;
          else hi = mid;
        }
        next.copyWithin(lo + 1, lo, len);
        next[lo] = i;
        len++;
      }
    } else {
      for (let i = 0; i < n; i++) next[i] = i;
      next.sort((a, b) => this.compare(a, b));
    }
    this.order = next;
    this.ordered = n;
    this.dirty = false;
    return next;
  }
}

const TRACE_KINDS = [
  { name: 'chat-completion', root: 'handle-chat', tags: ['prod', 'chat'] },
  { name: 'rag-query', root: 'rag-pipeline', tags: ['prod', 'rag'] },
  { name: 'agent-run', root: 'agent-loop', tags: ['agent'] },
  { name: 'summarize', root: 'summarize-doc', tags: ['batch'] },
] as const;
const MODEL_NAMES = ['gpt-4o-mini', 'gpt-4o-mini', 'claude-3-5-sonnet-20241022', 'gpt-4o'] as const;
const ERROR_MESSAGES = [
  'RateLimitError: upstream 429',
  'APIConnectionError: connection reset by peer',
  'InvalidRequestError: maximum context length exceeded',
  'Timeout: no response after 30s',
] as const;
const CATEGORIES = ['positive', 'neutral', 'negative'] as const;

function pick<T>(rng: () => number, items: readonly T[]): T {
  const v = items[Math.floor(rng() * items.length)];
  if (v === undefined) throw new Error('pick from empty list');
  return v;
}

export interface BuildTraceOptions {
  ts: number;
  /** exclusive upper bound for every startTime/timestamp of the trace (generate's `to`) */
  maxTs: number;
  seq: number;
  observations: number;
  scores: number;
  error: boolean;
  warning: boolean;
  vis: number;
  /** ms of ingestion; createdAt/updatedAt; default: the event time plus a little */
  ingestedAt?: number;
}

export class SimStore {
  readonly traces = new Table<SimTrace>();
  readonly observations = new Table<SimObservation>();
  readonly scores = new Table<SimScore>();
  readonly prompts = new Map<string, SimPromptVersion[]>();
  // trace id -> row indices, built lazily
  private readonly obsByTrace = new Map<string, number[]>();
  private readonly scoresByTrace = new Map<string, number[]>();
  private obsByTraceUpTo = 0;
  private scoresByTraceUpTo = 0;
  private readonly idRng: () => number;
  private generateCalls = 0;
  private seq = 0;

  constructor(
    readonly generation: ApiGeneration,
    readonly seed: number,
    readonly ingestionDelayMs: number,
  ) {
    this.idRng = mulberry32(seed ^ 0x5eed1d5);
  }

  // ---------- lookups ----------

  getTrace(id: string): SimTrace | undefined {
    const i = this.traces.find(id);
    return i === undefined ? undefined : this.traces.rows[i];
  }

  getObservation(id: string): SimObservation | undefined {
    const i = this.observations.find(id);
    return i === undefined ? undefined : this.observations.rows[i];
  }

  getScore(id: string): SimScore | undefined {
    const i = this.scores.find(id);
    return i === undefined ? undefined : this.scores.rows[i];
  }

  /** Row indices of a trace's observations. */
  observationsOfTrace(traceId: string): readonly number[] {
    const rows = this.observations.rows;
    for (; this.obsByTraceUpTo < rows.length; this.obsByTraceUpTo++) {
      const tid = (rows[this.obsByTraceUpTo] as SimObservation).traceId;
      const list = this.obsByTrace.get(tid);
      if (list) list.push(this.obsByTraceUpTo);
      else this.obsByTrace.set(tid, [this.obsByTraceUpTo]);
    }
    return this.obsByTrace.get(traceId) ?? [];
  }

  /** Row indices of a trace's scores. */
  scoresOfTrace(traceId: string): readonly number[] {
    const rows = this.scores.rows;
    for (; this.scoresByTraceUpTo < rows.length; this.scoresByTraceUpTo++) {
      const tid = (rows[this.scoresByTraceUpTo] as SimScore).traceId;
      if (tid === null) continue;
      const list = this.scoresByTrace.get(tid);
      if (list) list.push(this.scoresByTraceUpTo);
      else this.scoresByTrace.set(tid, [this.scoresByTraceUpTo]);
    }
    return this.scoresByTrace.get(traceId) ?? [];
  }

  private visibleFrom(visibleAt: Date | undefined, now: number): number {
    return visibleAt ? visibleAt.getTime() : now + this.ingestionDelayMs;
  }

  // ---------- traces ----------

  addTrace(t: Partial<SimTrace>, visibleAt?: Date): SimTrace {
    const now = Date.now();
    const nowIso = iso(now);
    const at = t.id !== undefined ? this.traces.find(t.id) : undefined;
    if (at !== undefined) {
      // upsert, as Langfuse does for a re-sent trace
      const row = this.traces.row(at);
      Object.assign(row, stripUndefined(t), { updatedAt: t.updatedAt ?? nowIso });
      this.traces.setTs(at, parseTime(row.timestamp, 'timestamp'));
      if (visibleAt) this.traces.vis[at] = visibleAt.getTime();
      return row;
    }
    const row: SimTrace = {
      id: t.id ?? hexId(this.idRng, 32),
      name: t.name ?? null,
      timestamp: t.timestamp ?? nowIso,
      userId: t.userId ?? null,
      sessionId: t.sessionId ?? null,
      tags: t.tags ?? [],
      environment: t.environment ?? 'default',
      release: t.release ?? null,
      updatedAt: t.updatedAt ?? nowIso,
      createdAt: t.createdAt ?? nowIso,
    };
    this.traces.add(row, parseTime(row.timestamp, 'timestamp'), this.visibleFrom(visibleAt, now));
    return row;
  }

  // ---------- observations ----------

  addObservation(o: Partial<SimObservation> & { traceId: string }, visibleAt?: Date): SimObservation {
    const now = Date.now();
    const nowIso = iso(now);
    const at = o.id !== undefined ? this.observations.find(o.id) : undefined;
    if (at !== undefined) {
      const row = this.observations.row(at);
      this.updateObservation(row.id, o);
      if (visibleAt) this.observations.vis[at] = visibleAt.getTime();
      return row;
    }
    const trace = this.getTrace(o.traceId);
    const type = o.type ?? 'SPAN';
    const startTime = o.startTime ?? trace?.timestamp ?? nowIso;
    const startMs = parseTime(startTime, 'startTime');
    const model = o.model !== undefined ? o.model : type === 'GENERATION' ? 'gpt-4o-mini' : null;
    const promptTokens = o.promptTokens ?? 0;
    const completionTokens = o.completionTokens ?? 0;
    const price = modelInfo(model);
    const computedCost =
      price && promptTokens + completionTokens > 0
        ? promptTokens * price.input + completionTokens * price.output
        : null;
    const row: SimObservation = {
      id: o.id ?? hexId(this.idRng, 16),
      traceId: o.traceId,
      type,
      name: o.name ?? null,
      startTime,
      endTime: o.endTime !== undefined ? o.endTime : type === 'EVENT' ? null : iso(startMs + 250),
      level: o.level ?? 'DEFAULT',
      statusMessage: o.statusMessage ?? null,
      model,
      promptTokens,
      completionTokens,
      totalCost: o.totalCost !== undefined ? o.totalCost : computedCost,
      input: o.input ?? null,
      output: o.output ?? null,
      parentObservationId: o.parentObservationId ?? null,
      updatedAt: o.updatedAt ?? nowIso,
      createdAt: o.createdAt ?? nowIso,
      environment: o.environment ?? trace?.environment ?? 'default',
    };
    this.observations.add(row, startMs, this.visibleFrom(visibleAt, now));
    return row;
  }

  updateObservation(id: string, patch: Partial<SimObservation>): void {
    const at = this.observations.find(id);
    if (at === undefined) throw new Error(`unknown observation ${id}`);
    const row = this.observations.row(at);
    const oldTrace = row.traceId;
    const clean = stripUndefined(patch);
    delete clean.id;
    Object.assign(row, clean);
    if (patch.updatedAt === undefined) row.updatedAt = iso(Date.now());
    this.observations.setTs(at, parseTime(row.startTime, 'startTime'));
    if (row.traceId !== oldTrace) {
      this.observationsOfTrace(oldTrace); // bring the index up to date first
      const old = this.obsByTrace.get(oldTrace);
      if (old) old.splice(old.indexOf(at), 1);
      const list = this.obsByTrace.get(row.traceId);
      if (list) list.push(at);
      else this.obsByTrace.set(row.traceId, [at]);
    }
  }

  // ---------- scores ----------

  addScore(s: Partial<SimScore>, visibleAt?: Date): SimScore {
    const now = Date.now();
    const nowIso = iso(now);
    const at = s.id !== undefined ? this.scores.find(s.id) : undefined;
    if (at !== undefined) {
      // a re-sent score keeps its id, timestamp and createdAt; value and updatedAt change
      const { timestamp: _t, createdAt: _c, ...rest } = s;
      const row = this.scores.row(at);
      this.updateScore(row.id, rest);
      if (visibleAt) this.scores.vis[at] = visibleAt.getTime();
      return row;
    }
    const value = s.value ?? 1;
    const dataType =
      s.dataType ?? (typeof value === 'boolean' ? 'BOOLEAN' : typeof value === 'string' ? 'CATEGORICAL' : 'NUMERIC');
    const trace = s.traceId ? this.getTrace(s.traceId) : undefined;
    const row: SimScore = {
      id: s.id ?? hexId(this.idRng, 32),
      traceId: s.traceId ?? null,
      observationId: s.observationId ?? null,
      sessionId: s.sessionId ?? null,
      name: s.name ?? 'score',
      dataType,
      value,
      comment: s.comment ?? null,
      source: s.source ?? 'API',
      timestamp: s.timestamp ?? nowIso,
      createdAt: s.createdAt ?? nowIso,
      updatedAt: s.updatedAt ?? nowIso,
      environment: s.environment ?? trace?.environment ?? 'default',
    };
    this.scores.add(row, parseTime(row.timestamp, 'timestamp'), this.visibleFrom(visibleAt, now));
    return row;
  }

  updateScore(id: string, patch: Partial<SimScore>): void {
    const at = this.scores.find(id);
    if (at === undefined) throw new Error(`unknown score ${id}`);
    const row = this.scores.row(at);
    const oldTrace = row.traceId;
    const clean = stripUndefined(patch);
    delete clean.id;
    Object.assign(row, clean);
    if (patch.updatedAt === undefined) row.updatedAt = iso(Date.now());
    this.scores.setTs(at, parseTime(row.timestamp, 'timestamp'));
    if (row.traceId !== oldTrace) {
      if (oldTrace !== null) {
        this.scoresOfTrace(oldTrace); // bring the index up to date first
        const old = this.scoresByTrace.get(oldTrace);
        if (old) old.splice(old.indexOf(at), 1);
      }
      if (row.traceId !== null) {
        const list = this.scoresByTrace.get(row.traceId);
        if (list) list.push(at);
        else this.scoresByTrace.set(row.traceId, [at]);
      }
    }
  }

  // ---------- prompts ----------

  addPromptVersion(p: Partial<SimPromptVersion> & { name: string }): SimPromptVersion {
    const nowIso = iso(Date.now());
    const versions = this.prompts.get(p.name) ?? [];
    const maxVersion = versions.reduce((m, v) => Math.max(m, v.version), 0);
    const version = p.version ?? maxVersion + 1;
    if (versions.some((v) => v.version === version)) {
      throw new Error(`prompt ${p.name} version ${version} exists`);
    }
    const prompt =
      p.prompt ??
      (p.type === 'chat'
        ? [
            { role: 'system', content: `You are ${p.name}, version ${version}.` },
            { role: 'user', content: '{{question}}' },
          ]
        : `You are ${p.name}, version ${version}. Answer: {{question}}`);
    const type = p.type ?? (Array.isArray(prompt) ? 'chat' : 'text');
    const tags = p.tags ?? versions[0]?.tags ?? [];
    const row: SimPromptVersion = {
      name: p.name,
      version,
      type,
      prompt,
      labels: [],
      tags: [...tags],
      config: p.config ?? {},
      commitMessage: p.commitMessage ?? null,
      createdAt: p.createdAt ?? nowIso,
      updatedAt: p.updatedAt ?? p.createdAt ?? nowIso,
    };
    versions.push(row);
    versions.sort((a, b) => a.version - b.version);
    this.prompts.set(p.name, versions);
    // tags are shared by all versions of a prompt
    if (p.tags) for (const v of versions) v.tags = [...p.tags];
    const labels = [...(p.labels ?? [])];
    const newest = versions[versions.length - 1] === row;
    if (newest && !labels.includes('latest')) labels.push('latest');
    this.applyLabels(versions, row, labels, row.updatedAt);
    return row;
  }

  setPromptLabels(name: string, version: number, labels: string[]): void {
    const versions = this.prompts.get(name);
    const target = versions?.find((v) => v.version === version);
    if (!versions || !target) throw new Error(`unknown prompt ${name} version ${version}`);
    const next = [...labels];
    // `latest` is managed by Langfuse: it stays on the newest version
    if (target.labels.includes('latest') && !next.includes('latest')) next.push('latest');
    this.applyLabels(versions, target, next, iso(Date.now()));
  }

  private applyLabels(versions: SimPromptVersion[], target: SimPromptVersion, labels: string[], at: string): void {
    const unique = [...new Set(labels)];
    for (const v of versions) {
      if (v === target) continue;
      const kept = v.labels.filter((l) => !unique.includes(l));
      if (kept.length !== v.labels.length) {
        v.labels = kept;
        v.updatedAt = at;
      }
    }
    const changed = unique.length !== target.labels.length || unique.some((l) => !target.labels.includes(l));
    target.labels = unique;
    if (changed && target.updatedAt < at) target.updatedAt = at;
  }

  // ---------- bulk generation ----------

  /** A rng for one call of generate(): the n-th call on a simulator with a given seed always gets the same stream. */
  nextGenerateRng(): () => number {
    this.generateCalls += 1;
    return mulberry32((this.seed * 2654435761 + this.generateCalls * 40503) >>> 0);
  }

  generate(opts: GenerateOptions, rng: () => number = this.nextGenerateRng()): GenerateResult {
    const from = opts.from.getTime();
    const to = opts.to.getTime();
    if (!(to > from)) throw new Error('generate: `to` must be after `from`');
    const n = Math.max(0, Math.floor(opts.traces));
    const perTrace = Math.max(1, Math.floor(opts.observationsPerTrace ?? 5));
    const scores = Math.max(0, Math.floor(opts.scoresPerTrace ?? 1));
    const errorRate = opts.errorRate ?? 0.05;
    const warningRate = opts.warningRate ?? 0.05;
    const step = (to - from) / Math.max(1, n);
    const vis = Date.now() + this.ingestionDelayMs;
    const result: GenerateResult = { traces: 0, observations: 0, scores: 0, generations: 0, errorTraces: 0 };
    for (let i = 0; i < n; i++) {
      const ts = Math.min(to - 1, Math.floor(from + step * i + rng() * step * 0.9));
      const error = rng() < errorRate;
      const warning = !error && rng() < warningRate;
      const r = this.buildTrace(rng, {
        ts,
        maxTs: to,
        seq: this.seq++,
        observations: perTrace,
        scores,
        error,
        warning,
        vis,
      });
      result.traces += 1;
      result.observations += r.observations;
      result.scores += r.scores;
      result.generations += r.generations;
      if (error) result.errorTraces += 1;
    }
    return result;
  }

  /** Adds one trace with its observations and scores. Returns counts. */
  buildTrace(
    rng: () => number,
    o: BuildTraceOptions,
  ): { trace: SimTrace; observations: number; scores: number; generations: number } {
    const gen = this.generation;
    const seq = o.seq;
    const kind = pick(rng, TRACE_KINDS);
    const last = o.maxTs - 1;
    const clamp = (ms: number): number => (ms > last ? last : ms);
    const user = Math.floor(rng() * 50);
    const traceId = hexId(rng, 32);
    const environment = rng() < 0.85 ? 'production' : 'staging';
    // the SDK sends a trace and its observations in batches, shortly after the trace ended
    const batchIngested = o.ingestedAt !== undefined ? iso(o.ingestedAt) : iso(o.ts + 6000);
    const trace: SimTrace = {
      id: traceId,
      name: kind.name,
      timestamp: iso(o.ts),
      userId: `user-${user}`,
      sessionId: rng() < 0.66 ? `sess-${Math.floor(rng() * 400)}` : null,
      tags: rng() < 0.2 ? [...kind.tags, 'beta'] : [...kind.tags],
      environment,
      release: 'v1.4.0',
      updatedAt: batchIngested,
      createdAt: batchIngested,
    };
    this.traces.add(trace, o.ts, o.vis);

    // observation plan: root SPAN, one GENERATION, sometimes a second GENERATION / an EVENT, the rest spans or tools
    const plan: SimObservationType[] = [];
    const children = o.observations - 1;
    if (children >= 1) plan.push('GENERATION');
    let extra = children - 1;
    if (extra > 0 && rng() < 0.5) {
      plan.push('GENERATION');
      extra--;
    }
    let event = false;
    if (extra > 0 && rng() < 0.4) {
      event = true;
      extra--;
    }
    for (let k = 0; k < extra; k++) {
      plan.splice(Math.floor(rng() * (plan.length + 1)), 0, gen !== 'v2' && k % 2 === 1 ? 'TOOL' : 'SPAN');
    }
    if (event) plan.push('EVENT');

    const rootId = hexId(rng, 16);
    let t = o.ts + 3 + Math.floor(rng() * 10);
    let generations = 0;
    let firstGenerationId: string | null = null;
    let errorDone = !o.error;
    let warningDone = !o.warning;
    const question = `question ${seq}`;
    for (const type of plan) {
      const start = clamp(t);
      let dur = 0;
      let name: string;
      let model: string | null = null;
      let promptTokens = 0;
      let completionTokens = 0;
      let totalCost: number | null = null;
      let input: unknown = null;
      let output: unknown = null;
      let level: SimLevel = 'DEFAULT';
      let statusMessage: string | null = null;
      if (type === 'GENERATION') {
        generations++;
        dur = 400 + Math.floor(rng() * 1600);
        name = generations === 1 ? 'llm-call' : 'llm-followup';
        model = pick(rng, MODEL_NAMES);
        promptTokens = 200 + Math.floor(rng() * 1300);
        completionTokens = 40 + Math.floor(rng() * 360);
        const price = MODELS[model];
        totalCost = price ? promptTokens * price.input + completionTokens * price.output : null;
        input = [{ role: 'user', content: question }];
        output = { role: 'assistant', content: `answer ${seq}` };
        if (!errorDone) {
          errorDone = true;
          level = 'ERROR';
          statusMessage = `${pick(rng, ERROR_MESSAGES)} (trace ${seq})`;
          output = null;
          completionTokens = 0;
          totalCost = price ? promptTokens * price.input : null;
        } else if (!warningDone) {
          warningDone = true;
          level = 'WARNING';
          statusMessage = `slow response (trace ${seq})`;
        }
      } else if (type === 'EVENT') {
        name = 'cache-check';
        input = { key: `k-${seq}` };
      } else if (type === 'TOOL') {
        dur = 100 + Math.floor(rng() * 400);
        name = 'web-search';
        input = { query: question };
        output = { results: 1 + Math.floor(rng() * 5) };
      } else {
        dur = 50 + Math.floor(rng() * 300);
        name = 'retrieve';
        input = { q: seq };
        output = { docs: 1 + Math.floor(rng() * 5) };
      }
      const end = type === 'EVENT' ? null : iso(start + dur);
      const row: SimObservation = {
        id: hexId(rng, 16),
        traceId,
        type,
        name,
        startTime: iso(start),
        endTime: end,
        level,
        statusMessage,
        model,
        promptTokens,
        completionTokens,
        totalCost,
        input,
        output,
        parentObservationId: rootId,
        updatedAt: batchIngested,
        createdAt: batchIngested,
        environment,
      };
      this.observations.add(row, start, o.vis);
      if (type === 'GENERATION' && firstGenerationId === null) firstGenerationId = row.id;
      t = start + dur + 2 + Math.floor(rng() * 20);
    }
    const rootEnd = t;
    this.observations.add(
      {
        id: rootId,
        traceId,
        type: 'SPAN',
        name: kind.root,
        startTime: trace.timestamp,
        endTime: iso(rootEnd),
        level: 'DEFAULT',
        statusMessage: null,
        model: null,
        promptTokens: 0,
        completionTokens: 0,
        totalCost: null,
        input: { query: question },
        output: o.error ? null : { answer: `answer ${seq}` },
        parentObservationId: null,
        updatedAt: batchIngested,
        createdAt: batchIngested,
        environment,
      },
      o.ts,
      o.vis,
    );

    // scores arrive after the trace finished (evaluations)
    for (let j = 0; j < o.scores; j++) {
      const at = clamp(rootEnd + 200 + Math.floor(rng() * 2000) + j);
      const r = rng();
      let name: string;
      let dataType: SimScore['dataType'];
      let value: number | string | boolean;
      let observationId: string | null = null;
      if (r < 0.7 || (r >= 0.85 && firstGenerationId === null)) {
        dataType = 'NUMERIC';
        name = j === 0 ? 'accuracy' : 'relevance';
        value = Math.round(rng() * 1000) / 1000;
      } else if (r < 0.85) {
        dataType = 'BOOLEAN';
        name = 'is_correct';
        value = rng() < 0.8;
      } else {
        dataType = 'CATEGORICAL';
        name = 'sentiment';
        value = pick(rng, CATEGORIES);
        observationId = firstGenerationId;
      }
      const atIso = iso(at);
      const score: SimScore = {
        id: hexId(rng, 32),
        traceId,
        observationId,
        sessionId: null,
        name,
        dataType,
        value,
        comment: rng() < 0.3 ? 'auto' : null,
        source: rng() < 0.8 ? 'API' : 'EVAL',
        timestamp: atIso,
        createdAt: o.ingestedAt !== undefined ? batchIngested : atIso,
        updatedAt: o.ingestedAt !== undefined ? batchIngested : atIso,
        environment,
      };
      this.scores.add(score, at, o.vis);
    }
    return { trace, observations: plan.length + 1, scores: o.scores, generations };
  }

  nextSeq(): number {
    return this.seq++;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
