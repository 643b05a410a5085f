// Converts between the Open Inference Protocol's messages (proto/inference/grpc_predict_v2.proto,
// as @grpc/proto-loader objects) and the shapes the inference task works with (TensorFlow's
// TensorProto, PredictResult and ModelMetadata, connectors/tf-serving/). Pure functions: the
// client (oip-client.ts) calls them, the unit tests check them without a server.
//
// Contract:
// - datatypes map one to one: BOOL, INT8/16/32/64, UINT8/16/32/64, FP16/32/64, BYTES <-> DT_BOOL,
//   DT_INT8..., DT_HALF, DT_FLOAT, DT_DOUBLE, DT_STRING. Any other OIP datatype (BF16, a server's
//   own) is DT_INVALID in metadata, so the input mapping reports the input as unusable.
// - a request carries typed `contents`, or `raw_input_contents` for every input when asked to or
//   when an input is FP16 (which has no typed field); answers may use either (MLServer and Triton
//   send raw_output_contents), and are read into TensorProtos with encodeTensor.
// - raw contents are the row-major elements, little-endian; BYTES elements each have a 4-byte
//   little-endian length prefix (Triton's and MLServer's layout).
import {
  decodeTensor,
  encodeTensor,
  halfBitsToNumber,
  numberToHalfBits,
  TensorCodecError,
  type DataTypeName,
  type TensorProto,
  type TensorValue,
} from '../tf-serving/tensor-codec.js';
import type { ModelMetadata, ModelSpec, PredictResult, TensorSpec } from '../tf-serving/grpc-client.js';

/** The OIP datatype of each TensorFlow dtype the connector exchanges, and back. */
export const OIP_DATATYPES = {
  BOOL: 'DT_BOOL',
  INT8: 'DT_INT8',
  INT16: 'DT_INT16',
  INT32: 'DT_INT32',
  INT64: 'DT_INT64',
  UINT8: 'DT_UINT8',
  UINT16: 'DT_UINT16',
  UINT32: 'DT_UINT32',
  UINT64: 'DT_UINT64',
  FP16: 'DT_HALF',
  FP32: 'DT_FLOAT',
  FP64: 'DT_DOUBLE',
  BYTES: 'DT_STRING',
} as const satisfies Record<string, DataTypeName>;

export type OipDatatype = keyof typeof OIP_DATATYPES;

const TO_OIP = new Map<DataTypeName, OipDatatype>(
  Object.entries(OIP_DATATYPES).map(([oip, dt]) => [dt, oip as OipDatatype]),
);

export function isOipDatatype(value: string): value is OipDatatype {
  return Object.hasOwn(OIP_DATATYPES, value);
}

/** DT_* of an OIP datatype; DT_INVALID for one the connector does not exchange. */
export function dtypeOfOip(datatype: string): DataTypeName {
  return isOipDatatype(datatype) ? OIP_DATATYPES[datatype] : 'DT_INVALID';
}

/** The OIP datatype of a DT_*; throws TensorCodecError for one OIP has no datatype for. */
export function oipOfDtype(dtype: DataTypeName): OipDatatype {
  const oip = TO_OIP.get(dtype);
  if (oip === undefined)
    throw new TensorCodecError(
      `${dtype} has no Open Inference Protocol datatype; supported: ${[...TO_OIP.keys()].join(', ')}`,
    );
  return oip;
}

// ------------------------------------------------------------------- wire message shapes

