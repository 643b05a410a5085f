import { expect } from 'chai';
import {
  AvroConverter,
  CachedSchemaRegistry,
  carryConnectSchemas,
  ConnectSchemaIds,
  InMemoryRegistry,
  JsonConverter,
  parseAvroSchema,
} from '../../runtime/converters/index.js';
import {
  connectSchemaJson,
  parseConnectSchema,
  toAvroType,
  toConnectSchema,
} from '../../runtime/converters/connect-schema.js';
import {
  shortestFloat32,
  unscaledToBytes,
  bytesToUnscaled,
} from '../../runtime/converters/connect-values.js';
import type { ConnectError } from '../../runtime/errors.js';

const converter = (ids = new ConnectSchemaIds()) =>
  new JsonConverter({ isKey: false, schemasEnable: true, schemaIds: ids });

function thrown(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (error) {
    return error as ConnectError;
  }
  throw new Error('expected a throw');
}

/** An envelope exactly as Kafka Connect's JsonConverter writes it (keys in its order, no spaces). */
const orderSchema = {
  type: 'struct',
  fields: [
    { type: 'int8', optional: false, field: 'tiny' },
    { type: 'int16', optional: false, field: 'small' },
    { type: 'int32', optional: false, field: 'count' },
    { type: 'int64', optional: false, field: 'big' },
    { type: 'float', optional: false, field: 'ratio' },
    { type: 'double', optional: false, field: 'score' },
    { type: 'boolean', optional: false, field: 'ok' },
    { type: 'string', optional: true, field: 'note' },
    { type: 'bytes', optional: false, field: 'blob' },
    {
      type: 'bytes',
      optional: false,
      name: 'org.apache.kafka.connect.data.Decimal',
      version: 1,
      parameters: { scale: '2', 'connect.decimal.precision': '10' },
      field: 'price',
    },
    { type: 'int32', optional: false, name: 'org.apache.kafka.connect.data.Date', version: 1, field: 'day' },
    { type: 'int32', optional: false, name: 'org.apache.kafka.connect.data.Time', version: 1, field: 'at' },
    {
      type: 'int64',
      optional: true,
      name: 'org.apache.kafka.connect.data.Timestamp',
      version: 1,
      field: 'ts',
    },
    { type: 'array', items: { type: 'string', optional: false }, optional: false, field: 'tags' },
    {
      type: 'map',
      keys: { type: 'string', optional: false },
      values: { type: 'int64', optional: false },
      optional: false,
      field: 'counts',
    },
    {
      type: 'map',
      keys: { type: 'int32', optional: false },
      values: { type: 'string', optional: true },
      optional: false,
      field: 'byId',
    },
    {
      type: 'struct',
      fields: [{ type: 'string', optional: false, field: 'city' }],
      optional: true,
      field: 'address',
    },
  ],
  optional: false,
  name: 'com.example.Order',
  version: 2,
  doc: 'An order',
};
const orderPayload =
  '{"tiny":-128,"small":32767,"count":7,"big":9223372036854775807,"ratio":0.1,"score":0.30000000000000004,' +
  '"ok":true,"note":null,"blob":"AQID","price":"MDk=","day":19000,"at":3600000,"ts":1700000000000,' +
  '"tags":["a","b"],"counts":{"x":-9007199254740993},"byId":[[1,"one"],[2,null]],"address":{"city":"Paris"}}';
const orderEnvelope = `{"schema":${JSON.stringify(orderSchema)},"payload":${orderPayload}}`;

