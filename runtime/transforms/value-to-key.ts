// ValueToKey (Kafka Connect 4.1): replaces the record key with a new key formed from fields of the
// value (a struct with those fields, or a map without a schema).
import type { Type as AvroType } from 'avsc';
import { defineConfig } from '../config/config-spec.js';
import { buildType, DEFAULT_RECORD_NAME, recordJson } from './avro-schema.js';
import { DataError, requireMap, requireStruct, schemaCache, single } from './transformation.js';

const PURPOSE = 'copying fields from value to key';

const CONFIG = defineConfig([
  {
    name: 'fields',
    type: 'list',
    importance: 'high',
    documentation: 'Field names on the record value to extract as the record key.',
    validate: (value) => ((value as string[]).length === 0 ? 'Empty list' : undefined),
  },
]);

export const VALUE_TO_KEY = single(
  'ValueToKey',
  'Replace the record key with a new key formed from a subset of fields in the record value.',
  CONFIG,
  (config) => {
    const fields = config.getList('fields');
    const derive = schemaCache((schema: AvroType) => {
      const json = recordJson(schema);
      const keyFields = fields.map((name) => {
        const found = json.fields.find((f) => f.name === name);
        if (!found) throw new DataError(`Field does not exist: ${name}`);
        return found;
      });
      return buildType({ type: 'record', name: DEFAULT_RECORD_NAME, fields: keyFields });
    });
    return (record) => {
      const schema = record.valueSchema;
      if (schema === undefined) {
        const value = requireMap(record.value, PURPOSE);
        const key: Record<string, unknown> = {};
        for (const field of fields) key[field] = value[field] ?? null;
        return { ...record, key, keySchema: undefined };
      }
      const struct = requireStruct(record.value, schema, PURPOSE);
      const keySchema = derive(schema);
      const key: Record<string, unknown> = {};
      for (const field of fields) key[field] = struct[field] ?? null;
      return { ...record, key, keySchema };
    };
  },
);