/** inference.InferTensorContents as a proto-loader object (64-bit fields as numbers). */
export interface InferTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: (number | string)[];
  uint_contents?: number[];
  uint64_contents?: (number | string)[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

type ContentsField = keyof InferTensorContents;

/** Where the typed values of each datatype travel; FP16 has no typed field (raw only). */
const CONTENTS_FIELD: Record<OipDatatype, ContentsField | undefined> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP16: undefined,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

/** Bytes per element in raw contents (BYTES: variable, length-prefixed). */
const RAW_WIDTH: Record<Exclude<OipDatatype, 'BYTES'>, number> = {
  BOOL: 1,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
};

export interface InferInputTensor {
  name: string;
  datatype: string;
  shape: number[];
  contents?: InferTensorContents;
}

export interface ModelInferRequestProto {
  model_name: string;
  model_version?: string;
  inputs: InferInputTensor[];
  outputs?: { name: string }[];
  raw_input_contents?: Uint8Array[];
}

export interface InferOutputTensor {
  name?: string;
  datatype?: string;
  shape?: (number | string)[];
  contents?: InferTensorContents | null;
}

export interface ModelInferResponseProto {
  model_name?: string;
  model_version?: string;
  outputs?: InferOutputTensor[];
  raw_output_contents?: Uint8Array[];
}

export interface TensorMetadataProto {
  name?: string;
  datatype?: string;
  shape?: (number | string)[];
}

export interface ModelMetadataResponseProto {
  name?: string;
  versions?: string[];
  platform?: string;
  inputs?: TensorMetadataProto[];
  outputs?: TensorMetadataProto[];
}

// ------------------------------------------------------------------------------ versions

/**
 * OIP versions are strings. A version of digits only becomes ModelSpec.version (a number, as TF
 * Serving's); any other (`v2`, `canary`) ModelSpec.versionLabel, so both reach the records'
 * metadata and the error context unchanged.
 */
export function modelSpecOf(name: string, version: string | undefined): ModelSpec {
  const spec: ModelSpec = { name };
  if (version === undefined || version === '') return spec;
  if (/^\d+$/.test(version) && Number.isSafeInteger(Number(version))) spec.version = Number(version);
  else spec.versionLabel = version;
  return spec;
}

/** The OIP version string of a model spec; '' (the server's choice) without one. */
export function versionOf(model: Pick<ModelSpec, 'version' | 'versionLabel'>): string {
  if (model.version !== undefined) return String(model.version);
  return model.versionLabel ?? '';
}

// ------------------------------------------------------------------------------ metadata

/**
 * ModelMetadata as one signature named `signatureName` whose inputs and outputs are the model's
 * tensors, keyed by tensor name.
 */
export function metadataFromOip(
  response: ModelMetadataResponseProto,
  requested: ModelSpec,
  signatureName: string,
): ModelMetadata {
  const specs = (tensors: TensorMetadataProto[] | undefined): Record<string, TensorSpec> => {
    const out: Record<string, TensorSpec> = {};
    for (const tensor of tensors ?? []) {
      const name = tensor.name ?? '';
      out[name] = {
        dtype: dtypeOfOip(tensor.datatype ?? ''),
        shape: (tensor.shape ?? []).map(Number),
        encoding: 'name',
        graphTensorName: name,
      };
    }
    return out;
  };
  return {
    model: modelSpecOf(response.name || requested.name, versionOf(requested) || undefined),
    signatures: {
      [signatureName]: {
        methodName: 'ModelInfer',
        inputs: specs(response.inputs),
        outputs: specs(response.outputs),
      },
    },
  };
}

// ------------------------------------------------------------------------------- request

/**
 * A ModelInferRequest from the task's input TensorProtos (encodeTensor's output). With `raw`,
 * or when an input is FP16, every input travels in raw_input_contents.
 */
export function inferRequestFrom(
  model: ModelSpec,
  inputs: Record<string, TensorProto>,
  outputFilter: readonly string[] | undefined,
  raw: boolean,
): ModelInferRequestProto {
  const decoded = Object.entries(inputs).map(([name, tensor]) => {
    const value = decodeTensor(tensor);
    return { name, datatype: oipOfDtype(value.dtype), shape: value.shape, values: value.values };
  });
  const useRaw = raw || decoded.some((t) => t.datatype === 'FP16');
  const request: ModelInferRequestProto = {
    model_name: model.name,
    model_version: versionOf(model),
    inputs: decoded.map((t) =>
      useRaw
        ? { name: t.name, datatype: t.datatype, shape: t.shape }
        : { name: t.name, datatype: t.datatype, shape: t.shape, contents: contentsOf(t.datatype, t.values) },
    ),
  };
  if (useRaw) request.raw_input_contents = decoded.map((t) => rawOf(t.datatype, t.values));
  if (outputFilter !== undefined && outputFilter.length > 0)
    request.outputs = outputFilter.map((name) => ({ name }));
  return request;
}

function contentsOf(datatype: OipDatatype, values: readonly TensorValue[]): InferTensorContents {
  const field = CONTENTS_FIELD[datatype];
  if (field === undefined) throw new TensorCodecError(`${datatype} travels only as raw contents`);
  return { [field]: values } as InferTensorContents;
}

/** Raw contents of one tensor: row-major elements, little-endian; BYTES length-prefixed. */
export function rawOf(datatype: OipDatatype, values: readonly TensorValue[]): Buffer {
  if (datatype === 'BYTES') {
    const parts: Buffer[] = [];
    for (const value of values) {
      const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value as Uint8Array);
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      parts.push(length, bytes);
    }
    return Buffer.concat(parts);
  }
  const width = RAW_WIDTH[datatype];
  const out = Buffer.alloc(width * values.length);
  values.forEach((value, i) => {
    const at = i * width;
    switch (datatype) {
      case 'BOOL':
        out.writeUInt8(value ? 1 : 0, at);
        break;
      case 'INT8':
        out.writeInt8(Number(value), at);
        break;
      case 'INT16':
        out.writeInt16LE(Number(value), at);
        break;
      case 'INT32':
        out.writeInt32LE(Number(value), at);
        break;
      case 'INT64':
        out.writeBigInt64LE(BigInt(value as number | bigint), at);
        break;
      case 'UINT8':
        out.writeUInt8(Number(value), at);
        break;
      case 'UINT16':
        out.writeUInt16LE(Number(value), at);
        break;
      case 'UINT32':
        out.writeUInt32LE(Number(value), at);
        break;
      case 'UINT64':
        out.writeBigUInt64LE(BigInt(value as number | bigint), at);
        break;
      case 'FP16':
        out.writeUInt16LE(numberToHalfBits(Number(value)), at);
        break;
      case 'FP32':
        out.writeFloatLE(Number(value), at);
        break;
      case 'FP64':
        out.writeDoubleLE(Number(value), at);
        break;
    }
  });
  return out;
}

