// Cast$Key / Cast$Value (Kafka Connect 4.1): casts fields, or the whole key/value, to another
// primitive type: int8, int16, int32, int64, float32, float64, boolean, string. Numbers narrow
// the way Java's Number.byteValue()/intValue() do (integers wrap, floats truncate and saturate);
// bytes cast to string are Base64; strings parse as Java's Byte.parseByte/Double.parseDouble do.
import type { Type as AvroType } from 'avsc';
import { defineConfig } from '../config/config-spec.js';
import {
  avroSchemaOf,
  buildType,
  connectTypeOf,
  isOptionalJson,
  optionalJson,
  recordJson,
  unwrapOptional,
  type ConnectType,
} from './avro-schema.js';
import { formatDate } from './java-date-format.js';
import {
  DataError,
  javaClassName,
  keyAndValue,
  requireMap,
  requireStruct,
  schemaCache,
} from './transformation.js';

const PURPOSE = 'cast types';
const OUTPUT_TYPES: readonly ConnectType[] = [
  'int8',
  'int16',
  'int32',
  'int64',
  'float32',
  'float64',
  'boolean',
  'string',
];
const INPUT_TYPES: readonly ConnectType[] = [...OUTPUT_TYPES, 'bytes'];
const WHOLE_VALUE = '';
const SUPPORTED_OUTPUT = '[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]';
const SUPPORTED_INPUT = '[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]';
/** Connect's DataException for a NumberFormatException while casting. */
const outOfRange = (value: unknown) =>
  new DataError(`Value (${String(value)}) was out of range for requested data type`);
/** Connect's validCastType(INPUT) failure; logical types name their underlying type. */
const unsupportedInput = (type: ConnectType) =>
  new DataError(
    `Cast transformation does not support casting from ${
      type === 'Decimal' ? 'BYTES' : type.toUpperCase()
    }; supported types are ${SUPPORTED_INPUT}`,
  );

export interface CastSpec {
  /** Field name to target type; the key '' casts the whole key/value. */
  casts: Map<string, ConnectType>;
}

/** Parses `spec` as Connect's Cast.parseFieldTypes; a string is the problem. */
export function parseCastSpec(mappings: readonly string[]): CastSpec | string {
  const casts = new Map<string, ConnectType>();
  let whole = false;
  for (const mapping of mappings) {
    const parts = mapping.split(':');
    // Connect's own (odd) message for this case.
    if (parts.length > 2) return `Invalid rename mapping: ${mapping}`;
    const [field, type] = parts.length === 1 ? [WHOLE_VALUE, parts[0]!] : [parts[0]!, parts[1]!];
    if (parts.length === 1) {
      if (mappings.length > 1)
        return 'Cast transformations that specify a type to cast the entire value to may ony specify a single cast in their spec';
      whole = true;
    }
    const target = type.trim().toLowerCase() as ConnectType;
    if (['bytes', 'array', 'map', 'struct'].includes(target))
      return `Cast transformation does not support casting to ${target.toUpperCase()}; supported types are ${SUPPORTED_OUTPUT}`;
    if (!OUTPUT_TYPES.includes(target)) return `Invalid type found in casting spec: ${type.trim()}`;
    casts.set(whole ? WHOLE_VALUE : field.trim(), target);
  }
  return { casts };
}

const CONFIG = defineConfig([
  {
    name: 'spec',
    type: 'list',
    importance: 'high',
    documentation:
      'List of fields and the type to cast them to of the form field1:type,field2:type to cast fields of Maps or Structs. A single type to cast the entire value. Valid types are int8, int16, int32, int64, float32, float64, boolean, and string. Note that binary fields can only be cast to string.',
    validate: (value) => {
      const list = value as string[];
      if (list.length === 0) return 'Must specify at least one field to cast.';
      const parsed = parseCastSpec(list);
      return typeof parsed === 'string' ? parsed : undefined;
    },
  },
]);

/** The Connect type of a schemaless value (JsonConverter's: integers int64, other numbers float64). */
function inferType(value: unknown): ConnectType | undefined {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int64' : 'float64';
  if (typeof value === 'bigint') return 'int64';
  if (Buffer.isBuffer(value)) return 'bytes';
  return undefined;
}

