// From model outputs to the output record and its Avro schema.
//
// At start, `bindOutputs` picks the output tensors to write (`output.fields`, default every output)
// and the Avro type of each from the signature: one value per row -> a primitive, more dimensions
// -> (nested) arrays. `OutputSchemas.derive` builds the output schema of each input writer schema:
// the writer's fields, then the output fields, then the metadata fields. Every new field is
// `["null", T]` with default null, so output schemas derived from successive input versions stay
// compatible in the registry (and an added output reads as null from older records). A writer
// schema that is not a record, or that already has a field named like a new one, cannot take the
// outputs: each of its records is a bad record (MODEL_INPUT_SCHEMA_MISMATCH), with a message saying
// how to rename the output.
//
// Derived types are cached per input schema id, and per derived schema text: the runtime registers
// an output schema once per distinct Type object, so the same object is returned every time.
import avro from 'avsc';
import type { Schema as AvroSchema, Type as AvroType } from 'avsc';
import { FatalError, RecordError } from '../../runtime/api.js';
import type { ModelSpec, PredictResult, TensorSpec } from './grpc-client.js';
import { avroFieldName, type MetadataField } from './config.js';
import {
  dataTypeName,
  decodeTensor,
  elementCount,
  TensorCodecError,
  type DataTypeName,
} from './tensor-codec.js';

/** An output tensor written to a field. */
export interface OutputBinding {
  tensor: string;
  field: string;
  dtype: DataTypeName;
  /** Dimensions per row after the batch dimension (the signature's, -1 for any size). */
  rowShape: number[];
  /** The Avro type of one row's value (without the null branch). */
  avroType: AvroSchema;
}

const AVRO_OF_DTYPE: Partial<Record<DataTypeName, string>> = {
  DT_FLOAT: 'float',
  DT_HALF: 'float',
  DT_BFLOAT16: 'float',
  DT_DOUBLE: 'double',
  DT_INT8: 'int',
  DT_INT16: 'int',
  DT_INT32: 'int',
  DT_UINT8: 'int',
  DT_UINT16: 'int',
  DT_INT64: 'long',
  DT_UINT32: 'long',
  DT_UINT64: 'long',
  DT_BOOL: 'boolean',
  DT_STRING: 'string',
};

/** Outputs that are part of a SavedModel's plumbing rather than its answer. */
const isInternal = (alias: string): boolean => alias.startsWith('__');

/**
 * Chooses the outputs to write. Throws FatalError CONFIG_INVALID when `output.fields` names an
 * output the signature lacks, or an output cannot be written as Avro (unknown rank, a scalar that
 * is not batched, an unsupported dtype).
 */
export function bindOutputs(
  signatureOutputs: Readonly<Record<string, TensorSpec>>,
  outputFields: ReadonlyMap<string, string> | undefined,
  describeModel: string,
): OutputBinding[] {
  const available = Object.keys(signatureOutputs)
    .filter((alias) => !isInternal(alias))
    .sort();
  const chosen: Array<[string, string]> = outputFields
    ? [...outputFields]
    : available.map((alias) => [alias, avroFieldName(alias)]);
  const problems: string[] = [];
  const bindings: OutputBinding[] = [];
  for (const [tensor, field] of chosen) {
    const spec = signatureOutputs[tensor];
    if (spec === undefined) {
      problems.push(
        `output.fields names "${tensor}", which is not an output of ${describeModel}; its outputs are: ${available.join(', ')}`,
      );
      continue;
    }
    let dtype: DataTypeName | undefined;
    try {
      dtype = dataTypeName(spec.dtype);
    } catch {
      dtype = undefined;
    }
    const primitive = dtype === undefined ? undefined : AVRO_OF_DTYPE[dtype];
    if (dtype === undefined || primitive === undefined) {
      problems.push(`output "${tensor}" has dtype ${String(spec.dtype)}, which has no Avro type here`);
      continue;
    }
    if (spec.shape === undefined) {
      problems.push(
        `output "${tensor}" has an unknown rank, so its Avro type cannot be derived; list the outputs of known rank in output.fields`,
      );
      continue;
    }
    if (spec.shape.length === 0) {
      problems.push(`output "${tensor}" is a scalar (rank 0), not one value per record`);
      continue;
    }
    const rowShape = spec.shape.slice(1);
    let avroType: AvroSchema = primitive;
    for (let i = 0; i < rowShape.length; i++) avroType = { type: 'array', items: avroType };
    bindings.push({ tensor, field, dtype, rowShape, avroType });
  }
  if (bindings.length === 0 && problems.length === 0)
    problems.push(`${describeModel} has no outputs to write`);
  if (problems.length > 0) {
    throw new FatalError(
      'CONFIG_INVALID',
      `The output mapping does not fit ${describeModel}: ${problems.join('; ')}`,
      {
        stage: 'TASK_START',
      },
    );
  }
  return bindings;
}

