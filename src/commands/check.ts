/**
 * `check`: exercises what `run` needs, one ✔/✘ line each: Langfuse for each project (probed with the
 * client alone, no poller), the database read only, Redis, the sinks, the ops port.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Logger } from 'pino';
import { projectConfigs, type BridgeConfig } from '../config/index.js';
import { redactUrl } from '../http.js';
import { LangfuseError } from '../langfuse/client.js';
import { checkMonitors } from '../monitors/check.js';
import { createBufferedLogger } from '../ops/logger.js';
import { closeSinks, createSinks } from '../sinks/index.js';
import { PATHS } from '../sources/index.js';
import { SCHEMA_VERSION, Store, databaseProblem, peekDatabase, unwritable } from '../store/index.js';
import { daemonState, readDaemon, type DaemonRecord } from '../store/daemon.js';
import { createClient, describeDaemon, queueModule } from './shared.js';
import { readStatus } from './status.js';

/** `check` as the CLI calls it: the results on stdout, then what was logged while getting them; 0 or 1. */
export async function checkCommand(config: BridgeConfig, logLevel: string): Promise<number> {
  // Its own logger, buffered: the results first, then whatever was logged while getting them.
  const { logger, flush } = createBufferedLogger(logLevel);
  try {
    const r = await check(config, logger);
    process.stdout.write(`${r.lines.join('\n')}\n`);
    return r.ok ? 0 : 1;
  } finally {
    flush();
  }
}

/** The endpoints a stream reads, per API generation (legacy: with the scores path the server serves). */
function streamEndpoints(stream: string, generation: 'v4' | 'legacy', legacyScores: string): string[] {
  if (stream === 'prompts') return [PATHS.prompts];
  if (generation === 'v4') return stream === 'scores' ? [PATHS.scoresV3] : [PATHS.observationsV2];
  if (stream === 'scores') return [legacyScores];
  // Legacy traces come from the trace list, their levels from the observations.
  return stream === 'traces' ? [PATHS.traces, PATHS.observationsV1] : [PATHS.observationsV1];
}

const PROBE_QUERY: Record<string, Record<string, string | number>> = { [PATHS.observationsV2]: { limit: 1, fields: 'core' } };

/**
 * Langfuse for one project, without building a poller: reachable, accepting the keys, and serving
 * every endpoint of each configured stream in the API generation `run` would use.
 */
