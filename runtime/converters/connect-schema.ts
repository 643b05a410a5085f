// Kafka Connect schemas, as JsonConverter writes them in its `{"schema", "payload"}` envelope, and
// their Avro equivalents as Confluent's AvroConverter (AvroData) maps them: int8/int16 -> int with
// `connect.type`, int32 -> int, int64 -> long, float32 -> float, float64 -> double, struct ->
// record (named by the Connect name, else `io.confluent.connect.avro.ConnectDefault`, then
// `ConnectDefault2`, ... in depth-first order), optional -> `["null", T]` with default null, map
// with string keys -> map, other maps -> array of `io.confluent.connect.avro.MapEntry` records,
// Decimal -> bytes/decimal, Date -> int/date, Time -> int/time-millis, Timestamp -> long/timestamp-millis.
//
// Values in the runtime are the Avro converter's (so transforms and tasks see one shape whatever
// the converter): a struct is an object of its fields, bytes and Decimal are Buffers (Decimal:
// the unscaled two's-complement big-endian integer), Date/Time/Timestamp numbers, an optional
// value is bare or null. int64 is a number, or a bigint beyond ±2^53 (exact; the Avro converter
// refuses such a value when it writes).
//
// avsc keeps custom attributes only on logical types, so `connect.type: int8`, versions and
// parameters of plain types do not survive in the avsc Type: the exact Connect schema of every
// type node this module built is remembered beside it (`CONNECT_OF`), and derived from the Avro
// type otherwise (int then reads as int32).
import avro from 'avsc';
import type { Type as AvroType } from 'avsc';
import { parseAvroSchema } from './schema-registry.js';

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
  | 'struct';

/** A Connect schema, its keys in the order JsonConverter writes them. */
export interface ConnectSchema {
  type: ConnectType;
  fields?: ConnectField[];
  items?: ConnectSchema;
  keys?: ConnectSchema;
  values?: ConnectSchema;
  optional: boolean;
  name?: string;
  version?: number;
  doc?: string;
  parameters?: Record<string, string>;
  /** The default as JSON (JsonConverter's `default`). */
  default?: unknown;
}

export interface ConnectField {
  name: string;
  schema: ConnectSchema;
}

export const DECIMAL = 'org.apache.kafka.connect.data.Decimal';
export const DATE = 'org.apache.kafka.connect.data.Date';
export const TIME = 'org.apache.kafka.connect.data.Time';
export const TIMESTAMP = 'org.apache.kafka.connect.data.Timestamp';
const AVRO_NAMESPACE = 'io.confluent.connect.avro';
const MAP_ENTRY = `${AVRO_NAMESPACE}.MapEntry`;
/** Confluent's precision when a Decimal schema does not say (`connect.decimal.precision`). */
const DEFAULT_DECIMAL_PRECISION = 64;

const TYPES: ReadonlySet<string> = new Set([
  'int8',
  'int16',
  'int32',
  'int64',
  'float32',
  'float64',
  'boolean',
  'string',
  'bytes',
  'array',
  'map',
  'struct',
]);

/**
 * The names Kafka Connect's JsonConverter writes in an envelope for FLOAT32 and FLOAT64 (its
 * JsonSchema: "float", "double"); every other type is written under its Connect name.
 */
const JSON_TYPE_NAMES: Readonly<Partial<Record<ConnectType, string>>> = {
  float32: 'float',
  float64: 'double',
};
const FROM_JSON_TYPE_NAMES: Readonly<Record<string, ConnectType>> = { float: 'float32', double: 'float64' };

/** A schema the envelope carries that is not a Connect schema; the message names where. */
export class ConnectSchemaError extends Error {}

// ---------------------------------------------------------------------------------------------
// Reading the envelope's schema