// --------------------------------------------------------------------------------- schemas

/** avsc's LogicalType, typed loosely: @types for avsc do not declare its protected hooks. */
const LogicalTypeBase = (avro.types as unknown as { LogicalType: new (...args: unknown[]) => object })
  .LogicalType;

/**
 * Keeps `timestamp-millis` on the `scored.at` field's schema while values stay epoch-ms numbers
 * (the runtime parses schemas without logical types; this one must survive into the registry).
 */
class TimestampMillis extends LogicalTypeBase {
  _fromValue(value: unknown): unknown {
    return value;
  }
  _toValue(value: unknown): unknown {
    return value;
  }
  _resolve(type: AvroType): ((value: unknown) => unknown) | undefined {
    return type.typeName === 'long' || type.typeName === 'logical:timestamp-millis' ? (v) => v : undefined;
  }
}

/**
 * How derived output types are parsed: as the runtime parses every Avro schema (unions unwrapped
 * when unambiguous, records without methods). A fresh object per parse: avsc fills in its registry.
 */
const parseOptions = (): Partial<avro.ForSchemaOptions> =>
  ({
    wrapUnions: 'auto',
    omitRecordMethods: true,
    logicalTypes: { 'timestamp-millis': TimestampMillis },
  }) as unknown as Partial<avro.ForSchemaOptions>;

const METADATA_TYPES: Record<MetadataField['kind'], AvroSchema> = {
  'model.name': 'string',
  'model.version': 'long',
  'model.signature': 'string',
  'scored.at': { type: 'long', logicalType: 'timestamp-millis' } as AvroSchema,
};

const METADATA_DOCS: Record<MetadataField['kind'], string> = {
  'model.name': 'Name of the model that scored the record',
  'model.version': 'Version of the model that scored the record',
  'model.signature': 'Signature of the model that scored the record',
  'scored.at': 'When the record was scored (epoch ms)',
};

interface FieldSchema {
  name: string;
  type: AvroSchema;
  default: null;
  doc: string;
}

export class OutputSchemas {
  private readonly byId = new Map<number, AvroType>();
  private readonly byText = new Map<string, AvroType>();
  private readonly newFields: FieldSchema[];

  constructor(
    readonly outputs: readonly OutputBinding[],
    readonly metadata: readonly MetadataField[],
  ) {
    this.newFields = [
      ...outputs.map((o) => ({
        name: o.field,
        type: ['null', o.avroType] as AvroSchema,
        default: null,
        doc: `Model output "${o.tensor}" (${o.dtype})`,
      })),
      ...metadata.map((m) => ({
        name: m.field,
        type: ['null', METADATA_TYPES[m.kind]] as AvroSchema,
        default: null,
        doc: METADATA_DOCS[m.kind],
      })),
    ];
  }

  /** Names of the fields added to every record, in order. */
  get addedFields(): string[] {
    return this.newFields.map((f) => f.name);
  }

