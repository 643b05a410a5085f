// Converts between JS values and TensorFlow's TensorProto, in the object shape that
// @grpc/proto-loader produces and accepts with the options grpc-client.ts loads our protos
// with (keepCase, longs: Number, enums: String; bytes as Buffer).
//
// Value representation, per dtype:
// - floating point and integer dtypes: `number`. DT_INT64 and DT_UINT64 are numbers too, so
//   the hot path never allocates a bigint; a value outside ±(2^53 - 1) cannot be represented
//   exactly and is rejected with a TensorCodecError rather than silently rounded. encodeTensor
//   also accepts `bigint` for the 64-bit dtypes.
// - DT_HALF and DT_BFLOAT16: `number` (the nearest value on encode, the exact value on decode).
// - DT_BOOL: `boolean`.
// - DT_STRING: decode returns `Buffer` (the caller decides whether the bytes are UTF-8);
//   encode accepts `string` (encoded as UTF-8) or `Uint8Array`.
// Complex, quantized, float8, 4-bit, resource and variant dtypes are not supported.

/** TensorFlow's DataType enum (proto/tensorflow/core/framework/types.proto), name -> number. */
export const DATA_TYPES = {
  DT_INVALID: 0,
  DT_FLOAT: 1,
  DT_DOUBLE: 2,
  DT_INT32: 3,
  DT_UINT8: 4,
  DT_INT16: 5,
  DT_INT8: 6,
  DT_STRING: 7,
  DT_COMPLEX64: 8,
  DT_INT64: 9,
  DT_BOOL: 10,
  DT_QINT8: 11,
  DT_QUINT8: 12,
  DT_QINT32: 13,
  DT_BFLOAT16: 14,
  DT_QINT16: 15,
  DT_QUINT16: 16,
  DT_UINT16: 17,
  DT_COMPLEX128: 18,
  DT_HALF: 19,
  DT_RESOURCE: 20,
  DT_VARIANT: 21,
  DT_UINT32: 22,
  DT_UINT64: 23,
  DT_FLOAT8_E5M2: 24,
  DT_FLOAT8_E4M3FN: 25,
  DT_FLOAT8_E4M3FNUZ: 26,
  DT_FLOAT8_E5M2FNUZ: 28,
  DT_INT4: 29,
  DT_UINT4: 30,
  DT_FLOAT_REF: 101,
  DT_DOUBLE_REF: 102,
  DT_INT32_REF: 103,
  DT_UINT8_REF: 104,
  DT_INT16_REF: 105,
  DT_INT8_REF: 106,
  DT_STRING_REF: 107,
  DT_COMPLEX64_REF: 108,
  DT_INT64_REF: 109,
  DT_BOOL_REF: 110,
  DT_QINT8_REF: 111,
  DT_QUINT8_REF: 112,
  DT_QINT32_REF: 113,
  DT_BFLOAT16_REF: 114,
  DT_QINT16_REF: 115,
  DT_QUINT16_REF: 116,
  DT_UINT16_REF: 117,
  DT_COMPLEX128_REF: 118,
  DT_HALF_REF: 119,
  DT_RESOURCE_REF: 120,
  DT_VARIANT_REF: 121,
  DT_UINT32_REF: 122,
  DT_UINT64_REF: 123,
  DT_FLOAT8_E5M2_REF: 124,
  DT_FLOAT8_E4M3FN_REF: 125,
  DT_FLOAT8_E4M3FNUZ_REF: 126,
  DT_FLOAT8_E5M2FNUZ_REF: 128,
  DT_INT4_REF: 129,
  DT_UINT4_REF: 130,
} as const;

export type DataTypeName = keyof typeof DATA_TYPES;

const DATA_TYPE_NAMES = new Map<number, DataTypeName>(
  Object.entries(DATA_TYPES).map(([name, number]) => [number, name as DataTypeName]),
);

/** The dtypes encodeTensor and decodeTensor support whose values are numbers. */
export type NumericDataTypeName =
  | 'DT_FLOAT'
  | 'DT_DOUBLE'
  | 'DT_HALF'
  | 'DT_BFLOAT16'
  | 'DT_INT8'
  | 'DT_INT16'
  | 'DT_INT32'
  | 'DT_INT64'
  | 'DT_UINT8'
  | 'DT_UINT16'
  | 'DT_UINT32'
  | 'DT_UINT64';

export type SupportedDataTypeName = NumericDataTypeName | 'DT_BOOL' | 'DT_STRING';

