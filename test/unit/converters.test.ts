import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import type { Type as AvroType } from 'avsc';
import { ConnectError, FatalError, RecordError, RetriableError } from '../../runtime/errors.js';
import { createConverter, type Converter } from '../../runtime/converters/index.js';
import {
  CachedSchemaRegistry,
  HttpRegistryTransport,
  InMemoryRegistry,
  parseAvroSchema,
  schemaText,
} from '../../runtime/converters/schema-registry.js';

const censusSchema = readFileSync(new URL('../../schemas/census.avsc', import.meta.url), 'utf8');
const row = {
  age: 25,
  workclass: 'Private',
  fnlwgt: 226802,
  education: '11th',
  education_num: 7,
  marital_status: 'Never-married',
  occupation: 'Machine-op-inspct',
  relationship: 'Own-child',
  race: 'Black',
  sex: 'Male',
  capital_gain: 0,
  capital_loss: 0,
  hours_per_week: 40,
  native_country: 'United-States',
  income: '<=50K',
};

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

async function rejected(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

function expectConnectError(error: Error, kind: typeof ConnectError, code: string, stage: string): void {
  expect(error, error.message).to.be.instanceOf(kind);
  expect((error as ConnectError).code).to.equal(code);
  expect((error as ConnectError).stage).to.equal(stage);
}

function framed(id: number, body: Buffer | number[]): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, Buffer.from(body)]);
}

