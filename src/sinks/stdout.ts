/**
 * The stdout sink: one JSON line per event (indented when `pretty`), written in order with
 * backpressure respected. A closed pipe (EPIPE) is a failed attempt to retry, never a crash.
 */
import { matchesEventPatterns, type StdoutSinkConfig } from '../config.js';
import type { AnyBridgeEvent } from '../events/types.js';
import type { Delivery, DeliveryResult, Sink } from './types.js';

function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = (e instanceof Error ? e.message : String(err)).replace(/\s+/g, ' ').trim();
  if (code && !message.includes(code)) return `${code}: ${message}`;
  return message || code || 'write error';
}

export function createStdoutSink(cfg: StdoutSinkConfig, out: NodeJS.WritableStream = process.stdout): Sink {
  let lastError: unknown = null;
  // Kept for the sink's lifetime: without a listener, an EPIPE on process.stdout would kill the process.
  const onStreamError = (err: unknown): void => {
    lastError = err;
  };
  out.on('error', onStreamError);

  const writable = out as NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean };
  const closedReason = (): string | null => {
    if (lastError) return `stdout write failed: ${describeError(lastError)}`;
    if (writable.destroyed || writable.writableEnded) return 'stdout is closed';
    return null;
  };

  const format = (body: string): string => {
    if (!cfg.pretty) return `${body}\n`;
    try {
      return `${JSON.stringify(JSON.parse(body), null, 2)}\n`;
    } catch {
      return `${body}\n`;
    }
  };

  function deliver(delivery: Delivery, signal: AbortSignal): Promise<DeliveryResult> {
    const closed = closedReason();
    if (closed) return Promise.resolve({ ok: false, retry: true, reason: closed });
    if (signal.aborted) return Promise.resolve({ ok: false, retry: true, reason: 'aborted before writing' });

    return new Promise<DeliveryResult>((resolve) => {
      let settled = false;
      let written = false;
      let drained = true;

      const cleanup = (): void => {
        out.removeListener('error', onError);
        out.removeListener('drain', onDrain);
        out.removeListener('close', onClose);
        signal.removeEventListener('abort', onAbort);
      };
      const settle = (result: DeliveryResult): void => {
        if (settled) return;
        settled = true;
        cleanup();
        resolve(result);
      };
      const fail = (reason: string): void => settle({ ok: false, retry: true, reason });
      const maybeDone = (): void => {
        if (written && drained) settle({ ok: true });
      };
      function onError(err: unknown): void {
        fail(`stdout write failed: ${describeError(err)}`);
      }
      function onDrain(): void {
        drained = true;
        maybeDone();
      }
      function onClose(): void {
        // A clean close after our chunk was flushed is fine; before it, the line may be lost.
        if (!written) fail(closedReason() ?? 'stdout closed before the line was written');
        else {
          drained = true;
          maybeDone();
        }
      }
      function onAbort(): void {
        fail('aborted while waiting for stdout to drain');
      }

      out.on('error', onError);
      out.on('close', onClose);
      signal.addEventListener('abort', onAbort, { once: true });

      let accepted: boolean;
      try {
        accepted = out.write(format(delivery.body), (err?: Error | null) => {
          if (err) onError(err);
          else {
            written = true;
            maybeDone();
          }
        });
      } catch (err) {
        onError(err);
        return;
      }
      if (!accepted) {
        drained = false;
        out.on('drain', onDrain);
      }
    });
  }

  return {
    name: cfg.name,
    kind: 'stdout',
    alerting: false,
    concurrency: 1,
    minIntervalMs: 0,
    accepts: (event: AnyBridgeEvent) => matchesEventPatterns(cfg.events, event.event),
    deliver,
    validate: () => [],
    async close(): Promise<void> {
      out.removeListener('error', onStreamError);
    },
  };
}