/** Raised for a tensor that cannot be encoded or decoded; the message names what is wrong. */
export class TensorCodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export function isDataTypeName(value: unknown): value is DataTypeName {
  return typeof value === 'string' && Object.hasOwn(DATA_TYPES, value);
}

/** The enum number of a dtype given by name or number; throws for anything not in the enum. */
export function dataTypeNumber(dtype: DataTypeName | number): number {
  if (typeof dtype === 'number') {
    if (!DATA_TYPE_NAMES.has(dtype)) throw new TensorCodecError(`Unknown DataType number ${dtype}`);
    return dtype;
  }
  if (!isDataTypeName(dtype)) throw new TensorCodecError(`Unknown DataType name ${JSON.stringify(dtype)}`);
  return DATA_TYPES[dtype];
}

/** The enum name of a dtype given by number or name; throws for anything not in the enum. */
export function dataTypeName(dtype: DataTypeName | number | string): DataTypeName {
  if (typeof dtype === 'number') {
    const name = DATA_TYPE_NAMES.get(dtype);
    if (name === undefined) throw new TensorCodecError(`Unknown DataType number ${dtype}`);
    return name;
  }
  if (!isDataTypeName(dtype)) throw new TensorCodecError(`Unknown DataType name ${JSON.stringify(dtype)}`);
  return dtype;
}

export interface TensorShapeProto {
  dim?: { size?: number | string; name?: string }[];
  unknown_rank?: boolean;
}

/**
 * tensorflow.TensorProto as a proto-loader object. Absent fields mean empty. 64-bit fields
 * are numbers with our loader options; strings are accepted too (other loader options).
 */
export interface TensorProto {
  dtype?: DataTypeName | number;
  tensor_shape?: TensorShapeProto;
  version_number?: number;
  tensor_content?: Uint8Array;
  half_val?: number[];
  float_val?: number[];
  double_val?: number[];
  int_val?: number[];
  string_val?: Uint8Array[];
  scomplex_val?: number[];
  int64_val?: (number | string)[];
  bool_val?: boolean[];
  dcomplex_val?: number[];
  uint32_val?: number[];
  uint64_val?: (number | string)[];
  float8_val?: Uint8Array;
}

export type DecodedTensor =
  | { dtype: NumericDataTypeName; shape: number[]; values: number[] }
  | { dtype: 'DT_BOOL'; shape: number[]; values: boolean[] }
  | { dtype: 'DT_STRING'; shape: number[]; values: Buffer[] };

export type TensorValue = number | bigint | boolean | string | Uint8Array;

// ------------------------------------------------------------------------------ element kinds

type TypedField =
  'float_val' | 'double_val' | 'int_val' | 'half_val' | 'int64_val' | 'uint32_val' | 'uint64_val';

interface IntegerRange {
  min: number;
  max: number;
}

/**
 * The one table of what values each supported dtype takes, for the codec and for the input
 * mapping's per-record checks: integer dtypes their range (64-bit ones limited to the integers a JS
 * number holds exactly), floating dtypes the largest finite magnitude (a finite value beyond it would
 * become an infinity on the wire).
 */
export type DataTypeValues =
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'floating'; maxFinite: number }
  | { kind: 'bool' }
  | { kind: 'string' };

const FLOAT32_MAX = 3.4028234663852886e38;

export const DATA_TYPE_VALUES: Readonly<Record<SupportedDataTypeName, DataTypeValues>> = {
  DT_FLOAT: { kind: 'floating', maxFinite: FLOAT32_MAX },
  DT_DOUBLE: { kind: 'floating', maxFinite: Number.MAX_VALUE },
  DT_HALF: { kind: 'floating', maxFinite: 65504 },
  DT_BFLOAT16: { kind: 'floating', maxFinite: 3.3895313892515355e38 },
  DT_INT8: { kind: 'integer', min: -0x80, max: 0x7f },
  DT_INT16: { kind: 'integer', min: -0x8000, max: 0x7fff },
  DT_INT32: { kind: 'integer', min: -0x80000000, max: 0x7fffffff },
  DT_INT64: { kind: 'integer', min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER },
  DT_UINT8: { kind: 'integer', min: 0, max: 0xff },
  DT_UINT16: { kind: 'integer', min: 0, max: 0xffff },
  DT_UINT32: { kind: 'integer', min: 0, max: 0xffffffff },
  DT_UINT64: { kind: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER },
  DT_BOOL: { kind: 'bool' },
  DT_STRING: { kind: 'string' },
};

