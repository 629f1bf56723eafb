/**
 * A local webhook receiver on 127.0.0.1:0 that records every request (raw body and headers) and can
 * be told to fail: a status for the next K requests, a status always, hang (never answer), or a
 * custom responder.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  /** ms epoch when the body was complete */
  at: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** raw body, exactly as sent */
  body: string;
  /** status answered; 0 while hanging / never answered */
  status: number;
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hang';
export type Responder = (req: ReceivedRequest, index: number) => Answer | undefined;

export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  private server: http.Server | null = null;
  private baseUrl: string | null = null;
  private readonly failQueue: Answer[] = [];
  private mode: Answer | null = null;
  private responder: Responder | null = null;
  private readonly hanging = new Set<http.ServerResponse>();
  private delayMs = 0;

  get url(): string {
    if (!this.baseUrl) throw new Error('receiver not started');
    return `${this.baseUrl}/hooks/langfuse`;
  }

  async start(): Promise<string> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rec: ReceivedRequest = {
          at: Date.now(),
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          status: 0,
        };
        const index = this.requests.length;
        this.requests.push(rec);
        const answer: Answer = this.responder?.(rec, index) ?? this.failQueue.shift() ?? this.mode ?? { status: 200 };
        if (answer === 'hang') {
          this.hanging.add(res);
          res.on('close', () => this.hanging.delete(res));
          return;
        }
        const reply = (): void => {
          if (res.destroyed) return;
          rec.status = answer.status;
          res.writeHead(answer.status, { 'content-type': 'text/plain', ...(answer.headers ?? {}) });
          res.end(answer.body ?? 'ok');
        };
        if (this.delayMs > 0) setTimeout(reply, this.delayMs);
        else reply();
      });
    });
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.url;
  }

  /** The next `count` requests answer `status`. */
  failNext(status: number, count: number, headers?: Record<string, string>): void {
    for (let i = 0; i < count; i++) this.failQueue.push({ status, headers });
  }

  /** Every request (after queued failures) answers this; null: 200. */
  setMode(mode: Answer | null): void {
    this.mode = mode;
  }

  /** Answer every request this many ms after its body arrived (0: at once). */
  setDelay(ms: number): void {
    this.delayMs = ms;
  }

  setResponder(fn: Responder | null): void {
    this.responder = fn;
  }

  /** Requests answered 2xx. */
  get accepted(): ReceivedRequest[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300);
  }

  get hangingCount(): number {
    return this.hanging.size;
  }

  /** Answers every hanging request with 503 and forgets them. */
  releaseHanging(): void {
    for (const res of this.hanging) {
      try {
        res.writeHead(503);
        res.end();
      } catch {
        /* already gone */
      }
    }
    this.hanging.clear();
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

export async function startReceiver(): Promise<Receiver> {
  const r = new Receiver();
  await r.start();
  return r;
}
