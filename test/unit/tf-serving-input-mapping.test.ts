import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { expect } from 'chai';
import { FatalError, RecordError } from '../../runtime/errors.js';
import type { TensorSpec } from '../../connectors/tf-serving/grpc-client.js';
import {
  bindInputs,
  compileInputPlan,
  type InputBinding,
  type InputRow,
} from '../../connectors/tf-serving/input-mapping.js';

const parse = (schema: object) =>
  avro.Type.forSchema(
    schema as avro.Schema,
    { wrapUnions: 'auto', omitRecordMethods: true } as avro.ForSchemaOptions,
  );

const tensor = (dtype: TensorSpec['dtype'], shape: number[] | undefined = [-1]): TensorSpec => ({
  dtype,
  shape,
  encoding: 'name',
  graphTensorName: undefined,
});

const context = { 'model.name': 'm', 'model.version': 1, 'model.signature': 'serving_default' };

function plan(
  inputs: Record<string, TensorSpec>,
  schema: object,
  options: { mapping?: Record<string, string>; files?: string[] } = {},
) {
  const bindings = bindInputs(
    inputs,
    new Map(Object.entries(options.mapping ?? {})),
    new Set(options.files ?? []),
    'model "m"',
  );
  return compileInputPlan(bindings, { id: 7, type: parse(schema) }, context);
}

const record = (fields: object[]) => ({ type: 'record', name: 'R', fields });

function row(result: InputRow | RecordError): InputRow {
  if (result instanceof RecordError) throw new Error(`expected a row, got ${result.message}`);
  return result;
}

