import avro from 'avsc';
import { expect } from 'chai';
import { FatalError, RecordError } from '../../runtime/errors.js';
import type { TensorSpec } from '../../connectors/tf-serving/grpc-client.js';
import {
  bindInputs,
  compileInputPlan,
  type InputBinding,
  type InputPlan,
  type InputRow,
  type NonFinitePolicy,
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

interface PlanOptions {
  mapping?: Record<string, string>;
  files?: string[];
  nonFinite?: NonFinitePolicy;
  parsed?: avro.Type;
}

/** The verdict on `schema` (writer schema id 7) for a signature with `inputs`. */
function verdict(inputs: Record<string, TensorSpec>, schema: object, options: PlanOptions = {}) {
  const bindings = bindInputs(
    inputs,
    new Map(Object.entries(options.mapping ?? {})),
    new Set(options.files ?? []),
    'model "m"',
  );
  return compileInputPlan(bindings, { id: 7, type: options.parsed ?? parse(schema) }, context, {
    nonFinite: options.nonFinite ?? 'dead-letter',
  });
}

/** The plan of `schema`, failing the test when the schema was refused. */
function plan(inputs: Record<string, TensorSpec>, schema: object, options: PlanOptions = {}): InputPlan {
  const result = verdict(inputs, schema, options);
  if (result instanceof RecordError) throw new Error(`expected a plan, got ${result.message}`);
  return result;
}

/** The refusal of `schema`, failing the test when the schema was accepted. */
function refusal(inputs: Record<string, TensorSpec>, schema: object, options: PlanOptions = {}): RecordError {
  const result = verdict(inputs, schema, options);
  if (!(result instanceof RecordError)) throw new Error('expected the schema to be refused');
  return result;
}

/** avsc keeps a logical type only when given an implementation; this one keeps values as they are. */
class KeptLogicalType
  extends (avro.types as unknown as { LogicalType: new (...args: unknown[]) => object }).LogicalType
{
  _fromValue(value: unknown): unknown {
    return value;
  }
  _toValue(value: unknown): unknown {
    return value;
  }
}
const parseWithLogicalTypes = (schema: object) =>
  avro.Type.forSchema(
    schema as avro.Schema,
    {
      wrapUnions: 'auto',
      omitRecordMethods: true,
      logicalTypes: { decimal: KeptLogicalType, 'timestamp-millis': KeptLogicalType },
    } as unknown as avro.ForSchemaOptions,
  );

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
    expect(e.context).to.include({
      field: 'age',
      tensor: 'age',
      'model.name': 'm',
      'schema.id': 7,
      'expected.type': 'DT_INT64',
      'actual.type': 'null',
    });
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
    expect(e.context).to.include({ field: 'years', tensor: 'age', 'actual.type': 'string' });
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

  it('refuses a schema whose fields can never feed their tensors as a bad record, naming each field with expected and actual types', () => {
    const e = refusal(
      { age: tensor('DT_INT64'), sex: tensor('DT_STRING'), hours: tensor('DT_INT64') },
      record([
        { name: 'age', type: 'string' },
        { name: 'sex', type: 'string' },
      ]),
    );
    expect(e).to.be.instanceOf(RecordError);
    expect(e.code).to.equal('MODEL_INPUT_SCHEMA_MISMATCH');
    expect(e.stage).to.equal('TASK_PROCESS');
    expect(e.message).to.contain('schema id 7 (R) cannot feed the model');
    expect(e.message).to.contain(
      'field "age" for model input "age" expects DT_INT64 [-1] (Avro int or long), the schema has string: Avro string cannot feed DT_INT64',
    );
    expect(e.message).to.contain('field "hours" for model input "hours"').and.contain('has no field "hours"');
    expect(e.context).to.include({
      'schema.id': 7,
      field: 'age',
      tensor: 'age',
      'expected.type': 'DT_INT64 [-1] (Avro int or long)',
      'actual.type': 'string',
      'problem.count': 2,
      'model.name': 'm',
    });
  });

  it('refuses a schema that lacks a mapped field, or whose floats would feed an integer tensor', () => {
    const lacking = refusal({ age: tensor('DT_INT64') }, record([{ name: 'years', type: 'long' }]));
    expect(lacking.message).to.contain('has no field "age"');
    expect(lacking.context).to.include({ field: 'age', 'actual.type': 'no such field' });
    const floats = refusal({ age: tensor('DT_INT64') }, record([{ name: 'age', type: 'double' }]));
    expect(floats.message).to.contain('Avro double cannot feed DT_INT64');
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

  it('refuses nested records and maps the mapping cannot flatten, and arrays of the wrong depth', () => {
    const person = { type: 'record', name: 'Person', fields: [{ name: 'age', type: 'long' }] };
    const nested = refusal({ person: tensor('DT_INT64') }, record([{ name: 'person', type: person }]));
    expect(nested.message).to.contain(
      'Avro record Person cannot feed a tensor: map the input to one of its fields',
    );
    expect(nested.context).to.include({ 'actual.type': 'record Person' });
    const map = refusal(
      { m: tensor('DT_FLOAT', [-1, -1]) },
      record([{ name: 'm', type: { type: 'map', values: 'float' } }]),
    );
    expect(map.context).to.include({ 'actual.type': 'map<float>' });
    const records = refusal(
      { xs: tensor('DT_FLOAT', [-1, -1]) },
      record([{ name: 'xs', type: { type: 'array', items: person } }]),
    );
    expect(records.message).to.contain('its items: Avro record Person cannot feed a tensor');
    const deep = refusal(
      { xs: tensor('DT_FLOAT', [-1, -1]) },
      record([{ name: 'xs', type: { type: 'array', items: { type: 'array', items: 'float' } } }]),
    );
    expect(deep.message).to.contain('2 array level(s)').and.contain('takes rank 1 per record');
    expect(deep.context).to.include({ 'actual.type': 'array<array<float>>' });
  });

  it('refuses decimals (bytes or fixed) for any input; other logical types feed as their underlying type', () => {
    const schema = record([
      { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 9, scale: 2 } },
      {
        name: 'code',
        type: { type: 'fixed', name: 'Code', size: 4, logicalType: 'decimal', precision: 9 },
      },
      { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    ]);
    const parsed = parseWithLogicalTypes(schema);
    const amount = refusal({ amount: tensor('DT_DOUBLE') }, schema, { parsed });
    expect(amount.message).to.contain('Avro bytes with logicalType decimal cannot feed DT_DOUBLE');
    expect(amount.message).to.contain('have the producer write a double or a string');
    expect(amount.context).to.include({ 'actual.type': 'bytes with logicalType decimal' });
    const code = refusal({ code: tensor('DT_STRING') }, schema, { parsed });
    expect(code.context).to.include({ 'actual.type': 'fixed Code with logicalType decimal' });
    const at = plan({ at: tensor('DT_INT64') }, schema, { parsed });
    expect(
      row(at.extract({ amount: Buffer.from([1]), code: Buffer.alloc(4), at: 1700 })).values,
    ).to.deep.equal([[1700]]);
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

  it('dead-letters NaN and infinities in float inputs by default, and passes them with input.nonfinite.policy=pass', () => {
    const schema = record([{ name: 'w', type: 'double' }]);
    const strict = plan({ w: tensor('DT_FLOAT') }, schema);
    expect(row(strict.extract({ w: 1.5 })).values).to.deep.equal([[1.5]]);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const e = strict.extract({ w: bad }) as RecordError;
      expect(e.code, String(bad)).to.equal('MODEL_INPUT_NOT_FINITE');
      expect(e.message).to.contain(`${bad} is not a finite number`).and.contain('input.nonfinite.policy');
      expect(e.context).to.include({ field: 'w', tensor: 'w', 'expected.type': 'DT_FLOAT', 'schema.id': 7 });
      expect(e.context['actual.type']).to.equal(`double ${bad}`);
    }
    const lenient = plan({ w: tensor('DT_FLOAT') }, schema, { nonFinite: 'pass' });
    expect(Number.isNaN(row(lenient.extract({ w: NaN })).values[0]![0])).to.equal(true);
    expect(row(lenient.extract({ w: -Infinity })).values).to.deep.equal([[-Infinity]]);
    // In arrays too, naming the element.
    const arrays = plan(
      { v: tensor('DT_DOUBLE', [-1, -1]) },
      record([{ name: 'v', type: { type: 'array', items: 'double' } }]),
    );
    expect((arrays.extract({ v: [1, NaN] }) as RecordError).message).to.contain('element 1: NaN');
  });

  it('refuses a finite value beyond the float dtype, whatever the non-finite policy', () => {
    const schema = record([{ name: 'w', type: 'double' }]);
    const half = plan({ w: tensor('DT_HALF') }, schema, { nonFinite: 'pass' });
    expect(row(half.extract({ w: 65504 })).values).to.deep.equal([[65504]]);
    const e = half.extract({ w: 70000 }) as RecordError;
    expect(e.code).to.equal('MODEL_INPUT_TYPE_MISMATCH');
    expect(e.message).to.contain("70000 is beyond DT_HALF's largest finite value");
    const float = plan({ w: tensor('DT_FLOAT') }, schema);
    expect((float.extract({ w: 1e39 }) as RecordError).code).to.equal('MODEL_INPUT_TYPE_MISMATCH');
    expect(row(float.extract({ w: 3.4e38 })).values).to.deep.equal([[3.4e38]]);
  });

  it('refuses integers outside the dtype: a long beyond DT_INT32, a negative into DT_UINT8', () => {
    const p = plan(
      { n: tensor('DT_INT32'), u: tensor('DT_UINT8') },
      record([
        { name: 'n', type: 'long' },
        { name: 'u', type: 'int' },
      ]),
    );
    expect(row(p.extract({ n: -(2 ** 31), u: 255 })).values).to.deep.equal([[-2147483648], [255]]);
    const long = p.extract({ n: 2 ** 31, u: 1 }) as RecordError;
    expect(long.message).to.contain("2147483648 is outside DT_INT32's range [-2147483648, 2147483647]");
    expect(long.context).to.include({ 'actual.type': 'long 2147483648', 'expected.type': 'DT_INT32' });
    const negative = p.extract({ n: 1, u: -1 }) as RecordError;
    expect(negative.code).to.equal('MODEL_INPUT_TYPE_MISMATCH');
    expect(negative.message).to.contain("-1 is outside DT_UINT8's range [0, 255]");
    expect(negative.context).to.include({ field: 'u', tensor: 'u', 'actual.type': 'int -1' });
  });

  it('refuses an enum symbol the writer schema does not list', () => {
    const p = plan(
      { e: tensor('DT_STRING') },
      record([{ name: 'e', type: { type: 'enum', name: 'Colour', symbols: ['RED', 'GREEN'] } }]),
    );
    expect(row(p.extract({ e: 'RED' })).values).to.deep.equal([['RED']]);
    const e = p.extract({ e: 'PURPLE' }) as RecordError;
    expect(e.code).to.equal('MODEL_INPUT_TYPE_MISMATCH');
    expect(e.message).to.contain('"PURPLE" is not a symbol of Colour (RED, GREEN)');
    expect(e.context).to.include({ 'actual.type': 'enum Colour symbol PURPLE' });
  });

  it('refuses ragged nested arrays per record; even ones of any size feed a [-1, -1] input', () => {
    const p = plan(
      { m: tensor('DT_FLOAT', [-1, -1, -1]) },
      record([{ name: 'm', type: { type: 'array', items: { type: 'array', items: 'float' } } }]),
    );
    expect(
      row(
        p.extract({
          m: [
            [1, 2],
            [3, 4],
          ],
        }),
      ).dims,
    ).to.deep.equal([[2, 2]]);
    const e = p.extract({ m: [[1, 2], [3]] }) as RecordError;
    expect(e.code).to.equal('MODEL_INPUT_TYPE_MISMATCH');
    expect(e.message).to.contain('different lengths (2 and 1)');
    expect(e.context).to.include({ 'actual.type': 'ragged arrays' });
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
