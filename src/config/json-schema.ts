/**
 * The config file's JSON Schema, generated from the zod schemas the file is validated with: the
 * settings' (schema.ts), each rule's (src/rules/index.ts) and each monitor's (src/monitors/spec.ts), which
 * `rules` and `monitors` entries are compiled with while the config loads). `schema/config.schema.json` is this, committed and shipped in the package; a test holds the
 * two equal, and `npm run schema` writes the file again.
 */
import { z } from 'zod';
import { MONITOR_FIELDS, monitorSchema } from '../monitors/spec.js';
import { EXPECT as RULE_FIELDS, ruleSchema } from '../rules/index.js';
import { settingsSchema } from './schema.js';

type Json = Record<string, unknown>;

/** Gives each rule or monitor field the description its error message uses ("a number of USD, 0 or more"). */
function describeFields(node: Json, prefix: string, fields: Record<string, string>): void {
  const props = node.properties as Record<string, Json> | undefined;
  if (!props) return;
  for (const [key, child] of Object.entries(props)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const text = fields[path];
    if (text && child.description === undefined) child.description = text;
    describeFields(child, path, fields);
  }
}

export function configJsonSchema(): Json {
  const rule = ruleSchema.describe(RULE_FIELDS[''] ?? 'an alert rule');
  const schema = settingsSchema.extend({
    rules: z.array(rule).describe('alert rules: which events alert, and where; they replace the defaults (Slack: ERROR traces and NUMERIC scores below 0.5; PagerDuty: ERROR traces)').optional(),
    monitors: z
      .array(monitorSchema.describe(MONITOR_FIELDS[''] ?? 'a monitor'))
      .describe('thresholds on aggregates over windows (error rate, score mean, p95 latency, cost, count), notified through the sinks')
      .optional(),
  });
  const json = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Json;
  const props = json.properties as Record<string, Json>;
  describeFields((props.rules?.items ?? {}) as Json, '', RULE_FIELDS);
  describeFields((props.monitors?.items ?? {}) as Json, '', MONITOR_FIELDS);
  const { $schema, ...rest } = json;
  return { $schema, title: 'langfuse-bridge config file', description: settingsSchema.description, ...rest };
}
