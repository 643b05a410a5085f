import avro from 'avsc';
import { expect } from 'chai';
import { FatalError, RecordError } from '../../runtime/errors.js';
import type { PredictResult, TensorSpec } from '../../connectors/tf-serving/grpc-client.js';
import {
  bindOutputs,
  metadataValues,
  OutputSchemas,
  splitOutputs,
} from '../../connectors/tf-serving/output-schema.js';
import { encodeTensor } from '../../connectors/tf-serving/tensor-codec.js';

const parse = (schema: object) =>
  avro.Type.forSchema(
    schema as avro.Schema,
    { wrapUnions: 'auto', omitRecordMethods: true } as avro.ForSchemaOptions,
  );

const spec = (dtype: TensorSpec['dtype'], shape: number[] | undefined): TensorSpec => ({
  dtype,
  shape,
  encoding: 'name',
  graphTensorName: undefined,
});

const censusOutputs = {
  probability: spec('DT_FLOAT', [-1]),
  predicted_class: spec('DT_STRING', [-1]),
};
const imageOutputs = {
  top_k_classes: spec('DT_STRING', [-1, 3]),
  top_k_scores: spec('DT_FLOAT', [-1, 3]),
  __saved_model_init_op: spec('DT_INVALID', []),
};

const inputV1 = parse({
  type: 'record',
  name: 'Person',
  namespace: 'ex',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'age', type: 'long' },
  ],
});
const inputV2 = parse({
  type: 'record',
  name: 'Person',
  namespace: 'ex',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'age', type: 'long' },
    { name: 'note', type: ['null', 'string'], default: null },
  ],
});

type SchemaJson = { name: string; fields: Array<{ name: string; type: unknown; default?: unknown }> };

/** The derived type, failing the test when the writer schema was refused. */
function derived(schemas: OutputSchemas, writer: { id: number; type: avro.Type }): avro.Type {
  const type = schemas.derive(writer);
  if (type instanceof RecordError) throw new Error(`expected a derived type, got ${type.message}`);
  return type;
}

