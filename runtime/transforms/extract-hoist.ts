// ExtractField and HoistField ($Key / $Value, Kafka Connect 4.1): ExtractField replaces the
// key/value with one of its fields; HoistField wraps the key/value in a struct (a map without a
// schema) with one field.
import type { Type as AvroType } from 'avsc';
import { defineConfig } from '../config/config-spec.js';
import { buildType, DEFAULT_RECORD_NAME, exportSchema, fieldsOf } from './avro-schema.js';
import { DataError, keyAndValue, requireMap, requireStruct, schemaCache } from './transformation.js';

const fieldKey = (documentation: string) =>
  defineConfig([{ name: 'field', type: 'string', importance: 'medium', documentation }]);

export const EXTRACT_FIELD = keyAndValue(
  'ExtractField',
  'Extract the specified field from a Struct when schema present, or a Map in the case of schemaless data. Any null values are passed through unmodified.',
  fieldKey('Field name to extract.'),
  (config, operand) => {
    const field = config.getString('field');
    const purpose = 'field extraction';
    const derive = new WeakMap<AvroType, AvroType>();
    return (record) => {
      const value = operand.value(record);
      const schema = operand.schema(record);
      if (schema === undefined) {
        if (value === null || value === undefined) return operand.with(record, null, undefined);
        const map = requireMap(value, purpose);
        return operand.with(record, map[field] ?? null, undefined);
      }
      if (value === null || value === undefined) {
        // Connect: a null struct extracts to null with the field's schema.
        return operand.with(record, null, fieldSchema(schema, field, derive));
      }
      const struct = requireStruct(value, schema, purpose);
      return operand.with(record, struct[field] ?? null, fieldSchema(schema, field, derive));
    };
  },
);

function fieldSchema(schema: AvroType, field: string, cache: WeakMap<AvroType, AvroType>): AvroType {
  let found = cache.get(schema);
  if (found) return found;
  const record = schema.typeName.startsWith('union')
    ? (schema as unknown as { types: AvroType[] }).types.find((t) => t.typeName === 'record')
    : schema;
  const match =
    record && record.typeName === 'record' ? fieldsOf(record).find((f) => f.name === field) : undefined;
  if (!match) throw new DataError(`Unknown field: ${field}`);
  found = match.type;
  cache.set(schema, found);
  return found;
}

export const HOIST_FIELD = keyAndValue(
  'HoistField',
  'Wrap data using the specified field name in a Struct when schema present, or a Map in the case of schemaless data.',
  fieldKey('Field name for the single field that will be created in the resulting Struct or Map.'),
  (config, operand) => {
    const field = config.getString('field');
    const derive = schemaCache((schema: AvroType) =>
      buildType({
        type: 'record',
        name: DEFAULT_RECORD_NAME,
        fields: [{ name: field, type: renumberDefaultNames(exportSchema(schema)) }],
      }),
    );
    return (record) => {
      const value = operand.value(record);
      const schema = operand.schema(record);
      return operand.with(record, { [field]: value }, schema === undefined ? undefined : derive(schema));
    };
  },
);

const DEFAULT_NAME = /^io\.confluent\.connect\.avro\.ConnectDefault\d*$/;

/**
 * The wrapped schema with its unnamed structs renamed `ConnectDefault2`, `ConnectDefault3`, ... in
 * depth-first order, as Confluent's AvroData names them under an unnamed outer struct (which is
 * `ConnectDefault`): Avro refuses two records of one name in a schema.
 */
function renumberDefaultNames(schema: unknown): unknown {
  const renamed = new Map<string, string>();
  let next = 2;
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') return renamed.get(node) ?? node;
    if (Array.isArray(node)) return node.map(walk);
    if (typeof node !== 'object' || node === null) return node;
    const out: Record<string, unknown> = { ...(node as Record<string, unknown>) };
    if (out['type'] === 'record' && typeof out['name'] === 'string' && DEFAULT_NAME.test(out['name'])) {
      const name = `${DEFAULT_RECORD_NAME}${next++}`;
      renamed.set(out['name'], name);
      out['name'] = name;
      delete out['namespace'];
    }
    for (const key of ['type', 'items', 'values', 'fields'])
      if (key in out && key !== 'name') out[key] = walk(out[key]);
    return out;
  };
  return walk(schema);
}