async function checkLangfuse(config: BridgeConfig, logger: Logger): Promise<{ ok: boolean; lines: string[]; summary: string }> {
  const url = redactUrl(config.langfuse.baseUrl);
  const client = createClient(config, logger, { probe: true });
  // Each path once: absent (404), served, or the error that stops the check.
  const served = new Map<string, boolean>();
  const serves = async (path: string): Promise<boolean> => {
    if (!served.has(path)) {
      try {
        await client.get(path, PROBE_QUERY[path] ?? { limit: 1 });
        served.set(path, true);
      } catch (err) {
        if (err instanceof LangfuseError && err.kind === 'absent') served.set(path, false);
        else throw err;
      }
    }
    return served.get(path)!;
  };
  const fail = (line: string) => ({ ok: false, lines: [`✘ ${line}`], summary: `✘ ${line}` });
  try {
    let version: string | null = null;
    try {
      const h = await client.get<{ version?: unknown }>(PATHS.health, {}, undefined, { auth: false });
      version = typeof h?.version === 'string' ? h.version : null;
    } catch (err) {
      // Health is optional (a proxy may hide it); a host that does not answer at all is not.
      if (!(err instanceof LangfuseError) || err.kind === 'transient') throw err;
    }
    let projectId: string | null = null;
    try {
      const body = await client.get<{ data?: Array<{ id?: unknown }> }>('/api/public/projects');
      const id = body?.data?.[0]?.id;
      projectId = typeof id === 'string' && id ? id : null;
    } catch (err) {
      if (!(err instanceof LangfuseError) || err.kind !== 'absent') throw err;
    }
    const mode = config.langfuse.api;
    const generation = mode === 'auto' ? ((await serves(PATHS.observationsV2)) ? 'v4' : 'legacy') : mode;
    const legacyScores = generation === 'legacy' && config.streams.includes('scores') ? ((await serves(PATHS.scoresV2)) ? PATHS.scoresV2 : PATHS.scoresV1) : PATHS.scoresV1;
    const missing: Array<{ stream: string; paths: string[] }> = [];
    const streamLines: string[] = [];
    for (const stream of config.streams) {
      const paths = streamEndpoints(stream, generation, legacyScores);
      const absent: string[] = [];
      for (const p of paths) if (!(await serves(p))) absent.push(p);
      if (absent.length) missing.push({ stream, paths: absent });
      streamLines.push(absent.length ? `✘ stream ${stream}: ${absent.join(', ')} not served by this Langfuse (HTTP 404)` : `✔ stream ${stream}: ${paths.join(', ')} served`);
    }
    // Every path 404 (the keys never reached a Langfuse API): the base URL is wrong, not the server old.
    if (projectId === null && [...served.values()].every((v) => !v)) {
      const hint = /\/api(\/|$)/.test(new URL(config.langfuse.baseUrl).pathname) ? ' (drop the /api/public path: the host alone)' : '';
      return fail(`Langfuse ${url} answers 404 to every API path: LANGFUSE_BASE_URL must be the Langfuse host${hint}`);
    }
    const server = version ? ` (server ${version})` : '';
    const head = `Langfuse ${url}${server}: credentials accepted${projectId ? `, project ${projectId}` : ''}`;
    const genText =
      generation === 'v4'
        ? 'API generation: v4 (v2 observations + v3 scores)'
        : `API generation: legacy (traces, v1 observations, ${legacyScores === PATHS.scoresV1 ? 'v1' : 'v2'} scores)`;
    const forced = mode !== 'auto';
    const genLine =
      forced && missing.length
        ? `✘ ${genText}, forced by BRIDGE_LANGFUSE_API=${mode}, but this server does not serve ${[...new Set(missing.flatMap((m) => m.paths))].join(', ')}; set BRIDGE_LANGFUSE_API=auto`
        : `✔ ${genText}${forced ? `, forced by BRIDGE_LANGFUSE_API=${mode}` : ''}`;
    const ok = missing.length === 0;
    const summary = ok
      ? `✔ ${head}, ${genText}`
      : `✘ ${head}, ${genText}, but ${missing.map((m) => `stream ${m.stream} (${m.paths.join(', ')})`).join(', ')} not served`;
    return { ok, lines: [`✔ ${head}`, genLine, ...streamLines], summary };
  } catch (err) {
    // The client's own message already says what was refused and what to check.
    if (err instanceof LangfuseError && err.kind === 'auth') return fail(err.message);
    return fail(`Langfuse ${url} unreachable or failing: ${(err as Error).message}`);
  } finally {
    await client.close();
  }
}

interface DatabaseCheck {
  ok: boolean;
  line: string;
  /** A daemon is running on it: the ops port it holds is then taken by it, presumably. */
  daemonRunning: boolean;
}

/** The database as `run` would use it, read only: usable, schema, a daemon already on it. */
function checkDatabase(config: BridgeConfig): DatabaseCheck {
  const file = config.database;
  if (!existsSync(file)) {
    const why = unwritable(file);
    return why
      ? { ok: false, line: `✘ database ${file}: does not exist and cannot be created: ${why}; point BRIDGE_DATABASE at a writable place`, daemonRunning: false }
      : { ok: true, line: `✔ database ${file}: does not exist yet; \`langfuse-bridge run\` creates it`, daemonRunning: false };
  }
  const why = unwritable(file) ?? (existsSync(`${file}-shm`) ? null : unwritable(`${file}-shm`));
  if (why) return { ok: false, line: `✘ database ${file} is read-only: ${why}; make it writable, or point BRIDGE_DATABASE at a writable place`, daemonRunning: false };
  let store: Store;
  try {
    store = new Store(file, { readonly: true });
  } catch (err) {
    const p = databaseProblem(err, file);
    // An older schema is fine: `run` upgrades it.
    if (p?.code === 'SCHEMA_OLDER') return olderDatabase(file);
    return { ok: false, line: `✘ ${(p ?? (err as Error)).message}`, daemonRunning: false };
  }
  try {
    // Read what `status` reads (the lock, the cursors, the outbox and its indexes): a damaged file fails here.
    readStatus(store, config);
    const d = readDaemon(store);
    return { ok: true, line: `✔ database ${file}: schema ${SCHEMA_VERSION}${daemonNote(d)}`, daemonRunning: daemonState(d) === 'running' };
  } catch (err) {
    return { ok: false, line: `✘ ${(databaseProblem(err, file) ?? (err as Error)).message}`, daemonRunning: false };
  } finally {
    store.close();
  }
}