/** What values `dtype` takes, or undefined for a dtype the codec does not support. */
export function dataTypeValues(dtype: string): DataTypeValues | undefined {
  return Object.hasOwn(DATA_TYPE_VALUES, dtype)
    ? DATA_TYPE_VALUES[dtype as SupportedDataTypeName]
    : undefined;
}

function integerRange(dtype: NumericDataTypeName): IntegerRange | undefined {
  const values = DATA_TYPE_VALUES[dtype];
  return values.kind === 'integer' ? { min: values.min, max: values.max } : undefined;
}

/** How each supported numeric dtype is carried: its typed field and element width. */
const NUMERIC_LAYOUTS: Record<NumericDataTypeName, { field: TypedField; bytes: number }> = {
  DT_FLOAT: { field: 'float_val', bytes: 4 },
  DT_DOUBLE: { field: 'double_val', bytes: 8 },
  DT_HALF: { field: 'half_val', bytes: 2 },
  DT_BFLOAT16: { field: 'half_val', bytes: 2 },
  DT_INT8: { field: 'int_val', bytes: 1 },
  DT_INT16: { field: 'int_val', bytes: 2 },
  DT_INT32: { field: 'int_val', bytes: 4 },
  DT_INT64: { field: 'int64_val', bytes: 8 },
  DT_UINT8: { field: 'int_val', bytes: 1 },
  DT_UINT16: { field: 'int_val', bytes: 2 },
  DT_UINT32: { field: 'uint32_val', bytes: 4 },
  DT_UINT64: { field: 'uint64_val', bytes: 8 },
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function isNumericDataType(dtype: DataTypeName): dtype is NumericDataTypeName {
  return Object.hasOwn(NUMERIC_LAYOUTS, dtype);
}

function unsupported(dtype: DataTypeName | number): TensorCodecError {
  const supported = [...Object.keys(NUMERIC_LAYOUTS), 'DT_BOOL', 'DT_STRING'].join(', ');
  return new TensorCodecError(`Unsupported tensor dtype ${String(dtype)}; supported: ${supported}`);
}

// --------------------------------------------------------------------------- 16-bit floats

// Scratch space for reinterpreting float32 bits; JS is single-threaded per isolate.
const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/** The value of an IEEE 754 binary16 bit pattern (low 16 bits of `bits`). */
export function halfBitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** The binary16 bit pattern nearest to `value` (round half to even; overflow gives ±Infinity). */
export function numberToHalfBits(value: number): number {
  scratchFloat[0] = value;
  const bits = scratchBits[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const halfExponent = exponent - 112;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const truncated = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const roundUp = remainder > halfway || (remainder === halfway && (truncated & 1) === 1);
    return sign | (truncated + (roundUp ? 1 : 0));
  }
  const truncated = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  const roundUp = remainder > 0x1000 || (remainder === 0x1000 && (truncated & 1) === 1);
  // A carry out of the mantissa correctly bumps the exponent (up to Infinity).
  return sign | (truncated + (roundUp ? 1 : 0));
}

/** The value of a bfloat16 bit pattern (low 16 bits of `bits`). */
export function bfloat16BitsToNumber(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratchFloat[0]!;
}

/** The bfloat16 bit pattern nearest to `value` (round half to even). */
export function numberToBfloat16Bits(value: number): number {
  scratchFloat[0] = value;
  const bits = scratchBits[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

// -------------------------------------------------------------------------------- shapes

function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Number of elements of a concrete shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const size of shape) count *= size;
  return count;
}

/**
 * The dimensions of a shape proto, outermost first; -1 marks an unknown size. Returns
 * `undefined` when even the rank is unknown.
 */
export function shapeFromProto(shapeProto: TensorShapeProto | undefined): number[] | undefined {
  if (shapeProto?.unknown_rank === true) return undefined;
  const dims = shapeProto?.dim ?? [];
  const shape = new Array<number>(dims.length);
  for (let i = 0; i < dims.length; i++) shape[i] = Number(dims[i]!.size ?? 0);
  return shape;
}

export function shapeToProto(shape: readonly number[]): TensorShapeProto {
  return { dim: shape.map((size) => ({ size })) };
}

function checkConcreteShape(shape: readonly number[], what: string): void {
  for (const size of shape) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new TensorCodecError(
        `${what} has shape ${describeShape(shape)}; every dimension must be a non-negative integer`,
      );
    }
  }
}

// ------------------------------------------------------------------------------- encoding

