import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { ConnectError, FatalError, RecordError, RetriableError } from '../../runtime/errors.js';
import { createConverter, type Converter } from '../../runtime/converters/index.js';
import { CachedSchemaRegistry, parseAvroSchema } from '../../runtime/converters/schema-registry.js';
import { registryUrl, uniqueName } from '../helpers/stack.js';

const censusText = readFileSync(new URL('../../schemas/census.avsc', import.meta.url), 'utf8');
const row = {
  age: 39,
  workclass: 'State-gov',
  fnlwgt: 77516,
  education: 'Bachelors',
  education_num: 13,
  marital_status: 'Never-married',
  occupation: 'Adm-clerical',
  relationship: 'Not-in-family',
  race: 'White',
  sex: 'Male',
  capital_gain: 2174,
  capital_loss: 0,
  hours_per_week: 40,
  native_country: 'United-States',
  income: '<=50K',
};

function avroConverter(url = registryUrl): Converter {
  return createConverter('avro', { isKey: false, registry: new CachedSchemaRegistry(url) });
}

async function rejected(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return error as ConnectError;
  }
  throw new Error('expected a rejection');
}

describe('the avro converter against the real schema registry', function () {
  this.timeout(30_000);
  const plain = new SchemaRegistry({ host: registryUrl });

  it('writes census records that @kafkajs/confluent-schema-registry decodes', async () => {
    const topic = uniqueName('census');
    const census = parseAvroSchema(censusText);
    const writer = avroConverter();
    await writer.prepareEncode!(topic, census);
    const bytes = writer.fromConnect(topic, row, census)!;

    expect(bytes.readInt32BE(1)).to.equal(await plain.getLatestSchemaId(`${topic}-value`));
    expect({ ...(await plain.decode(bytes)) }).to.deep.equal(row);
  });

  it('reads census records that @kafkajs/confluent-schema-registry encoded', async () => {
    const topic = uniqueName('census');
    const { id } = await plain.register(
      { type: SchemaType.AVRO, schema: censusText },
      { subject: `${topic}-value` },
    );
    const bytes = await plain.encode(id, row);

    const reader = avroConverter();
    await reader.prepare!([bytes]);
    const decoded = reader.toConnect(topic, bytes);
    expect(decoded.value).to.deep.equal(row);
    expect(decoded.schema?.id).to.equal(id);
  });

  it('a record naming a schema id the registry does not have is AVRO_UNKNOWN_SCHEMA_ID', async () => {
    const payload = Buffer.alloc(5 + 3);
    payload.writeInt32BE(2_000_000_000, 1);
    const reader = avroConverter();
    await reader.prepare!([payload]);
    let error: ConnectError | undefined;
    try {
      reader.toConnect('census', payload);
    } catch (e) {
      error = e as ConnectError;
    }
    expect(error).to.be.instanceOf(RecordError);
    expect(error!.code).to.equal('AVRO_UNKNOWN_SCHEMA_ID');
    expect(error!.message).to.include('2000000000');
  });

  it('a second schema that is not backward compatible is FatalError SCHEMA_INCOMPATIBLE', async () => {
    const topic = uniqueName('census');
    // The dev stack sets BACKWARD globally; setting it on the subject too keeps this test about
    // the converter rather than about how the registry was started.
    const config = await fetch(`${registryUrl}/config/${topic}-value`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ compatibility: 'BACKWARD' }),
    });
    expect(config.ok, `setting the subject's compatibility: HTTP ${config.status}`).to.equal(true);

    const writer = avroConverter();
    await writer.prepareEncode!(topic, parseAvroSchema(censusText));
    const incompatible = JSON.parse(censusText) as { fields: object[] };
    incompatible.fields.push({ name: 'zip_code', type: 'string' }); // required, no default
    const error = await rejected(writer.prepareEncode!(topic, parseAvroSchema(incompatible)));
    expect(error).to.be.instanceOf(FatalError);
    expect(error.code).to.equal('SCHEMA_INCOMPATIBLE');
    expect(error.stage).to.equal('VALUE_CONVERTER');
    expect(error.message).to.include(`${topic}-value`);

    const compatible = JSON.parse(censusText) as { fields: object[] };
    compatible.fields.push({ name: 'zip_code', type: ['null', 'string'], default: null });
    await writer.prepareEncode!(topic, parseAvroSchema(compatible));
  });

  it('a registry URL without the API path prefix is fatal, not an unknown schema id', async () => {
    const payload = Buffer.alloc(5);
    payload.writeInt32BE(1, 1);
    const error = await rejected(avroConverter(new URL(registryUrl).origin).prepare!([payload]));
    expect(error).to.be.instanceOf(FatalError);
    expect(error.code).to.equal('CONFIG_INVALID');
    expect(error.message).to.match(/path prefix/);
  });

  it('a registry that does not answer is retriable', async () => {
    const payload = Buffer.alloc(5);
    payload.writeInt32BE(1, 1);
    const error = await rejected(avroConverter('http://127.0.0.1:1/apis/ccompat/v7').prepare!([payload]));
    expect(error).to.be.instanceOf(RetriableError);
    expect(error.code).to.equal('SCHEMA_REGISTRY_UNAVAILABLE');
  });
});
