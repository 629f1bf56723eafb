/** The events the bridge sends: their types and the shape of each one's data. */

/** The event shape receivers already parse: `{id, event, timestamp, data}`. */
export const EVENT_TYPES = [
  'trace.created',
  'trace.updated',
  'generation.created',
  'generation.updated',
  'score.created',
  'score.updated',
  'prompt.created',
  'prompt.updated',
  'monitor.alert',
  'monitor.warning',
  'monitor.resolved',
  'test',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type Level = 'DEBUG' | 'DEFAULT' | 'WARNING' | 'ERROR';

export interface TraceData {
  projectId: string;
  traceId: string;
  name: string | null;
  userId: string | null;
  sessionId: string | null;
  environment: string | null;
  tags: string[];
  level: Level;
  statusMessage: string | null;
}

export interface GenerationData {
  projectId: string;
  observationId: string;
  traceId: string;
  name: string | null;
  model: string | null;
  level: Level;
  statusMessage: string | null;
  startTime: string;
  endTime: string | null;
  usage: { promptTokens: number | null; completionTokens: number | null; totalTokens: number | null };
  usageDetails: Record<string, number> | null;
  costDetails: Record<string, number> | null;
  totalCost: number | null;
  input?: unknown;
  output?: unknown;
}

export interface ScoreData {
  projectId: string;
  scoreId: string;
  traceId: string | null;
  observationId: string | null;
  sessionId: string | null;
  name: string;
  value: number | boolean | string | null;
  stringValue: string | null;
  dataType: string;
  source: string | null;
  comment: string | null;
}

export interface PromptData {
  projectId: string;
  prompt: Record<string, unknown>;
}

/** A monitor's change of severity (src/monitors/): the window it was decided on and what it measured. */
export interface MonitorData {
  projectId: string;
  monitor: string;
  severity: 'ok' | 'warning' | 'alert';
  previousSeverity: 'ok' | 'warning' | 'alert';
  /** null: the window had no data. */
  value: number | null;
  /** The threshold crossed (alert or warning), or for a resolve the alert threshold. */
  threshold: number;
  op: string;
  metric: string;
  of: string | null;
  /** The window as written in the config (`15m`). */
  window: string;
  windowStart: string;
  windowEnd: string;
  samples: number;
  /** Langfuse filtered like the monitor. */
  url: string;
  /** The last windows' values, oldest first, this one last. */
  recent: Array<number | null>;
  /** Set when the monitor was resolved because it left the config. */
  removed?: true;
}

export interface TestData {
  projectId: string;
  message: string;
}

export interface EventDataByType {
  'trace.created': TraceData;
  'trace.updated': TraceData;
  'generation.created': GenerationData;
  'generation.updated': GenerationData;
  'score.created': ScoreData;
  'score.updated': ScoreData;
  'prompt.created': PromptData;
  'prompt.updated': PromptData;
  'monitor.alert': MonitorData;
  'monitor.warning': MonitorData;
  'monitor.resolved': MonitorData;
  test: TestData;
}

export interface BridgeEvent<T extends EventType = EventType> {
  id: string;
  event: T;
  timestamp: string;
  data: EventDataByType[T];
}

export type AnyBridgeEvent = { [K in EventType]: BridgeEvent<K> }[EventType];
