/** What every sink is: the delivery it is handed, the outcome it gives back, and the Sink interface. */
import type { AnyBridgeEvent } from '../events/types.js';
import type { SinkKind } from './kinds.js';

/** One attempt at handing one event to one sink. */
export interface Delivery {
  eventId: string;
  eventType: string;
  /** The exact JSON body, byte for byte the same on every attempt. */
  body: string;
  /** Parsed body, for sinks that build their own message (Slack, PagerDuty, handlers). */
  event: AnyBridgeEvent;
  /**
   * What an alert sink sends for this event, decided when it was routed (src/rules/route.ts, compact
   * JSON) and stored with the outbox row; null for other sinks, monitor events, the digest, and rows
   * queued by a version that stored no decision.
   */
  route: string | null;
  /** 1 on the first attempt. */
  attempt: number;
}

export type DeliveryResult =
  | { ok: true; status?: number; response?: string | null }
  | {
      ok: false;
      /** false: dead-letter now (e.g. 410, Slack 4xx); true: retry on the schedule. */
      retry: boolean;
      /** Wait at least this long before the next attempt (Retry-After). */
      retryAfterMs?: number;
      /** One line, shown by `status` and in logs. Never contains secrets. */
      reason: string;
      status?: number;
      /** At most 256 bytes of the receiver's answer, secrets and our own headers taken out. */
      response?: string | null;
    };

export interface Sink {
  readonly name: string;
  readonly kind: SinkKind;
  /** Alert sinks (Slack, PagerDuty) are not fed history unless asked. */
  readonly alerting: boolean;
  /** How many attempts may be in flight at once. */
  readonly concurrency: number;
  /** At most one attempt started per this many ms (Slack: 1000). 0: no pacing. */
  readonly minIntervalMs: number;
  /**
   * The event types it takes, globs allowed (its `events`; a handler's, those its module handles).
   * Which events it gets is decided by src/rules/route.ts, rules included.
   */
  readonly events: readonly string[];
  deliver(delivery: Delivery, signal: AbortSignal): Promise<DeliveryResult>;
  /**
   * For sinks where many deliveries cost about what one does (stdout: one write): delivers them in
   * order, in one go, with one result for all. The dispatcher then calls this instead of deliver(),
   * unless the sink is paced (minIntervalMs > 0).
   */
  deliverGroup?(deliveries: Delivery[], signal: AbortSignal): Promise<DeliveryResult>;
  /** Checks settings without sending anything; returns problems, empty when fine. */
  validate?(): string[];
  close?(): Promise<void>;
}