/**
 * Builds a TensorProto using the typed field for `dtype`. `values` are row-major and must
 * number exactly elementCount(shape); each must suit the dtype (see the top of this file),
 * integers within the dtype's range. Throws TensorCodecError naming the first bad element.
 */
export function encodeTensor(
  dtype: DataTypeName,
  shape: readonly number[],
  values: readonly TensorValue[],
): TensorProto {
  checkConcreteShape(shape, `A ${dtype} tensor`);
  const count = elementCount(shape);
  if (values.length !== count) {
    throw new TensorCodecError(
      `A ${dtype} tensor of shape ${describeShape(shape)} needs ${count} values, got ${values.length}`,
    );
  }
  const tensor: TensorProto = { dtype, tensor_shape: shapeToProto(shape) };
  if (dtype === 'DT_STRING') {
    tensor.string_val = encodeStrings(values);
  } else if (dtype === 'DT_BOOL') {
    for (let i = 0; i < values.length; i++) {
      if (typeof values[i] !== 'boolean') throw badElement(dtype, i, values[i], 'a boolean');
    }
    tensor.bool_val = values as boolean[];
  } else if (isNumericDataType(dtype)) {
    const layout = NUMERIC_LAYOUTS[dtype];
    if (layout.field === 'int64_val' || layout.field === 'uint64_val') {
      tensor[layout.field] = encodeInt64s(dtype, values);
    } else if (dtype === 'DT_HALF' || dtype === 'DT_BFLOAT16') {
      const toBits = dtype === 'DT_HALF' ? numberToHalfBits : numberToBfloat16Bits;
      const bits = new Array<number>(values.length);
      for (let i = 0; i < values.length; i++) {
        const value = values[i];
        if (typeof value !== 'number') throw badElement(dtype, i, value, 'a number');
        bits[i] = toBits(value);
      }
      tensor.half_val = bits;
    } else {
      checkNumbers(dtype, values, integerRange(dtype));
      tensor[layout.field] = values as number[];
    }
  } else {
    throw unsupported(dtype);
  }
  return tensor;
}

function badElement(dtype: DataTypeName, index: number, value: unknown, expected: string): TensorCodecError {
  const shown =
    typeof value === 'bigint' ? `${value}n` : typeof value === 'string' ? JSON.stringify(value) : value;
  return new TensorCodecError(
    `A ${dtype} tensor needs ${expected} at index ${index}, got ${String(shown)} (${typeof value})`,
  );
}

function checkNumbers(
  dtype: NumericDataTypeName,
  values: readonly TensorValue[],
  range?: IntegerRange,
): void {
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (typeof value !== 'number') throw badElement(dtype, i, value, 'a number');
    if (range !== undefined && !(Number.isInteger(value) && value >= range.min && value <= range.max)) {
      throw badElement(dtype, i, value, `an integer in [${range.min}, ${range.max}]`);
    }
  }
}

function encodeInt64s(dtype: NumericDataTypeName, values: readonly TensorValue[]): (number | string)[] {
  const unsigned = dtype === 'DT_UINT64';
  const min = unsigned ? 0n : INT64_MIN;
  const max = unsigned ? UINT64_MAX : INT64_MAX;
  const safeMin = unsigned ? 0 : Number.MIN_SAFE_INTEGER;
  let encoded: (number | string)[] | undefined;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value) || value < safeMin) {
        throw badElement(
          dtype,
          i,
          value,
          `an integer in [${safeMin}, ${Number.MAX_SAFE_INTEGER}] (or a bigint)`,
        );
      }
      if (encoded !== undefined) encoded[i] = value;
    } else if (typeof value === 'bigint') {
      if (value < min || value > max) throw badElement(dtype, i, value, `an integer in [${min}, ${max}]`);
      // proto-loader (protobufjs) takes 64-bit values beyond 2^53 as decimal strings.
      encoded ??= values.slice(0, i) as number[];
      encoded[i] = value.toString();
    } else {
      throw badElement(dtype, i, value, 'an integer number or bigint');
    }
  }
  return encoded ?? (values as number[]);
}

function encodeStrings(values: readonly TensorValue[]): Uint8Array[] {
  const encoded = new Array<Uint8Array>(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (typeof value === 'string') encoded[i] = Buffer.from(value, 'utf8');
    else if (value instanceof Uint8Array) encoded[i] = value;
    else throw badElement('DT_STRING', i, value, 'a string or Uint8Array');
  }
  return encoded;
}

