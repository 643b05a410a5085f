// What every Single Message Transform and predicate is: a registered definition (Kafka Connect's
// class name, short aliases, config spec, factory), like a connector plugin. A transform is a pure
// function of one record: it never mutates its input and returns a new record, or null to drop it.
import type { Type as AvroType } from 'avsc';
import type { ConfigSpec, ParsedConfig } from '../config/config-spec.js';

/** The record a transform sees: a consumed record after the converters, or a source record before them. */
export interface TransformRecord {
  topic: string;
  partition: number | null;
  /** Epoch ms, decimal string (as ConnectRecord). */
  timestamp: string | null;
  /**
   * The Kafka offset of a consumed record (sink and processor connectors), as a decimal string;
   * absent for source records (InsertField's `offset.field` needs it, as Connect's needs a SinkRecord).
   */
  offset?: string | null;
  key: unknown;
  /** undefined: schemaless. */
  keySchema: AvroType | undefined;
  value: unknown;
  valueSchema: AvroType | undefined;
  headers: Record<string, Buffer | undefined>;
}

/** Applies one configured transform to one record; null drops the record. Throws DataError for a record it cannot handle. */
export type Transform = (record: TransformRecord) => TransformRecord | null;

export interface TransformDefinition {
  /** Kafka Connect's class name, e.g. `org.apache.kafka.connect.transforms.InsertField$Value`. */
  className: string;
  /** Short names accepted in `transforms.<alias>.type`: the simple class name, e.g. `InsertField$Value`. */
  aliases: readonly string[];
  /** One paragraph for the generated docs. */
  description: string;
  config: ConfigSpec;
  create(config: ParsedConfig): Transform;
}

export interface PredicateDefinition {
  className: string;
  aliases: readonly string[];
  description: string;
  config: ConfigSpec;
  create(config: ParsedConfig): (record: TransformRecord) => boolean;
}

/**
 * A record a transform cannot handle (Kafka Connect's DataException), with Connect's message. The
 * chain turns it into a RecordError TRANSFORM_FAILED naming the alias and class.
 */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** Which part of the record a `$Key` / `$Value` transform works on. */
export interface Operand {
  which: 'key' | 'value';
  value(record: TransformRecord): unknown;
  schema(record: TransformRecord): AvroType | undefined;
  with(record: TransformRecord, value: unknown, schema: AvroType | undefined): TransformRecord;
}

export const KEY: Operand = {
  which: 'key',
  value: (r) => r.key,
  schema: (r) => r.keySchema,
  with: (r, key, keySchema) => ({ ...r, key, keySchema }),
};

export const VALUE: Operand = {
  which: 'value',
  value: (r) => r.value,
  schema: (r) => r.valueSchema,
  with: (r, value, valueSchema) => ({ ...r, value, valueSchema }),
};

const PACKAGE = 'org.apache.kafka.connect.transforms';

/**
 * The `$Key` and `$Value` definitions of a transform Kafka Connect has in both variants, named
 * `<package>.<Name>$Key` with the short alias `<Name>$Key`.
 */
export function keyAndValue(
  name: string,
  description: string,
  config: ConfigSpec,
  create: (config: ParsedConfig, operand: Operand) => Transform,
): TransformDefinition[] {
  return [KEY, VALUE].map((operand) => {
    const variant = operand.which === 'key' ? 'Key' : 'Value';
    return {
      className: `${PACKAGE}.${name}$${variant}`,
      aliases: [`${name}$${variant}`],
      description: `${description} Applies to the record ${operand.which}.`,
      config,
      create: (parsed) => create(parsed, operand),
    };
  });
}

export function single(
  name: string,
  description: string,
  config: ConfigSpec,
  create: (config: ParsedConfig) => Transform,
): TransformDefinition {
  return { className: `${PACKAGE}.${name}`, aliases: [name], description, config, create };
}

/** Java's class name of a value, for Connect's messages ("found: java.lang.String"). */
export function javaClassName(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return 'java.lang.String';
  if (typeof value === 'boolean') return 'java.lang.Boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'java.lang.Long' : 'java.lang.Double';
  if (typeof value === 'bigint') return 'java.lang.Long';
  if (Buffer.isBuffer(value)) return '[B';
  if (Array.isArray(value)) return 'java.util.ArrayList';
  if (value instanceof Date) return 'java.util.Date';
  return 'java.util.HashMap';
}

export function isMap(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !Buffer.isBuffer(value) &&
    !(value instanceof Date)
  );
}

/** Connect's Requirements.requireMap. */
export function requireMap(value: unknown, purpose: string): Record<string, unknown> {
  if (!isMap(value))
    throw new DataError(
      `Only Map objects supported in absence of schema for [${purpose}], found: ${javaClassName(value)}`,
    );
  return value;
}

/** Connect's Requirements.requireStruct: the schema must be an Avro record and the value an object. */
export function requireStruct(value: unknown, schema: AvroType, purpose: string): Record<string, unknown> {
  if (schema.typeName !== 'record' || !isMap(value))
    throw new DataError(`Only Struct objects supported for [${purpose}], found: ${javaClassName(value)}`);
  return value;
}

/** Per input schema, the derived one (Connect's schemaUpdateCache); input types are long-lived. */
export function schemaCache(derive: (schema: AvroType) => AvroType): (schema: AvroType) => AvroType {
  const cache = new WeakMap<AvroType, AvroType>();
  return (schema) => {
    let derived = cache.get(schema);
    if (derived === undefined) cache.set(schema, (derived = derive(schema)));
    return derived;
  };
}
