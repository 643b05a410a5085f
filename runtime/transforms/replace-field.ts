// ReplaceField$Key / ReplaceField$Value (Kafka Connect 4.1): keeps or drops top-level fields and
// renames them. `exclude` wins over `include`; the deprecated `blacklist`/`whitelist` names are
// still read (when the new name is not set), as Connect's ConfigUtils.translateDeprecatedConfigs does.
import type { Type as AvroType } from 'avsc';
import { defineConfig } from '../config/config-spec.js';
import { buildType, recordJson } from './avro-schema.js';
import { keyAndValue, requireMap, requireStruct, schemaCache } from './transformation.js';

const PURPOSE = 'field replacement';

/** Why a `renames` list is invalid (Connect's "Invalid rename mapping"), or undefined. */
export function renamesProblem(mappings: readonly string[]): string | undefined {
  const bad = mappings.find((m) => m.split(':').length !== 2);
  return bad === undefined
    ? undefined
    : `Invalid rename mapping: ${bad}; write colon-delimited pairs, e.g. foo:bar,abc:xyz`;
}

const CONFIG = defineConfig([
  {
    name: 'exclude',
    type: 'list',
    default: [],
    importance: 'medium',
    documentation: 'Fields to exclude. This takes precedence over the fields to include.',
  },
  {
    name: 'blacklist',
    type: 'list',
    default: null,
    importance: 'low',
    documentation: 'Deprecated. Use exclude instead.',
  },
  {
    name: 'include',
    type: 'list',
    default: [],
    importance: 'medium',
    documentation: 'Fields to include. If specified, only these fields will be used.',
  },
  {
    name: 'whitelist',
    type: 'list',
    default: null,
    importance: 'low',
    documentation: 'Deprecated. Use include instead.',
  },
  {
    name: 'renames',
    type: 'list',
    default: [],
    importance: 'medium',
    documentation: 'Field rename mappings: a list of colon-delimited pairs, e.g. `foo:bar,abc:xyz`.',
    validate: (value) => renamesProblem(value as string[]),
  },
]);

export const REPLACE_FIELD = keyAndValue(
  'ReplaceField',
  'Filter or rename fields.',
  CONFIG,
  (config, operand) => {
    const pick = (name: string, deprecated: string) => {
      const current = config.getList(name);
      return current.length === 0 && config.has(deprecated) ? config.getList(deprecated) : current;
    };
    const exclude = new Set(pick('exclude', 'blacklist'));
    const include = new Set(pick('include', 'whitelist'));
    const renames = new Map(config.getList('renames').map((m) => m.split(':') as [string, string]));
    const keep = (name: string) => !exclude.has(name) && (include.size === 0 || include.has(name));
    const renamed = (name: string) => renames.get(name) ?? name;

    const derive = schemaCache((schema: AvroType) => {
      const json = recordJson(schema);
      const fields = json.fields.filter((f) => keep(f.name)).map((f) => ({ ...f, name: renamed(f.name) }));
      return buildType({ ...json, fields });
    });

    return (record) => {
      const value = operand.value(record);
      if (value === null || value === undefined) return record;
      const schema = operand.schema(record);
      const input = schema === undefined ? requireMap(value, PURPOSE) : requireStruct(value, schema, PURPOSE);
      const updated: Record<string, unknown> = {};
      for (const [name, v] of Object.entries(input)) if (keep(name)) updated[renamed(name)] = v;
      return operand.with(record, updated, schema === undefined ? undefined : derive(schema));
    };
  },
);
