/**
 * Prometheus metrics, one registry per process, with prom-client's process and runtime metrics
 * (`process_resident_memory_bytes`, `nodejs_eventloop_lag_seconds`, …). Outbox depth and age are read
 * from the store when scraped, so they are exact whoever wrote the rows.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { SINK_STATES, type SinkState } from '../delivery/states.js';
import type { AnyBridgeEvent } from '../events/types.js';
import { SEVERITY_NUMBER } from '../monitors/spec.js';
import type { Store } from '../store/index.js';

/** What the ops server scrapes. */
export interface Scrapable {
  readonly registry: Registry;
  render(): Promise<string>;
}


function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

function sinkStateGauge(registry: Registry): Gauge {
  return new Gauge({
    name: 'bridge_sink_state',
    help: "Each sink's state: 1 for the one it is in (ok, failing, paused, open), 0 for the others",
    labelNames: ['sink', 'state'],
    registers: [registry],
  });
}

function setState(gauge: Gauge, sink: string, state: SinkState): void {
  for (const s of SINK_STATES) gauge.set({ sink, state: s }, s === state ? 1 : 0);
}

/** A worker's metrics: its delivery attempts, its sinks' states as it sees them, and the process's. */
export class WorkerMetrics implements Scrapable {
  readonly registry = processRegistry();
  readonly deliveries = new Counter({ name: 'bridge_deliveries_total', help: 'Delivery attempts, by sink and outcome (delivered, retrying, dead)', labelNames: ['sink', 'outcome', 'event'], registers: [this.registry] });
  readonly sinkState = sinkStateGauge(this.registry);

