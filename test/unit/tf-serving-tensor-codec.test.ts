import { expect } from 'chai';
import * as protoLoader from '@grpc/proto-loader';
import {
  DATA_TYPE_VALUES,
  DATA_TYPES,
  TensorCodecError,
  bfloat16BitsToNumber,
  dataTypeName,
  dataTypeNumber,
  decodeTensor,
  encodeTensor,
  halfBitsToNumber,
  numberToBfloat16Bits,
  numberToHalfBits,
  type DataTypeName,
  type TensorProto,
} from '../../connectors/tf-serving/tensor-codec.js';
import { findProtoDir, loadServiceDefinitions } from '../../connectors/tf-serving/grpc-client.js';

/** Sends a TensorProto through the real protobuf encoding, as gRPC would. */
function overTheWire(tensor: TensorProto): TensorProto {
  const service = loadServiceDefinitions()[
    'tensorflow.serving.PredictionService'
  ] as protoLoader.ServiceDefinition;
  const predict = service.Predict!;
  const bytes = predict.responseSerialize({ outputs: { t: tensor } });
  const decoded = predict.responseDeserialize(bytes) as { outputs: Record<string, TensorProto> };
  return decoded.outputs.t!;
}

/** A Buffer whose view starts at an odd offset, like a field sliced out of a received message. */
function unaligned(bytes: Uint8Array): Buffer {
  const backing = Buffer.alloc(bytes.byteLength + 1);
  backing.set(bytes, 1);
  return backing.subarray(1);
}

function contentTensor(dtype: DataTypeName, shape: number[], content: Uint8Array): TensorProto {
  return {
    dtype,
    tensor_shape: { dim: shape.map((size) => ({ size })) },
    tensor_content: Buffer.from(content),
  };
}

