import type { Delivery, DeliveryResult, Sink } from '../../src/sinks/types.js';

/** A sink that records every attempt in memory and answers as `behave` says (delivered by default). */
export function memorySink(name: string, behave: (d: Delivery) => DeliveryResult | Promise<DeliveryResult> = () => ({ ok: true })): Sink & { got: Delivery[] } {
  const got: Delivery[] = [];
  return {
    name,
    kind: 'handler',
    alerting: false,
    concurrency: 4,
    minIntervalMs: 0,
    got,
    events: ['*'],
    async deliver(d) {
      got.push(d);
      return behave(d);
    },
  };
}
