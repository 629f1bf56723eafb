/**
 * Types for handler modules (`BRIDGE_HANDLERS=./handlers.mjs`, or a `handler` sink in the config
 * file): plain functions the bridge calls in-process for each event, instead of a webhook. A module
 * needs nothing of this package at run time: a plain file exporting the map works anywhere, typed or
 * not (`/** @type {import('langfuse-bridge').HandlerMap} *\/`). Where the package is installed:
 *
 * ```ts
 * import { defineHandlers } from 'langfuse-bridge';
 *
 * export default defineHandlers({
 *   'trace.updated': async (event) => {
 *     if (event.data.level === 'ERROR') await openTicket(event.data.traceId, event.data.statusMessage);
 *   },
 *   onScoreCreated: async (event) => { ... },   // camelCase names work too
 *   '*': (event) => console.log(event.event),    // every other event
 * });
 * ```
 * A handler that throws or rejects is retried on the delivery schedule, then dead-lettered.
 */
import { EVENT_TYPES } from './events/types.js';
import type { BridgeEvent, EventType } from './events/types.js';

export { EVENT_TYPES } from './events/types.js';
export type {
  AnyBridgeEvent,
  BridgeEvent,
  EventDataByType,
  EventType,
  GenerationData,
  Level,
  PromptData,
  ScoreData,
  TestData,
  TraceData,
} from './events/types.js';

/** What a handler gets besides the event. */
export interface HandlerContext {
  /** The event id, also `event.id`; use it to make side effects idempotent (delivery is at least once). */
  eventId: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** Aborted when the attempt times out or the bridge shuts down. */
  signal: AbortSignal;
  /** The handler sink's name. */
  sink: string;
}

export type EventHandler<T extends EventType = EventType> = (event: BridgeEvent<T>, ctx: HandlerContext) => unknown;
/** A handler for every event type (the `'*'` key, `onEvent`, or a default-exported function). */
export type AnyEventHandler = (event: { [K in EventType]: BridgeEvent<K> }[EventType], ctx: HandlerContext) => unknown;

/** `trace.created` → `onTraceCreated`, `test` → `onTest`. */
export type CamelHandlerName<T extends string> = T extends `${infer A}.${infer B}` ? `on${Capitalize<A>}${Capitalize<B>}` : `on${Capitalize<T>}`;

type EventGroup = EventType extends infer T ? (T extends `${infer G}.${string}` ? G : never) : never;

export type HandlerMap = { [K in EventType]?: EventHandler<K> } & { [K in EventType as CamelHandlerName<K>]?: EventHandler<K> } & {
  [G in EventGroup as `${G}.*`]?: (event: BridgeEvent<Extract<EventType, `${G}.${string}`>>, ctx: HandlerContext) => unknown;
} & {
  '*'?: AnyEventHandler;
  onEvent?: AnyEventHandler;
};

/** Identity at run time; gives handler modules typed events for each key. */
export function defineHandlers<T extends HandlerMap>(handlers: T): T {
  return handlers;
}

/** `trace.created` → `onTraceCreated`. */
export function handlerExportName(type: EventType): string {
  return `on${type
    .split('.')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('')}`;
}

/** `onTraceCreated` → `trace.created`; null when the name is no event handler name. */
export function eventTypeForExportName(name: string): EventType | null {
  for (const t of EVENT_TYPES) if (handlerExportName(t) === name) return t;
  return null;
}
