/** Events as the bridge sends them, for tests of rules and alert sinks: a checkout trace that errored. */
import type { AnyBridgeEvent, TraceData } from '../../src/events/types.js';

export function errorTrace(over: Partial<TraceData> = {}, type: 'trace.created' | 'trace.updated' = 'trace.updated', id = 'evt_t1'): AnyBridgeEvent {
  return {
    id,
    event: type,
    timestamp: '2026-11-27T01:02:03.456Z',
    data: {
      projectId: 'p1',
      traceId: 't1',
      name: 'checkout',
      userId: null,
      sessionId: null,
      environment: 'production',
      tags: [],
      level: 'ERROR',
      statusMessage: 'TimeoutError: upstream timed out',
      ...over,
    },
  };
}