// ------------------------------------------------------------------------------- decoding

/**
 * Reads a concrete tensor from `tensor_content` when that is non-empty, else from the typed
 * field for its dtype. A typed field shorter than the shape is padded the way TensorFlow does
 * (version 0): by repeating its last value, or with zeros / false / empty strings when empty.
 * Throws TensorCodecError for unsupported dtypes, unknown dimensions, a size mismatch, and
 * 64-bit integers beyond ±(2^53 - 1).
 */
export function decodeTensor(tensor: TensorProto): DecodedTensor {
  const dtype = dataTypeName(tensor.dtype ?? 0);
  const shape = shapeFromProto(tensor.tensor_shape);
  if (shape === undefined) throw new TensorCodecError(`A ${dtype} tensor has unknown rank; cannot decode it`);
  checkConcreteShape(shape, `A ${dtype} tensor`);
  const count = elementCount(shape);
  const content = tensor.tensor_content;
  const fromContent = content !== undefined && content.byteLength > 0;

  if (dtype === 'DT_STRING') {
    const values = fromContent
      ? decodeStringContent(content, count, shape)
      : padded(dtype, shape, toBuffers(tensor.string_val ?? []), count, EMPTY_BUFFER);
    return { dtype, shape, values };
  }
  if (dtype === 'DT_BOOL') {
    let values: boolean[];
    if (fromContent) {
      const bytes = checkedContent(dtype, shape, content, count, 1);
      values = new Array<boolean>(count);
      for (let i = 0; i < count; i++) values[i] = bytes[i] !== 0;
    } else {
      values = padded(dtype, shape, tensor.bool_val ?? [], count, false);
    }
    return { dtype, shape, values };
  }
  if (!isNumericDataType(dtype)) throw unsupported(dtype);
  const values = fromContent
    ? decodeNumericContent(dtype, shape, content, count)
    : decodeNumericField(dtype, shape, tensor, count);
  return { dtype, shape, values };
}

const EMPTY_BUFFER = Buffer.alloc(0);

function sizeMismatch(dtype: DataTypeName, shape: readonly number[], found: string, expected: string) {
  return new TensorCodecError(
    `A ${dtype} tensor of shape ${describeShape(shape)} holds ${found}; expected ${expected}`,
  );
}

function padded<T>(dtype: DataTypeName, shape: readonly number[], values: T[], count: number, zero: T): T[] {
  if (values.length === count) return values;
  if (values.length > count) {
    throw sizeMismatch(dtype, shape, `${values.length} values`, `at most ${count}`);
  }
  const fill = values.length === 0 ? zero : values[values.length - 1]!;
  const result = values.slice();
  result.length = count;
  return result.fill(fill, values.length);
}

function toBuffers(values: Uint8Array[]): Buffer[] {
  for (let i = 0; i < values.length; i++) {
    if (!Buffer.isBuffer(values[i])) {
      return values.map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)));
    }
  }
  return values as Buffer[];
}

function decodeNumericField(
  dtype: NumericDataTypeName,
  shape: readonly number[],
  tensor: TensorProto,
  count: number,
): number[] {
  const field = NUMERIC_LAYOUTS[dtype].field;
  const raw = tensor[field] ?? [];
  let values: number[];
  if (field === 'int64_val' || field === 'uint64_val') {
    values = new Array<number>(raw.length);
    for (let i = 0; i < raw.length; i++) values[i] = safeInteger(dtype, i, Number(raw[i]));
  } else if (dtype === 'DT_HALF' || dtype === 'DT_BFLOAT16') {
    const fromBits = dtype === 'DT_HALF' ? halfBitsToNumber : bfloat16BitsToNumber;
    values = new Array<number>(raw.length);
    for (let i = 0; i < raw.length; i++) values[i] = fromBits(raw[i] as number);
  } else {
    values = raw as number[];
  }
  return padded(dtype, shape, values, count, 0);
}

function safeInteger(dtype: DataTypeName, index: number, value: number): number {
  if (!Number.isSafeInteger(value)) {
    throw new TensorCodecError(
      `A ${dtype} tensor holds a value at index ${index} beyond ±(2^53 - 1), which a JS number cannot represent exactly`,
    );
  }
  return value;
}

