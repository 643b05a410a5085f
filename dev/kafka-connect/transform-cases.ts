// The cases of the transforms differential: each a transform chain config with Kafka Connect's
// keys and the records to run it on, once schemaless (JsonConverter schemas.enable=false) and,
// where `schema` is given, once with schemas (the `{"schema", "payload"}` envelope). Every
// transform and predicate of issue 18 has at least one case; predicates also with `negate`.
import type { HarnessCase } from '../kafka-connect.js';

const T = 'org.apache.kafka.connect.transforms';
const TS = 1_700_000_000_000;

type Struct = { schema: unknown; payload: unknown };
const field = (name: string, type: string, optional = false) => ({ field: name, type, optional });
const struct = (fields: unknown[], name?: string) => ({
  type: 'struct',
  optional: false,
  fields,
  ...(name ? { name } : {}),
});

/** A record value given both ways: plain JSON, and with its Connect schema. */
interface Both {
  plain: unknown;
  schemaed: Struct;
}

const person: Both = {
  plain: { id: 7, name: 'ada', age: 36, active: true },
  schemaed: {
    schema: struct([
      field('id', 'int32'),
      field('name', 'string'),
      field('age', 'int32'),
      field('active', 'boolean'),
    ]),
    payload: { id: 7, name: 'ada', age: 36, active: true },
  },
};

/** A record with a double field: Kafka Connect's JsonConverter names FLOAT64 `double` in its schemas. */
const measured: Both = {
  plain: { id: 7, score: 1.5 },
  schemaed: {
    schema: struct([field('id', 'int32'), field('score', 'double')]),
    payload: { id: 7, score: 1.5 },
  },
};

const nested: Both = {
  plain: { id: 1, address: { city: 'Oslo', zip: '0150' }, tags: ['a'] },
  schemaed: {
    schema: struct([
      field('id', 'int32'),
      { field: 'address', ...struct([field('city', 'string'), field('zip', 'string')]) },
    ]),
    payload: { id: 1, address: { city: 'Oslo', zip: '0150' } },
  },
};

const withTime: Both = {
  plain: { id: 1, at: TS },
  schemaed: {
    schema: struct([field('id', 'int32'), field('at', 'int64')]),
    payload: { id: 1, at: TS },
  },
};

interface Spec {
  id: string;
  config: Record<string, string>;
  value: Both;
  key?: unknown;
  topic?: string;
  headers?: Record<string, string | null>;
  /** Only schemaless (the transform needs no schema, or the case is about a schemaless value). */
  schemalessOnly?: boolean;
  /** Only with schemas (JsonConverter cannot write the schemaless result, e.g. a java.util.Date). */
  schemasOnly?: boolean;
  /** Also run a tombstone (null value) through the chain. */
  tombstone?: boolean;
}

const chain = (aliases: Record<string, Record<string, string>>, extra: Record<string, string> = {}) => {
  const config: Record<string, string> = { transforms: Object.keys(aliases).join(','), ...extra };
  for (const [alias, props] of Object.entries(aliases))
    for (const [k, v] of Object.entries(props)) config[`transforms.${alias}.${k}`] = v;
  return config;
};

