// InsertField$Key / InsertField$Value (Kafka Connect 4.1): adds the record's topic, partition,
// offset, timestamp and/or a static string as fields. A field name ending in `!` makes the field
// required in the derived schema, `?` (or no suffix) optional. Tombstones pass unchanged.
import type { Type as AvroType } from 'avsc';
import { defineConfig, type ConfigKey } from '../config/config-spec.js';
import { avroSchemaOf, buildType, fieldJson, recordJson, type ConnectType } from './avro-schema.js';
import {
  DataError,
  keyAndValue,
  requireMap,
  requireStruct,
  schemaCache,
  type TransformRecord,
} from './transformation.js';

const PURPOSE = 'field insertion';
const OPTIONALITY =
  'Suffix with `!` to make this a required field, or `?` to keep it optional (the default).';

const fieldKey = (name: string, doc: string): ConfigKey => ({
  name,
  type: 'string',
  default: null,
  importance: 'medium',
  documentation: `${doc} ${OPTIONALITY}`,
});

const CONFIG = defineConfig([
  fieldKey('topic.field', 'Field name for Kafka topic.'),
  fieldKey('partition.field', 'Field name for Kafka partition.'),
  fieldKey(
    'offset.field',
    'Field name for Kafka offset - only applicable to sink (and processor) connectors, whose records were consumed.',
  ),
  fieldKey('timestamp.field', 'Field name for record timestamp.'),
  fieldKey('static.field', 'Field name for static data field.'),
  {
    name: 'static.value',
    type: 'string',
    default: null,
    importance: 'medium',
    documentation: 'Static field value, if field name configured.',
  },
]);

interface Insertion {
  name: string;
  optional: boolean;
}

/** Connect's InsertionSpec.parse: `name!` required, `name?` or `name` optional. */
function insertion(spec: string | undefined): Insertion | undefined {
  if (spec === undefined) return undefined;
  if (spec.endsWith('?')) return { name: spec.slice(0, -1), optional: true };
  if (spec.endsWith('!')) return { name: spec.slice(0, -1), optional: false };
  return { name: spec, optional: true };
}

export const INSERT_FIELD = keyAndValue(
  'InsertField',
  'Insert field(s) using attributes from the record metadata or a configured static value.',
  CONFIG,
  (config, operand) => {
    const topic = insertion(config.getOptionalString('topic.field'));
    const partition = insertion(config.getOptionalString('partition.field'));
    const offset = insertion(config.getOptionalString('offset.field'));
    const timestamp = insertion(config.getOptionalString('timestamp.field'));
    const staticField = insertion(config.getOptionalString('static.field'));
    const staticValue = config.getOptionalString('static.value');
    const insertions: Array<[Insertion | undefined, ConnectType]> = [
      [topic, 'string'],
      [partition, 'int32'],
      [offset, 'int64'],
      [timestamp, 'Timestamp'],
      [staticField, 'string'],
    ];
    const derive = schemaCache((schema: AvroType) => {
      const json = recordJson(schema);
      const fields = [...json.fields];
      for (const [spec, type] of insertions)
        if (spec) fields.push(fieldJson(spec.name, avroSchemaOf(type), spec.optional));
      return buildType({ ...json, fields });
    });

    const offsetOf = (record: TransformRecord): number => {
      if (record.offset === undefined || record.offset === null)
        throw new DataError(`Only SinkRecord supported for [${PURPOSE}], found: SourceRecord`);
      return Number(record.offset);
    };
    const insert = (target: Record<string, unknown>, record: TransformRecord) => {
      if (topic) target[topic.name] = record.topic;
      if (partition && record.partition !== null) target[partition.name] = record.partition;
      if (offset) target[offset.name] = offsetOf(record);
      if (timestamp && record.timestamp !== null) target[timestamp.name] = Number(record.timestamp);
      if (staticField && staticValue !== undefined) target[staticField.name] = staticValue;
    };

    return (record) => {
      const value = operand.value(record);
      if (value === null || value === undefined) return record;
      const schema = operand.schema(record);
      if (schema === undefined) {
        const updated = { ...requireMap(value, PURPOSE) };
        insert(updated, record);
        return operand.with(record, updated, undefined);
      }
      const struct = requireStruct(value, schema, PURPOSE);
      const updatedSchema = derive(schema);
      const updated: Record<string, unknown> = {};
      for (const [name, v] of Object.entries(struct)) updated[name] = v;
      for (const [spec] of insertions) if (spec) updated[spec.name] = null;
      insert(updated, record);
      // A required inserted field without a value (e.g. no timestamp) is Connect's validation error.
      for (const [spec] of insertions)
        if (spec && !spec.optional && updated[spec.name] === null)
          throw new DataError(
            `Invalid value: null used for required field: "${spec.name}", schema type: ${schemaTypeOf(spec, insertions)}`,
          );
      return operand.with(record, updated, updatedSchema);
    };
  },
);

function schemaTypeOf(spec: Insertion, insertions: Array<[Insertion | undefined, ConnectType]>): string {
  const type = insertions.find(([s]) => s === spec)?.[1] ?? 'string';
  return type === 'Timestamp' ? 'INT64' : type.toUpperCase();
}
