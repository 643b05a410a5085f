// Kafka Connect schemas as the runtime holds them: avsc Types, mapped the way Confluent's
// AvroConverter maps Connect's types (int8/int16 -> int, int32 -> int, int64 -> long, float32 ->
// float, float64 -> double, struct -> record, optional -> union with null first and default null,
// Timestamp/Date/Time -> timestamp-millis/date/time-millis). Derived schemas are built as schema
// JSON from the input's own export (so named types are defined once) and parsed with the
// runtime's Avro options.
import type { Type as AvroType } from 'avsc';
import { parseAvroSchema } from '../converters/schema-registry.js';

export type ConnectType =
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'float32'
  | 'float64'
  | 'boolean'
  | 'string'
  | 'bytes'
  | 'array'
  | 'map'
  | 'struct'
  | 'Timestamp'
  | 'Date'
  | 'Time'
  | 'Decimal'
  | 'other';

/** A field of a record schema as exported JSON. */
export interface FieldJson {
  name: string;
  type: unknown;
  default?: unknown;
  doc?: string;
  [attribute: string]: unknown;
}

export interface RecordJson {
  type: 'record';
  name: string;
  namespace?: string;
  doc?: string;
  fields: FieldJson[];
  [attribute: string]: unknown;
}

export const exportSchema = (type: AvroType): unknown => type.schema({ exportAttrs: true });

export const buildType = (schema: unknown): AvroType =>
  parseAvroSchema(typeof schema === 'string' ? JSON.stringify(schema) : (schema as object));

/** The record schema JSON of a record type (fields in order, nested named types defined once). */
export function recordJson(type: AvroType): RecordJson {
  return exportSchema(type) as RecordJson;
}

/** A union of null and one other type: the other type and true; else the type itself and false. */
export function unwrapOptional(type: AvroType): { inner: AvroType; optional: boolean } {
  if (type.typeName.startsWith('union')) {
    const branches = (type as unknown as { types: AvroType[] }).types;
    const others = branches.filter((b) => b.typeName !== 'null');
    if (others.length === 1 && others.length < branches.length) return { inner: others[0]!, optional: true };
  }
  return { inner: type, optional: false };
}

/** Whether a field schema JSON is a union containing null. */
export function isOptionalJson(schema: unknown): boolean {
  return Array.isArray(schema) && schema.includes('null');
}

/** `["null", schema]` (unchanged when already optional). */
export function optionalJson(schema: unknown): unknown {
  if (isOptionalJson(schema)) return schema;
  if (Array.isArray(schema)) return ['null', ...(schema as unknown[])];
  return ['null', schema];
}

/** Kafka Connect's type of an Avro type (optional unwrapped). */
export function connectTypeOf(type: AvroType): ConnectType {
  const { inner } = unwrapOptional(type);
  switch (inner.typeName) {
    case 'int':
      return 'int32';
    case 'long':
      return 'int64';
    case 'float':
      return 'float32';
    case 'double':
      return 'float64';
    case 'boolean':
      return 'boolean';
    case 'string':
    case 'enum':
      return 'string';
    case 'bytes':
    case 'fixed':
      return 'bytes';
    case 'array':
      return 'array';
    case 'map':
      return 'map';
    case 'record':
      return 'struct';
    case 'logical:timestamp-millis':
      return 'Timestamp';
    case 'logical:date':
      return 'Date';
    case 'logical:time-millis':
      return 'Time';
    case 'logical:decimal':
      return 'Decimal';
    default:
      return 'other';
  }
}

/** The Avro schema JSON of a Connect type, as Confluent's AvroData writes it. */
export function avroSchemaOf(type: ConnectType): unknown {
  switch (type) {
    case 'int8':
    case 'int16':
      return { type: 'int', 'connect.type': type };
    case 'int32':
      return 'int';
    case 'int64':
      return 'long';
    case 'float32':
      return 'float';
    case 'float64':
      return 'double';
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    case 'bytes':
      return 'bytes';
    case 'Timestamp':
      return {
        type: 'long',
        'connect.version': 1,
        'connect.name': 'org.apache.kafka.connect.data.Timestamp',
        logicalType: 'timestamp-millis',
      };
    case 'Date':
      return {
        type: 'int',
        'connect.version': 1,
        'connect.name': 'org.apache.kafka.connect.data.Date',
        logicalType: 'date',
      };
    case 'Time':
      return {
        type: 'int',
        'connect.version': 1,
        'connect.name': 'org.apache.kafka.connect.data.Time',
        logicalType: 'time-millis',
      };
    default:
      throw new Error(`no Avro schema for Connect type ${type}`);
  }
}

/** A field of `type`, optional (null first, default null) or required. */
export function fieldJson(name: string, schema: unknown, optional: boolean): FieldJson {
  return optional ? { name, type: optionalJson(schema), default: null } : { name, type: schema };
}

/** Confluent's AvroData name for a struct without a name. */
export const DEFAULT_RECORD_NAME = 'io.confluent.connect.avro.ConnectDefault';

/** The fields of a record type, by name (avsc's field objects). */
export function fieldsOf(type: AvroType): Array<{ name: string; type: AvroType }> {
  return (type as unknown as { fields: Array<{ name: string; type: AvroType }> }).fields;
}
