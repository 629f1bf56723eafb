import { describe, expect, it } from 'vitest';
import type { AnyBridgeEvent, GenerationData, ScoreData } from '../src/events/types.js';
import { errorTrace } from './helpers/events.js';
import { compileRules } from '../src/rules/index.js';
import { configErrorOf } from './helpers/config-error.js';

const SINKS = [
  { name: 'slack', type: 'slack' },
  { name: 'pd', type: 'pagerduty' },
  { name: 'hook', type: 'webhook' },
];

const trace = errorTrace;

function score(over: Partial<ScoreData> = {}, type: 'score.created' | 'score.updated' = 'score.created', id = 'evt_s1'): AnyBridgeEvent {
  return {
    id,
    event: type,
    timestamp: '2026-11-27T01:02:04.000Z',
    data: {
      projectId: 'p1',
      scoreId: 's1',
      traceId: 't1',
      observationId: null,
      sessionId: null,
      name: 'accuracy',
      value: 0.3,
      stringValue: null,
      dataType: 'NUMERIC',
      source: 'EVAL',
      comment: null,
      ...over,
    },
  };
}

function generation(over: Partial<GenerationData> = {}, id = 'evt_g1'): AnyBridgeEvent {
  return {
    id,
    event: 'generation.created',
    timestamp: '2026-11-27T01:02:05.000Z',
    data: {
      projectId: 'p1',
      observationId: 'o1',
      traceId: 't1',
      name: 'chat',
      model: 'gpt-4o',
      level: 'DEFAULT',
      statusMessage: null,
      startTime: '2026-11-27T01:02:05.000Z',
      endTime: '2026-11-27T01:02:06.000Z',
      usage: { promptTokens: 1000, completionTokens: 200, totalTokens: 1200 },
      usageDetails: null,
      costDetails: null,
      totalCost: 2.5,
      ...over,
    },
  };
}

const sinksOf = (ms: Array<{ sink: string }>): string[] => ms.map((m) => m.sink).sort();

function configError(fn: () => unknown): string {
  return configErrorOf(() => fn());
}

describe('default rules', () => {
  const rules = compileRules(null, SINKS);

  it('sends an ERROR trace to Slack and pages PagerDuty once per trace', () => {
    const ms = rules.match(trace());
    expect(sinksOf(ms)).toEqual(['pd', 'slack']);
    for (const m of ms) {
      expect(m).toMatchObject({ action: 'trigger', severity: 'error', dedupKey: 'langfuse-bridge:p1:trace:t1', mode: 'once', label: 'error trace' });
    }
    expect(rules.isDefault).toBe(true);
    expect(rules.unroutedSinks).toEqual([]);
  });

  it('ignores healthy traces, warnings and the trace.created of an error trace', () => {
    expect(rules.match(trace({ level: 'DEFAULT', statusMessage: null }))).toEqual([]);
    expect(rules.match(trace({ level: 'WARNING' }))).toEqual([]);
    expect(rules.match(trace({}, 'trace.created'))).toEqual([]);
  });

  it('sends NUMERIC scores below 0.5 to Slack only', () => {
    const ms = rules.match(score({ value: 0.3 }));
    expect(sinksOf(ms)).toEqual(['slack']);
    expect(ms[0]).toMatchObject({ severity: 'warning', dedupKey: 'langfuse-bridge:p1:score:s1', label: 'low score' });
    expect(sinksOf(rules.match(score({ value: 0.2 }, 'score.updated')))).toEqual(['slack']);
    expect(rules.match(score({ value: 0.7 }))).toEqual([]);
    expect(rules.match(score({ value: 0.5 }))).toEqual([]);
  });

  it('ignores BOOLEAN and CATEGORICAL scores', () => {
    expect(rules.match(score({ dataType: 'BOOLEAN', value: false, stringValue: 'False' }))).toEqual([]);
    expect(rules.match(score({ dataType: 'CATEGORICAL', value: 'bad', stringValue: 'bad' }))).toEqual([]);
  });

  it('sends nothing about generations and prompts', () => {
    expect(rules.match(generation({ level: 'ERROR' }))).toEqual([]);
    for (const type of ['prompt.created', 'prompt.updated'] as const) {
      const prompt = { id: 'evt_p1', event: type, timestamp: '2026-11-27T00:00:00.000Z', data: { projectId: 'p1', prompt: { name: 'greeting', version: 2, labels: ['production'], tags: [] } } } as unknown as AnyBridgeEvent;
      expect(rules.match(prompt), type).toEqual([]);
    }
  });

  it('routes test events to every alert sink', () => {
    const ms = rules.match({ id: 'evt_test', event: 'test', timestamp: '2026-11-27T00:00:00.000Z', data: { projectId: 'p1', message: 'hi' } });
    expect(sinksOf(ms)).toEqual(['pd', 'slack']);
    expect(ms[0]?.severity).toBe('info');
  });

  it('knows Slack and PagerDuty sinks by their environment names when only names are given', () => {
    const byName = compileRules(null, ['slack', 'pagerduty', 'webhook']);
    expect(sinksOf(byName.match(trace()))).toEqual(['pagerduty', 'slack']);
    expect(sinksOf(byName.match(score()))).toEqual(['slack']);
  });

  it('has no rules without alert sinks', () => {
    expect(compileRules(null, [{ name: 'hook', type: 'webhook' }]).match(trace())).toEqual([]);
  });
});