describe('json converter with Connect schemas', () => {
  it('reads an envelope into a schema and value and writes back the bytes Kafka Connect wrote', () => {
    const json = converter();
    const decoded = json.toConnect('orders', Buffer.from(orderEnvelope));
    expect(decoded.value).to.deep.include({
      tiny: -128,
      big: 9223372036854775807n,
      note: null,
      blob: Buffer.from([1, 2, 3]),
      price: Buffer.from([0x30, 0x39]),
      counts: { x: -9007199254740993n },
      byId: [
        { key: 1, value: 'one' },
        { key: 2, value: null },
      ],
      address: { city: 'Paris' },
    });
    expect(decoded.schema!.id).to.be.below(0);
    expect(json.fromConnect('orders', decoded.value, decoded.schema!.type)!.toString()).to.equal(
      orderEnvelope,
    );
  });

  it("maps the Connect schema to Avro as Confluent's AvroConverter does", () => {
    const type = toAvroType(parseConnectSchema(orderSchema));
    const avro = type.schema({ exportAttrs: true }) as {
      name: string;
      fields: Array<{ name: string; type: unknown; default?: unknown }>;
    };
    expect(avro.name).to.equal('com.example.Order');
    const field = (name: string) => avro.fields.find((f) => f.name === name)!;
    expect(field('tiny').type).to.equal('int'); // avsc keeps no connect.type; the Connect schema is kept beside it
    expect(field('big').type).to.equal('long');
    expect(field('ratio').type).to.equal('float');
    expect(field('note')).to.deep.equal({ name: 'note', type: ['null', 'string'], default: null });
    expect(field('price').type).to.deep.include({
      type: 'bytes',
      logicalType: 'decimal',
      precision: 10,
      scale: 2,
    });
    expect(field('day').type).to.deep.include({ type: 'int', logicalType: 'date' });
    expect(field('at').type).to.deep.include({ type: 'int', logicalType: 'time-millis' });
    expect((field('ts').type as unknown[])[1]).to.deep.include({
      type: 'long',
      logicalType: 'timestamp-millis',
    });
    expect(field('counts').type).to.deep.equal({ type: 'map', values: 'long' });
    expect(field('byId').type).to.deep.equal({
      type: 'array',
      items: {
        name: 'io.confluent.connect.avro.MapEntry',
        type: 'record',
        fields: [
          { name: 'key', type: 'int' },
          { name: 'value', type: ['null', 'string'] },
        ],
      },
    });
    expect((field('address').type as Array<{ name?: string }>)[1]!.name).to.equal(
      'io.confluent.connect.avro.ConnectDefault2',
    );
  });

  it('writes the Connect schema derived from an Avro schema it did not read', () => {
    const type = parseAvroSchema({
      type: 'record',
      name: 'com.example.Scored',
      fields: [
        { name: 'age', type: 'int' },
        { name: 'name', type: ['null', 'string'], default: null },
        { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 8, scale: 3 } },
        { name: 'when', type: { type: 'long', logicalType: 'timestamp-millis' } },
        { name: 'labels', type: { type: 'map', values: 'double' } },
        { name: 'kind', type: { type: 'enum', name: 'Kind', symbols: ['A', 'B'] } },
      ],
    });
    const json = converter();
    const text = json
      .fromConnect(
        'scored',
        { age: 30, name: null, amount: Buffer.from([0x04, 0xd2]), when: 5, labels: { p: 0.5 }, kind: 'B' },
        type,
      )!
      .toString();
    expect(JSON.parse(text)).to.deep.equal({
      schema: {
        type: 'struct',
        fields: [
          { type: 'int32', optional: false, field: 'age' },
          { type: 'string', optional: true, field: 'name' },
          {
            type: 'bytes',
            optional: false,
            name: 'org.apache.kafka.connect.data.Decimal',
            version: 1,
            parameters: { scale: '3', 'connect.decimal.precision': '8' },
            field: 'amount',
          },
          {
            type: 'int64',
            optional: false,
            name: 'org.apache.kafka.connect.data.Timestamp',
            version: 1,
            field: 'when',
          },
          {
            type: 'map',
            keys: { type: 'string', optional: false },
            values: { type: 'double', optional: false },
            optional: false,
            field: 'labels',
          },
          { type: 'string', optional: false, field: 'kind' },
        ],
        optional: false,
        name: 'com.example.Scored',
      },
      payload: { age: 30, name: null, amount: 'BNI=', when: 5, labels: { p: 0.5 }, kind: 'B' },
    });
    // and reading it back gives the same value under an equivalent schema
    const back = json.toConnect('scored', Buffer.from(text));
    expect(back.value).to.deep.equal({
      age: 30,
      name: null,
      amount: Buffer.from([0x04, 0xd2]),
      when: 5,
      labels: { p: 0.5 },
      kind: 'B',
    });
    expect(connectSchemaJson(toConnectSchema(back.schema!.type))).to.deep.equal(JSON.parse(text).schema);
  });

  it("keeps int8, versions and the struct's name through a derived schema, as Connect's transforms do", () => {
    const text =
      '{"schema":{"type":"struct","fields":[{"type":"int8","optional":false,"field":"level"},' +
      '{"type":"string","optional":true,"field":"pin"}],"optional":false,"name":"com.example.Event","version":2},' +
      '"payload":{"level":3,"pin":"x"}}';
    const decoded = converter().toConnect('t', Buffer.from(text));
    // What InsertField$Value + ReplaceField$Value (exclude pin) derive: a new avsc type.
    const derived = parseAvroSchema({
      type: 'record',
      name: 'com.example.Event',
      fields: [
        { name: 'level', type: 'int' },
        { name: 'source', type: ['null', 'string'], default: null },
      ],
    });
    carryConnectSchemas(decoded.schema!.type, derived);
    expect(converter().fromConnect('t', { level: 3, source: 'db' }, derived)!.toString()).to.equal(
      '{"schema":{"type":"struct","fields":[{"type":"int8","optional":false,"field":"level"},' +
        '{"type":"string","optional":true,"field":"source"}],"optional":false,"name":"com.example.Event","version":2},' +
        '"payload":{"level":3,"source":"db"}}',
    );
  });

  it('gives one negative id per distinct Connect schema, whatever its key order, unique in the process, and forgets the oldest past the bound', () => {
    const ids = new ConnectSchemaIds(2);
    const json = converter(ids);
    const a = json.toConnect(
      't',
      Buffer.from('{"schema":{"type":"int64","optional":false},"payload":1}'),
    ).schema!;
    const again = json.toConnect(
      't',
      Buffer.from('{"schema":{"optional":false,"type":"int64"},"payload":2}'),
    ).schema!;
    const b = json.toConnect(
      't',
      Buffer.from('{"schema":{"type":"string","optional":true},"payload":"x"}'),
    ).schema!;
    expect(again.id).to.equal(a.id);
    expect(again).to.equal(a);
    expect(a.id).to.be.below(0);
    expect(b.id).to.be.below(a.id);
    const c = json.toConnect(
      't',
      Buffer.from('{"schema":{"type":"boolean","optional":false},"payload":true}'),
    ).schema!;
    expect(ids.size).to.equal(2);
    const returned = json.toConnect(
      't',
      Buffer.from('{"schema":{"type":"int64","optional":false},"payload":1}'),
    ).schema!;
    expect(returned.id).to.be.below(c.id);
    // one id space for the process: another cache never hands out the same ids
    const other = converter(new ConnectSchemaIds()).toConnect(
      't',
      Buffer.from('{"schema":{"type":"int64","optional":false},"payload":1}'),
    ).schema!;
    expect([a.id, b.id, c.id, returned.id]).not.to.include(other.id);
  });

  it('keeps int64 beyond 2^53 exact, in schemaless envelopes too', () => {
    const json = converter();
    const big = '{"schema":null,"payload":{"id":12345678901234567890,"small":3}}';
    expect(json.toConnect('t', Buffer.from(big)).value).to.deep.equal({
      id: 12345678901234567890n,
      small: 3,
    });
    expect(json.fromConnect('t', { id: 12345678901234567890n, small: 3 })!.toString()).to.equal(big);
  });

  it('reads Decimals written as JSON numbers (decimal.format=NUMERIC) exactly', () => {
    const json = converter();
    const schema =
      '{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}}';
    expect(json.toConnect('t', Buffer.from(`{"schema":${schema},"payload":123.45}`)).value).to.deep.equal(
      Buffer.from([0x30, 0x39]),
    );
    expect(
      json.toConnect('t', Buffer.from(`{"schema":${schema},"payload":-12345678901234567.89}`)).value,
    ).to.deep.equal(unscaledToBytes(-1234567890123456789n));
    const error = thrown(() => json.toConnect('t', Buffer.from(`{"schema":${schema},"payload":1.234}`)));
    expect(error.code).to.equal('JSON_DECODE_FAILED');
    expect(error.message).to.include(
      "payload is 1.234, which has more decimal places than the Decimal's scale 2",
    );
  });

  it('refuses payloads that do not fit their schema, and schemas that are not Connect schemas, as bad records', () => {
    const json = converter();
    const cases: Array<[string, string]> = [
      ['{"schema":{"type":"int8","optional":false},"payload":300}', 'payload must be an int8, got 300'],
      [
        '{"schema":{"type":"string","optional":false},"payload":null}',
        'payload is null, but its schema (string) is not optional',
      ],
      [
        '{"schema":{"type":"struct","fields":[{"type":"bytes","optional":false,"field":"b"}],"optional":false},"payload":{"b":"not base64!"}}',
        'payload.b must be base64 bytes',
      ],
      [
        '{"schema":{"type":"uuid","optional":false},"payload":"x"}',
        'schema.type is "uuid", not a Connect type',
      ],
      [
        '{"schema":{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Date"},"payload":1}',
        'must have type int32',
      ],
    ];
    for (const [text, phrase] of cases) {
      const error = thrown(() => json.toConnect('t', Buffer.from(text)));
      expect(error.code, text).to.equal('JSON_DECODE_FAILED');
      expect(error.stage).to.equal('VALUE_CONVERTER');
      expect(error.message, text).to.include(phrase);
    }
  });

  it('keeps map keys and fields named like Object.prototype members as plain own properties', () => {
    const json = converter();
    const text =
      '{"schema":{"type":"struct","fields":[{"type":"map","keys":{"type":"string","optional":false},' +
      '"values":{"type":"int32","optional":false},"optional":false,"field":"m"},' +
      '{"type":"string","optional":true,"field":"constructor"}],"optional":false},' +
      '"payload":{"m":{"__proto__":1,"toString":2},"constructor":null}}';
    const decoded = json.toConnect('t', Buffer.from(text));
    const m = (decoded.value as { m: Record<string, number> }).m;
    expect(Object.getPrototypeOf(m)).to.equal(Object.prototype);
    expect(Object.keys(m)).to.deep.equal(['__proto__', 'toString']);
    expect(json.fromConnect('t', decoded.value, decoded.schema!.type)!.toString()).to.equal(text);
  });

  it('makes a schema too deep to walk a bad record, not a task failure', () => {
    let schema = '{"type":"int32","optional":false}';
    for (let i = 0; i < 20000; i++) schema = `{"type":"array","items":${schema},"optional":false}`;
    const error = thrown(() => converter().toConnect('t', Buffer.from(`{"schema":${schema},"payload":[]}`)));
    expect(error.code).to.equal('JSON_DECODE_FAILED');
  });

  it('refuses to write a union of several types with schemas, and writes it as plain JSON without', () => {
    const union = parseAvroSchema({
      type: 'record',
      name: 'U',
      fields: [{ name: 'v', type: ['int', 'string'] }],
    });
    const error = thrown(() => converter().fromConnect('t', { v: 1 }, union));
    expect(error.code).to.equal('JSON_ENCODE_FAILED');
    expect(error.message).to.include('union of several non-null types');
    const plain = new JsonConverter({ isKey: false });
    expect(plain.fromConnect('t', { v: 1 }, union)!.toString()).to.equal('{"v":1}');
  });

  it('writes float32 with the fewest digits that read back as the same float', () => {
    expect(shortestFloat32(Math.fround(0.1))).to.equal('0.1');
    expect(shortestFloat32(Math.fround(1 / 3))).to.equal('0.33333334');
    expect(shortestFloat32(16777217)).to.equal('16777216');
    expect(bytesToUnscaled(unscaledToBytes(-129n))).to.equal(-129n);
    expect(unscaledToBytes(128n)).to.deep.equal(Buffer.from([0x00, 0x80]));
  });

  it('hands Avro-converter-ready records: a value read from JSON is written and read back by the avro converter', async () => {
    const decoded = converter().toConnect('orders', Buffer.from(orderEnvelope));
    // The Avro converter keeps longs within ±2^53; give it one that fits.
    const value = { ...(decoded.value as Record<string, unknown>), big: 42, counts: { x: 1 } };
    const avro = new AvroConverter(new CachedSchemaRegistry(new InMemoryRegistry()), { isKey: false });
    await avro.prepareEncode('orders', decoded.schema!.type);
    const bytes = avro.fromConnect('orders', value, decoded.schema!.type)!;
    await avro.prepare([bytes]);
    // float32 holds 0.1 as its nearest float, which the json converter writes back as 0.1
    expect(avro.toConnect('orders', bytes).value).to.deep.equal({ ...value, ratio: Math.fround(0.1) });
  });
});