// ------------------------------------------------------------------------------ response

/** Values of raw contents (the inverse of rawOf); 64-bit integers beyond 2^53 as bigint. */
export function valuesOfRaw(datatype: OipDatatype, raw: Uint8Array, name: string): TensorValue[] {
  const buffer = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (datatype === 'BYTES') {
    const values: TensorValue[] = [];
    for (let at = 0; at < buffer.length;) {
      if (at + 4 > buffer.length)
        throw new TensorCodecError(`raw BYTES of output "${name}" end inside a length prefix`);
      const length = buffer.readUInt32LE(at);
      if (at + 4 + length > buffer.length)
        throw new TensorCodecError(`raw BYTES of output "${name}" end inside an element of ${length} bytes`);
      values.push(buffer.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    return values;
  }
  const width = RAW_WIDTH[datatype];
  if (buffer.length % width !== 0)
    throw new TensorCodecError(
      `raw ${datatype} of output "${name}" has ${buffer.length} bytes, not a multiple of ${width}`,
    );
  const values = new Array<TensorValue>(buffer.length / width);
  const int64 = (v: bigint): number | bigint =>
    v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  for (let i = 0; i < values.length; i++) {
    const at = i * width;
    switch (datatype) {
      case 'BOOL':
        values[i] = buffer.readUInt8(at) !== 0;
        break;
      case 'INT8':
        values[i] = buffer.readInt8(at);
        break;
      case 'INT16':
        values[i] = buffer.readInt16LE(at);
        break;
      case 'INT32':
        values[i] = buffer.readInt32LE(at);
        break;
      case 'INT64':
        values[i] = int64(buffer.readBigInt64LE(at));
        break;
      case 'UINT8':
        values[i] = buffer.readUInt8(at);
        break;
      case 'UINT16':
        values[i] = buffer.readUInt16LE(at);
        break;
      case 'UINT32':
        values[i] = buffer.readUInt32LE(at);
        break;
      case 'UINT64':
        values[i] = int64(buffer.readBigUInt64LE(at));
        break;
      case 'FP16':
        values[i] = halfBitsToNumber(buffer.readUInt16LE(at));
        break;
      case 'FP32':
        values[i] = buffer.readFloatLE(at);
        break;
      case 'FP64':
        values[i] = buffer.readDoubleLE(at);
        break;
    }
  }
  return values;
}

/**
 * The answer as a PredictResult: each output a TensorProto of its DT_* dtype, read from
 * raw_output_contents when the server sent them, else from its typed contents. Throws
 * TensorCodecError for an output whose datatype or contents cannot be read.
 */
export function predictResultFrom(response: ModelInferResponseProto, requested: ModelSpec): PredictResult {
  const raw = response.raw_output_contents ?? [];
  const outputs: Record<string, TensorProto> = {};
  (response.outputs ?? []).forEach((output, i) => {
    const name = output.name ?? '';
    const datatype = output.datatype ?? '';
    if (!isOipDatatype(datatype))
      throw new TensorCodecError(
        `output "${name}" has datatype "${datatype}", which the connector cannot read`,
      );
    const shape = (output.shape ?? []).map(Number);
    let values: TensorValue[];
    if (raw.length > 0) {
      const bytes = raw[i];
      if (bytes === undefined)
        throw new TensorCodecError(`the answer has no raw_output_contents for output "${name}"`);
      values = valuesOfRaw(datatype, bytes, name);
    } else {
      const field = CONTENTS_FIELD[datatype];
      values = field === undefined ? [] : [...((output.contents?.[field] ?? []) as TensorValue[])];
      if (datatype === 'INT64' || datatype === 'UINT64')
        values = values.map((v) => (typeof v === 'string' ? BigInt(v) : v));
    }
    outputs[name] = encodeTensor(OIP_DATATYPES[datatype], shape, values);
  });
  return {
    model: modelSpecOf(
      response.model_name || requested.name,
      response.model_version || versionOf(requested) || undefined,
    ),
    outputs,
  };
}