describe('custom rules', () => {
  it('alerts on generations over a cost budget', () => {
    const rules = compileRules([{ name: 'over-budget', when: { costAbove: 1 }, sinks: ['slack'] }], SINKS);
    expect(rules.rules[0]?.events).toEqual(['generation.created', 'generation.updated']);
    const ms = rules.match(generation({ totalCost: 2.5 }));
    expect(ms).toEqual([
      { rule: 'over-budget', sink: 'slack', action: 'trigger', dedupKey: 'langfuse-bridge:p1:generation:o1', severity: 'warning', mode: 'once', label: 'costly generation' },
    ]);
    expect(rules.match(generation({ totalCost: 0.5 }))).toEqual([]);
    expect(rules.match(generation({ totalCost: null }))).toEqual([]);
    // Defaults are replaced, not added to.
    expect(rules.match(trace())).toEqual([]);
    expect(rules.unroutedSinks).toEqual(['pd']);
  });

  it('pages PagerDuty about a named score per trace, and resolves when it recovers', () => {
    const rules = compileRules(
      [{ name: 'faithfulness', when: { scoreName: 'faithfulness', scoreBelow: 0.6 }, sinks: ['pd'], severity: 'critical', resolveWhen: { scoreAtLeast: 0.8 } }],
      SINKS,
    );
    const low = rules.match(score({ name: 'faithfulness', value: 0.4 }));
    expect(low).toEqual([
      {
        rule: 'faithfulness',
        sink: 'pd',
        action: 'trigger',
        dedupKey: 'langfuse-bridge:p1:trace:t1:score:faithfulness',
        severity: 'critical',
        mode: 'once',
        label: 'low score',
      },
    ]);
    const again = rules.match(score({ scoreId: 's2', name: 'faithfulness', value: 0.9 }, 'score.created', 'evt_s2'));
    expect(again).toMatchObject([{ action: 'resolve', dedupKey: 'langfuse-bridge:p1:trace:t1:score:faithfulness' }]);
    expect(rules.match(score({ name: 'faithfulness', value: 0.7 }))).toEqual([]);
    expect(rules.match(score({ name: 'accuracy', value: 0.1 }))).toEqual([]);
  });

  it('matches levels at least, names with wildcards, environments and all tags', () => {
    const rules = compileRules(
      [{ name: 'agents', when: { level: 'WARNING', traceName: ['agent-*', 'checkout'], environment: 'production', tags: ['vip', 'eu'] }, sinks: ['slack'] }],
      SINKS,
    );
    expect(rules.rules[0]?.events).toEqual(['trace.updated']);
    const tags = ['vip', 'eu', 'beta'];
    expect(rules.match(trace({ level: 'WARNING', tags }))).toHaveLength(1);
    expect(rules.match(trace({ level: 'ERROR', tags, name: 'agent-planner' }))).toHaveLength(1);
    expect(rules.match(trace({ level: 'ERROR', tags: ['vip'] }))).toEqual([]);
    expect(rules.match(trace({ level: 'ERROR', tags, environment: 'staging' }))).toEqual([]);
    expect(rules.match(trace({ level: 'ERROR', tags, name: 'search' }))).toEqual([]);
    expect(rules.match(trace({ level: 'DEFAULT', tags }))).toEqual([]);
  });

  it('keys every event separately in mode "every", and takes severity from the event level', () => {
    const rules = compileRules([{ name: 'all-errors', events: ['trace.*'], when: { level: 'WARNING' }, sinks: ['pd'], mode: 'every' }], SINKS);
    expect(rules.match(trace({}, 'trace.updated', 'evt_a'))).toMatchObject([{ dedupKey: 'langfuse-bridge:p1:trace:t1:event:evt_a', severity: 'error' }]);
    expect(rules.match(trace({ level: 'WARNING' }, 'trace.updated', 'evt_b'))).toMatchObject([{ severity: 'warning' }]);
  });

  it('matches token counts and models', () => {
    const rules = compileRules([{ name: 'big', when: { tokensAbove: 1000, model: 'gpt-4*' }, sinks: ['slack'] }], SINKS);
    expect(rules.match(generation())).toHaveLength(1);
    expect(rules.match(generation({ model: 'claude' }))).toEqual([]);
    expect(rules.match(generation({ usage: { promptTokens: 10, completionTokens: 10, totalTokens: 20 } }))).toEqual([]);
  });
});

