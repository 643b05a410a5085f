import { expect } from 'chai';
import {
  dtypeOfOip,
  inferRequestFrom,
  metadataFromOip,
  modelSpecOf,
  OIP_DATATYPES,
  oipOfDtype,
  predictResultFrom,
  rawOf,
  valuesOfRaw,
  versionOf,
  type OipDatatype,
} from '../../connectors/open-inference/oip-codec.js';
import { decodeTensor, encodeTensor, type TensorValue } from '../../connectors/tf-serving/tensor-codec.js';

const values = (tensor: ReturnType<typeof encodeTensor>) =>
  decodeTensor(tensor).values.map((v) => (Buffer.isBuffer(v) ? v.toString() : v));

describe('Open Inference Protocol codec', () => {
  describe('datatypes', () => {
    it('maps every OIP datatype to its TensorFlow dtype and back', () => {
      expect(Object.keys(OIP_DATATYPES)).to.have.members([
        'BOOL',
        'INT8',
        'INT16',
        'INT32',
        'INT64',
        'UINT8',
        'UINT16',
        'UINT32',
        'UINT64',
        'FP16',
        'FP32',
        'FP64',
        'BYTES',
      ]);
      for (const [oip, dtype] of Object.entries(OIP_DATATYPES)) {
        expect(dtypeOfOip(oip)).to.equal(dtype);
        expect(oipOfDtype(dtype)).to.equal(oip);
      }
      expect(dtypeOfOip('FP32')).to.equal('DT_FLOAT');
      expect(dtypeOfOip('BYTES')).to.equal('DT_STRING');
    });

    it('reads a datatype the connector does not exchange as DT_INVALID, and refuses to send a dtype OIP lacks', () => {
      expect(dtypeOfOip('BF16')).to.equal('DT_INVALID');
      expect(() => oipOfDtype('DT_BFLOAT16')).to.throw(/no Open Inference Protocol datatype/);
    });
  });

  describe('versions', () => {
    it('turns a version of digits into a version number and any other into a label, and back', () => {
      expect(modelSpecOf('census', '3')).to.deep.equal({ name: 'census', version: 3 });
      expect(modelSpecOf('census', 'v2')).to.deep.equal({ name: 'census', versionLabel: 'v2' });
      expect(modelSpecOf('census', '')).to.deep.equal({ name: 'census' });
      expect(versionOf({ version: 3 })).to.equal('3');
      expect(versionOf({ versionLabel: 'v2' })).to.equal('v2');
      expect(versionOf({})).to.equal('');
    });
  });

  describe('metadata', () => {
    it("reports the model's tensors as one signature, typed and shaped", () => {
      const metadata = metadataFromOip(
        {
          name: 'census',
          versions: ['1'],
          inputs: [
            { name: 'age', datatype: 'INT64', shape: [-1] },
            { name: 'workclass', datatype: 'BYTES', shape: [-1, 1] },
          ],
          outputs: [{ name: 'probability', datatype: 'FP64', shape: [-1] }],
        },
        { name: 'census', version: 1 },
        'ModelInfer',
      );
      expect(metadata.model).to.deep.equal({ name: 'census', version: 1 });
      expect(Object.keys(metadata.signatures)).to.deep.equal(['ModelInfer']);
      const signature = metadata.signatures.ModelInfer!;
      expect(signature.inputs.age).to.deep.include({ dtype: 'DT_INT64', shape: [-1], encoding: 'name' });
      expect(signature.inputs.workclass).to.deep.include({ dtype: 'DT_STRING', shape: [-1, 1] });
      expect(signature.outputs.probability).to.deep.include({ dtype: 'DT_DOUBLE', shape: [-1] });
    });
  });

  describe('requests', () => {
    const inputs = {
      age: encodeTensor('DT_INT64', [2], [39, 50]),
      workclass: encodeTensor('DT_STRING', [2], ['State-gov', 'Private']),
      weight: encodeTensor('DT_FLOAT', [2, 1], [0.5, 1.5]),
      flag: encodeTensor('DT_BOOL', [2], [true, false]),
    };

    it('carries each input in the typed contents field of its datatype, batched along the first dimension', () => {
      const request = inferRequestFrom({ name: 'census', version: 1 }, inputs, ['probability'], false);
      expect(request.model_name).to.equal('census');
      expect(request.model_version).to.equal('1');
      expect(request.raw_input_contents).to.equal(undefined);
      expect(request.outputs).to.deep.equal([{ name: 'probability' }]);
      const byName = Object.fromEntries(request.inputs.map((i) => [i.name, i]));
      expect(byName.age).to.deep.equal({
        name: 'age',
        datatype: 'INT64',
        shape: [2],
        contents: { int64_contents: [39, 50] },
      });
      expect(byName.workclass!.datatype).to.equal('BYTES');
      expect(byName.workclass!.contents!.bytes_contents!.map((b) => Buffer.from(b).toString())).to.deep.equal(
        ['State-gov', 'Private'],
      );
      expect(byName.weight).to.deep.include({ datatype: 'FP32', shape: [2, 1] });
      expect(byName.weight!.contents!.fp32_contents).to.deep.equal([0.5, 1.5]);
      expect(byName.flag!.contents!.bool_contents).to.deep.equal([true, false]);
    });

    it('sends every input as raw_input_contents when asked to, in the order of the inputs', () => {
      const request = inferRequestFrom({ name: 'census' }, inputs, undefined, true);
      expect(request.model_version).to.equal('');
      expect(request.inputs.every((i) => i.contents === undefined)).to.equal(true);
      expect(request.raw_input_contents).to.have.length(4);
      const age = Buffer.from(request.raw_input_contents![0]!);
      expect([age.readBigInt64LE(0), age.readBigInt64LE(8)]).to.deep.equal([39n, 50n]);
      const workclass = Buffer.from(request.raw_input_contents![1]!);
      expect(workclass.readUInt32LE(0)).to.equal(9);
      expect(workclass.subarray(4, 13).toString()).to.equal('State-gov');
    });

    it('sends raw contents whenever an input is FP16, which has no typed field', () => {
      const request = inferRequestFrom(
        { name: 'm' },
        { x: encodeTensor('DT_HALF', [2], [1.5, -2]) },
        undefined,
        false,
      );
      expect(request.inputs[0]).to.deep.equal({ name: 'x', datatype: 'FP16', shape: [2] });
      const raw = Buffer.from(request.raw_input_contents![0]!);
      expect(raw.length).to.equal(4);
      expect(valuesOfRaw('FP16', raw, 'x')).to.deep.equal([1.5, -2]);
    });
  });

  describe('raw contents', () => {
    const cases: Array<[OipDatatype, TensorValue[]]> = [
      ['BOOL', [true, false, true]],
      ['INT8', [-128, 0, 127]],
      ['INT16', [-32768, 7, 32767]],
      ['INT32', [-2147483648, 1, 2147483647]],
      ['INT64', [Number.MIN_SAFE_INTEGER, 0, Number.MAX_SAFE_INTEGER]],
      ['UINT8', [0, 255]],
      ['UINT16', [0, 65535]],
      ['UINT32', [0, 4294967295]],
      ['UINT64', [0, Number.MAX_SAFE_INTEGER]],
      ['FP16', [0.5, 65504]],
      ['FP32', [0.25, -3]],
      ['FP64', [Math.PI, -1e300]],
    ];
    for (const [datatype, input] of cases) {
      it(`round-trips ${datatype} little-endian`, () => {
        expect(valuesOfRaw(datatype, rawOf(datatype, input), 't')).to.deep.equal(input);
      });
    }

    it('reads 64-bit integers beyond 2^53 as bigint', () => {
      expect(valuesOfRaw('UINT64', rawOf('UINT64', [2n ** 63n]), 't')).to.deep.equal([2n ** 63n]);
    });

    it('round-trips BYTES with 4-byte length prefixes, empty elements included', () => {
      const raw = rawOf('BYTES', ['a', '', 'héllo']);
      expect(raw.length).to.equal(4 + 1 + 4 + 0 + 4 + 6);
      expect(
        valuesOfRaw('BYTES', raw, 't').map((v) => Buffer.from(v as Uint8Array).toString()),
      ).to.deep.equal(['a', '', 'héllo']);
    });

    it('refuses raw contents that end inside an element', () => {
      expect(() => valuesOfRaw('INT32', Buffer.alloc(6), 'score')).to.throw(
        /output "score" has 6 bytes, not a multiple of 4/,
      );
      expect(() => valuesOfRaw('BYTES', Buffer.from([9, 0, 0, 0, 65]), 'label')).to.throw(
        /inside an element of 9 bytes/,
      );
    });
  });

  describe('answers', () => {
    it('reads typed contents into TensorProtos of the matching dtype, with the version that answered', () => {
      const result = predictResultFrom(
        {
          model_name: 'census',
          model_version: '1',
          outputs: [
            { name: 'probability', datatype: 'FP64', shape: [2], contents: { fp64_contents: [0.1, 0.9] } },
            {
              name: 'predicted_class',
              datatype: 'BYTES',
              shape: [2],
              contents: { bytes_contents: [Buffer.from('<=50K'), Buffer.from('>50K')] },
            },
            { name: 'count', datatype: 'INT64', shape: [2], contents: { int64_contents: [3, '4'] } },
          ],
        },
        { name: 'census' },
      );
      expect(result.model).to.deep.equal({ name: 'census', version: 1 });
      expect(result.outputs.probability!.dtype).to.equal('DT_DOUBLE');
      expect(values(result.outputs.probability!)).to.deep.equal([0.1, 0.9]);
      expect(values(result.outputs.predicted_class!)).to.deep.equal(['<=50K', '>50K']);
      expect(values(result.outputs.count!)).to.deep.equal([3, 4]);
    });

    it('reads raw_output_contents, as MLServer and Triton may send them, by position', () => {
      const result = predictResultFrom(
        {
          model_name: 'm',
          outputs: [
            { name: 'score', datatype: 'FP32', shape: [2, 1] },
            { name: 'label', datatype: 'BYTES', shape: [2] },
          ],
          raw_output_contents: [rawOf('FP32', [0.5, 0.25]), rawOf('BYTES', ['x', 'yz'])],
        },
        { name: 'm', versionLabel: 'v2' },
      );
      expect(result.model).to.deep.equal({ name: 'm', versionLabel: 'v2' });
      const score = decodeTensor(result.outputs.score!);
      expect(score.shape).to.deep.equal([2, 1]);
      expect(score.values).to.deep.equal([0.5, 0.25]);
      expect(values(result.outputs.label!)).to.deep.equal(['x', 'yz']);
    });

    it('refuses an answer whose contents do not fill the shape, or whose datatype it cannot read', () => {
      expect(() =>
        predictResultFrom(
          { outputs: [{ name: 'p', datatype: 'FP64', shape: [3], contents: { fp64_contents: [1] } }] },
          { name: 'm' },
        ),
      ).to.throw(/needs 3 values, got 1/);
      expect(() =>
        predictResultFrom({ outputs: [{ name: 'p', datatype: 'BF16', shape: [1] }] }, { name: 'm' }),
      ).to.throw(/output "p" has datatype "BF16"/);
    });
  });
});
