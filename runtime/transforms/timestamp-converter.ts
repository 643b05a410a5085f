// TimestampConverter$Key / $Value (Kafka Connect 4.1): converts a timestamp (the whole key/value
// or one field) between a formatted string, a Unix epoch number (unix.precision), and Connect's
// Date, Time and Timestamp logical types (Avro date, time-millis, timestamp-millis). Without a
// schema, Date/Time/Timestamp values are JavaScript Dates (Connect's java.util.Date).
import type { Type as AvroType } from 'avsc';
import { defineConfig } from '../config/config-spec.js';
import {
  avroSchemaOf,
  buildType,
  connectTypeOf,
  fieldsOf,
  isOptionalJson,
  optionalJson,
  recordJson,
  unwrapOptional,
  type ConnectType,
} from './avro-schema.js';
import { formatDate, parseDate, tokenize } from './java-date-format.js';
import {
  DataError,
  javaClassName,
  keyAndValue,
  requireMap,
  requireStruct,
  schemaCache,
} from './transformation.js';

const PURPOSE = 'converting timestamp formats';
const TARGET_TYPES = ['string', 'unix', 'Date', 'Time', 'Timestamp'] as const;
type TargetType = (typeof TARGET_TYPES)[number];
const PRECISIONS = ['nanoseconds', 'microseconds', 'milliseconds', 'seconds'] as const;
type Precision = (typeof PRECISIONS)[number];
const MS_PER_DAY = 86_400_000;

const CONFIG = defineConfig(
  [
    {
      name: 'target.type',
      type: 'string',
      validValues: TARGET_TYPES,
      importance: 'high',
      documentation: 'The desired timestamp representation: string, unix, Date, Time, or Timestamp',
    },
    {
      name: 'field',
      type: 'string',
      default: '',
      importance: 'high',
      documentation: 'The field containing the timestamp, or empty if the entire value is a timestamp',
    },
    {
      name: 'format',
      type: 'string',
      default: '',
      importance: 'medium',
      documentation:
        'A SimpleDateFormat-compatible format for the timestamp. Used to generate the output when type=string or used to parse the input if the input is a string. Times are in UTC.',
      validate: (value) => {
        if (value === '') return undefined;
        const tokens = tokenize(String(value));
        return typeof tokens === 'string' ? `Invalid format: ${tokens}` : undefined;
      },
    },
    {
      name: 'unix.precision',
      type: 'string',
      default: 'milliseconds',
      validValues: PRECISIONS,
      importance: 'low',
      documentation:
        'The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or nanoseconds. Used to generate the output when type=unix or used to parse the input if the input is a Long.',
    },
  ],
  [
    {
      keys: ['format', 'target.type'],
      check: (values) =>
        values.get('target.type') === 'string' && values.get('format') === ''
          ? 'TimestampConverter requires format option to be specified when using string timestamps'
          : undefined,
    },
  ],
);

const TO_MS: Record<Precision, (n: number) => number> = {
  seconds: (n) => n * 1000,
  milliseconds: (n) => n,
  microseconds: (n) => Math.floor(n / 1000),
  nanoseconds: (n) => Math.floor(n / 1_000_000),
};
const FROM_MS: Record<Precision, (ms: number) => number> = {
  seconds: (ms) => Math.floor(ms / 1000),
  milliseconds: (ms) => ms,
  microseconds: (ms) => ms * 1000,
  nanoseconds: (ms) => ms * 1_000_000,
};

/** The input kind of a schema'd value: Connect's timestamp type for its schema. */
function inputKind(type: ConnectType): TargetType {
  switch (type) {
    case 'string':
      return 'string';
    case 'int64':
      return 'unix';
    case 'Date':
      return 'Date';
    case 'Time':
      return 'Time';
    case 'Timestamp':
      return 'Timestamp';
    default:
      throw new DataError(
        `Schema ${type.toUpperCase()} does not correspond to a known timestamp type format`,
      );
  }
}

