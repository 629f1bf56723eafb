/**
 * Text the sinks share: cutting, a receiver's answer cut for the attempt log, the numbers and links that Slack messages and PagerDuty summaries both show.
 */
import type { AnyBridgeEvent } from '../events/types.js';


/** At most `max` characters, an ellipsis in place of what was cut. */
export function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return String(Math.round(v * 10_000) / 10_000);
}

export function formatCost(v: number): string {
  if (v !== 0 && Math.abs(v) < 0.01) return `$${v.toPrecision(2)}`;
  return `$${v.toFixed(v >= 100 ? 2 : 4)}`;
}

/** The Langfuse host without trailing slashes, for building links. */
export function baseUrl(url: string): string {
  return url.replace(/\/+$/, '');
}

/** The page in Langfuse an event is about (trace, session or prompt), or null. */
export function langfuseUrlFor(event: AnyBridgeEvent, langfuseBaseUrl: string): string | null {
  const project = `${baseUrl(langfuseBaseUrl)}/project/${encodeURIComponent(event.data.projectId)}`;
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated':
      return `${project}/traces/${encodeURIComponent(event.data.traceId)}`;
    case 'generation.created':
    case 'generation.updated':
      return `${project}/traces/${encodeURIComponent(event.data.traceId)}?observation=${encodeURIComponent(event.data.observationId)}`;
    case 'score.created':
    case 'score.updated':
      if (event.data.traceId) {
        const obs = event.data.observationId ? `?observation=${encodeURIComponent(event.data.observationId)}` : '';
        return `${project}/traces/${encodeURIComponent(event.data.traceId)}${obs}`;
      }
      if (event.data.sessionId) return `${project}/sessions/${encodeURIComponent(event.data.sessionId)}`;
      return project;
    case 'prompt.created':
    case 'prompt.updated': {
      const name = event.data.prompt.name;
      return typeof name === 'string' ? `${project}/prompts/${encodeURIComponent(name)}` : `${project}/prompts`;
    }
    case 'test':
      return project;
    case 'monitor.alert':
    case 'monitor.warning':
    case 'monitor.resolved':
      return event.data.url;
  }
}

/** How much of a receiver's answer an attempt keeps (the attempt log, the console). */
export const RESPONSE_EXCERPT_BYTES = 256;

/**
 * A receiver's answer cut to at most 256 bytes of UTF-8 (never in the middle of a character), with
 * every value in `redact` (our secret, the headers we sent, should the receiver echo them) replaced.
 */
export function excerpt(raw: Buffer | string, redact: Array<string | null | undefined> = []): string | null {
  let text = typeof raw === 'string' ? raw : raw.toString('utf8');
  for (const r of redact) if (r && r.length >= 4) text = text.split(r).join('[redacted]');
  if (text.length === 0) return null;
  let buf = Buffer.from(text, 'utf8');
  if (buf.length <= RESPONSE_EXCERPT_BYTES) return text;
  buf = buf.subarray(0, RESPONSE_EXCERPT_BYTES);
  // Drop a character cut in half (continuation bytes 10xxxxxx after its lead byte).
  let end = buf.length;
  let i = end - 1;
  while (i > 0 && (buf[i]! & 0xc0) === 0x80) i--;
  const lead = buf[i]!;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (i + need > end) end = i;
  return buf.subarray(0, end).toString('utf8');
}

/** Slack's mrkdwn escaping: the three characters it reads as markup. */
export function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