describe('avro converter', () => {
  let fake: InMemoryRegistry;
  let registry: CachedSchemaRegistry;
  let values: Converter;
  let census: AvroType;
  let censusId: number;
  let censusBody: Buffer;

  beforeEach(async () => {
    fake = new InMemoryRegistry();
    registry = new CachedSchemaRegistry(fake);
    values = createConverter('avro', { isKey: false, registry });
    census = parseAvroSchema(censusSchema);
    censusId = await registry.register('census-value', census);
    censusBody = census.toBuffer(row);
  });

  /** A converter with an empty cache over the same registry, as another worker would have. */
  function freshConverter(isKey = false): Converter {
    return createConverter('avro', { isKey, registry: new CachedSchemaRegistry(fake) });
  }

  it('writes Confluent framing that a fresh converter reads back as the same record', async () => {
    await values.prepareEncode!('census', census);
    const bytes = values.fromConnect('census', row, census)!;
    expect(bytes[0]).to.equal(0);
    expect(bytes.readInt32BE(1)).to.equal(censusId);
    expect(bytes.subarray(5).equals(censusBody)).to.equal(true);

    const reader = freshConverter();
    await reader.prepare!([bytes]);
    const decoded = reader.toConnect('census', bytes);
    expect(decoded.value).to.deep.equal(row);
    expect(JSON.parse(JSON.stringify(decoded.value))).to.deep.equal(row);
    expect({ ...(decoded.value as object) }).to.deep.equal(row);
    expect(decoded.schema?.id).to.equal(censusId);
    expect(decoded.schema?.type.name).to.equal('io.inferconnect.examples.census.CensusRecord');
  });

  it('reads nullable unions as bare values and round-trips a record larger than its scratch buffer', async () => {
    const type = parseAvroSchema({
      type: 'record',
      name: 'Doc',
      fields: [
        { name: 'note', type: ['null', 'string'], default: null },
        { name: 'text', type: 'string' },
      ],
    });
    const value = { note: 'n', text: 'x'.repeat(300_000) };
    await values.prepareEncode!('docs', type);
    const bytes = values.fromConnect('docs', value, type)!;
    await values.prepare!([bytes]);
    expect(values.toConnect('docs', bytes).value).to.deep.equal(value);
    const small = values.fromConnect('docs', { note: null, text: 'y' }, type)!;
    expect(values.toConnect('docs', small).value).to.deep.equal({ note: null, text: 'y' });
  });

  it('treats a null payload as a tombstone and writes null values as null', () => {
    expect(values.toConnect('census', null)).to.deep.equal({ value: null });
    expect(values.fromConnect('census', null, census)).to.equal(null);
  });

  describe('poison records are RecordErrors for the dead-letter queue', () => {
    const cases: Array<{ name: string; payload: () => Buffer; code: string; message: RegExp }> = [
      {
        name: 'a zero-length value',
        payload: () => Buffer.alloc(0),
        code: 'AVRO_MAGIC_BYTE',
        message: /is 0 bytes, shorter than the 5-byte Confluent header/,
      },
      {
        name: 'a value shorter than the header',
        payload: () => Buffer.from([0, 0, 1]),
        code: 'AVRO_MAGIC_BYTE',
        message: /census is 3 bytes, shorter than the 5-byte Confluent header \(magic byte \+ schema id\)/,
      },
      {
        name: 'a wrong magic byte',
        payload: () => Buffer.from('{"age": 25, "workclass": "Private"}'),
        code: 'AVRO_MAGIC_BYTE',
        message: /magic byte 0x7b .*census.*looks like JSON: set value\.converter=json/,
      },
      {
        name: 'an unknown schema id',
        payload: () => framed(424242, censusBody),
        code: 'AVRO_UNKNOWN_SCHEMA_ID',
        message: /Schema id 424242 is not in the schema registry .*census/,
      },
      {
        name: 'a truncated body',
        payload: () => framed(censusId, censusBody.subarray(0, censusBody.length - 4)),
        code: 'AVRO_DECODE_FAILED',
        message: /census with schema id \d+ .*truncated/,
      },
      {
        name: 'trailing garbage after the body',
        payload: () => framed(censusId, Buffer.concat([censusBody, Buffer.from([1, 2, 3])])),
        code: 'AVRO_DECODE_FAILED',
        message: /3 bytes are left after the/,
      },
      {
        name: 'a garbage body',
        payload: () => framed(censusId, [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
        code: 'AVRO_DECODE_FAILED',
        message: /census with schema id/,
      },
    ];
    for (const c of cases) {
      it(`${c.name} gives ${c.code} in stage VALUE_CONVERTER`, async () => {
        const reader = freshConverter();
        const payload = c.payload();
        await reader.prepare!([payload]);
        const error = thrown(() => reader.toConnect('census', payload));
        expectConnectError(error, RecordError, c.code, 'VALUE_CONVERTER');
        expect(error.message).to.match(c.message);
      });
    }

    it('names the key and stage KEY_CONVERTER when the key is bad', async () => {
      const keys = freshConverter(true);
      await keys.prepare!([Buffer.from([9, 9])]);
      const error = thrown(() => keys.toConnect('census', Buffer.from([9, 9])));
      expectConnectError(error, RecordError, 'AVRO_MAGIC_BYTE', 'KEY_CONVERTER');
      expect(error.message).to.match(/The key of a record from census is 2 bytes/);
    });

    it('a schema id that is not an Avro schema gives AVRO_DECODE_FAILED', async () => {
      fake.put(77, { schema: 'syntax = "proto3"; message M {}', schemaType: 'PROTOBUF' });
      const reader = freshConverter();
      const payload = framed(77, [0]);
      await reader.prepare!([payload]);
      const error = thrown(() => reader.toConnect('census', payload));
      expectConnectError(error, RecordError, 'AVRO_DECODE_FAILED', 'VALUE_CONVERTER');
      expect(error.message).to.match(/schema 77 is a PROTOBUF schema/);
    });
  });

  it('prepare fetches each schema id once, however many records and concurrent batches name it', async () => {
    const other = await registry.register(
      'other-value',
      parseAvroSchema({ type: 'record', name: 'O', fields: [] }),
    );
    const payloads = Array.from({ length: 5000 }, (_, i) =>
      i % 3 === 0 ? framed(other, []) : i % 7 === 0 ? null : framed(censusId, censusBody),
    );
    const reader = freshConverter();
    await Promise.all([
      reader.prepare!(payloads),
      reader.prepare!(payloads),
      reader.prepare!(payloads.slice(0, 10)),
    ]);
    expect(fake.calls.schemaById).to.equal(2);
    for (const payload of payloads) reader.toConnect('census', payload);
    await reader.prepare!(payloads);
    expect(fake.calls.schemaById).to.equal(2);
  });

  it('asks again for an unknown schema id only after unknownIdRetryMs', async () => {
    let now = 1_000;
    const reader = createConverter('avro', {
      isKey: false,
      registry: new CachedSchemaRegistry(fake, { unknownIdRetryMs: 60_000, now: () => now }),
    });
    const payload = framed(999, censusBody);
    await reader.prepare!([payload, payload]);
    await reader.prepare!([payload]);
    expect(fake.calls.schemaById).to.equal(1);
    now += 60_000;
    fake.put(999, { schema: censusSchema });
    expect(() => reader.toConnect('census', payload)).to.throw(RecordError, /999/);
    await reader.prepare!([payload]);
    expect(fake.calls.schemaById).to.equal(2);
    expect(reader.toConnect('census', payload).value).to.deep.equal(row);
  });

  it('prepare throws a RetriableError with the stage when the registry is unreachable, then recovers', async () => {
    fake.unavailable = true;
    const keys = freshConverter(true);
    const payload = framed(censusId, censusBody);
    const error = await rejected(keys.prepare!([payload]));
    expectConnectError(error, RetriableError, 'SCHEMA_REGISTRY_UNAVAILABLE', 'KEY_CONVERTER');
    fake.unavailable = false;
    await keys.prepare!([payload]);
    expect(keys.toConnect('census', payload).value).to.deep.equal(row);
  });

  it('decoding an id that prepare never saw is a bug, not a bad record', () => {
    const error = thrown(() => freshConverter().toConnect('census', framed(censusId, censusBody)));
    expect(error).not.to.be.instanceOf(RecordError);
    expect(error.message).to.match(/before prepare\(\) fetched that schema/);
  });

  it('registers a schema once per subject, also when it is parsed again from the same text', async () => {
    const before = fake.calls.register;
    const writer = freshConverter();
    const derived = parseAvroSchema(censusSchema);
    await Promise.all([
      writer.prepareEncode!('scored', census),
      writer.prepareEncode!('scored', census),
      writer.prepareEncode!('scored', derived),
    ]);
    await writer.prepareEncode!('scored', census);
    await writer.prepareEncode!('scored', derived);
    expect(fake.calls.register - before).to.equal(1);
    await writer.prepareEncode!('scored-2', census);
    expect(fake.calls.register - before).to.equal(2);
    expect(writer.fromConnect('scored', row, derived)!.readInt32BE(1)).to.equal(censusId);
  });

  it('registers under <topic>-key for a key converter', async () => {
    const keyType = parseAvroSchema({ type: 'record', name: 'Key', fields: [{ name: 'id', type: 'long' }] });
    const keys = freshConverter(true);
    await keys.prepareEncode!('people', keyType);
    const id = keys.fromConnect('people', { id: 7 }, keyType)!.readInt32BE(1);
    expect((await fake.schemaByVersion('people-key', 1))?.schema).to.equal(
      JSON.stringify(keyType.schema({ exportAttrs: true })),
    );
    expect(id).to.be.a('number');
  });

  it('a value that does not fit the schema is a RecordError naming the field', async () => {
    await values.prepareEncode!('scored', census);
    const error = thrown(() => values.fromConnect('scored', { ...row, age: 'twenty' }, census));
    expectConnectError(error, RecordError, 'AVRO_ENCODE_FAILED', 'VALUE_CONVERTER');
    expect(error.message).to.match(/scored .*age: expected long, got "twenty"/);
    expect((error as RecordError).context.field).to.equal('age');

    const missing = thrown(() => values.fromConnect('scored', { age: 3 }, census));
    expect(missing.message).to.match(/workclass: expected string, got nothing/);
  });

  it('encoding with a schema that prepareEncode did not register is a bug', () => {
    const error = thrown(() => values.fromConnect('census', row, census));
    expect(error).not.to.be.instanceOf(ConnectError);
    expect(error.message).to.match(/prepareEncode\("census", schema\) did not register/);
  });

  it('encoding a value without a schema is fatal: the avro converter needs one', async () => {
    await values.prepareEncode!('census', undefined);
    const error = thrown(() => values.fromConnect('census', row));
    expectConnectError(error, FatalError, 'CONFIG_INVALID', 'VALUE_CONVERTER');
    expect(error.message).to.match(/avro value converter needs a schema .*census/);
  });

  it('a schema the registry refuses is fatal, with the subject in the message', async () => {
    const strict = new InMemoryRegistry(() => false);
    const writer = createConverter('avro', { isKey: false, registry: new CachedSchemaRegistry(strict) });
    await writer.prepareEncode!('scored', census);
    const changed = parseAvroSchema({
      ...JSON.parse(censusSchema),
      fields: [{ name: 'zip', type: 'string' }],
    });
    const error = await rejected(writer.prepareEncode!('scored', changed));
    expectConnectError(error, FatalError, 'SCHEMA_INCOMPATIBLE', 'VALUE_CONVERTER');
    expect(error.message).to.match(/subject scored-value/);
  });
});

describe('schema registry over HTTP', () => {
  type Answer = { status: number; body: unknown } | Error;
  function transportAnswering(answer: Answer, seen: Array<{ url: string; init: RequestInit }> = []) {
    return new HttpRegistryTransport({
      url: 'http://user:s3cret@registry.test:8081/apis/ccompat/v7/',
      requestTimeoutMs: 1000,
      fetch: async (url, init) => {
        seen.push({ url: String(url), init: init! });
        if (answer instanceof Error) throw answer;
        return new Response(JSON.stringify(answer.body), { status: answer.status });
      },
    });
  }

  it('keeps the path prefix, sends basic auth from the URL and never prints the password', async () => {
    const seen: Array<{ url: string; init: RequestInit }> = [];
    const transport = transportAnswering({ status: 200, body: { schema: '"string"' } }, seen);
    expect(await transport.schemaById(5)).to.deep.equal({ schema: '"string"' });
    expect(seen[0]!.url).to.equal('http://registry.test:8081/apis/ccompat/v7/schemas/ids/5');
    expect((seen[0]!.init.headers as Record<string, string>).authorization).to.equal(
      `Basic ${Buffer.from('user:s3cret').toString('base64')}`,
    );
    expect(transport.url).not.to.include('s3cret');
  });

  const cases: Array<{
    answer: Answer;
    kind: typeof ConnectError | 'unknown';
    code?: string;
    message?: RegExp;
  }> = [
    { answer: { status: 404, body: { error_code: 40403, message: 'Schema 5 not found.' } }, kind: 'unknown' },
    {
      answer: { status: 404, body: { message: 'RESTEASY003210: Could not find resource' } },
      kind: FatalError,
      code: 'CONFIG_INVALID',
      message: /check schema\.registry\.url, including its path prefix/,
    },
    {
      answer: { status: 503, body: { error_code: 50003, message: 'forward error' } },
      kind: RetriableError,
      code: 'SCHEMA_REGISTRY_UNAVAILABLE',
      message: /HTTP 503 \(error 50003\)/,
    },
    {
      answer: new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:8081') }),
      kind: RetriableError,
      code: 'SCHEMA_REGISTRY_UNAVAILABLE',
      message: /ECONNREFUSED/,
    },
    {
      answer: { status: 401, body: { error_code: 401, message: 'Unauthorized' } },
      kind: FatalError,
      code: 'CONFIG_INVALID',
      message: /schema\.registry\.basic\.auth\.user\.info/,
    },
  ];
  for (const c of cases) {
    const label = c.answer instanceof Error ? 'a network error' : `HTTP ${c.answer.status}`;
    it(`a schema lookup answered with ${label} is ${c.kind === 'unknown' ? 'an unknown id' : c.kind.name}`, async () => {
      const transport = transportAnswering(c.answer);
      if (c.kind === 'unknown') {
        expect(await transport.schemaById(5)).to.equal(undefined);
        return;
      }
      const error = await rejected(transport.schemaById(5));
      expect(error).to.be.instanceOf(c.kind);
      expect((error as ConnectError).code).to.equal(c.code);
      expect(error.message).to.match(c.message!).and.not.to.include('s3cret');
    });
  }

  it('a registration refused as incompatible (409) is FatalError SCHEMA_INCOMPATIBLE naming the subject', async () => {
    const transport = transportAnswering({
      status: 409,
      body: { error_code: 409, message: 'Incompatible artifact' },
    });
    const error = await rejected(transport.register('scored-value', '"string"'));
    expect(error).to.be.instanceOf(FatalError);
    expect((error as FatalError).code).to.equal('SCHEMA_INCOMPATIBLE');
    expect(error.message).to.match(/subject scored-value.*Incompatible artifact/);
  });
});

describe('json converter', () => {
  it('round-trips UTF-8 JSON, writing bigints as exact numbers', () => {
    const json = createConverter('json', { isKey: false });
    const value = { name: 'Zoë', scores: [0.25, 1], nested: { ok: true } };
    const bytes = json.fromConnect('t', value)!;
    expect(json.toConnect('t', bytes).value).to.deep.equal(value);
    expect(json.fromConnect('t', { big: 9007199254740993n })!.toString()).to.equal(
      '{"big":9007199254740993}',
    );
    expect(json.toConnect('t', null)).to.deep.equal({ value: null });
    expect(json.fromConnect('t', null)).to.equal(null);
  });

  it('with schemas.enable=true unwraps the envelope and writes a schemaless one', () => {
    const json = createConverter('json', { isKey: false, schemasEnable: true });
    const bytes = json.fromConnect('t', { a: 1 })!;
    expect(JSON.parse(bytes.toString())).to.deep.equal({ schema: null, payload: { a: 1 } });
    expect(json.toConnect('t', bytes).value).to.deep.equal({ a: 1 });
    const error = thrown(() => json.toConnect('t', Buffer.from('{"a": 1}')));
    expectConnectError(error, RecordError, 'JSON_DECODE_FAILED', 'VALUE_CONVERTER');
    expect(error.message).to.match(/schemas\.enable=false/);
  });

  it('invalid JSON or invalid UTF-8 is a RecordError', () => {
    const json = createConverter('json', { isKey: true });
    expectConnectError(
      thrown(() => json.toConnect('t', Buffer.from('{oops'))),
      RecordError,
      'JSON_DECODE_FAILED',
      'KEY_CONVERTER',
    );
    expectConnectError(
      thrown(() => json.toConnect('t', Buffer.from([0x22, 0xff, 0x22]))),
      RecordError,
      'JSON_DECODE_FAILED',
      'KEY_CONVERTER',
    );
  });
});

describe('string and bytes converters', () => {
  it('string round-trips UTF-8 text and writes numbers as text', () => {
    const text = createConverter('string', { isKey: true });
    expect(text.toConnect('t', text.fromConnect('t', 'héllo ✓')!).value).to.equal('héllo ✓');
    expect(text.fromConnect('t', 42)!.toString()).to.equal('42');
    expect(text.toConnect('t', null).value).to.equal(null);
    expectConnectError(
      thrown(() => text.fromConnect('t', { a: 1 })),
      FatalError,
      'CONFIG_INVALID',
      'KEY_CONVERTER',
    );
  });

  it('bytes passes Buffers through and wraps other Uint8Arrays without copying', () => {
    const bytes = createConverter('bytes', { isKey: false });
    const buffer = Buffer.from([1, 2, 3]);
    expect(bytes.toConnect('t', buffer).value).to.equal(buffer);
    expect(bytes.fromConnect('t', buffer)).to.equal(buffer);
    const array = new Uint8Array([0, 1, 2, 3]).subarray(1);
    const wrapped = bytes.fromConnect('t', array)!;
    expect([...wrapped]).to.deep.equal([1, 2, 3]);
    expect(wrapped.buffer).to.equal(array.buffer);
    expectConnectError(
      thrown(() => bytes.fromConnect('t', 'text')),
      FatalError,
      'CONFIG_INVALID',
      'VALUE_CONVERTER',
    );
  });
});

describe('createConverter', () => {
  it('refuses the avro converter without a schema registry', () => {
    const error = thrown(() => createConverter('avro', { isKey: false }));
    expect(error).to.be.instanceOf(FatalError);
    expect(error.message).to.match(/the avro converter needs schema\.registry\.url in the worker config/);
  });
});

describe('Avro logical types', () => {
  it('read as their underlying values and stay in schemas the runtime registers again', () => {
    const schema = {
      type: 'record',
      name: 'Event',
      fields: [
        { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
        { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 9, scale: 2 } },
        { name: 'id', type: ['null', { type: 'string', logicalType: 'uuid' }] },
      ],
    };
    const type = parseAvroSchema(schema);
    const value = { at: 1_700_000_000_000, amount: Buffer.from([0x01, 0x2c]), id: '3f2b' };
    expect({ ...(type.fromBuffer(type.toBuffer(value)) as object) }).to.deep.equal(value);
    expect(JSON.parse(schemaText(type)).fields).to.deep.equal(schema.fields);
  });
});