  /**
   * The output type for records written with `writer`: cached per schema id, the same object for
   * the same derived schema. Returns a RecordError (MODEL_INPUT_SCHEMA_MISMATCH) instead when the
   * writer schema is not a record, or an added field's name is taken by one of its fields.
   */
  derive(
    writer: { id: number; type: AvroType },
    errorContext: Record<string, string | number | undefined> = {},
  ): AvroType | RecordError {
    const cached = this.byId.get(writer.id);
    if (cached) return cached;
    const schema = writer.type.schema({ exportAttrs: true }) as unknown as {
      type: string;
      name?: string;
      fields?: Array<{ name: string }>;
    };
    const context = { ...errorContext, 'schema.id': writer.id };
    if (schema.type !== 'record' || !Array.isArray(schema.fields)) {
      const actual = typeof schema === 'string' ? schema : schema.type;
      return new RecordError(
        'MODEL_INPUT_SCHEMA_MISMATCH',
        `Records written with schema id ${writer.id} are Avro ${actual}, not records; the model's inputs are ` +
          'read from record fields and its outputs are added to the record. Have the producer write records',
        { stage: 'TASK_PROCESS', context: { ...context, 'expected.type': 'record', 'actual.type': actual } },
      );
    }
    const taken = new Set(schema.fields.map((f) => f.name));
    const clashes = this.newFields.filter((f) => taken.has(f.name)).map((f) => f.name);
    if (clashes.length > 0) {
      return new RecordError(
        'MODEL_INPUT_SCHEMA_MISMATCH',
        `Records written with schema id ${writer.id} (${schema.name ?? 'record'}) already have the field(s) ` +
          `${clashes.map((c) => `"${c}"`).join(', ')} that the model's outputs are written to; give the output ` +
          'another name with output.fields=tensor=newName (or output.metadata.fields=kind=newName), or have the ' +
          'producer drop the field',
        { stage: 'TASK_PROCESS', context: { ...context, field: clashes[0] } },
      );
    }
    schema.fields.push(...this.newFields);
    const text = JSON.stringify(schema);
    let type = this.byText.get(text);
    if (type === undefined) {
      type = avro.Type.forSchema(JSON.parse(text) as AvroSchema, parseOptions());
      this.byText.set(text, type);
    }
    this.byId.set(writer.id, type);
    return type;
  }
}

// ---------------------------------------------------------------------------------- values

/** The metadata values of a row scored by `model` at `scoredAt`, in OutputSchemas.metadata order. */
export function metadataValues(
  fields: readonly MetadataField[],
  model: ModelSpec & { signatureName: string },
  scoredAt: number,
): unknown[] {
  return fields.map((f) => {
    switch (f.kind) {
      case 'model.name':
        return model.name;
      case 'model.version':
        return model.version ?? null;
      case 'model.signature':
        return model.signatureName;
      case 'scored.at':
        return scoredAt;
    }
  });
}

/**
 * Splits the answer to a request of `rows` rows into per-row values, by position: `result[i][k]` is
 * row i's value of output k. Throws FatalError MODEL_OUTPUT_INVALID when an output is missing or
 * its shape does not match the request (a model/config mismatch, not a bad record).
 */
export function splitOutputs(
  result: PredictResult,
  outputs: readonly OutputBinding[],
  rows: number,
  errorContext: Record<string, string | number | undefined>,
): unknown[][] {
  const perRow: unknown[][] = Array.from({ length: rows }, () => new Array<unknown>(outputs.length));
  outputs.forEach((binding, k) => {
    const fail = (details: string, cause?: unknown) =>
      new FatalError(
        'MODEL_OUTPUT_INVALID',
        `Model ${errorContext['model.name'] ?? ''} returned an unusable output "${binding.tensor}": ${details}`,
        { stage: 'TASK_PROCESS', cause, context: { ...errorContext, tensor: binding.tensor } },
      );
    const tensor = result.outputs[binding.tensor];
    if (tensor === undefined)
      throw fail(
        `the response has no such output (it has: ${Object.keys(result.outputs).join(', ') || 'none'})`,
      );
    let decoded;
    try {
      decoded = decodeTensor(tensor);
    } catch (error) {
      if (error instanceof TensorCodecError) throw fail(error.message, error);
      throw error;
    }
    const shape = decoded.shape;
    if (shape[0] !== rows) throw fail(`its shape is [${shape.join(', ')}] for a request of ${rows} rows`);
    if (shape.length !== binding.rowShape.length + 1)
      throw fail(`its rank is ${shape.length}; the signature promised ${binding.rowShape.length + 1}`);
    const rowShape = shape.slice(1);
    const per = elementCount(rowShape);
    const values: unknown[] =
      decoded.dtype === 'DT_STRING' ? decoded.values.map((b) => b.toString('utf8')) : decoded.values;
    for (let i = 0; i < rows; i++) {
      perRow[i]![k] = rowShape.length === 0 ? values[i] : nest(values, i * per, rowShape);
    }
  });
  return perRow;
}

function nest(values: readonly unknown[], start: number, shape: readonly number[]): unknown[] {
  const [size, ...rest] = shape;
  if (rest.length === 0) return values.slice(start, start + size!);
  const step = elementCount(rest);
  return Array.from({ length: size! }, (_, j) => nest(values, start + j * step, rest));
}
