/**
 * The config file's JSON Schema, generated from the zod schemas the file is validated with: the
 * settings' (schema.ts) and each rule's (src/rules/index.ts, which `rules` entries are compiled with
 * while the config loads). `schema/config.schema.json` is this, committed and shipped in the package; a test holds the
 * two equal, and `npm run schema` writes the file again.
 */
import { z } from 'zod';
import { EXPECT as RULE_FIELDS, ruleSchema } from '../rules/index.js';
import { settingsSchema } from './schema.js';

type Json = Record<string, unknown>;

/** Gives each rule field the description its error message uses ("a number of USD, 0 or more"). */
function describeRuleFields(node: Json, prefix: string): void {
  const props = node.properties as Record<string, Json> | undefined;
  if (!props) return;
  for (const [key, child] of Object.entries(props)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const text = RULE_FIELDS[path];
    if (text && child.description === undefined) child.description = text;
    describeRuleFields(child, path);
  }
}

export function configJsonSchema(): Json {
  const rule = ruleSchema.describe(RULE_FIELDS[''] ?? 'an alert rule');
  const schema = settingsSchema.extend({
    rules: z.array(rule).describe('alert rules: which events alert, and where; they replace the defaults (Slack: ERROR traces and NUMERIC scores below 0.5; PagerDuty: ERROR traces)').optional(),
  });
  const json = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Json;
  const rules = (json.properties as Record<string, Json>).rules;
  describeRuleFields((rules?.items ?? {}) as Json, '');
  const { $schema, ...rest } = json;
  return { $schema, title: 'langfuse-bridge config file', description: settingsSchema.description, ...rest };
}
