/**
 * A handler module is a plain file anywhere: it imports nothing of the bridge, and a relative path
 * resolves against the config file that names it (from BRIDGE_HANDLERS: against the working directory),
 * whatever folder the CLI runs in.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, ROOT, runCli, tempDir } from '../helpers/cli.js';

const tmp = tempDir('lfb-handler-paths-');
// Three unrelated folders outside the repository: the module's, the config file's, the working directory.
const home = path.join(tmp.dir, 'handlers-home');
const configs = path.join(tmp.dir, 'configs');
const cwd = path.join(tmp.dir, 'work', 'deep');
const out = path.join(tmp.dir, 'calls.jsonl');

/** A plain module: no import of langfuse-bridge, types only through a JSDoc comment an editor may use. */
function handlerSource(tag: string): string {
  return `import { appendFileSync } from 'node:fs';

/** @type {import('langfuse-bridge').HandlerMap} */
export default {
  '*': (event, ctx) => {
    appendFileSync(${JSON.stringify(out)}, JSON.stringify({ tag: ${JSON.stringify(tag)}, event: event.event, id: event.id, sink: ctx.sink }) + '\\n');
  },
};
`;
}

function calls(): Array<{ tag: string; event: string; sink: string }> {
  try {
    return readFileSync(out, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { tag: string; event: string; sink: string });
  } catch {
    return [];
  }
}

let n = 0;
function env(extra: Record<string, string | undefined> = {}): Record<string, string> {
  return bridgeEnv({ langfuseUrl: 'http://127.0.0.1:9', database: path.join(tmp.dir, `h${++n}.db`), extra });
}

beforeAll(() => {
  assertBuilt();
  for (const d of [home, configs, cwd]) mkdirSync(d, { recursive: true });
  expect(path.relative(ROOT, tmp.dir).startsWith('..')).toBe(true);
  writeFileSync(path.join(home, 'handlers.mjs'), handlerSource('home'));
  // Where the same relative path would land if it were read against the working directory.
  mkdirSync(path.join(tmp.dir, 'work', 'handlers-home'), { recursive: true });
  writeFileSync(path.join(tmp.dir, 'work', 'handlers-home', 'handlers.mjs'), handlerSource('cwd-decoy'));
});
afterAll(async () => {
  await killLiveChildren();
  tmp.cleanup();
});

describe('handler module paths', () => {
  it('a relative "module" in a config file resolves against that file, not the working directory', async () => {
    const file = path.join(configs, 'bridge.json');
    writeFileSync(file, JSON.stringify({ sinks: [{ type: 'handler', name: 'mine', module: '../handlers-home/handlers.mjs' }] }));
    const before = calls().length;
    const p = await runCli(['--config', file, 'test-event', '--sink', 'mine'], env(), 30_000, { cwd });
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(calls().slice(before)).toEqual([expect.objectContaining({ tag: 'home', event: 'test', sink: 'mine' })]);
  });

  it('a missing module names the path it looked for, next to the config file', async () => {
    const file = path.join(configs, 'missing.json');
    writeFileSync(file, JSON.stringify({ sinks: [{ type: 'handler', name: 'mine', module: './nowhere.mjs' }] }));
    const p = await runCli(['--config', file, 'test-event'], env(), 30_000, { cwd });
    expect(p.exit?.code, p.describe()).toBe(2);
    const lines = p.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`looked for ${path.join(configs, 'nowhere.mjs')}`);
    expect(lines[0]).toContain(`sinks[0] ("mine").module in ${file}`);
  });

  it('BRIDGE_HANDLERS resolves against the working directory', async () => {
    const before = calls().length;
    const p = await runCli(['test-event'], env({ BRIDGE_HANDLERS: '../handlers-home/handlers.mjs' }), 30_000, { cwd });
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(calls().slice(before)).toEqual([expect.objectContaining({ tag: 'cwd-decoy', event: 'test', sink: 'handler' })]);
  });
});
