import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { registryUrl, uniqueName } from '../helpers/stack.js';

const censusSchema = readFileSync(new URL('../../schemas/census.avsc', import.meta.url), 'utf8');

describe('the local schema registry (Confluent-compatible API)', function () {
  this.timeout(30_000);
  const registry = new SchemaRegistry({ host: registryUrl });
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

  it('registers the census schema, encodes with Confluent framing and decodes it back', async () => {
    const subject = `${uniqueName('census')}-value`;
    const { id } = await registry.register({ type: SchemaType.AVRO, schema: censusSchema }, { subject });
    expect(id).to.be.a('number');

    const encoded = await registry.encode(id, row);
    expect(encoded[0]).to.equal(0); // magic byte
    expect(encoded.readInt32BE(1)).to.equal(id);
    expect({ ...(await registry.decode(encoded)) }).to.deep.equal(row);

    const fetched = JSON.parse(await registry.getSchema(id).then((s) => JSON.stringify(s))) as {
      name?: string;
    };
    expect(fetched.name).to.equal('io.inferconnect.examples.census.CensusRecord');
    expect(await registry.getLatestSchemaId(subject)).to.equal(id);
  });

  it('rejects a second version that is not backward compatible', async () => {
    const subject = `${uniqueName('census')}-value`;
    await registry.register({ type: SchemaType.AVRO, schema: censusSchema }, { subject });

    const incompatible = JSON.parse(censusSchema) as { fields: { name: string; type: unknown }[] };
    // A new required field without a default cannot read data written with the old schema.
    incompatible.fields.push({ name: 'zip_code', type: 'string' });
    let rejected: Error | undefined;
    try {
      await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(incompatible) }, { subject });
    } catch (error) {
      rejected = error as Error;
    }
    expect(rejected, 'an incompatible schema must be refused').to.be.instanceOf(Error);
    expect(rejected!.message.toLowerCase()).to.match(/compatib/);

    const compatible = JSON.parse(censusSchema) as {
      fields: { name: string; type: unknown; default?: unknown }[];
    };
    compatible.fields.push({ name: 'zip_code', type: ['null', 'string'], default: null });
    const second = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(compatible) },
      { subject },
    );
    expect(second.id).to.be.a('number');
  });
});