describe('TF Serving output schema', () => {
  it('adds every output (internals skipped) as a nullable field with default null; extra dimensions become arrays', () => {
    const outputs = bindOutputs(imageOutputs, undefined, 'model "image"');
    const schemas = new OutputSchemas(outputs, []);
    const type = derived(schemas, { id: 1, type: inputV1 });
    const json = type.schema({ exportAttrs: true }) as unknown as SchemaJson;
    expect(json.name).to.equal('ex.Person');
    expect(json.fields.map((f) => f.name)).to.deep.equal(['id', 'age', 'top_k_classes', 'top_k_scores']);
    expect(json.fields[2]).to.deep.include({
      type: ['null', { type: 'array', items: 'string' }],
      default: null,
    });
    expect(json.fields[3]).to.deep.include({
      type: ['null', { type: 'array', items: 'float' }],
      default: null,
    });
  });

  it('names fields after output.fields and adds metadata fields, scored_at as timestamp-millis', () => {
    const outputs = bindOutputs(censusOutputs, new Map([['probability', 'p_high_income']]), 'model "census"');
    const schemas = new OutputSchemas(outputs, [
      { kind: 'model.name', field: 'model_name' },
      { kind: 'model.version', field: 'served_by' },
      { kind: 'scored.at', field: 'scored_at' },
    ]);
    expect(schemas.addedFields).to.deep.equal(['p_high_income', 'model_name', 'served_by', 'scored_at']);
    const json = derived(schemas, { id: 1, type: inputV1 }).schema({
      exportAttrs: true,
    }) as unknown as SchemaJson;
    const fields = Object.fromEntries(json.fields.map((f) => [f.name, f.type]));
    expect(fields.p_high_income).to.deep.equal(['null', 'float']);
    expect(fields.served_by).to.deep.equal(['null', 'long']);
    expect(fields.scored_at).to.deep.equal(['null', { type: 'long', logicalType: 'timestamp-millis' }]);
    expect(
      metadataValues(schemas.metadata, { name: 'census', version: 3, signatureName: 's' }, 1700),
    ).to.deep.equal(['census', 3, 1700]);
  });

  it('caches the derived type per input schema id and returns the same object for the same derived schema', () => {
    const schemas = new OutputSchemas(bindOutputs(censusOutputs, undefined, 'm'), []);
    const first = schemas.derive({ id: 1, type: inputV1 });
    expect(schemas.derive({ id: 1, type: inputV1 })).to.equal(first);
    // The same schema under another id (e.g. another subject) derives the same output object.
    expect(schemas.derive({ id: 5, type: parse(inputV1.schema() as object) })).to.equal(first);
  });

  it('derives a new output schema for a new input version that can read records of the previous one', () => {
    const schemas = new OutputSchemas(bindOutputs(censusOutputs, undefined, 'm'), []);
    const v1 = derived(schemas, { id: 1, type: inputV1 });
    const v2 = derived(schemas, { id: 2, type: inputV2 });
    expect(v2).to.not.equal(v1);
    const names = (v2.schema() as unknown as SchemaJson).fields.map((f) => f.name);
    expect(names).to.deep.equal(['id', 'age', 'note', 'predicted_class', 'probability']);
    const old = v1.toBuffer({ id: 'a', age: 30, predicted_class: '<=50K', probability: 0.25 });
    const resolver = v2.createResolver(v1);
    expect({ ...(v2.fromBuffer(old, resolver) as object) }).to.deep.equal({
      id: 'a',
      age: 30,
      note: null,
      predicted_class: '<=50K',
      probability: 0.25,
    });
  });

  it('refuses, as a bad record of that schema, a writer schema with a field named like an output field, saying how to rename it', () => {
    const schemas = new OutputSchemas(bindOutputs({ age: spec('DT_FLOAT', [-1]) }, undefined, 'm'), []);
    const refused = schemas.derive({ id: 9, type: inputV1 }, { 'model.name': 'm' }) as RecordError;
    expect(refused).to.be.instanceOf(RecordError);
    expect(refused.code).to.equal('MODEL_INPUT_SCHEMA_MISMATCH');
    expect(refused.message).to.contain('schema id 9 (ex.Person) already have the field(s) "age"');
    expect(refused.message).to.contain('output.fields=tensor=newName');
    expect(refused.context).to.include({ 'schema.id': 9, field: 'age', 'model.name': 'm' });
  });

  it('refuses, as a bad record of that schema, a writer schema that is not a record', () => {
    const schemas = new OutputSchemas(bindOutputs(censusOutputs, undefined, 'm'), []);
    const refused = schemas.derive({ id: 4, type: parse({ type: 'string' } as object) }) as RecordError;
    expect(refused).to.be.instanceOf(RecordError);
    expect(refused.code).to.equal('MODEL_INPUT_SCHEMA_MISMATCH');
    expect(refused.message).to.contain('schema id 4 are Avro string, not records');
    expect(refused.context).to.include({ 'expected.type': 'record', 'actual.type': 'string' });
  });

  it('refuses at start an output the signature lacks, listing the outputs it has', () => {
    expect(() => bindOutputs(censusOutputs, new Map([['score', 'score']]), 'model "census"')).to.throw(
      FatalError,
      /"score", which is not an output of model "census"; its outputs are: predicted_class, probability/,
    );
    expect(() => bindOutputs({ x: spec('DT_FLOAT', undefined) }, undefined, 'm')).to.throw(/unknown rank/);
  });

  it('splits a batched answer into per-row values by position, strings decoded, rows of rank 1 as arrays', () => {
    const outputs = bindOutputs(imageOutputs, undefined, 'model "image"');
    const result: PredictResult = {
      model: { name: 'image', version: 1 },
      outputs: {
        top_k_classes: encodeTensor('DT_STRING', [2, 3], ['red', 'blue', 'green', 'black', 'white', 'red']),
        top_k_scores: encodeTensor('DT_FLOAT', [2, 3], [0.5, 0.25, 0.125, 0.75, 0.125, 0.0625]),
      },
    };
    expect(splitOutputs(result, outputs, 2, {})).to.deep.equal([
      [
        ['red', 'blue', 'green'],
        [0.5, 0.25, 0.125],
      ],
      [
        ['black', 'white', 'red'],
        [0.75, 0.125, 0.0625],
      ],
    ]);
  });

  it('fails the task when the answer does not match the request: wrong batch size or a missing output', () => {
    const outputs = bindOutputs(censusOutputs, undefined, 'm');
    const wrongSize: PredictResult = {
      model: { name: 'census' },
      outputs: {
        probability: encodeTensor('DT_FLOAT', [1], [0.5]),
        predicted_class: encodeTensor('DT_STRING', [1], ['x']),
      },
    };
    expect(() => splitOutputs(wrongSize, outputs, 2, { 'model.name': 'census' }))
      .to.throw(FatalError, /shape is \[1\] for a request of 2 rows/)
      .with.property('code', 'MODEL_OUTPUT_INVALID');
    const missing: PredictResult = {
      model: { name: 'census' },
      outputs: { probability: encodeTensor('DT_FLOAT', [1], [1]) },
    };
    expect(() => splitOutputs(missing, outputs, 1, {})).to.throw(/no such output \(it has: probability\)/);
  });
});
