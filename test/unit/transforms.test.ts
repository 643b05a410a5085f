import { expect } from 'chai';
import type { Type as AvroType } from 'avsc';
import { parseAvroSchema } from '../../runtime/converters/schema-registry.js';
import { RecordError } from '../../runtime/errors.js';
import {
  createTransformChain,
  TransformError,
  type TransformRecord,
} from '../../runtime/transforms/index.js';

/** A chain with one transform `t` of `type`, configured with `settings` (Kafka Connect's keys). */
const one = (type: string, settings: Record<string, unknown> = {}) => {
  const config: Record<string, unknown> = { transforms: 't', 'transforms.t.type': type };
  for (const [k, v] of Object.entries(settings)) config[`transforms.t.${k}`] = v;
  return createTransformChain(config);
};

const record = (overrides: Partial<TransformRecord> = {}): TransformRecord => ({
  topic: 'orders',
  partition: 3,
  timestamp: '1700000000000',
  offset: '42',
  key: null,
  keySchema: undefined,
  value: null,
  valueSchema: undefined,
  headers: {},
  ...overrides,
});

const ORDER = parseAvroSchema({
  type: 'record',
  name: 'Order',
  namespace: 'shop',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'amount', type: 'double' },
    { name: 'note', type: ['null', 'string'], default: null },
    { name: 'qty', type: 'int' },
  ],
});
const order = { id: 7, amount: 12.5, note: 'fragile', qty: 3 };

const schemaJson = (type: AvroType | undefined) =>
  JSON.parse(JSON.stringify(type!.schema({ exportAttrs: true })));
const fieldNames = (type: AvroType | undefined) =>
  (schemaJson(type) as { fields: Array<{ name: string }> }).fields.map((f) => f.name);
const fieldType = (type: AvroType | undefined, name: string) =>
  (schemaJson(type) as { fields: Array<{ name: string; type: unknown }> }).fields.find((f) => f.name === name)
    ?.type;

function failure(fn: () => unknown): TransformError {
  try {
    fn();
  } catch (error) {
    return error as TransformError;
  }
  throw new Error('expected the transform to fail');
}