function daemonNote(d: DaemonRecord | null): string {
  return daemonState(d) === 'running' ? `; a daemon is running on it (${describeDaemon(d!)})` : '';
}

/** A file of an older schema, which `run` upgrades: read only through its key/value table. */
function olderDatabase(file: string): DatabaseCheck {
  try {
    const peek = peekDatabase(file);
    const d = readDaemon(peek);
    return { ok: true, line: `✔ database ${file}: schema ${peek.version}, \`langfuse-bridge run\` upgrades it to ${SCHEMA_VERSION}${daemonNote(d)}`, daemonRunning: daemonState(d) === 'running' };
  } catch (err) {
    return { ok: false, line: `✘ ${(databaseProblem(err, file) ?? (err as Error)).message}`, daemonRunning: false };
  }
}

/** BRIDGE_HTTP_PORT: can `run` listen there? */
async function checkPort(config: BridgeConfig, daemonHere: boolean): Promise<{ ok: boolean; line: string }> {
  const where = `${config.httpHost}:${config.httpPort}`;
  const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const srv = createServer();
    srv.once('error', (err) => resolve(err as NodeJS.ErrnoException));
    srv.listen(config.httpPort!, config.httpHost, () => srv.close(() => resolve(null)));
  });
  if (!error) return { ok: true, line: `✔ ops server: ${where} free (BRIDGE_HTTP_PORT)` };
  if (error.code === 'EADDRINUSE' && daemonHere) return { ok: true, line: `✔ ops server: ${where} in use, by the daemon running on this database presumably` };
  return { ok: false, line: `✘ ops server: cannot listen on ${where} (${error.code ?? error.message}); free the port or change BRIDGE_HTTP_PORT` };
}

/**
 * `check`: exercises what `run` needs, one ✔/✘ line each. Never creates, upgrades or writes the database.
 */
export async function check(config: BridgeConfig, logger: Logger): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  let ok = true;
  for (const pc of projectConfigs(config)) {
    const r = await checkLangfuse(pc, logger);
    ok &&= r.ok;
    // Several projects: one line each, named.
    if (pc.projectName !== undefined) lines.push(r.summary.replace(/^(✔|✘) /, `$1 project ${pc.projectName}: `));
    else lines.push(...r.lines);
  }
  const db = checkDatabase(config);
  ok &&= db.ok;
  lines.push(db.line);
  if (config.queue.redisUrl) {
    try {
      await (await queueModule()).waitForRedis(config.queue, logger, Math.min(config.queue.connectWaitSeconds, 5));
      lines.push(`✔ Redis ${redactUrl(config.queue.redisUrl)}: answers`);
    } catch (err) {
      ok = false;
      lines.push(`✘ Redis: ${(err as Error).message}`);
    }
  }
  try {
    // Builds every sink as `run` does: handler modules are loaded here.
    const { sinks } = await createSinks(config, logger);
    for (const s of sinks) {
      const problems = s.validate?.() ?? [];
      if (problems.length) {
        ok = false;
        lines.push(`✘ sink ${s.name} (${s.kind}): ${problems.join('; ')}`);
      } else lines.push(`✔ sink ${s.name} (${s.kind}): ${s.kind === 'handler' ? 'module loads, ' : ''}settings valid`);
    }
    await closeSinks(sinks);
  } catch (err) {
    ok = false;
    lines.push(`✘ sinks: ${(err as Error).message}`);
  }
  lines.push(...checkMonitors(config.database, config.monitors, Date.now(), config.projects));
  if (config.httpPort !== null) {
    const p = await checkPort(config, db.daemonRunning);
    ok &&= p.ok;
    lines.push(p.line);
  }
  return { ok, lines };
}