const SPECS: Spec[] = [
  {
    id: 'InsertField static, topic, partition, offset, timestamp',
    config: chain({
      ins: {
        type: `${T}.InsertField$Value`,
        'static.field': 'src',
        'static.value': 'kc',
        'topic.field': 't',
        'partition.field': 'p',
        'offset.field': 'o',
        'timestamp.field': 'ts',
      },
    }),
    value: person,
  },
  {
    id: 'ReplaceField include and renames',
    config: chain({
      r: { type: `${T}.ReplaceField$Value`, include: 'id,name,age', renames: 'name:full_name' },
    }),
    value: person,
  },
  {
    id: 'ReplaceField exclude',
    config: chain({ r: { type: `${T}.ReplaceField$Value`, exclude: 'age,active' } }),
    value: person,
  },
  {
    id: 'MaskField with and without replacement',
    config: chain({
      m: { type: `${T}.MaskField$Value`, fields: 'age,active' },
      n: { type: `${T}.MaskField$Value`, fields: 'name', replacement: '***' },
    }),
    value: person,
  },
  {
    id: 'Cast fields',
    config: chain({ c: { type: `${T}.Cast$Value`, spec: 'id:string,age:float64,active:int8' } }),
    value: person,
  },
  {
    id: 'Cast a double field',
    config: chain({ c: { type: `${T}.Cast$Value`, spec: 'score:int32,id:float32' } }),
    value: measured,
  },
  {
    id: 'Cast whole key',
    config: chain({ c: { type: `${T}.Cast$Key`, spec: 'string' } }),
    value: person,
    key: 42,
    schemalessOnly: true,
  },
  {
    id: 'ExtractField',
    config: chain({ e: { type: `${T}.ExtractField$Value`, field: 'name' } }),
    value: person,
  },
  {
    id: 'HoistField',
    config: chain({ h: { type: `${T}.HoistField$Value`, field: 'wrapped' } }),
    value: person,
  },
  {
    id: 'ValueToKey',
    config: chain({ v: { type: `${T}.ValueToKey`, fields: 'id,name' } }),
    value: person,
  },
  {
    id: 'Flatten with a delimiter',
    config: chain({ f: { type: `${T}.Flatten$Value`, delimiter: '_' } }),
    value: nested,
  },
  {
    id: 'TimestampConverter to a formatted string',
    config: chain({
      s: {
        type: `${T}.TimestampConverter$Value`,
        field: 'at',
        'target.type': 'string',
        format: 'yyyy-MM-dd HH:mm:ss',
      },
    }),
    value: withTime,
  },
  {
    id: 'TimestampConverter unix to Timestamp',
    config: chain({ s: { type: `${T}.TimestampConverter$Value`, field: 'at', 'target.type': 'Timestamp' } }),
    value: withTime,
    schemasOnly: true,
  },
  {
    id: 'TimestampRouter',
    config: chain({
      r: {
        type: `${T}.TimestampRouter`,
        'topic.format': '${topic}-${timestamp}',
        'timestamp.format': 'yyyyMMdd',
      },
    }),
    value: person,
  },
  {
    id: 'RegexRouter',
    config: chain({ r: { type: `${T}.RegexRouter`, regex: '(.*)-raw', replacement: '$1-clean' } }),
    value: person,
    topic: 'orders-raw',
  },
  {
    id: 'InsertHeader, HeaderFrom copy and move, DropHeaders',
    config: chain({
      ih: { type: `${T}.InsertHeader`, header: 'source', 'value.literal': 'kc' },
      hf: { type: `${T}.HeaderFrom$Value`, fields: 'name,id', headers: 'h_name,h_id', operation: 'copy' },
      dh: { type: `${T}.DropHeaders`, headers: 'drop-me' },
    }),
    value: person,
    headers: { 'drop-me': 'x', keep: 'y' },
  },
  {
    id: 'HeaderFrom move',
    config: chain({
      hf: { type: `${T}.HeaderFrom$Value`, fields: 'name', headers: 'who', operation: 'move' },
    }),
    value: person,
  },
  {
    id: 'Filter with RecordIsTombstone',
    config: chain(
      { f: { type: `${T}.Filter`, predicate: 'tomb' } },
      { predicates: 'tomb', 'predicates.tomb.type': `${T}.predicates.RecordIsTombstone` },
    ),
    value: person,
    tombstone: true,
  },
  {
    id: 'Filter negated TopicNameMatches',
    config: chain(
      { f: { type: `${T}.Filter`, predicate: 'orders', negate: 'true' } },
      {
        predicates: 'orders',
        'predicates.orders.type': `${T}.predicates.TopicNameMatches`,
        'predicates.orders.pattern': 'orders-.*',
      },
    ),
    value: person,
    topic: 'payments',
  },
  {
    id: 'InsertField only with HasHeaderKey',
    config: chain(
      {
        ins: {
          type: `${T}.InsertField$Value`,
          'static.field': 'flagged',
          'static.value': 'yes',
          predicate: 'has',
        },
      },
      {
        predicates: 'has',
        'predicates.has.type': `${T}.predicates.HasHeaderKey`,
        'predicates.has.name': 'flag',
      },
    ),
    value: person,
    headers: { flag: '1' },
  },
  {
    id: 'InsertField negated HasHeaderKey',
    config: chain(
      {
        ins: {
          type: `${T}.InsertField$Value`,
          'static.field': 'flagged',
          'static.value': 'yes',
          predicate: 'has',
          negate: 'true',
        },
      },
      {
        predicates: 'has',
        'predicates.has.type': `${T}.predicates.HasHeaderKey`,
        'predicates.has.name': 'flag',
      },
    ),
    value: person,
    headers: { flag: '1' },
  },
  {
    id: 'ExtractField of a missing field',
    config: chain({ e: { type: `${T}.ExtractField$Value`, field: 'nope' } }),
    value: person,
    schemalessOnly: true,
  },
  {
    id: 'Cast of a value that is not a number',
    config: chain({ c: { type: `${T}.Cast$Value`, spec: 'name:int32' } }),
    value: person,
  },
];

/** Every case, schemaless and (unless `schemalessOnly`) with schemas. */
export function transformCases(): HarnessCase[] {
  const cases: HarnessCase[] = [];
  for (const spec of SPECS) {
    for (const schemasEnable of spec.schemalessOnly ? [false] : spec.schemasOnly ? [true] : [false, true]) {
      const value = schemasEnable ? spec.value.schemaed : spec.value.plain;
      const key = schemasEnable
        ? { schema: { type: 'string', optional: true }, payload: 'k1' }
        : (spec.key ?? 'k1');
      const base = {
        topic: spec.topic ?? 'orders-raw',
        partition: 3,
        offset: 42,
        timestamp: TS,
        key,
        headers: spec.headers ?? {},
      };
      cases.push({
        case: `${spec.id} (${schemasEnable ? 'schemas' : 'schemaless'})`,
        schemasEnable,
        config: spec.config,
        records: [{ ...base, value }, ...(spec.tombstone ? [{ ...base, value: null }] : [])],
      });
    }
  }
  return cases;
}