describe('TF Serving input mapping', () => {
  it('binds every signature input to the top-level field of its name and reads one value per record', () => {
    const p = plan(
      {
        age: tensor('DT_INT64'),
        sex: tensor('DT_STRING'),
        weight: tensor('DT_FLOAT'),
        ok: tensor('DT_BOOL'),
      },
      record([
        { name: 'age', type: 'long' },
        { name: 'sex', type: 'string' },
        { name: 'weight', type: 'double' },
        { name: 'ok', type: 'boolean' },
        { name: 'unused', type: 'string' },
      ]),
    );
    expect(p.bindings.map((b) => `${b.tensor}<-${b.field}`)).to.deep.equal([
      'age<-age',
      'ok<-ok',
      'sex<-sex',
      'weight<-weight',
    ]);
    const r = row(p.extract({ age: 39, sex: 'Male', weight: 70.5, ok: true, unused: 'x' }));
    expect(r.values).to.deep.equal([[39], [true], ['Male'], [70.5]]);
    expect(r.dims).to.deep.equal([[], [], [], []]);
    expect(r.shapeKey).to.equal('');
    expect(r.bytes).to.be.greaterThan(0);
  });

  it('fails only the record whose nullable field is null, naming the field and the tensor', () => {
    const p = plan(
      { age: tensor('DT_INT64') },
      record([{ name: 'age', type: ['null', 'long'], default: null }]),
    );
    expect(row(p.extract({ age: 40 })).values).to.deep.equal([[40]]);
    const error = p.extract({ age: null });
    expect(error).to.be.instanceOf(RecordError);
    const e = error as RecordError;
    expect(e.code).to.equal('MODEL_INPUT_MISSING');
    expect(e.message).to.contain('"age"').and.contain('model input "age"');
    expect(e.context).to.include({ field: 'age', tensor: 'age', 'model.name': 'm' });
  });

  it('fails only the record whose union field holds a type the tensor cannot take', () => {
    const p = plan({ age: tensor('DT_INT64') }, record([{ name: 'years', type: ['long', 'string'] }]), {
      mapping: { age: 'years' },
    });
    expect(row(p.extract({ years: 33 })).values).to.deep.equal([[33]]);
    const e = p.extract({ years: 'thirty' }) as RecordError;
    expect(e).to.be.instanceOf(RecordError);
    expect(e.code).to.equal('MODEL_INPUT_TYPE_MISMATCH');
    expect(e.message).to.contain('Field "years" cannot be converted to DT_INT64 for model input "age"');
    expect(e.message).to.contain('"thirty"');
    expect(e.context).to.include({ field: 'years', tensor: 'age' });
  });

  it('range-checks integers for narrower integer dtypes', () => {
    const p = plan({ n: tensor('DT_INT32') }, record([{ name: 'n', type: 'long' }]));
    expect(row(p.extract({ n: 2 ** 31 - 1 })).values).to.deep.equal([[2147483647]]);
    const e = p.extract({ n: 2 ** 40 }) as RecordError;
    expect(e.code).to.equal('MODEL_INPUT_TYPE_MISMATCH');
    expect(e.message).to.contain("outside DT_INT32's range");
  });

  it('follows dotted paths into nested (nullable) records; a null parent fails the record', () => {
    const person = { type: 'record', name: 'Person', fields: [{ name: 'age', type: 'int' }] };
    const p = plan(
      { age: tensor('DT_INT64') },
      record([{ name: 'person', type: ['null', person], default: null }]),
      { mapping: { age: 'person.age' } },
    );
    expect(row(p.extract({ person: { age: 51 } })).values).to.deep.equal([[51]]);
    const e = p.extract({ person: null }) as RecordError;
    expect(e.code).to.equal('MODEL_INPUT_MISSING');
    expect(e.context).to.include({ field: 'person.age', tensor: 'age' });
  });

  it('lets an explicit mapping override the same-name default', () => {
    const p = plan(
      { age: tensor('DT_INT64') },
      record([
        { name: 'age', type: 'string' },
        { name: 'age_years', type: 'long' },
      ]),
      { mapping: { age: 'age_years' } },
    );
    expect(row(p.extract({ age: 'old', age_years: 80 })).values).to.deep.equal([[80]]);
  });

  it('fails the task at the first record of a schema whose field can never feed its tensor', () => {
    const attempt = () =>
      plan(
        { age: tensor('DT_INT64'), sex: tensor('DT_STRING') },
        record([
          { name: 'age', type: 'string' },
          { name: 'sex', type: 'string' },
        ]),
      );
    expect(attempt).to.throw(FatalError).with.property('code', 'SCHEMA_INCOMPATIBLE');
    expect(attempt).to.throw(
      /field "age" for model input "age" \(DT_INT64 \[-1\]\): Avro string cannot feed DT_INT64/,
    );
    expect(attempt).to.throw(/schema id 7/);
  });

  it('fails the task when the schema lacks a mapped field, or floats feed an integer tensor', () => {
    expect(() => plan({ age: tensor('DT_INT64') }, record([{ name: 'years', type: 'long' }]))).to.throw(
      /has no field "age"/,
    );
    expect(() => plan({ age: tensor('DT_INT64') }, record([{ name: 'age', type: 'double' }]))).to.throw(
      /Avro double cannot feed DT_INT64/,
    );
    // Integers feed floating tensors, strings from bytes and enums too.
    const p = plan(
      { x: tensor('DT_FLOAT'), b: tensor('DT_STRING'), e: tensor('DT_STRING') },
      record([
        { name: 'x', type: 'long' },
        { name: 'b', type: 'bytes' },
        { name: 'e', type: { type: 'enum', name: 'E', symbols: ['A', 'B'] } },
      ]),
    );
    expect(row(p.extract({ x: 3, b: Buffer.from('hi'), e: 'B' })).values).to.deep.equal([
      [Buffer.from('hi')],
      ['B'],
      [3],
    ]);
  });

  it('maps arrays to one more dimension, checks fixed sizes per record and keys rows by their shape', () => {
    const p = plan(
      { fixed: tensor('DT_FLOAT', [-1, 3]), ragged: tensor('DT_INT64', [-1, -1]) },
      record([
        { name: 'fixed', type: { type: 'array', items: 'float' } },
        { name: 'ragged', type: { type: 'array', items: 'long' } },
      ]),
    );
    const a = row(p.extract({ fixed: [1, 2, 3], ragged: [1, 2] }));
    expect(a.values).to.deep.equal([
      [1, 2, 3],
      [1, 2],
    ]);
    expect(a.dims).to.deep.equal([[3], [2]]);
    const b = row(p.extract({ fixed: [4, 5, 6], ragged: [1, 2, 3, 4] }));
    expect(b.shapeKey).to.not.equal(a.shapeKey);
    const wrong = p.extract({ fixed: [1, 2], ragged: [] }) as RecordError;
    expect(wrong.code).to.equal('MODEL_INPUT_TYPE_MISMATCH');
    expect(wrong.message).to.contain('expects [3]');
    expect(() =>
      plan({ x: tensor('DT_FLOAT', [-1]) }, record([{ name: 'x', type: { type: 'array', items: 'float' } }])),
    ).to.throw(/rank 0 per record/);
  });

  it('refuses at start a mapping to an input the signature does not have, listing its inputs', () => {
    expect(() =>
      bindInputs({ age: tensor('DT_INT64') }, new Map([['agee', 'age']]), new Set(), 'model "census"'),
    ).to.throw(
      FatalError,
      /input.mapping names "agee", which is not an input of model "census"; its inputs are: age/,
    );
    expect(() => bindInputs({ s: tensor('DT_INT64', []) }, new Map(), new Set(), 'model "m"')).to.throw(
      /rank 0/,
    );
  });

  it('reads file fields as bytes; an unreadable file or one outside the base directory fails only that record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-serving-files-'));
    writeFileSync(join(dir, 'cat.jpg'), Buffer.from([0xff, 0xd8, 0xff]));
    const p = plan({ image_bytes: tensor('DT_STRING') }, record([{ name: 'path', type: 'string' }]), {
      mapping: { image_bytes: 'path' },
      files: ['path'],
    });
    const read = await p.readFiles(row(p.extract({ path: 'cat.jpg' })), dir);
    expect(row(read).values).to.deep.equal([[Buffer.from([0xff, 0xd8, 0xff])]]);
    const gone = (await p.readFiles(row(p.extract({ path: 'dog.jpg' })), dir)) as RecordError;
    expect(gone.code).to.equal('MODEL_INPUT_MISSING');
    expect(gone.message).to.contain('ENOENT');
    expect(gone.context).to.include({ field: 'path', tensor: 'image_bytes' });
    const outside = (await p.readFiles(row(p.extract({ path: '../../etc/passwd' })), dir)) as RecordError;
    expect(outside.message).to.contain('outside input.file.base.dir');
    const absolute = await p.readFiles(row(p.extract({ path: join(dir, 'cat.jpg') })), undefined);
    expect(row(absolute).values[0]![0]).to.deep.equal(Buffer.from([0xff, 0xd8, 0xff]));
  });

  it('keeps the binding order stable regardless of schema field order', () => {
    const bindings: InputBinding[] = bindInputs(
      { b: tensor('DT_INT64'), a: tensor('DT_INT64') },
      new Map(),
      new Set(),
      'm',
    );
    expect(bindings.map((x) => x.tensor)).to.deep.equal(['a', 'b']);
  });
});