describe('transforms', () => {
  describe('InsertField', () => {
    const insert = () =>
      one('org.apache.kafka.connect.transforms.InsertField$Value', {
        'topic.field': 'topic!',
        'partition.field': 'part',
        'offset.field': 'off?',
        'timestamp.field': 'ts',
        'static.field': 'origin',
        'static.value': 'shop',
      });

    it('adds metadata and a static value to a schemaless map', () => {
      const out = insert().apply(record({ value: { a: 1 } }));
      expect(out!.value).to.deep.equal({
        a: 1,
        topic: 'orders',
        part: 3,
        off: 42,
        ts: 1700000000000,
        origin: 'shop',
      });
    });

    it('adds fields to a schema: `!` required, `?` and no suffix optional with default null', () => {
      const out = insert().apply(record({ value: order, valueSchema: ORDER }))!;
      expect(fieldNames(out.valueSchema)).to.deep.equal([
        'id',
        'amount',
        'note',
        'qty',
        'topic',
        'part',
        'off',
        'ts',
        'origin',
      ]);
      expect(fieldType(out.valueSchema, 'topic')).to.equal('string');
      expect(fieldType(out.valueSchema, 'part')).to.deep.equal(['null', 'int']);
      expect(fieldType(out.valueSchema, 'off')).to.deep.equal(['null', 'long']);
      expect(fieldType(out.valueSchema, 'ts')).to.deep.include('null');
      expect(out.valueSchema!.isValid(out.value)).to.equal(true);
      expect(out.value).to.include({ topic: 'orders', part: 3, off: 42, ts: 1700000000000, origin: 'shop' });
    });

    it('derives the schema once per input schema', () => {
      const chain = insert();
      const a = chain.apply(record({ value: order, valueSchema: ORDER }))!;
      const b = chain.apply(record({ value: { ...order, id: 8 }, valueSchema: ORDER }))!;
      expect(a.valueSchema).to.equal(b.valueSchema);
    });

    it('passes tombstones unchanged', () => {
      const input = record({ value: null, valueSchema: ORDER });
      expect(insert().apply(input)).to.equal(input);
    });

    it('works on the key with the $Key variant (short alias)', () => {
      const out = one('InsertField$Key', { 'topic.field': 'topic' }).apply(
        record({ key: { id: 1 }, value: 'v' }),
      );
      expect(out!.key).to.deep.equal({ id: 1, topic: 'orders' });
      expect(out!.value).to.equal('v');
    });

    it('refuses a value that is not a map, as Connect does', () => {
      const error = failure(() => insert().apply(record({ value: 'text' })));
      expect(error).to.be.instanceOf(RecordError);
      expect(error.code).to.equal('TRANSFORM_FAILED');
      expect(error.stage).to.equal('TRANSFORMATION');
      expect(error.className).to.equal('org.apache.kafka.connect.transforms.InsertField$Value');
      expect(error.message).to.contain(
        'Only Map objects supported in absence of schema for [field insertion], found: java.lang.String',
      );
    });

    it('refuses a record without a value for a required (`!`) inserted field', () => {
      const error = failure(() =>
        one('InsertField$Value', { 'timestamp.field': 'ts!' }).apply(
          record({ timestamp: null, value: order, valueSchema: ORDER }),
        ),
      );
      expect(error.message).to.contain('Invalid value: null used for required field: "ts"');
    });

    it('refuses offset.field on a source record (no offset)', () => {
      const { offset: _offset, ...source } = record({ value: { a: 1 } });
      const error = failure(() => one('InsertField$Value', { 'offset.field': 'off' }).apply(source));
      expect(error.message).to.contain('Only SinkRecord supported for [field insertion]');
    });
  });

  describe('ReplaceField', () => {
    it('excludes, includes and renames schemaless fields; exclude wins', () => {
      const chain = one('ReplaceField$Value', {
        include: 'id,amount,qty',
        exclude: 'qty',
        renames: 'amount:total',
      });
      expect(chain.apply(record({ value: order }))!.value).to.deep.equal({ id: 7, total: 12.5 });
    });

    it('derives a schema without the dropped fields and with the renamed ones', () => {
      const out = one('ReplaceField$Value', { exclude: 'note', renames: 'id:order_id' }).apply(
        record({ value: order, valueSchema: ORDER }),
      )!;
      expect(fieldNames(out.valueSchema)).to.deep.equal(['order_id', 'amount', 'qty']);
      expect(out.value).to.deep.equal({ order_id: 7, amount: 12.5, qty: 3 });
      expect(out.valueSchema!.isValid(out.value)).to.equal(true);
    });

    it('still reads the deprecated blacklist/whitelist names', () => {
      const out = one('ReplaceField$Value', { blacklist: 'note,qty' }).apply(record({ value: order }))!;
      expect(out.value).to.deep.equal({ id: 7, amount: 12.5 });
    });

    it('works on keys with $Key', () => {
      const out = one('ReplaceField$Key', { exclude: 'b' }).apply(record({ key: { a: 1, b: 2 } }))!;
      expect(out.key).to.deep.equal({ a: 1 });
    });
  });

  describe('MaskField', () => {
    it('masks with the empty value of each type, schemaless', () => {
      const out = one('MaskField$Value', { fields: 'id,amount,note,flag,list' }).apply(
        record({ value: { ...order, flag: true, list: [1] } }),
      )!;
      expect(out.value).to.deep.equal({ id: 0, amount: 0, note: '', qty: 3, flag: false, list: [] });
    });

    it('masks with a replacement converted to the field type, keeping the schema', () => {
      const out = one('MaskField$Value', { fields: 'qty,note', replacement: '9' }).apply(
        record({ value: order, valueSchema: ORDER }),
      )!;
      expect(out.value).to.deep.equal({ ...order, qty: 9, note: '9' });
      expect(out.valueSchema).to.equal(ORDER);
    });

    it('refuses a replacement for a boolean field', () => {
      const error = failure(() =>
        one('MaskField$Value', { fields: 'flag', replacement: 'x' }).apply(record({ value: { flag: true } })),
      );
      expect(error.message).to.contain(
        'Cannot mask value of type java.lang.Boolean with custom replacement.',
      );
    });
  });

  describe('Cast', () => {
    it('casts schemaless fields like Java (strings parse, floats truncate, numbers to boolean)', () => {
      const out = one('Cast$Value', { spec: 'a:int32,b:string,c:boolean,d:float64,e:int8' }).apply(
        record({ value: { a: '12', b: 1.5, c: 2, d: '2.5', e: 300 } }),
      )!;
      expect(out.value).to.deep.equal({ a: 12, b: '1.5', c: true, d: 2.5, e: 44 });
    });

    it('changes the field types of a schema, keeping optional fields optional', () => {
      const out = one('org.apache.kafka.connect.transforms.Cast$Value', {
        spec: 'id:string,qty:float64,amount:int32',
      }).apply(record({ value: order, valueSchema: ORDER }))!;
      expect(fieldType(out.valueSchema, 'id')).to.equal('string');
      expect(fieldType(out.valueSchema, 'qty')).to.equal('double');
      expect(fieldType(out.valueSchema, 'amount')).to.equal('int');
      expect(out.value).to.deep.equal({ id: '7', amount: 12, note: 'fragile', qty: 3 });
      expect(out.valueSchema!.isValid(out.value)).to.equal(true);
    });

    it('casts the whole value when the spec is a single type', () => {
      const out = one('Cast$Value', { spec: 'int64' }).apply(
        record({ value: '123', valueSchema: parseAvroSchema('"string"') }),
      )!;
      expect(out.value).to.equal(123);
      expect(out.valueSchema!.typeName).to.equal('long');
    });

    it('writes float64 to string as Java does', () => {
      const out = one('Cast$Value', { spec: 'string' }).apply(record({ value: 1.5e-5 }))!;
      expect(out.value).to.equal('1.5E-5');
    });

    it('refuses a string that is not a number', () => {
      const error = failure(() =>
        one('Cast$Value', { spec: 'a:int32' }).apply(record({ value: { a: 'abc' } })),
      );
      expect(error.message).to.contain('Value (abc) was out of range for requested data type');
    });

    it('casts keys with $Key', () => {
      expect(one('Cast$Key', { spec: 'string' }).apply(record({ key: 5 }))!.key).to.equal('5');
    });
  });

  describe('ExtractField and HoistField', () => {
    it('extracts a field and its schema', () => {
      const out = one('ExtractField$Value', { field: 'id' }).apply(
        record({ value: order, valueSchema: ORDER }),
      )!;
      expect(out.value).to.equal(7);
      expect(out.valueSchema!.typeName).to.equal('long');
    });

    it('extracts from a schemaless key with $Key', () => {
      expect(one('ExtractField$Key', { field: 'id' }).apply(record({ key: { id: 'k1' } }))!.key).to.equal(
        'k1',
      );
    });

    it('refuses a field the schema does not have', () => {
      const error = failure(() =>
        one('ExtractField$Value', { field: 'nope' }).apply(record({ value: order, valueSchema: ORDER })),
      );
      expect(error.message).to.contain('Unknown field: nope');
    });

    it('hoists a value into a struct with one field', () => {
      const out = one('HoistField$Value', { field: 'line' }).apply(
        record({ value: 'hello', valueSchema: parseAvroSchema('"string"') }),
      )!;
      expect(out.value).to.deep.equal({ line: 'hello' });
      expect(schemaJson(out.valueSchema)).to.deep.include({
        type: 'record',
        name: 'io.confluent.connect.avro.ConnectDefault',
      });
      expect(out.valueSchema!.isValid(out.value)).to.equal(true);
    });

    it('hoists a schemaless key with $Key', () => {
      expect(one('HoistField$Key', { field: 'k' }).apply(record({ key: 1 }))!.key).to.deep.equal({ k: 1 });
    });
  });

  describe('ValueToKey', () => {
    it('builds the key from value fields, with a schema', () => {
      const out = one('ValueToKey', { fields: 'id,qty' }).apply(
        record({ value: order, valueSchema: ORDER }),
      )!;
      expect(out.key).to.deep.equal({ id: 7, qty: 3 });
      expect(fieldNames(out.keySchema)).to.deep.equal(['id', 'qty']);
    });

    it('refuses a field the value schema does not have', () => {
      const error = failure(() =>
        one('ValueToKey', { fields: 'nope' }).apply(record({ value: order, valueSchema: ORDER })),
      );
      expect(error.message).to.contain('Field does not exist: nope');
    });
  });

  describe('Flatten', () => {
    const NESTED = parseAvroSchema({
      type: 'record',
      name: 'Outer',
      fields: [
        { name: 'id', type: 'int' },
        { name: 'inner', type: { type: 'record', name: 'Inner', fields: [{ name: 'x', type: 'int' }] } },
        { name: 'maybe', type: ['null', 'Inner'], default: null },
      ],
    });

    it('flattens nested structs with the delimiter; fields under an optional struct become optional', () => {
      const out = one('Flatten$Value', { delimiter: '_' }).apply(
        record({ value: { id: 1, inner: { x: 2 }, maybe: null }, valueSchema: NESTED }),
      )!;
      expect(out.value).to.deep.equal({ id: 1, inner_x: 2, maybe_x: null });
      expect(fieldType(out.valueSchema, 'inner_x')).to.equal('int');
      expect(fieldType(out.valueSchema, 'maybe_x')).to.deep.equal(['null', 'int']);
      expect(out.valueSchema!.isValid(out.value)).to.equal(true);
    });

    it('flattens schemaless maps with the default delimiter', () => {
      const out = one('Flatten$Value').apply(record({ value: { a: { b: { c: 1 } }, d: [1] } }))!;
      expect(out.value).to.deep.equal({ 'a.b.c': 1, d: [1] });
    });
  });

  describe('TimestampConverter', () => {
    it('formats a unix timestamp field as a string (UTC, SimpleDateFormat)', () => {
      const out = one('TimestampConverter$Value', {
        field: 'ts',
        'target.type': 'string',
        format: "yyyy-MM-dd'T'HH:mm:ss.SSSX",
      }).apply(record({ value: { ts: 1700000000123 } }))!;
      expect(out.value).to.deep.equal({ ts: '2023-11-14T22:13:20.123Z' });
    });

    it('parses a string into a Timestamp field of the schema', () => {
      const schema = parseAvroSchema({ type: 'record', name: 'E', fields: [{ name: 'at', type: 'string' }] });
      const out = one('TimestampConverter$Value', {
        field: 'at',
        'target.type': 'Timestamp',
        format: 'yyyy-MM-dd HH:mm',
      }).apply(record({ value: { at: '2024-02-29 12:30' }, valueSchema: schema }))!;
      expect(out.value).to.deep.equal({ at: Date.UTC(2024, 1, 29, 12, 30) });
      expect(fieldType(out.valueSchema, 'at')).to.deep.include({
        type: 'long',
        logicalType: 'timestamp-millis',
      });
    });

    it('converts unix precision and whole values', () => {
      const out = one('TimestampConverter$Value', {
        'target.type': 'unix',
        'unix.precision': 'seconds',
      }).apply(
        record({
          value: 1700000000999,
          valueSchema: parseAvroSchema({ type: 'long', logicalType: 'timestamp-millis' }),
        }),
      )!;
      expect(out.value).to.equal(1700000000);
      expect(out.valueSchema!.typeName).to.equal('long');
    });

    it('refuses a string that does not match the format', () => {
      const error = failure(() =>
        one('TimestampConverter$Value', { 'target.type': 'unix', format: 'yyyy-MM-dd' }).apply(
          record({ value: 'soon' }),
        ),
      );
      expect(error.message).to.contain('Could not parse timestamp');
    });

    it('works on the key with $Key', () => {
      const out = one('TimestampConverter$Key', { 'target.type': 'string', format: 'yyyyMMdd' }).apply(
        record({ key: 0 }),
      )!;
      expect(out.key).to.equal('19700101');
    });
  });

  describe('routers', () => {
    it('TimestampRouter formats the topic from the record timestamp', () => {
      const out = one('TimestampRouter').apply(record())!;
      expect(out.topic).to.equal('orders-20231114');
    });

    it('TimestampRouter refuses a record without a timestamp', () => {
      const error = failure(() => one('TimestampRouter').apply(record({ timestamp: null })));
      expect(error.message).to.contain('Timestamp missing on record');
    });

    it('RegexRouter replaces whole-topic matches with Java replacement syntax', () => {
      const chain = one('org.apache.kafka.connect.transforms.RegexRouter', {
        regex: '(.*)-(v\\d+)',
        replacement: '$2_$1\\$',
      });
      expect(chain.apply(record({ topic: 'orders-v2' }))!.topic).to.equal('v2_orders$');
      expect(chain.apply(record({ topic: 'orders-v2-dlq' }))!.topic).to.equal('orders-v2-dlq');
    });
  });

  describe('headers and Filter', () => {
    it('InsertHeader adds the literal as UTF-8 text', () => {
      const out = one('InsertHeader', { header: 'source', 'value.literal': 'shop' }).apply(record())!;
      expect(out.headers['source']!.toString()).to.equal('shop');
    });

    it('DropHeaders removes the named headers', () => {
      const out = one('DropHeaders', { headers: 'a,b' }).apply(
        record({ headers: { a: Buffer.from('1'), b: Buffer.from('2'), c: Buffer.from('3') } }),
      )!;
      expect(Object.keys(out.headers)).to.deep.equal(['c']);
    });

    it('HeaderFrom moves fields into headers and drops them from the schema', () => {
      const out = one('HeaderFrom$Value', {
        fields: 'id,note',
        headers: 'order-id,note',
        operation: 'move',
      }).apply(record({ value: order, valueSchema: ORDER }))!;
      expect(out.headers['order-id']!.toString()).to.equal('7');
      expect(out.headers['note']!.toString()).to.equal('fragile');
      expect(fieldNames(out.valueSchema)).to.deep.equal(['amount', 'qty']);
      expect(out.value).to.deep.equal({ amount: 12.5, qty: 3 });
    });

    it('HeaderFrom$Key copies key fields and keeps the key', () => {
      const out = one('HeaderFrom$Key', { fields: 'id', headers: 'k', operation: 'copy' }).apply(
        record({ key: { id: 'x' } }),
      )!;
      expect(out.key).to.deep.equal({ id: 'x' });
      expect(out.headers['k']!.toString()).to.equal('x');
    });

    it('Filter drops every record', () => {
      expect(one('Filter').apply(record())).to.equal(null);
    });
  });

  describe('the chain', () => {
    it('applies transforms in order and never mutates its input', () => {
      const chain = createTransformChain({
        transforms: 'drop, hoist',
        'transforms.drop.type': 'ReplaceField$Value',
        'transforms.drop.exclude': 'b',
        'transforms.hoist.type': 'HoistField$Value',
        'transforms.hoist.field': 'wrapped',
      });
      const input = record({ value: { a: 1, b: 2 } });
      const frozen = JSON.stringify(input);
      expect(chain.aliases).to.deep.equal(['drop', 'hoist']);
      expect(chain.apply(input)!.value).to.deep.equal({ wrapped: { a: 1 } });
      expect(JSON.stringify(input)).to.equal(frozen);
    });

    it('runs a transform only where its predicate matches, or does not with negate', () => {
      const config = (negate: boolean) => ({
        transforms: 'skip',
        'transforms.skip.type': 'Filter',
        'transforms.skip.predicate': 'isTest',
        'transforms.skip.negate': String(negate),
        predicates: 'isTest',
        'predicates.isTest.type': 'org.apache.kafka.connect.transforms.predicates.TopicNameMatches',
        'predicates.isTest.pattern': 'test-.*',
      });
      expect(createTransformChain(config(false)).apply(record({ topic: 'test-1' }))).to.equal(null);
      expect(createTransformChain(config(false)).apply(record({ topic: 'prod-1' }))).to.not.equal(null);
      expect(createTransformChain(config(true)).apply(record({ topic: 'test-1' }))).to.not.equal(null);
      expect(createTransformChain(config(true)).apply(record({ topic: 'prod-1' }))).to.equal(null);
    });

    it('HasHeaderKey and RecordIsTombstone predicates', () => {
      const chain = createTransformChain({
        transforms: 'a,b',
        'transforms.a.type': 'InsertHeader',
        'transforms.a.header': 'seen',
        'transforms.a.value.literal': 'yes',
        'transforms.a.predicate': 'tomb',
        'transforms.b.type': 'Filter',
        'transforms.b.predicate': 'marked',
        predicates: 'tomb,marked',
        'predicates.tomb.type': 'RecordIsTombstone',
        'predicates.marked.type': 'HasHeaderKey',
        'predicates.marked.name': 'drop-me',
      });
      expect(chain.apply(record({ value: null }))!.headers['seen']!.toString()).to.equal('yes');
      expect(chain.apply(record({ value: 1 }))!.headers).to.not.have.property('seen');
      expect(chain.apply(record({ value: 1, headers: { 'drop-me': Buffer.from('') } }))).to.equal(null);
    });

    it('names the alias and class of the failing transform', () => {
      const chain = createTransformChain({
        transforms: 'ok,bad',
        'transforms.ok.type': 'InsertHeader',
        'transforms.ok.header': 'h',
        'transforms.ok.value.literal': 'v',
        'transforms.bad.type': 'ExtractField$Value',
        'transforms.bad.field': 'x',
      });
      const error = failure(() => chain.apply(record({ value: 'not a map' })));
      expect(error).to.be.instanceOf(TransformError);
      expect(error.alias).to.equal('bad');
      expect(error.message).to.contain(
        'transform bad (org.apache.kafka.connect.transforms.ExtractField$Value)',
      );
    });

    it('is empty without transforms and returns the record itself', () => {
      const chain = createTransformChain({ name: 'x' });
      const input = record();
      expect(chain.aliases).to.deep.equal([]);
      expect(chain.apply(input)).to.equal(input);
    });
  });
});