const isFloat = (type: ConnectType) => type === 'float32' || type === 'float64';

/** Java's narrowing of a number of `from` type to an integer type of `bits` bits. */
function toInteger(n: number, from: ConnectType, bits: 8 | 16 | 32 | 64): number {
  let whole: number;
  if (isFloat(from)) {
    // (int) / (long) of a double: truncate, saturate, NaN -> 0; byte/short go through int.
    if (Number.isNaN(n)) return 0;
    const limit = bits === 64 ? 2 ** 63 : 2 ** 31;
    whole = Math.max(-limit, Math.min(limit - 1, Math.trunc(n)));
    if (bits === 64) return whole;
  } else whole = n;
  if (bits === 64) return whole;
  return Number(BigInt.asIntN(bits, BigInt(Math.trunc(whole))));
}

/** Java's Byte/Short/Integer/Long.parseX: no whitespace, optional sign, in range. */
function parseJavaInteger(text: string, bits: 8 | 16 | 32 | 64): number {
  if (!/^[+-]?\d+$/.test(text)) throw outOfRange(text);
  const n = BigInt(text);
  const limit = 1n << BigInt(bits - 1);
  if (n < -limit || n >= limit) throw outOfRange(text);
  return Number(n);
}

/** Java's Double.parseDouble (surrounding whitespace allowed). */
function parseJavaDouble(text: string): number {
  const trimmed = text.trim();
  if (!/^[+-]?(NaN|Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?)$/.test(trimmed)) throw outOfRange(text);
  return Number(trimmed.replace(/[fFdD]$/, ''));
}