describe('rule errors', () => {
  it('names the rule and the field of a wrong type', () => {
    const rules = [
      { name: 'a', when: { level: 'ERROR' }, sinks: ['slack'] },
      { name: 'b', when: { level: 'ERROR' }, sinks: ['slack'] },
      { name: 'low-score', when: { scoreBelow: 'x' }, sinks: ['slack'] },
    ];
    expect(configError(() => compileRules(rules, SINKS))).toBe('rules[2] ("low-score").when.scoreBelow must be a number, got "x"');
  });

  it('explains enums, unknown keys, missing fields and non-objects', () => {
    expect(configError(() => compileRules([{ name: 'x', when: { level: 'FATAL' }, sinks: ['slack'] }], SINKS))).toBe(
      'rules[0] ("x").when.level must be one of "WARNING", "ERROR", got "FATAL"',
    );
    expect(configError(() => compileRules([{ name: 'x', when: { levle: 'ERROR' }, sinks: ['slack'] }], SINKS))).toMatch(
      /^rules\[0\] \("x"\)\.when has unknown key "levle"; known keys: level, /,
    );
    expect(configError(() => compileRules([{ name: 'x', when: { level: 'ERROR' } }], SINKS))).toBe(
      'rules[0] ("x").sinks is required: a non-empty list of sink names such as ["slack"]',
    );
    expect(configError(() => compileRules([{ when: { level: 'ERROR' }, sinks: ['slack'] }], SINKS))).toBe('rules[0].name is required: a non-empty string');
    expect(configError(() => compileRules([5], SINKS))).toMatch(/^rules\[0\] must be an object like/);
    expect(configError(() => compileRules([{ name: 'x', mode: 'always', when: { level: 'ERROR' }, sinks: ['slack'] }], SINKS))).toBe(
      'rules[0] ("x").mode must be one of "once", "every", got "always"',
    );
    expect(configError(() => compileRules([{ name: 'x', when: { traceName: 3 }, sinks: ['slack'] }], SINKS))).toBe(
      'rules[0] ("x").when.traceName must be a trace name or a list of them, got 3',
    );
  });

  it('rejects unknown and non-alert sinks', () => {
    expect(configError(() => compileRules([{ name: 'x', when: { level: 'ERROR' }, sinks: ['slak'] }], SINKS))).toBe(
      'rules[0] ("x").sinks names "slak", which is not a configured sink; configured sinks: slack, pd, hook',
    );
    expect(configError(() => compileRules([{ name: 'x', when: { level: 'ERROR' }, sinks: ['hook'] }], SINKS))).toMatch(
      /^rules\[0\] \("x"\)\.sinks names "hook", a webhook sink; rules send alerts to slack and pagerduty sinks only/,
    );
  });

  it('rejects rules that can never match', () => {
    expect(configError(() => compileRules([{ name: 'x', sinks: ['slack'] }], SINKS))).toMatch(/^rules\[0\] \("x"\) needs "when" conditions or "events"/);
    expect(configError(() => compileRules([{ name: 'x', when: { scoreBelow: 0.5, model: 'gpt-4o' }, sinks: ['slack'] }], SINKS))).toMatch(
      /^rules\[0\] \("x"\)\.when mixes conditions on score and generation events/,
    );
    expect(configError(() => compileRules([{ name: 'x', events: ['trace.updated'], when: { scoreBelow: 0.5 }, sinks: ['slack'] }], SINKS))).toMatch(
      /^rules\[0\] \("x"\)\.when\.scoreBelow applies to score\.\* events, but events is \["trace\.updated"\]/,
    );
    expect(configError(() => compileRules([{ name: 'x', events: ['trace.craeted'], sinks: ['slack'] }], SINKS))).toMatch(
      /^rules\[0\] \("x"\)\.events has "trace\.craeted", which matches no event type/,
    );
    expect(configError(() => compileRules([{ name: 'x', when: { scoreBelow: 0.5 }, resolveWhen: { scoreAtLeast: 0.3 }, sinks: ['pd'] }], SINKS))).toBe(
      'rules[0] ("x").resolveWhen.scoreAtLeast must be at least when.scoreBelow (0.5), got 0.3',
    );
  });

  it('rejects two rules with one name', () => {
    const r = { name: 'dup', when: { level: 'ERROR' }, sinks: ['slack'] };
    expect(configError(() => compileRules([r, r], SINKS))).toBe('rules[1] ("dup").name repeats the name of rules[0]; give each rule its own name');
  });
});