  setSinkState(sink: string, state: SinkState): void {
    setState(this.sinkState, sink, state);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

export class Metrics implements Scrapable {
  readonly registry = processRegistry();
  readonly polls = new Counter({ name: 'bridge_polls_total', help: 'Polls of a Langfuse source, by outcome', labelNames: ['source', 'outcome'], registers: [this.registry] });
  readonly langfuseCalls = new Counter({ name: 'bridge_langfuse_requests_total', help: 'Calls to the Langfuse API, by HTTP status (error: no answer)', labelNames: ['status'], registers: [this.registry] });
  readonly rateLimitWaits = new Gauge({ name: 'bridge_langfuse_rate_limit_wait_seconds', help: 'Time spent waiting for the request ceiling or a 429 Retry-After', registers: [this.registry] });
  readonly events = new Counter({ name: 'bridge_events_total', help: 'Events committed to the outbox, by type', labelNames: ['event'], registers: [this.registry] });
  readonly deliveries = new Counter({ name: 'bridge_deliveries_total', help: 'Delivery attempts, by sink and outcome (delivered, retrying, dead)', labelNames: ['sink', 'outcome', 'event'], registers: [this.registry] });
  readonly sweepLag = new Gauge({ name: 'bridge_late_data_sweep_behind_seconds', help: 'How long the current late-data sweep has been running behind (0: up to date)', labelNames: ['source'], registers: [this.registry] });
  readonly lastPollAge = new Gauge({ name: 'bridge_last_successful_poll_age_seconds', help: 'Seconds since the last successful poll', registers: [this.registry] });
  readonly tokens = new Counter({ name: 'bridge_generation_tokens_total', help: 'Tokens of generations seen, by model and kind (prompt, completion, total)', labelNames: ['model', 'kind'], registers: [this.registry] });
  readonly cost = new Counter({ name: 'bridge_generation_cost_usd_total', help: 'Cost of generations seen, by model', labelNames: ['model'], registers: [this.registry] });
  readonly outboxDepth = new Gauge({ name: 'bridge_outbox_deliveries', help: 'Deliveries in the outbox not yet delivered or dead, by sink and status (queued, retrying, delivering)', labelNames: ['sink', 'status'], registers: [this.registry] });
  readonly oldestPending = new Gauge({ name: 'bridge_outbox_oldest_pending_age_seconds', help: 'Age of the oldest delivery not yet delivered or dead', registers: [this.registry] });
  readonly pollInterval = new Gauge({ name: 'bridge_poll_interval_effective_seconds', help: 'Seconds between polls as they run (measured over the last polls; the pace the request ceiling allows until then)', labelNames: ['project'], registers: [this.registry] });
  readonly pollIntervalSet = new Gauge({ name: 'bridge_poll_interval_configured_seconds', help: 'BRIDGE_POLL_INTERVAL_SECONDS', labelNames: ['project'], registers: [this.registry] });
  readonly requestCeiling = new Gauge({ name: 'bridge_langfuse_request_ceiling', help: 'Calls a minute allowed to Langfuse, shared by every process on the database', labelNames: ['project'], registers: [this.registry] });
  readonly monitorValue = new Gauge({ name: 'bridge_monitor_value', help: "Each monitor's value on its last evaluated window (NaN: no data)", labelNames: ['project', 'monitor'], registers: [this.registry] });
  readonly monitorSeverity = new Gauge({ name: 'bridge_monitor_severity', help: "Each monitor's severity: 0 ok, 1 warning, 2 alert", labelNames: ['project', 'monitor'], registers: [this.registry] });
  /** Per project: the poll pace, for /healthz. */
  readonly paces = new Map<string, { intervalSeconds: number; effectiveIntervalSeconds: number; measuredIntervalSeconds: number | null; ceiling: number; callsPerPoll: number }>();
  readonly sinkState = sinkStateGauge(this.registry);
  lastPollOk: number | null = null;
  lastPollError: number | null = null;
  readonly startedAt = Date.now();
  private store: Store | null = null;
  /** Reads the limiter's wait total at scrape time. */
  waitSource: (() => number) | null = null;

  setPollPace(p: { project: string; intervalSeconds: number; effectiveIntervalSeconds: number; measuredIntervalSeconds: number | null; ceiling: number; callsPerPoll: number }): void {
    this.paces.set(p.project, p);
    this.pollInterval.set({ project: p.project }, p.measuredIntervalSeconds ?? p.effectiveIntervalSeconds);
    this.pollIntervalSet.set({ project: p.project }, p.intervalSeconds);
    this.requestCeiling.set({ project: p.project }, p.ceiling);
  }

  bindStore(store: Store): void {
    this.store = store;
  }

  setSinkState(sink: string, state: SinkState): void {
    setState(this.sinkState, sink, state);
  }

  onEvent(e: AnyBridgeEvent): void {
    this.events.inc({ event: e.event });
    if (e.event === 'generation.created') {
      const model = e.data.model ?? 'unknown';
      const u = e.data.usage;
      if (u.promptTokens) this.tokens.inc({ model, kind: 'prompt' }, u.promptTokens);
      if (u.completionTokens) this.tokens.inc({ model, kind: 'completion' }, u.completionTokens);
      if (u.totalTokens) this.tokens.inc({ model, kind: 'total' }, u.totalTokens);
      if (e.data.totalCost) this.cost.inc({ model }, e.data.totalCost);
    }
  }

  async render(): Promise<string> {
    const now = Date.now();
    this.lastPollAge.set(this.lastPollOk === null ? (now - this.startedAt) / 1000 : (now - this.lastPollOk) / 1000);
    if (this.waitSource) this.rateLimitWaits.set(this.waitSource() / 1000);
    if (this.store?.isOpen) {
      this.outboxDepth.reset();
      // Open rows only: a scrape must not scan a month of delivered rows (bridge_deliveries_total counts those).
      for (const r of this.store.openCounts()) this.outboxDepth.set({ sink: r.sink, status: r.status }, r.n);
      const oldest = this.store.oldestPendingAt();
      this.oldestPending.set(oldest === null ? 0 : (now - oldest) / 1000);
      this.monitorValue.reset();
      this.monitorSeverity.reset();
      for (const m of this.store.monitors.states()) {
        this.monitorValue.set({ project: m.project, monitor: m.monitor }, m.value ?? Number.NaN);
        this.monitorSeverity.set({ project: m.project, monitor: m.monitor }, SEVERITY_NUMBER[m.severity]);
      }
    }
    return this.registry.metrics();
  }
}
