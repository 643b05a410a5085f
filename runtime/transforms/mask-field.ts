// MaskField$Key / MaskField$Value (Kafka Connect 4.1): replaces the named fields with the "empty"
// value of their type (0, false, "", an empty array or map, epoch 0 for dates), or with
// `replacement` for numeric and string fields. The schema does not change.
import type { Type as AvroType } from 'avsc';
import { defineConfig } from '../config/config-spec.js';
import { connectTypeOf, fieldsOf, type ConnectType } from './avro-schema.js';
import { DataError, javaClassName, keyAndValue, requireMap, requireStruct } from './transformation.js';

const PURPOSE = 'mask fields';

const CONFIG = defineConfig([
  {
    name: 'fields',
    type: 'list',
    importance: 'high',
    documentation: 'Names of fields to mask.',
    validate: (value) => ((value as string[]).length === 0 ? 'Empty list' : undefined),
  },
  {
    name: 'replacement',
    type: 'string',
    default: null,
    importance: 'low',
    documentation:
      "Custom value replacement, that will be applied to all 'fields' values (numeric or non-empty string values only).",
    validate: (value) => (value === '' ? 'String must be non-empty' : undefined),
  },
]);

/** The Connect type of a schemaless value (JsonConverter's: integers are int64, others float64). */
function schemalessType(value: unknown): ConnectType | undefined {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int64' : 'float64';
  if (typeof value === 'bigint') return 'int64';
  if (Buffer.isBuffer(value)) return 'bytes';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Date) return 'Timestamp';
  if (typeof value === 'object' && value !== null) return 'map';
  return undefined;
}

function emptyValue(type: ConnectType | undefined, value: unknown): unknown {
  switch (type) {
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
    case 'float32':
    case 'float64':
    case 'Time':
    case 'Date':
      return 0;
    case 'Timestamp':
      return value instanceof Date ? new Date(0) : 0;
    case 'boolean':
      return false;
    case 'string':
      return '';
    case 'bytes':
      return Buffer.alloc(0);
    case 'array':
      return [];
    case 'map':
      return {};
    case 'Decimal':
      return Buffer.from([0]);
    default:
      throw new DataError(`Cannot mask value of type: ${javaClassName(value)}`);
  }
}

function replacementValue(type: ConnectType | undefined, value: unknown, replacement: string): unknown {
  const numeric = (parse: (s: string) => number) => {
    const n = parse(replacement);
    if (!Number.isFinite(n))
      throw new DataError(`Unable to convert ${replacement} (${javaClassName(replacement)}) to number`);
    return n;
  };
  switch (type) {
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
      return numeric((s) => (/^[+-]?\d+$/.test(s.trim()) ? Number(s) : NaN));
    case 'float32':
    case 'float64':
      return numeric(Number);
    case 'string':
      return replacement;
    default:
      throw new DataError(`Cannot mask value of type ${javaClassName(value)} with custom replacement.`);
  }
}

export const MASK_FIELD = keyAndValue(
  'MaskField',
  'Mask specified fields with a valid null value for the field type (i.e. 0, false, empty string, and so on). For numeric and string fields, an optional replacement value can be specified that is converted to the correct type.',
  CONFIG,
  (config, operand) => {
    const fields = new Set(config.getList('fields'));
    const replacement = config.getOptionalString('replacement');
    const mask = (type: ConnectType | undefined, value: unknown) =>
      value === null || value === undefined
        ? value
        : replacement === undefined
          ? emptyValue(type, value)
          : replacementValue(type, value, replacement);
    const typesBySchema = new WeakMap<AvroType, Map<string, ConnectType>>();
    return (record) => {
      const value = operand.value(record);
      if (value === null || value === undefined) return record;
      const schema = operand.schema(record);
      if (schema === undefined) {
        const updated = { ...requireMap(value, PURPOSE) };
        for (const field of fields)
          if (field in updated) updated[field] = mask(schemalessType(updated[field]), updated[field]);
        return operand.with(record, updated, undefined);
      }
      const struct = requireStruct(value, schema, PURPOSE);
      let types = typesBySchema.get(schema);
      if (!types) {
        types = new Map(fieldsOf(schema).map((f) => [f.name, connectTypeOf(f.type)]));
        typesBySchema.set(schema, types);
      }
      const updated = { ...struct };
      for (const field of fields) {
        const type = types.get(field);
        if (type === undefined) throw new DataError(`${field} is not a valid field name`);
        updated[field] = mask(type, updated[field]);
      }
      return operand.with(record, updated, schema);
    };
  },
);
