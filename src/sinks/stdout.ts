/**
 * The stdout sink: one JSON line per event (indented when `pretty`), written in order with
 * backpressure respected. Lines handed over in the same turn of the event loop go out in one write,
 * and each delivery is acknowledged only once that write has been accepted by the stream.
 * A closed pipe (EPIPE) is a failed attempt to retry, never a crash.
 */
import { z } from 'zod';
import { flag } from '../config/fields.js';
import { oneLine } from '../errors.js';
import { defineSinkKind, sinkFields } from './kind.js';
import type { Delivery, DeliveryResult, Sink } from './types.js';

export interface StdoutSinkConfig {
  type: 'stdout';
  name: string;
  events: string[];
  pretty: boolean;
}

const defaults = { pretty: false };

/** Made by BRIDGE_STDOUT (or top-level `stdout`), or when no other sink takes events: see src/config/index.ts. */
export const stdoutSink = defineSinkKind({
  kind: 'stdout',
  alerting: false,
  defaults,
  schema: z
    .object({
      type: z.literal('stdout'),
      name: sinkFields.name.optional(),
      events: sinkFields.events.optional(),
      pretty: flag(`one readable line per event instead of JSON lines; default ${defaults.pretty}`).optional(),
    })
    .strict()
    .describe('events as JSON lines on standard output (BRIDGE_STDOUT)'),
  read: (s): Omit<StdoutSinkConfig, 'name'> => ({ type: 'stdout', events: s.events, pretty: s.pretty ?? defaults.pretty }),
  create: (config: StdoutSinkConfig, deps) => createStdoutSink(config, deps.stdout),
});

/** A stream error with its code (EPIPE, EBADF), which says more than its message. */
function describeError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const message = oneLine(err);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}

/** Lines taken in per write (at least one entry); more wait for the next one. */
const MAX_BATCH = 256;

interface Pending {
  /** One line, or a group's lines. */
  line: string;
  lines: number;
  resolve: (r: DeliveryResult) => void;
  signal: AbortSignal;
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

  let waiting: Pending[] = [];
  let scheduled = false;
  let writing = false;

  const schedule = (): void => {
    if (scheduled || writing || waiting.length === 0) return;
    scheduled = true;
    setImmediate(flush);
  };

  /** Writes what has gathered as one chunk; settles its deliveries when the stream took it. */
  function flush(): void {
    scheduled = false;
    // An attempt aborted before its line went out is not written at all.
    const all = waiting;
    const live: Pending[] = [];
    for (const p of all) {
      if (p.signal.aborted) p.resolve({ ok: false, retry: true, reason: 'aborted before writing' });
      else live.push(p);
    }
    let take = 0;
    for (let lines = 0; take < live.length && (take === 0 || lines + live[take]!.lines <= MAX_BATCH); take++) lines += live[take]!.lines;
    const batch = live.slice(0, take);
    waiting = live.slice(take);
    if (batch.length === 0) return;
    const closed = closedReason();
    if (closed) {
      for (const p of batch) p.resolve({ ok: false, retry: true, reason: closed });
      schedule();
      return;
    }
    writing = true;
    let settled = false;
    let written = false;
    let drained = true;
    const signals = new Set(batch.map((p) => p.signal));
    const settle = (result: DeliveryResult): void => {
      if (settled) return;
      settled = true;
      out.removeListener('error', onError);
      out.removeListener('drain', onDrain);
      out.removeListener('close', onClose);
      for (const sig of signals) sig.removeEventListener('abort', onAbort);
      writing = false;
      for (const p of batch) p.resolve(result);
      schedule();
    };
    const maybeDone = (): void => {
      if (written && drained) settle({ ok: true });
    };
    function onError(err: unknown): void {
      settle({ ok: false, retry: true, reason: `stdout write failed: ${describeError(err)}` });
    }
    function onDrain(): void {
      drained = true;
      maybeDone();
    }
    // Shutting down while the stream is stuck: this batch and every line still waiting give up (and are
    // retried later; a line the stream did take may then appear twice, which at-least-once allows).
    function onAbort(): void {
      settle({ ok: false, retry: true, reason: 'aborted while waiting for stdout to drain' });
      const rest = waiting;
      waiting = [];
      for (const p of rest) p.resolve({ ok: false, retry: true, reason: 'aborted before writing' });
    }
    function onClose(): void {
      // A clean close after our chunk was flushed is fine; before it, the lines may be lost.
      if (!written) settle({ ok: false, retry: true, reason: closedReason() ?? 'stdout closed before the line was written' });
      else {
        drained = true;
        maybeDone();
      }
    }
    out.on('error', onError);
    out.on('close', onClose);
    for (const sig of signals) sig.addEventListener('abort', onAbort, { once: true });
    let accepted: boolean;
    try {
      const chunk = batch.length === 1 ? batch[0]!.line : batch.map((p) => p.line).join('');
      accepted = out.write(chunk, (err?: Error | null) => {
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
    if (!accepted && !settled) {
      drained = false;
      out.on('drain', onDrain);
    }
  }

  /** Queues one entry (one line, or a group's lines as one) for the next write. */
  function enqueue(line: () => string, lines: number, signal: AbortSignal): Promise<DeliveryResult> {
    const closed = closedReason();
    if (closed) return Promise.resolve({ ok: false, retry: true, reason: closed });
    if (signal.aborted) return Promise.resolve({ ok: false, retry: true, reason: 'aborted before writing' });
    return new Promise<DeliveryResult>((resolve) => {
      waiting.push({ line: line(), lines, resolve, signal });
      schedule();
    });
  }

  const deliver = (delivery: Delivery, signal: AbortSignal): Promise<DeliveryResult> => enqueue(() => format(delivery.body), 1, signal);

  const deliverGroup = (deliveries: Delivery[], signal: AbortSignal): Promise<DeliveryResult> =>
    enqueue(() => {
      let chunk = '';
      for (const d of deliveries) chunk += format(d.body);
      return chunk;
    }, deliveries.length, signal);

  return {
    name: cfg.name,
    kind: stdoutSink.kind,
    alerting: stdoutSink.alerting,
    // Many lines in flight so they can share a write; they are still written in the order handed over.
    concurrency: MAX_BATCH,
    minIntervalMs: 0,
    events: cfg.events,
    deliver,
    deliverGroup,
    validate: () => [],
    async close(): Promise<void> {
      out.removeListener('error', onStreamError);
    },
  };
}