describe('regular expressions of transforms and predicates', () => {
  it('refuse nested quantifiers, Java-only syntax and overlong patterns, and accept ordinary ones', async () => {
    const { compileJavaRegex, nestedQuantifier } = await import('../../runtime/transforms/java-regex.js');
    for (const bad of ['(a+)+', '(a*)*b', '((ab)+c)*', '(\\w+\\s?)*$', '(x{2,})+'])
      expect(nestedQuantifier(bad), bad).to.not.equal(undefined);
    for (const ok of ['orders-.*', '(a|b)+', '(ab){2}', '[a+]+', 'a+b+', '(\\d)+'])
      expect(nestedQuantifier(ok), ok).to.equal(undefined);
    expect(compileJavaRegex('a++')).to.contain('possessive');
    expect(compileJavaRegex('(?>a)')).to.contain('atomic group');
    expect(compileJavaRegex('x'.repeat(1001))).to.contain('longer than 1000');
    const insensitive = compileJavaRegex('(?i)orders');
    expect((insensitive as RegExp).test('ORDERS')).to.equal(true);
    expect((compileJavaRegex('orders') as RegExp).test('orders-dlq')).to.equal(false);
  });

  it('a nested quantifier in topics.regex is refused against its key', async () => {
    const { checkConnectorConfig } = await import('../../runtime/config/connector-config.js');
    const { PluginRegistry } = await import('../../runtime/plugin-registry.js');
    const { defineConfig } = await import('../../runtime/config/config-spec.js');
    const plugins = PluginRegistry.of([
      {
        name: 'S',
        kind: 'sink',
        version: '1',
        description: 't',
        config: defineConfig([]),
        createTask: () => ({ put: async () => {} }),
      },
    ]);
    const { problems } = checkConnectorConfig(plugins, {
      name: 'n',
      'connector.class': 'S',
      'topics.regex': '(a+)+',
      'value.converter': 'json',
    });
    expect(problems.map((p) => p.key)).to.deep.equal(['topics.regex']);
    expect(problems[0]!.message).to.contain('nested quantifier');
  });
});