function schemalessKind(value: unknown): TargetType {
  if (value instanceof Date) return 'Timestamp';
  if (typeof value === 'number' || typeof value === 'bigint') return 'unix';
  if (typeof value === 'string') return 'string';
  throw new DataError(`TimestampConverter does not support ${javaClassName(value)} objects as timestamps`);
}

function outputSchema(target: TargetType): unknown {
  return target === 'string' ? 'string' : target === 'unix' ? 'long' : avroSchemaOf(target);
}

export const TIMESTAMP_CONVERTER = keyAndValue(
  'TimestampConverter',
  'Convert timestamps between different formats such as Unix epoch, strings, and Connect Date/Timestamp types.',
  CONFIG,
  (config, operand) => {
    const target = config.getString('target.type') as TargetType;
    const field = config.getString('field');
    const format = config.getString('format');
    const precision = config.getString('unix.precision') as Precision;

    const toMs = (value: unknown, kind: TargetType, schemaless: boolean): number => {
      switch (kind) {
        case 'string':
          if (format === '')
            throw new DataError(
              'TimestampConverter requires format option to be specified when using string timestamps',
            );
          try {
            return parseDate(String(value), format);
          } catch {
            throw new DataError(
              `Could not parse timestamp: value (${String(value)}) does not match pattern (${format})`,
            );
          }
        case 'unix':
          return TO_MS[precision](Number(value));
        case 'Date':
          return schemaless ? (value as Date).getTime() : Number(value) * MS_PER_DAY;
        case 'Time':
        case 'Timestamp':
          return value instanceof Date ? value.getTime() : Number(value);
      }
    };
    const fromMs = (ms: number, schemaless: boolean): unknown => {
      switch (target) {
        case 'string':
          return formatDate(ms, format);
        case 'unix':
          return FROM_MS[precision](ms);
        case 'Date': {
          const day = Math.floor(ms / MS_PER_DAY);
          return schemaless ? new Date(day * MS_PER_DAY) : day;
        }
        case 'Time': {
          const inDay = ((ms % MS_PER_DAY) + MS_PER_DAY) % MS_PER_DAY;
          return schemaless ? new Date(inDay) : inDay;
        }
        case 'Timestamp':
          return schemaless ? new Date(ms) : ms;
      }
    };
    const convert = (value: unknown, kind: TargetType, schemaless: boolean) =>
      value === null || value === undefined ? null : fromMs(toMs(value, kind, schemaless), schemaless);

    const deriveWhole = schemaCache((schema: AvroType) => {
      const output = outputSchema(target);
      return buildType(unwrapOptional(schema).optional ? optionalJson(output) : output);
    });
    const deriveField = schemaCache((schema: AvroType) => {
      const json = recordJson(schema);
      const fields = json.fields.map((f) =>
        f.name !== field
          ? f
          : isOptionalJson(f.type)
            ? { name: f.name, type: optionalJson(outputSchema(target)), default: null }
            : { name: f.name, type: outputSchema(target) },
      );
      return buildType({ ...json, fields });
    });

    return (record) => {
      const value = operand.value(record);
      const schema = operand.schema(record);
      if (field === '') {
        if (schema === undefined) {
          if (value === null || value === undefined) return record;
          return operand.with(record, convert(value, schemalessKind(value), true), undefined);
        }
        const kind = inputKind(connectTypeOf(schema));
        return operand.with(record, convert(value, kind, false), deriveWhole(schema));
      }
      if (schema === undefined) {
        if (value === null || value === undefined) return record;
        const updated = { ...requireMap(value, PURPOSE) };
        const v = updated[field];
        updated[field] = v === null || v === undefined ? null : convert(v, schemalessKind(v), true);
        return operand.with(record, updated, undefined);
      }
      // A null struct stays null, with the derived schema (Connect's requireStructOrNull).
      if (value === null || value === undefined) return operand.with(record, null, deriveField(schema));
      const struct = requireStruct(value, schema, PURPOSE);
      const fieldType = fieldsOf(schema).find((f) => f.name === field);
      const updated = { ...struct };
      if (fieldType) updated[field] = convert(struct[field], inputKind(connectTypeOf(fieldType.type)), false);
      return operand.with(record, updated, deriveField(schema));
    };
  },
);
