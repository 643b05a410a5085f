// InsertHeader, DropHeaders and HeaderFrom$Key/$Value (Kafka Connect 4.1). Header values are
// written the way Kafka Connect's SimpleHeaderConverter writes them: UTF-8 text (strings as they
// are, numbers and booleans in Java's text form, bytes Base64, structs/maps/arrays as JSON).
// Headers here are a name -> value map, so a header added under an existing name replaces it.
import type { Type as AvroType } from 'avsc';
import { defineConfig } from '../config/config-spec.js';
import { buildType, recordJson } from './avro-schema.js';
import { javaFloatString } from './cast.js';
import { keyAndValue, requireMap, requireStruct, schemaCache, single } from './transformation.js';

/** SimpleHeaderConverter's bytes for a value (null stays a null header). */
export function headerBytes(value: unknown): Buffer | undefined {
  if (value === null || value === undefined) return undefined;
  if (Buffer.isBuffer(value)) return Buffer.from(value.toString('base64'));
  if (typeof value === 'string') return Buffer.from(value);
  if (typeof value === 'number')
    return Buffer.from(Number.isInteger(value) ? String(value) : javaFloatString(value, 'float64'));
  if (typeof value === 'boolean' || typeof value === 'bigint') return Buffer.from(String(value));
  if (value instanceof Date) return Buffer.from(String(value.getTime()));
  return Buffer.from(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

const nonEmpty = (value: unknown) => ((value as string[]).length === 0 ? 'Empty list' : undefined);

export const INSERT_HEADER = single(
  'InsertHeader',
  'Add a header to each record.',
  defineConfig([
    { name: 'header', type: 'string', importance: 'high', documentation: 'The name of the header.' },
    {
      name: 'value.literal',
      type: 'string',
      importance: 'high',
      documentation: 'The literal value that is to be set as the header value on all records.',
    },
  ]),
  (config) => {
    const name = config.getString('header');
    const value = Buffer.from(config.getString('value.literal'));
    return (record) => ({ ...record, headers: { ...record.headers, [name]: value } });
  },
);

export const DROP_HEADERS = single(
  'DropHeaders',
  'Removes one or more headers from each record.',
  defineConfig([
    {
      name: 'headers',
      type: 'list',
      importance: 'high',
      documentation: 'The name of the headers to be removed.',
      validate: nonEmpty,
    },
  ]),
  (config) => {
    const names = new Set(config.getList('headers'));
    return (record) => {
      const headers: Record<string, Buffer | undefined> = {};
      for (const [name, value] of Object.entries(record.headers)) if (!names.has(name)) headers[name] = value;
      return { ...record, headers };
    };
  },
);

const HEADER_FROM_CONFIG = defineConfig(
  [
    {
      name: 'fields',
      type: 'list',
      importance: 'high',
      documentation: 'Field names in the record whose values are to be copied or moved to headers.',
      validate: nonEmpty,
    },
    {
      name: 'headers',
      type: 'list',
      importance: 'high',
      documentation:
        'Header names, in the same order as the field names listed in the fields configuration property.',
      validate: nonEmpty,
    },
    {
      name: 'operation',
      type: 'string',
      validValues: ['move', 'copy'],
      importance: 'high',
      documentation:
        'Either <code>move</code> if the fields are to be moved to the headers (removed from the key/value), or <code>copy</code> if the fields are to be copied to the headers (retained in the key/value).',
    },
  ],
  [
    {
      keys: ['fields', 'headers'],
      check: (values) =>
        (values.get('fields') as string[]).length !== (values.get('headers') as string[]).length
          ? "'fields' config must have the same number of elements as 'headers' config."
          : undefined,
    },
  ],
);

export const HEADER_FROM = keyAndValue(
  'HeaderFrom',
  "Moves or copies fields in the key/value of a record into that record's headers. Corresponding elements of fields and headers together identify a field and the header it should be moved or copied to.",
  HEADER_FROM_CONFIG,
  (config, operand) => {
    const fields = config.getList('fields');
    const headerNames = config.getList('headers');
    const move = config.getString('operation') === 'move';
    const purpose = `header ${move ? 'move' : 'copy'}`;
    const moved = new Set(fields);
    const derive = schemaCache((schema: AvroType) => {
      const json = recordJson(schema);
      return buildType({ ...json, fields: json.fields.filter((f) => !moved.has(f.name)) });
    });
    return (record) => {
      const value = operand.value(record);
      if (value === null || value === undefined) return record;
      const schema = operand.schema(record);
      const input = schema === undefined ? requireMap(value, purpose) : requireStruct(value, schema, purpose);
      const headers = { ...record.headers };
      fields.forEach((field, i) => {
        headers[headerNames[i]!] = headerBytes(input[field]);
      });
      if (!move) return { ...record, headers };
      const updated: Record<string, unknown> = {};
      for (const [name, v] of Object.entries(input)) if (!moved.has(name)) updated[name] = v;
      return { ...operand.with(record, updated, schema === undefined ? undefined : derive(schema)), headers };
    };
  },
);

export const FILTER = single(
  'Filter',
  'Drops all records, filtering them from subsequent transformations in the chain. This is intended to be used conditionally to filter out records matching (or not matching) a particular Predicate.',
  defineConfig([]),
  () => () => null,
);