/** Checks that `content` holds exactly `count` elements of `bytesPerElement` bytes. */
function checkedContent(
  dtype: DataTypeName,
  shape: readonly number[],
  content: Uint8Array,
  count: number,
  bytesPerElement: number,
): Uint8Array {
  if (content.byteLength !== count * bytesPerElement) {
    throw sizeMismatch(
      dtype,
      shape,
      `${content.byteLength} bytes of tensor_content`,
      `${count * bytesPerElement}`,
    );
  }
  return content;
}

interface TypedArrayConstructor<T> {
  readonly BYTES_PER_ELEMENT: number;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
}

/**
 * A typed-array view of `bytes`. Typed arrays need their offset aligned to the element size;
 * a message decoded from the wire usually is not, so an unaligned region is copied once.
 */
function alignedView<T>(bytes: Uint8Array, type: TypedArrayConstructor<T>, length: number): T {
  if (bytes.byteOffset % type.BYTES_PER_ELEMENT === 0)
    return new type(bytes.buffer, bytes.byteOffset, length);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new type(copy.buffer, 0, length);
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function toNumbers(view: ArrayLike<number>, count: number): number[] {
  const values = new Array<number>(count);
  for (let i = 0; i < count; i++) values[i] = view[i]!;
  return values;
}

function decodeNumericContent(
  dtype: NumericDataTypeName,
  shape: readonly number[],
  content: Uint8Array,
  count: number,
): number[] {
  // tensor_content is little-endian; typed arrays use the host's byte order.
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new TensorCodecError('Decoding tensor_content needs a little-endian host');
  }
  const bytes = checkedContent(dtype, shape, content, count, NUMERIC_LAYOUTS[dtype].bytes);
  switch (dtype) {
    case 'DT_FLOAT':
      return toNumbers(alignedView(bytes, Float32Array, count), count);
    case 'DT_DOUBLE':
      return toNumbers(alignedView(bytes, Float64Array, count), count);
    case 'DT_INT8':
      return toNumbers(new Int8Array(bytes.buffer, bytes.byteOffset, count), count);
    case 'DT_UINT8':
      return toNumbers(bytes, count);
    case 'DT_INT16':
      return toNumbers(alignedView(bytes, Int16Array, count), count);
    case 'DT_UINT16':
      return toNumbers(alignedView(bytes, Uint16Array, count), count);
    case 'DT_INT32':
      return toNumbers(alignedView(bytes, Int32Array, count), count);
    case 'DT_UINT32':
      return toNumbers(alignedView(bytes, Uint32Array, count), count);
    case 'DT_HALF':
    case 'DT_BFLOAT16': {
      const bits = alignedView(bytes, Uint16Array, count);
      const fromBits = dtype === 'DT_HALF' ? halfBitsToNumber : bfloat16BitsToNumber;
      const values = new Array<number>(count);
      for (let i = 0; i < count; i++) values[i] = fromBits(bits[i]!);
      return values;
    }
    case 'DT_INT64':
    case 'DT_UINT64': {
      // Read each value as two 32-bit halves: no bigint per element.
      const words = alignedView(bytes, Uint32Array, count * 2);
      const values = new Array<number>(count);
      for (let i = 0; i < count; i++) {
        const low = words[2 * i]!;
        const high = dtype === 'DT_INT64' ? words[2 * i + 1]! | 0 : words[2 * i + 1]!;
        values[i] = safeInteger(dtype, i, high * 0x100000000 + low);
      }
      return values;
    }
  }
}

/** DT_STRING tensor_content: `count` varint32 lengths, then the strings' bytes back to back. */
function decodeStringContent(content: Uint8Array, count: number, shape: readonly number[]): Buffer[] {
  const bytes = Buffer.isBuffer(content)
    ? content
    : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  const lengths = new Array<number>(count);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    let length = 0;
    let shift = 0;
    let byte: number;
    do {
      if (offset >= bytes.length || shift > 28) {
        throw sizeMismatch(
          'DT_STRING',
          shape,
          'truncated or malformed tensor_content',
          `${count} string lengths`,
        );
      }
      byte = bytes[offset++]!;
      length += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    lengths[i] = length;
  }
  const values = new Array<Buffer>(count);
  for (let i = 0; i < count; i++) {
    const end = offset + lengths[i]!;
    if (end > bytes.length) {
      throw sizeMismatch('DT_STRING', shape, `${bytes.length} bytes of tensor_content`, `at least ${end}`);
    }
    values[i] = bytes.subarray(offset, end);
    offset = end;
  }
  if (offset !== bytes.length) {
    throw sizeMismatch('DT_STRING', shape, `${bytes.length} bytes of tensor_content`, `${offset}`);
  }
  return values;
}
