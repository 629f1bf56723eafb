/**
 * What the commands see of delivery, whichever backend does it: the in-process Dispatcher (this
 * folder) or QueueDelivery, which relays the outbox to Redis for BullMQ workers (src/queue/).
 */
import type { Sink } from '../sinks/types.js';
import type { Handoff } from './handoff.js';
import type { AttemptOutcome, SinkState } from './states.js';

export interface DeliveryBackend {
  start(): void;
  /** New work was written: look now instead of at the next idle tick. */
  wake(): void;
  /** Resolves when no delivery of this backend's origin is queued, retrying or in flight. */
  drain(signal?: AbortSignal): Promise<void>;
  /**
   * Stops taking work; lets deliveries in flight finish for up to graceMs. Whatever did not finish
   * stays queued for the next process.
   */
  stop(graceMs?: number): Promise<void>;
  /**
   * A hand-off for one write transaction (see handoff.ts); null when this backend takes no rows in
   * memory (the Redis relay reads them from the outbox).
   */
  handoff(): Handoff | null;
}

/** What a backend tells its owner (metrics) as it works. */
export interface DeliveryHooks {
  /** One attempt ended, leaving its delivery in this state. */
  onOutcome?(sink: Sink, outcome: AttemptOutcome, eventType: string, ms: number): void;
  /** A sink changed state (ok, failing, paused, open). */
  onState?(sink: string, state: SinkState): void;
}
