// Flatten$Key / Flatten$Value (Kafka Connect 4.1): nested structs (maps without a schema) become
// top-level fields named by joining the path with `delimiter`. Fields under an optional struct
// become optional. Arrays and maps with a schema are kept as they are.
import type { Type as AvroType } from 'avsc';
import { defineConfig } from '../config/config-spec.js';
import { buildType, isOptionalJson, optionalJson, recordJson, type FieldJson } from './avro-schema.js';
import {
  DataError,
  isMap,
  javaClassName,
  keyAndValue,
  requireMap,
  requireStruct,
  schemaCache,
} from './transformation.js';

const PURPOSE = 'flattening';

const CONFIG = defineConfig([
  {
    name: 'delimiter',
    type: 'string',
    default: '.',
    importance: 'medium',
    documentation:
      'Delimiter to insert between field names from the input record when generating field names for the output record.',
  },
]);

interface RecordLike {
  type: 'record';
  name: string;
  fields: FieldJson[];
}

export const FLATTEN = keyAndValue(
  'Flatten',
  'Flatten a nested data structure, generating names for each field by concatenating the field names at each level with a configurable delimiter character.',
  CONFIG,
  (config, operand) => {
    const delimiter = config.getString('delimiter');
    const name = (prefix: string, field: string) => (prefix === '' ? field : `${prefix}${delimiter}${field}`);

    const derive = schemaCache((schema: AvroType) => {
      const json = recordJson(schema);
      // Named types defined anywhere in the input, so a reference by name can be followed.
      const named = new Map<string, RecordLike>();
      const collect = (s: unknown, namespace: string | undefined) => {
        if (Array.isArray(s)) return s.forEach((b) => collect(b, namespace));
        if (typeof s !== 'object' || s === null) return;
        const o = s as Record<string, unknown>;
        if (o['type'] === 'record') {
          named.set(String(o['name']), o as unknown as RecordLike);
          for (const f of o['fields'] as FieldJson[]) collect(f.type, namespace);
        } else if (o['type'] === 'array') collect(o['items'], namespace);
        else if (o['type'] === 'map') collect(o['values'], namespace);
      };
      collect(json, json.namespace);
      const asRecord = (s: unknown): RecordLike | undefined => {
        if (typeof s === 'string') return named.get(s);
        if (typeof s === 'object' && s !== null && (s as RecordLike).type === 'record')
          return s as RecordLike;
        return undefined;
      };
      const fields: FieldJson[] = [];
      const walk = (record: RecordLike, prefix: string, optional: boolean) => {
        for (const field of record.fields) {
          const fieldOptional = isOptionalJson(field.type);
          const inner = fieldOptional ? (field.type as unknown[]).filter((b) => b !== 'null') : [field.type];
          const nested = inner.length === 1 ? asRecord(inner[0]) : undefined;
          if (nested) walk(nested, name(prefix, field.name), optional || fieldOptional);
          else if (optional && !fieldOptional)
            fields.push({ name: name(prefix, field.name), type: optionalJson(field.type), default: null });
          else {
            const { name: _n, ...rest } = field;
            fields.push({ ...rest, name: name(prefix, field.name) });
          }
        }
      };
      walk(json, '', false);
      return buildType({ ...json, fields });
    });

    const flattenStruct = (
      value: Record<string, unknown> | null,
      schema: AvroType,
      prefix: string,
      out: Record<string, unknown>,
    ) => {
      for (const field of (schema as unknown as { fields: Array<{ name: string; type: AvroType }> }).fields) {
        const fieldValue = value === null ? null : (value[field.name] ?? null);
        const recordType = recordBranch(field.type);
        if (recordType)
          flattenStruct(
            fieldValue as Record<string, unknown> | null,
            recordType,
            name(prefix, field.name),
            out,
          );
        else out[name(prefix, field.name)] = fieldValue;
      }
    };

    const flattenMap = (value: Record<string, unknown>, prefix: string, out: Record<string, unknown>) => {
      for (const [key, v] of Object.entries(value)) {
        const fieldName = name(prefix, key);
        if (isMap(v)) flattenMap(v, fieldName, out);
        else if (
          v === null ||
          v === undefined ||
          ['string', 'number', 'boolean', 'bigint'].includes(typeof v) ||
          Buffer.isBuffer(v) ||
          Array.isArray(v)
        )
          out[fieldName] = v ?? null;
        else
          throw new DataError(
            `Flatten transformation does not support ${javaClassName(v)} for record without schemas (for field ${fieldName}).`,
          );
      }
    };

    return (record) => {
      const value = operand.value(record);
      const schema = operand.schema(record);
      if (schema === undefined) {
        if (value === null || value === undefined) return record;
        const out: Record<string, unknown> = {};
        flattenMap(requireMap(value, PURPOSE), '', out);
        return operand.with(record, out, undefined);
      }
      if (value === null || value === undefined) return operand.with(record, null, derive(schema));
      const struct = requireStruct(value, schema, PURPOSE);
      const out: Record<string, unknown> = {};
      flattenStruct(struct, schema, '', out);
      return operand.with(record, out, derive(schema));
    };
  },
);

function recordBranch(type: AvroType): AvroType | undefined {
  if (type.typeName === 'record') return type;
  if (type.typeName.startsWith('union')) {
    const branches = (type as unknown as { types: AvroType[] }).types;
    const others = branches.filter((b) => b.typeName !== 'null');
    if (others.length === 1 && others[0]!.typeName === 'record') return others[0];
  }
  return undefined;
}
