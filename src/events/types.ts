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
  test: TestData;
}

export interface BridgeEvent<T extends EventType = EventType> {
  id: string;
  event: T;
  timestamp: string;
  data: EventDataByType[T];
}

export type AnyBridgeEvent = { [K in EventType]: BridgeEvent<K> }[EventType];