/** Java's Double.toString / Float.toString. */
export function javaFloatString(n: number, type: 'float32' | 'float64'): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  if (n === 0) return Object.is(n, -0) ? '-0.0' : '0.0';
  let digits = String(n);
  if (type === 'float32') {
    for (let p = 1; p <= 9; p++) {
      const candidate = Number(n.toPrecision(p));
      if (Math.fround(candidate) === n) {
        digits = String(candidate);
        break;
      }
    }
  }
  const value = Number(digits);
  const abs = Math.abs(value);
  if (abs >= 1e-3 && abs < 1e7) return Number.isInteger(value) ? `${value}.0` : String(value);
  const [mantissa, exponent] = value.toExponential().split('e') as [string, string];
  return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}E${Number(exponent)}`;
}

/** Connect's Cast.castValueToType, for a value of Connect type `from`. */
export function castValue(value: unknown, from: ConnectType, to: ConnectType): unknown {
  if (value === null || value === undefined) return null;
  if (!INPUT_TYPES.includes(from) && !(from === 'Timestamp' || from === 'Date' || from === 'Time'))
    throw unsupportedInput(from);
  const number = (): number => {
    if (typeof value === 'number') return value;
    if (typeof value === 'bigint') return Number(value);
    if (typeof value === 'boolean') return value ? 1 : 0;
    if (value instanceof Date) return value.getTime();
    if (typeof value === 'string') return NaN;
    throw new DataError(`Unexpected type in Cast transformation: ${javaClassName(value)}`);
  };
  switch (to) {
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64': {
      const bits = ({ int8: 8, int16: 16, int32: 32, int64: 64 } as const)[to];
      if (typeof value === 'string') return parseJavaInteger(value, bits);
      return toInteger(number(), from, bits);
    }
    case 'float32':
    case 'float64': {
      const n = typeof value === 'string' ? parseJavaDouble(value) : number();
      return to === 'float32' ? Math.fround(n) : n;
    }
    case 'boolean':
      if (typeof value === 'string') return value.toLowerCase() === 'true';
      if (typeof value === 'boolean') return value;
      // Number.longValue() != 0: 0.5 is false, as in Connect.
      return Math.trunc(number()) !== 0;
    case 'string':
      if (Buffer.isBuffer(value)) return value.toString('base64');
      if (typeof value === 'number' && isFloat(from))
        return javaFloatString(value, from as 'float32' | 'float64');
      // Connect formats dates with Values.dateFormatFor (UTC); our logical values are numbers.
      if (from === 'Timestamp') return formatDate(Number(value), "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'");
      if (from === 'Date') return formatDate(Number(value) * 86_400_000, 'yyyy-MM-dd');
      if (from === 'Time') return formatDate(Number(value), "HH:mm:ss.SSS'Z'");
      if (value instanceof Date) return formatDate(value.getTime(), "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'");
      return String(value);
    default:
      throw new DataError(`${to.toUpperCase()} is not supported in the Cast transformation.`);
  }
}

export const CAST = keyAndValue(
  'Cast',
  'Cast fields or the entire key or value to a specific type, e.g. to force an integer field to a smaller width. Cast from integers, floats, boolean and string to any other type, and cast binary to string (base64 encoded).',
  CONFIG,
  (config, operand) => {
    const { casts } = parseCastSpec(config.getList('spec')) as CastSpec;
    const wholeTarget = casts.get(WHOLE_VALUE);

    const deriveWhole = schemaCache((schema: AvroType) => {
      const { optional } = unwrapOptional(schema);
      const from = connectTypeOf(schema);
      if (!INPUT_TYPES.includes(from)) throw unsupportedInput(from);
      const target = avroSchemaOf(wholeTarget!);
      return buildType(optional ? optionalJson(target) : target);
    });
    const deriveFields = schemaCache((schema: AvroType) => {
      const json = recordJson(schema);
      const fields = json.fields.map((field) => {
        const to = casts.get(field.name);
        if (to === undefined) return field;
        const fieldType = (
          schema as unknown as { fields: Array<{ name: string; type: AvroType }> }
        ).fields.find((f) => f.name === field.name)!.type;
        const from = connectTypeOf(fieldType);
        if (!INPUT_TYPES.includes(from) && from !== 'Timestamp' && from !== 'Date' && from !== 'Time')
          throw unsupportedInput(from);
        const target = avroSchemaOf(to);
        const optional = isOptionalJson(field.type);
        const cast: Record<string, unknown> = {
          name: field.name,
          type: optional ? optionalJson(target) : target,
        };
        if ('default' in field)
          cast['default'] = field.default === null ? null : castValue(field.default, from, to);
        if (field.doc !== undefined) cast['doc'] = field.doc;
        return cast;
      });
      return buildType({ ...json, fields });
    });
    const fieldTypes = new WeakMap<AvroType, Map<string, ConnectType>>();

    return (record) => {
      const value = operand.value(record);
      const schema = operand.schema(record);
      if (wholeTarget !== undefined) {
        if (schema === undefined) {
          if (value === null || value === undefined) return record;
          const from = inferType(value);
          if (from === undefined)
            throw new DataError(
              `Cast transformation was passed a value of type class ${javaClassName(value)} which is not supported by Connect's data API`,
            );
          return operand.with(record, castValue(value, from, wholeTarget), undefined);
        }
        const updatedSchema = deriveWhole(schema);
        return operand.with(record, castValue(value, connectTypeOf(schema), wholeTarget), updatedSchema);
      }
      if (value === null || value === undefined) return record;
      if (schema === undefined) {
        const updated = { ...requireMap(value, PURPOSE) };
        for (const [field, to] of casts) {
          if (!(field in updated)) continue;
          const v = updated[field];
          if (v === null || v === undefined) continue;
          const from = inferType(v);
          if (from === undefined)
            throw new DataError(
              `Cast transformation was passed a value of type class ${javaClassName(v)} which is not supported by Connect's data API`,
            );
          updated[field] = castValue(v, from, to);
        }
        return operand.with(record, updated, undefined);
      }
      const struct = requireStruct(value, schema, PURPOSE);
      const updatedSchema = deriveFields(schema);
      let types = fieldTypes.get(schema);
      if (!types) {
        types = new Map(
          (schema as unknown as { fields: Array<{ name: string; type: AvroType }> }).fields.map((f) => [
            f.name,
            connectTypeOf(f.type),
          ]),
        );
        fieldTypes.set(schema, types);
      }
      const updated = { ...struct };
      for (const [field, to] of casts) {
        const from = types.get(field);
        if (from === undefined) continue;
        updated[field] = castValue(updated[field], from, to);
      }
      return operand.with(record, updated, updatedSchema);
    };
  },
);
