/**
 * One vocabulary for a delivery's life, used alike by the outbox, both delivery backends, the attempt
 * log, `status`, `/metrics`, the console and the logs (as BullMQ names its jobs' states):
 *
 *   queued → delivering → delivered
 *                       ↘ retrying → delivering … → dead (after the last attempt, or refused for good)
 *
 * and one for a sink's health (see health.ts).
 */

export const DELIVERY_STATUSES = ['queued', 'delivering', 'retrying', 'delivered', 'dead'] as const;
/** Where a delivery (one event for one sink) stands. */
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** What one attempt left its delivery in. */
export type AttemptOutcome = Extract<DeliveryStatus, 'delivered' | 'retrying' | 'dead'>;

/** How a delivery ended: no more attempts follow. */
export type FinalStatus = Extract<AttemptOutcome, 'delivered' | 'dead'>;

export const SINK_STATES = ['ok', 'failing', 'paused', 'open'] as const;
/** A sink's state, named alike in `status`, `/metrics`, logs and the console. */
export type SinkState = (typeof SINK_STATES)[number];