/** Parses the envelope's `schema` (JSON already parsed); throws ConnectSchemaError. */
export function parseConnectSchema(json: unknown, path = 'schema'): ConnectSchema {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ConnectSchemaError(`${path} must be an object with a "type"`);
  const raw = json as Record<string, unknown>;
  const written = raw['type'];
  // JsonConverter writes "float" and "double"; the Connect names are read too.
  const type = typeof written === 'string' ? (FROM_JSON_TYPE_NAMES[written] ?? written) : written;
  if (typeof type !== 'string' || !TYPES.has(type))
    throw new ConnectSchemaError(
      `${path}.type is ${JSON.stringify(written)}, not a Connect type (int8, int16, int32, int64, float, double, boolean, string, bytes, array, map, struct)`,
    );
  const schema: ConnectSchema = { type: type as ConnectType, optional: false };
  if (type === 'struct') {
    const fields = raw['fields'];
    if (!Array.isArray(fields)) throw new ConnectSchemaError(`${path}.fields must be an array of fields`);
    const seen = new Set<string>();
    schema.fields = fields.map((field: unknown, i) => {
      const name = (field as Record<string, unknown> | null)?.['field'];
      if (typeof name !== 'string')
        throw new ConnectSchemaError(`${path}.fields[${i}].field must be the field's name (a string)`);
      if (seen.has(name)) throw new ConnectSchemaError(`${path} has two fields named "${name}"`);
      seen.add(name);
      return { name, schema: parseConnectSchema(field, `${path}.fields[${i}]`) };
    });
  } else if (type === 'array') {
    schema.items = parseConnectSchema(raw['items'], `${path}.items`);
  } else if (type === 'map') {
    schema.keys = parseConnectSchema(raw['keys'], `${path}.keys`);
    schema.values = parseConnectSchema(raw['values'], `${path}.values`);
  }
  const optional = raw['optional'];
  if (optional !== undefined && optional !== null && typeof optional !== 'boolean')
    throw new ConnectSchemaError(`${path}.optional must be true or false`);
  schema.optional = optional === true;
  const name = raw['name'];
  if (name !== undefined && name !== null) {
    if (typeof name !== 'string') throw new ConnectSchemaError(`${path}.name must be a string`);
    schema.name = name;
  }
  const version = raw['version'];
  if (version !== undefined && version !== null) {
    if (!Number.isInteger(version)) throw new ConnectSchemaError(`${path}.version must be an integer`);
    schema.version = version as number;
  }
  const doc = raw['doc'];
  if (typeof doc === 'string') schema.doc = doc;
  const parameters = raw['parameters'];
  if (parameters !== undefined && parameters !== null) {
    if (typeof parameters !== 'object' || Array.isArray(parameters))
      throw new ConnectSchemaError(`${path}.parameters must be an object of strings`);
    schema.parameters = Object.fromEntries(
      Object.entries(parameters as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
    );
  }
  if (raw['default'] !== undefined && raw['default'] !== null) schema.default = raw['default'];
  checkLogical(schema, path);
  return schema;
}

function checkLogical(schema: ConnectSchema, path: string): void {
  const expected: Record<string, ConnectType> = {
    [DECIMAL]: 'bytes',
    [DATE]: 'int32',
    [TIME]: 'int32',
    [TIMESTAMP]: 'int64',
  };
  const want = schema.name === undefined ? undefined : expected[schema.name];
  if (want !== undefined && schema.type !== want)
    throw new ConnectSchemaError(
      `${path} is ${schema.name}, which must have type ${want}, not ${schema.type}`,
    );
  if (schema.name === DECIMAL && !/^\d+$/.test(schema.parameters?.['scale'] ?? ''))
    throw new ConnectSchemaError(`${path} is a Decimal without a "scale" parameter`);
}

// ---------------------------------------------------------------------------------------------
// Connect -> Avro

/** The Connect schema each avsc type node was built from (exact, including int8/int16 and versions). */
const CONNECT_OF = new WeakMap<AvroType, ConnectSchema>();

/** The avsc Type of a Connect schema, as Confluent's AvroConverter would register it. */
export function toAvroType(schema: ConnectSchema): AvroType {
  const names = { next: 1 };
  const avroSchema = toAvroSchema(schema, names);
  const type = parseAvroSchema(JSON.stringify(avroSchema));
  remember(type, schema);
  return type;
}

function toAvroSchema(schema: ConnectSchema, names: { next: number }): unknown {
  const base = baseAvroSchema(schema, names);
  return schema.optional ? ['null', base] : base;
}

function connectAttributes(schema: ConnectSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (schema.name !== undefined) out['connect.name'] = schema.name;
  if (schema.version !== undefined) out['connect.version'] = schema.version;
  if (schema.doc !== undefined) out['connect.doc'] = schema.doc;
  if (schema.parameters !== undefined) out['connect.parameters'] = schema.parameters;
  return out;
}

function baseAvroSchema(schema: ConnectSchema, names: { next: number }): unknown {
  switch (schema.type) {
    case 'int8':
    case 'int16':
      return { type: 'int', 'connect.type': schema.type, ...connectAttributes(schema) };
    case 'int32':
      if (schema.name === DATE) return { type: 'int', logicalType: 'date', ...connectAttributes(schema) };
      if (schema.name === TIME)
        return { type: 'int', logicalType: 'time-millis', ...connectAttributes(schema) };
      return 'int';
    case 'int64':
      if (schema.name === TIMESTAMP)
        return { type: 'long', logicalType: 'timestamp-millis', ...connectAttributes(schema) };
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
      if (schema.name === DECIMAL) {
        const scale = Number(schema.parameters!['scale']);
        const precision = Number(
          schema.parameters?.['connect.decimal.precision'] ?? DEFAULT_DECIMAL_PRECISION,
        );
        return { type: 'bytes', logicalType: 'decimal', precision, scale, ...connectAttributes(schema) };
      }
      return 'bytes';
    case 'array':
      return { type: 'array', items: toAvroSchema(schema.items!, names) };
    case 'map':
      if (schema.keys!.type === 'string' && !schema.keys!.optional)
        return { type: 'map', values: toAvroSchema(schema.values!, names) };
      return {
        type: 'array',
        items: {
          type: 'record',
          name: MAP_ENTRY,
          fields: [
            { name: 'key', type: toAvroSchema(schema.keys!, names) },
            { name: 'value', type: toAvroSchema(schema.values!, names) },
          ],
        },
      };
    case 'struct': {
      const n = names.next++;
      const name = schema.name ?? `${AVRO_NAMESPACE}.ConnectDefault${n === 1 ? '' : n}`;
      return {
        type: 'record',
        name,
        ...(schema.doc !== undefined ? { doc: schema.doc } : {}),
        fields: schema.fields!.map((f) => ({
          name: f.name,
          type: toAvroSchema(f.schema, names),
          ...(f.schema.optional ? { default: null } : {}),
        })),
      };
    }
  }
}

/** Walks `type` beside `schema`, remembering each node's Connect schema. */
function remember(type: AvroType, schema: ConnectSchema): void {
  CONNECT_OF.set(type, schema);
  const base = schema.optional ? nonNullBranch(type) : type;
  if (base !== type && base !== undefined) CONNECT_OF.set(base, { ...schema, optional: false });
  if (base === undefined) return;
  if (schema.type === 'struct') {
    const fields = (base as unknown as { fields: Array<{ type: AvroType }> }).fields;
    schema.fields!.forEach((f, i) => remember(fields[i]!.type, f.schema));
  } else if (schema.type === 'array') {
    remember((base as unknown as { itemsType: AvroType }).itemsType, schema.items!);
  } else if (schema.type === 'map') {
    if (base.typeName === 'map')
      remember((base as unknown as { valuesType: AvroType }).valuesType, schema.values!);
    else {
      const entry = (base as unknown as { itemsType: { fields: Array<{ type: AvroType }> } }).itemsType;
      remember(entry.fields[0]!.type, schema.keys!);
      remember(entry.fields[1]!.type, schema.values!);
    }
  }
}

/**
 * Gives `to`, a record type derived from `from` (by a transform), the Connect details `from` had,
 * as Kafka Connect's transforms keep them (SchemaUtil.copySchemaBasics): the struct's name,
 * version, doc and parameters, and the exact Connect schema of every field `to` kept unchanged
 * (same name, same Avro type), so int8/int16 and logical versions survive the transform. Fields
 * that are new or changed get the schema derived from their Avro type. Does nothing when `from`
 * has no Connect schema (it did not come from a JSON envelope) or either is not a record.
 */
export function carryConnectSchemas(from: AvroType, to: AvroType): void {
  const known = CONNECT_OF.get(from);
  if (known === undefined || CONNECT_OF.has(to) || known.type !== 'struct') return;
  if (from.typeName !== 'record' || to.typeName !== 'record') return;
  type Field = { name: string; type: AvroType };
  const old = new Map(((from as unknown as { fields: Field[] }).fields ?? []).map((f) => [f.name, f.type]));
  const fields: ConnectField[] = [];
  try {
    for (const field of (to as unknown as { fields: Field[] }).fields) {
      const before = old.get(field.name);
      const exact = before === undefined ? undefined : CONNECT_OF.get(before);
      if (exact !== undefined && before!.equals(field.type)) remember(field.type, exact);
      fields.push({ name: field.name, schema: CONNECT_OF.get(field.type) ?? toConnectSchema(field.type) });
    }
  } catch (error) {
    if (error instanceof ConnectSchemaError) return; // toConnectSchema(to) will say why, when it is written
    throw error;
  }
  const name = to.name !== undefined && to.name !== from.name ? { name: to.name } : {};
  CONNECT_OF.set(to, { ...known, ...name, fields, optional: false });
}

function nonNullBranch(type: AvroType): AvroType | undefined {
  const types = (type as unknown as { types?: AvroType[] }).types;
  if (!types) return undefined;
  const others = types.filter((t) => t.typeName !== 'null');
  return others.length === 1 && others.length === types.length - 1 ? others[0] : undefined;
}

// ---------------------------------------------------------------------------------------------
// Avro -> Connect

/** The Connect schema JsonConverter would write for values of `type`; throws ConnectSchemaError. */
export function toConnectSchema(type: AvroType, path = 'schema'): ConnectSchema {
  const known = CONNECT_OF.get(type);
  if (known) return known;
  const typeName = type.typeName;
  if (typeName.startsWith('union:')) {
    const branch = nonNullBranch(type);
    if (!branch)
      throw new ConnectSchemaError(
        `${path} is an Avro union of several non-null types (${describe(type)}), which has no Connect schema here; use ["null", T]`,
      );
    return { ...toConnectSchema(branch, path), optional: true };
  }
  if (typeName.startsWith('logical:')) return logicalToConnect(type, path);
  switch (typeName) {
    case 'boolean':
      return { type: 'boolean', optional: false };
    case 'int':
      return { type: 'int32', optional: false };
    case 'long':
      return { type: 'int64', optional: false };
    case 'float':
      return { type: 'float32', optional: false };
    case 'double':
      return { type: 'float64', optional: false };
    case 'bytes':
    case 'fixed':
      return { type: 'bytes', optional: false };
    case 'string':
    case 'enum':
      return { type: 'string', optional: false };
    case 'map':
      return {
        type: 'map',
        keys: { type: 'string', optional: false },
        values: toConnectSchema((type as unknown as { valuesType: AvroType }).valuesType, `${path}.values`),
        optional: false,
      };
    case 'array': {
      const items = (type as unknown as { itemsType: AvroType }).itemsType;
      if (items.typeName === 'record' && items.name === MAP_ENTRY) {
        const [key, value] = (items as unknown as { fields: Array<{ type: AvroType }> }).fields;
        return {
          type: 'map',
          keys: toConnectSchema(key!.type, `${path}.keys`),
          values: toConnectSchema(value!.type, `${path}.values`),
          optional: false,
        };
      }
      return { type: 'array', items: toConnectSchema(items, `${path}.items`), optional: false };
    }
    case 'record': {
      const fields = (type as unknown as { fields: Array<{ name: string; type: AvroType }> }).fields;
      const name = type.name;
      return {
        type: 'struct',
        fields: fields.map((f) => ({ name: f.name, schema: toConnectSchema(f.type, `${path}.${f.name}`) })),
        optional: false,
        ...(name !== undefined && !/^io\.confluent\.connect\.avro\.ConnectDefault\d*$/.test(name)
          ? { name }
          : {}),
      };
    }
    default:
      throw new ConnectSchemaError(`${path} is Avro ${describe(type)}, which has no Connect schema`);
  }
}

function logicalToConnect(type: AvroType, path: string): ConnectSchema {
  const schema = type.schema({ exportAttrs: true }) as Record<string, unknown>;
  const attrs = {
    ...(typeof schema['connect.version'] === 'number' ? { version: schema['connect.version'] } : {}),
    ...(typeof schema['connect.doc'] === 'string' ? { doc: schema['connect.doc'] } : {}),
  };
  switch (schema['logicalType']) {
    case 'decimal': {
      const parameters: Record<string, string> = { scale: String(schema['scale'] ?? 0) };
      if (schema['precision'] !== undefined)
        parameters['connect.decimal.precision'] = String(schema['precision']);
      return { type: 'bytes', optional: false, name: DECIMAL, version: 1, ...attrs, parameters };
    }
    case 'date':
      return { type: 'int32', optional: false, name: DATE, version: 1, ...attrs };
    case 'time-millis':
      return { type: 'int32', optional: false, name: TIME, version: 1, ...attrs };
    case 'timestamp-millis':
      return { type: 'int64', optional: false, name: TIMESTAMP, version: 1, ...attrs };
    default:
      // uuid, micros, local timestamps...: their underlying type, as Confluent without logical converters.
      return toConnectSchema((type as unknown as { underlyingType: AvroType }).underlyingType, path);
  }
}

function describe(type: AvroType): string {
  const text = JSON.stringify(type.schema());
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The envelope's `schema` object, keys in JsonConverter's order. */
export function connectSchemaJson(schema: ConnectSchema): Record<string, unknown> {
  const out: Record<string, unknown> = { type: JSON_TYPE_NAMES[schema.type] ?? schema.type };
  if (schema.type === 'struct')
    out['fields'] = schema.fields!.map((f) => ({ ...connectSchemaJson(f.schema), field: f.name }));
  else if (schema.type === 'array') out['items'] = connectSchemaJson(schema.items!);
  else if (schema.type === 'map') {
    out['keys'] = connectSchemaJson(schema.keys!);
    out['values'] = connectSchemaJson(schema.values!);
  }
  out['optional'] = schema.optional;
  if (schema.name !== undefined) out['name'] = schema.name;
  if (schema.version !== undefined) out['version'] = schema.version;
  if (schema.doc !== undefined) out['doc'] = schema.doc;
  if (schema.parameters !== undefined) out['parameters'] = schema.parameters;
  if (schema.default !== undefined) out['default'] = schema.default;
  return out;
}

export const isAvroType = (value: unknown): value is AvroType => avro.Type.isType(value);