describe('tensor codec', () => {
  describe('data type names and numbers', () => {
    it('agree with the DataType enum declared in proto/', () => {
      const definitions = protoLoader.loadSync('tensorflow/core/framework/types.proto', {
        includeDirs: [findProtoDir()],
      });
      // An enum definition's `type` is its EnumDescriptorProto.
      const descriptor = (definitions['tensorflow.DataType'] as protoLoader.EnumTypeDefinition).type as {
        value: { name: string; number: number }[];
      };
      const declared = descriptor.value;
      const fromProto = Object.fromEntries(declared.map((v) => [v.name, v.number]));
      expect(DATA_TYPES).to.deep.equal(fromProto);
    });

    it('convert in both directions and reject values outside the enum', () => {
      expect(dataTypeNumber('DT_STRING')).to.equal(7);
      expect(dataTypeName(9)).to.equal('DT_INT64');
      expect(dataTypeName('DT_HALF')).to.equal('DT_HALF');
      expect(() => dataTypeName(27)).to.throw(TensorCodecError, /Unknown DataType number 27/);
      expect(() => dataTypeName('DT_FLOATY')).to.throw(TensorCodecError, /Unknown DataType name "DT_FLOATY"/);
    });
  });

  describe('round trips through the typed fields', () => {
    const cases: { dtype: DataTypeName; shape: number[]; values: (number | boolean | string)[] }[] = [
      { dtype: 'DT_FLOAT', shape: [2, 2], values: [0.5, -1.25, 2 ** 100, 0] },
      { dtype: 'DT_DOUBLE', shape: [3], values: [Math.PI, -Number.MAX_VALUE, 5e-324] },
      { dtype: 'DT_INT8', shape: [3], values: [-128, 0, 127] },
      { dtype: 'DT_UINT8', shape: [2], values: [0, 255] },
      { dtype: 'DT_INT16', shape: [2], values: [-32768, 32767] },
      { dtype: 'DT_UINT16', shape: [2], values: [0, 65535] },
      { dtype: 'DT_INT32', shape: [2], values: [-2147483648, 2147483647] },
      { dtype: 'DT_UINT32', shape: [2], values: [0, 4294967295] },
      { dtype: 'DT_INT64', shape: [3], values: [Number.MIN_SAFE_INTEGER, -1, Number.MAX_SAFE_INTEGER] },
      { dtype: 'DT_UINT64', shape: [2], values: [0, Number.MAX_SAFE_INTEGER] },
      { dtype: 'DT_HALF', shape: [4], values: [1, -2.5, 65504, 2 ** -24] },
      { dtype: 'DT_BFLOAT16', shape: [3], values: [1, -2.5, 3.3895313892515355e38] },
      { dtype: 'DT_BOOL', shape: [1, 3], values: [true, false, true] },
    ];
    for (const { dtype, shape, values } of cases) {
      it(`keeps ${dtype} values and shape ${JSON.stringify(shape)}`, () => {
        const decoded = decodeTensor(overTheWire(encodeTensor(dtype, shape, values)));
        expect(decoded).to.deep.equal({ dtype, shape, values });
      });
    }

    it('keeps float values at float32 precision', () => {
      const decoded = decodeTensor(overTheWire(encodeTensor('DT_FLOAT', [1], [0.1])));
      expect(decoded.values).to.deep.equal([Math.fround(0.1)]);
    });

    it('encodes DT_STRING from strings and bytes and decodes it to Buffers', () => {
      const decoded = decodeTensor(
        overTheWire(encodeTensor('DT_STRING', [3], ['Private', 'Ünïcode', new Uint8Array([0, 255, 1])])),
      );
      expect(decoded.dtype).to.equal('DT_STRING');
      const values = decoded.values as Buffer[];
      expect(values.every((v) => Buffer.isBuffer(v))).to.equal(true);
      expect(values[0]!.toString('utf8')).to.equal('Private');
      expect(values[1]!.toString('utf8')).to.equal('Ünïcode');
      expect([...values[2]!]).to.deep.equal([0, 255, 1]);
    });

    it('accepts bigint for 64-bit integers, including values beyond 2^53 on the wire', () => {
      const tensor = overTheWire(encodeTensor('DT_INT64', [2], [-(2n ** 63n), 5n]));
      expect(tensor.int64_val?.[1]).to.equal(5);
      expect(() => decodeTensor(tensor)).to.throw(
        TensorCodecError,
        /DT_INT64 .* index 0 beyond ±\(2\^53 - 1\)/,
      );
    });

    it('encodes a scalar (empty shape) as one value', () => {
      const decoded = decodeTensor(overTheWire(encodeTensor('DT_INT64', [], [42])));
      expect(decoded).to.deep.equal({ dtype: 'DT_INT64', shape: [], values: [42] });
    });

    it('encodes an empty batch', () => {
      const decoded = decodeTensor(overTheWire(encodeTensor('DT_STRING', [0], [])));
      expect(decoded).to.deep.equal({ dtype: 'DT_STRING', shape: [0], values: [] });
    });
  });

  describe('16-bit floats', () => {
    it('converts half-precision bit patterns exactly, including subnormals, infinities and NaN', () => {
      expect(halfBitsToNumber(0x3c00)).to.equal(1);
      expect(halfBitsToNumber(0xc000)).to.equal(-2);
      expect(halfBitsToNumber(0x7bff)).to.equal(65504);
      expect(halfBitsToNumber(0x0001)).to.equal(2 ** -24);
      expect(halfBitsToNumber(0x0400)).to.equal(2 ** -14);
      expect(halfBitsToNumber(0x3555)).to.equal(0.333251953125);
      expect(Object.is(halfBitsToNumber(0x8000), -0)).to.equal(true);
      expect(halfBitsToNumber(0x7c00)).to.equal(Infinity);
      expect(halfBitsToNumber(0xfc00)).to.equal(-Infinity);
      expect(Number.isNaN(halfBitsToNumber(0x7e00))).to.equal(true);
    });

    it('rounds numbers to the nearest half, ties to even, overflowing to infinity', () => {
      expect(numberToHalfBits(1)).to.equal(0x3c00);
      expect(numberToHalfBits(1 / 3)).to.equal(0x3555);
      expect(numberToHalfBits(1 + 2 ** -11)).to.equal(0x3c00); // tie -> even
      expect(numberToHalfBits(1 + 3 * 2 ** -11)).to.equal(0x3c02); // tie -> even (up)
      expect(numberToHalfBits(65520)).to.equal(0x7c00);
      expect(numberToHalfBits(2 ** -25)).to.equal(0x0000); // tie between 0 and smallest subnormal
      expect(numberToHalfBits(1.5 * 2 ** -25)).to.equal(0x0001);
      expect(numberToHalfBits(-0)).to.equal(0x8000);
      expect(numberToHalfBits(NaN) & 0x7c00).to.equal(0x7c00);
      for (let bits = 0; bits < 0x7c00; bits++) {
        expect(numberToHalfBits(halfBitsToNumber(bits))).to.equal(bits);
      }
    });

    it('converts bfloat16 bit patterns both ways', () => {
      expect(bfloat16BitsToNumber(0x3f80)).to.equal(1);
      expect(bfloat16BitsToNumber(0xc020)).to.equal(-2.5);
      expect(numberToBfloat16Bits(1)).to.equal(0x3f80);
      expect(numberToBfloat16Bits(1 + 2 ** -8)).to.equal(0x3f80); // tie -> even
      expect(numberToBfloat16Bits(1 + 3 * 2 ** -8)).to.equal(0x3f82);
      expect(Number.isNaN(bfloat16BitsToNumber(numberToBfloat16Bits(NaN)))).to.equal(true);
    });
  });

  describe('tensor_content', () => {
    function littleEndian(byteLength: number, write: (view: DataView) => void): Buffer {
      const buffer = Buffer.alloc(byteLength);
      write(new DataView(buffer.buffer, buffer.byteOffset, byteLength));
      return buffer;
    }

    const cases: {
      dtype: DataTypeName;
      values: number[];
      bytes: number;
      write: (v: DataView, i: number, x: number) => void;
    }[] = [
      {
        dtype: 'DT_FLOAT',
        values: [1.5, -2.25, 1e-3],
        bytes: 4,
        write: (v, i, x) => v.setFloat32(i * 4, x, true),
      },
      {
        dtype: 'DT_DOUBLE',
        values: [Math.PI, -1e300],
        bytes: 8,
        write: (v, i, x) => v.setFloat64(i * 8, x, true),
      },
      { dtype: 'DT_INT8', values: [-128, -1, 127], bytes: 1, write: (v, i, x) => v.setInt8(i, x) },
      { dtype: 'DT_UINT8', values: [0, 200, 255], bytes: 1, write: (v, i, x) => v.setUint8(i, x) },
      { dtype: 'DT_INT16', values: [-32768, 513], bytes: 2, write: (v, i, x) => v.setInt16(i * 2, x, true) },
      { dtype: 'DT_UINT16', values: [65535, 513], bytes: 2, write: (v, i, x) => v.setUint16(i * 2, x, true) },
      { dtype: 'DT_INT32', values: [-5, 1 << 30], bytes: 4, write: (v, i, x) => v.setInt32(i * 4, x, true) },
      {
        dtype: 'DT_UINT32',
        values: [4294967295, 7],
        bytes: 4,
        write: (v, i, x) => v.setUint32(i * 4, x, true),
      },
      {
        dtype: 'DT_INT64',
        values: [-1, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 2 ** 40 + 3],
        bytes: 8,
        write: (v, i, x) => v.setBigInt64(i * 8, BigInt(x), true),
      },
      {
        dtype: 'DT_UINT64',
        values: [Number.MAX_SAFE_INTEGER, 1],
        bytes: 8,
        write: (v, i, x) => v.setBigUint64(i * 8, BigInt(x), true),
      },
    ];
    for (const { dtype, values, bytes, write } of cases) {
      const content = littleEndian(values.length * bytes, (view) =>
        values.forEach((x, i) => write(view, i, x)),
      );
      it(`decodes little-endian ${dtype}, aligned or not`, () => {
        for (const raw of [content, unaligned(content)]) {
          const decoded = decodeTensor(overTheWire(contentTensor(dtype, [values.length], raw)));
          const expected = dtype === 'DT_FLOAT' ? values.map(Math.fround) : values;
          expect(decoded).to.deep.equal({ dtype, shape: [values.length], values: expected });
          expect(decodeTensor(contentTensor(dtype, [values.length], raw)).values).to.deep.equal(expected);
        }
      });
    }

    it('decodes DT_HALF from 16-bit patterns, including an unaligned buffer', () => {
      const content = littleEndian(8, (v) =>
        [0x3c00, 0xc100, 0x7bff, 0x0001].forEach((b, i) => v.setUint16(i * 2, b, true)),
      );
      for (const raw of [content, unaligned(content)]) {
        expect(decodeTensor(contentTensor('DT_HALF', [2, 2], raw))).to.deep.equal({
          dtype: 'DT_HALF',
          shape: [2, 2],
          values: [1, -2.5, 65504, 2 ** -24],
        });
      }
    });

    it('decodes DT_BFLOAT16', () => {
      const content = littleEndian(4, (v) => [0x3f80, 0xc020].forEach((b, i) => v.setUint16(i * 2, b, true)));
      expect(decodeTensor(contentTensor('DT_BFLOAT16', [2], content)).values).to.deep.equal([1, -2.5]);
    });

    it('decodes DT_BOOL from one byte per value, any non-zero byte being true', () => {
      expect(decodeTensor(contentTensor('DT_BOOL', [4], Buffer.from([1, 0, 2, 0]))).values).to.deep.equal([
        true,
        false,
        true,
        false,
      ]);
    });

    it('decodes DT_STRING from varint lengths followed by the bytes', () => {
      const long = 'x'.repeat(200); // a two-byte varint length
      const content = Buffer.concat([Buffer.from([2, 0, 0xc8, 0x01]), Buffer.from('hi'), Buffer.from(long)]);
      const decoded = decodeTensor(contentTensor('DT_STRING', [3], content));
      expect((decoded.values as Buffer[]).map((b) => b.toString())).to.deep.equal(['hi', '', long]);
    });

    it('rejects content whose size does not match the shape', () => {
      expect(() => decodeTensor(contentTensor('DT_FLOAT', [3], Buffer.alloc(8)))).to.throw(
        TensorCodecError,
        /DT_FLOAT tensor of shape \[3\] holds 8 bytes of tensor_content; expected 12/,
      );
      expect(() => decodeTensor(contentTensor('DT_STRING', [2], Buffer.from([5, 0, 65])))).to.throw(
        TensorCodecError,
        /DT_STRING tensor of shape \[2\]/,
      );
    });

    it('rejects 64-bit integers a JS number cannot hold exactly', () => {
      const content = littleEndian(16, (v) => {
        v.setBigInt64(0, 1n, true);
        v.setBigInt64(8, 2n ** 53n, true);
      });
      expect(() => decodeTensor(contentTensor('DT_INT64', [2], content))).to.throw(
        TensorCodecError,
        /DT_INT64 tensor holds a value at index 1 beyond/,
      );
    });
  });

  describe('shapes and padding', () => {
    it('repeats the last typed value to fill the shape, as TensorFlow does', () => {
      const tensor: TensorProto = {
        dtype: 'DT_FLOAT',
        tensor_shape: { dim: [{ size: 2 }, { size: 2 }] },
        float_val: [7],
      };
      expect(decodeTensor(tensor).values).to.deep.equal([7, 7, 7, 7]);
    });

    it('fills an empty typed field with zeros', () => {
      const tensor: TensorProto = { dtype: 'DT_INT64', tensor_shape: { dim: [{ size: 3 }] } };
      expect(decodeTensor(tensor).values).to.deep.equal([0, 0, 0]);
    });

    it('accepts a dtype given by number and dimension sizes given as strings', () => {
      const tensor: TensorProto = { dtype: 3, tensor_shape: { dim: [{ size: '2' }] }, int_val: [1, 2] };
      expect(decodeTensor(tensor)).to.deep.equal({ dtype: 'DT_INT32', shape: [2], values: [1, 2] });
    });

    it('rejects more typed values than the shape holds', () => {
      const tensor: TensorProto = {
        dtype: 'DT_FLOAT',
        tensor_shape: { dim: [{ size: 1 }] },
        float_val: [1, 2],
      };
      expect(() => decodeTensor(tensor)).to.throw(TensorCodecError, /holds 2 values; expected at most 1/);
    });

    it('rejects unknown dimensions and unknown rank', () => {
      expect(() => decodeTensor({ dtype: 'DT_FLOAT', tensor_shape: { dim: [{ size: -1 }] } })).to.throw(
        TensorCodecError,
        /shape \[-1\]; every dimension must be a non-negative integer/,
      );
      expect(() => decodeTensor({ dtype: 'DT_FLOAT', tensor_shape: { unknown_rank: true } })).to.throw(
        TensorCodecError,
        /unknown rank/,
      );
    });
  });

  describe('errors', () => {
    it('takes exactly the integers DATA_TYPE_VALUES gives each integer dtype (the one range table)', () => {
      for (const [dtype, values] of Object.entries(DATA_TYPE_VALUES)) {
        if (values.kind !== 'integer') continue;
        const name = dtype as DataTypeName;
        expect(() => encodeTensor(name, [2], [values.min, values.max]), dtype).to.not.throw();
        expect(() => encodeTensor(name, [1], [values.min - 1]), `${dtype} below`).to.throw(TensorCodecError);
        if (Number.isSafeInteger(values.max + 1))
          expect(() => encodeTensor(name, [1], [values.max + 1]), `${dtype} above`).to.throw(
            TensorCodecError,
          );
      }
    });

    it('names the expected count when values do not fill the shape', () => {
      expect(() => encodeTensor('DT_FLOAT', [2, 3], [1, 2, 3])).to.throw(
        TensorCodecError,
        'A DT_FLOAT tensor of shape [2, 3] needs 6 values, got 3',
      );
    });

    it('names the index and value of a mistyped or out-of-range element', () => {
      expect(() => encodeTensor('DT_INT64', [2], [1, '2'])).to.throw(
        TensorCodecError,
        'A DT_INT64 tensor needs an integer number or bigint at index 1, got "2" (string)',
      );
      expect(() => encodeTensor('DT_INT64', [1], [2 ** 53])).to.throw(
        TensorCodecError,
        /at index 0, got 9007199254740992/,
      );
      expect(() => encodeTensor('DT_UINT8', [2], [1, 256])).to.throw(
        TensorCodecError,
        /integer in \[0, 255\] at index 1/,
      );
      expect(() => encodeTensor('DT_INT32', [1], [1.5])).to.throw(TensorCodecError, /index 0, got 1.5/);
      expect(() => encodeTensor('DT_FLOAT', [1], [true])).to.throw(
        TensorCodecError,
        /a number at index 0, got true/,
      );
      expect(() => encodeTensor('DT_BOOL', [1], [1])).to.throw(TensorCodecError, /a boolean at index 0/);
      expect(() => encodeTensor('DT_STRING', [1], [3])).to.throw(
        TensorCodecError,
        /a string or Uint8Array at index 0/,
      );
      expect(() => encodeTensor('DT_UINT64', [1], [-1n])).to.throw(TensorCodecError, /index 0, got -1n/);
    });

    it('rejects a negative or fractional dimension', () => {
      expect(() => encodeTensor('DT_FLOAT', [-1], [])).to.throw(TensorCodecError, /shape \[-1\]/);
    });

    it('rejects dtypes it cannot represent, listing the supported ones', () => {
      expect(() => encodeTensor('DT_COMPLEX64', [1], [1])).to.throw(
        TensorCodecError,
        /Unsupported tensor dtype DT_COMPLEX64; supported: DT_FLOAT, .*DT_BOOL, DT_STRING/,
      );
      expect(() => decodeTensor({ dtype: 'DT_VARIANT', tensor_shape: {} })).to.throw(
        TensorCodecError,
        /DT_VARIANT/,
      );
      expect(() => decodeTensor({})).to.throw(TensorCodecError, /DT_INVALID/);
    });

    it('is an Error subclass that names itself', () => {
      const error = new TensorCodecError('x');
      expect(error).to.be.instanceOf(Error);
      expect(error.name).to.equal('TensorCodecError');
    });
  });
});
