// From records to model inputs, in two steps:
//
// 1. At start, `bindInputs` binds every input tensor of the signature (from GetModelMetadata) to a
//    field path: the explicit `input.mapping` entry, else the top-level field named like the tensor.
//    A mapping that names no input of the signature, or an input the connector cannot feed (sparse,
//    scalar, an unsupported dtype), fails the task here.
// 2. At the first record of each writer schema, `compileInputPlan` checks every bound field against
//    that schema: the path must exist and its Avro type must be able to feed the tensor's dtype with
//    the tensor's rank (arrays add a dimension; nullable unions are fine). The verdict is an
//    InputPlan, or a RecordError (MODEL_INPUT_SCHEMA_MISMATCH) naming every field that cannot feed
//    its tensor with the expected and actual types. Any producer can write any registered schema
//    into a topic, so a schema that can never feed the model makes each of its records a bad record
//    (dead-lettered with errors.tolerance=all), never a failed task. The task caches the verdict per
//    schema id, so the check costs once per schema, not per record.
//
// Per record, `InputPlan.extract` reads the values; each bad value fails only its record, with a
// message and dead-letter context naming the field, the tensor, the expected and the actual type:
// a null (MODEL_INPUT_MISSING), a value of the wrong JS type, an integer outside the dtype's range,
// a float beyond the dtype's largest finite value, an enum symbol the schema does not list, nested
// arrays of uneven lengths (MODEL_INPUT_TYPE_MISMATCH), NaN or an infinity in a float input unless
// input.nonfinite.policy=pass (MODEL_INPUT_NOT_FINITE).
//
// Which Avro types feed which dtype (per element; the JS value is checked per record too; ranges
// come from tensor-codec.ts's DATA_TYPE_VALUES):
//   integer dtypes (DT_INT8..DT_INT64, DT_UINT8..DT_UINT64): int, long (range-checked)
//   floating dtypes (DT_FLOAT, DT_DOUBLE, DT_HALF, DT_BFLOAT16): int, long, float, double
//   DT_BOOL: boolean
//   DT_STRING: string (UTF-8), bytes, enum (the symbol), fixed
// Logical types feed as their underlying type, except decimal and duration (their bytes are
// neither a number nor text). Records and maps feed nothing.
import type { Type as AvroType } from 'avsc';
import { FatalError, RecordError } from '../../runtime/api.js';
import { isFileRefusal, type FileInputReader } from './file-input.js';
import type { TensorSpec } from './grpc-client.js';
import {
  dataTypeName,
  dataTypeValues,
  type SupportedDataTypeName,
  type TensorValue,
} from './tensor-codec.js';

/** A signature input bound to a record field, decided once at start. */
export interface InputBinding {
  tensor: string;
  dtype: SupportedDataTypeName;
  /** The signature's shape, batch dimension first; undefined for an unknown rank. */
  shape: number[] | undefined;
  /** Dotted path of the field, e.g. `person.age`. */
  field: string;
  /** The field's string value is a file path whose bytes feed the tensor. */
  fromFile: boolean;
}

/** One record's inputs, ready to be batched. */
export interface InputRow {
  /** Per binding (in binding order): the record's values, flattened row-major. */
  values: TensorValue[][];
  /** Per binding: the record's dimensions after the batch dimension ([] for a scalar). */
  dims: number[][];
  /** Estimated bytes of the values in a request. */
  bytes: number;
  /** Rows can share a request only with rows of the same key (same dimensions per input). */
  shapeKey: string;
}

/** Dead-letter / log context of every error about a record's inputs. */
export type ErrorContext = Record<string, string | number | undefined>;

const ELEMENT_BYTES: Partial<Record<SupportedDataTypeName, number>> = {
  DT_INT8: 2,
  DT_INT16: 3,
  DT_INT32: 5,
  DT_INT64: 10,
  DT_UINT8: 2,
  DT_UINT16: 3,
  DT_UINT32: 5,
  DT_UINT64: 10,
  DT_FLOAT: 4,
  DT_DOUBLE: 8,
  DT_HALF: 3,
  DT_BFLOAT16: 3,
  DT_BOOL: 1,
};

/** What `input.nonfinite.policy` does with NaN and infinities in float inputs. */
export type NonFinitePolicy = 'dead-letter' | 'pass';

export interface InputPlanOptions {
  nonFinite: NonFinitePolicy;
}

/** Whether Avro `kind` (a primitive, enum or fixed) can feed `dtype`. */
export function avroKindFeeds(kind: string, dtype: SupportedDataTypeName): boolean {
  switch (dataTypeValues(dtype)?.kind) {
    case 'integer':
      return kind === 'int' || kind === 'long';
    case 'floating':
      return kind === 'int' || kind === 'long' || kind === 'float' || kind === 'double';
    case 'bool':
      return kind === 'boolean';
    case 'string':
      return kind === 'string' || kind === 'bytes' || kind === 'enum' || kind === 'fixed';
    default:
      return false;
  }
}

/** What a binding's tensor takes, for messages and the `expected.type` dead-letter header. */
function expectedOf(binding: InputBinding): string {
  const values = dataTypeValues(binding.dtype);
  const avro =
    values?.kind === 'integer'
      ? 'Avro int or long'
      : values?.kind === 'floating'
        ? 'Avro int, long, float or double'
        : values?.kind === 'bool'
          ? 'Avro boolean'
          : 'Avro string, bytes, enum or fixed';
  return `${binding.dtype}${binding.shape ? ` [${binding.shape.join(', ')}]` : ''} (${avro})`;
}

// --------------------------------------------------------------------------------- step 1

/**
 * Binds the signature's inputs to field paths. Throws FatalError CONFIG_INVALID for a mapping that
 * names no input of the signature and for inputs this connector cannot feed.
 */
export function bindInputs(
  signatureInputs: Readonly<Record<string, TensorSpec>>,
  mapping: ReadonlyMap<string, string>,
  fileFields: ReadonlySet<string>,
  describeModel: string,
): InputBinding[] {
  const problems: string[] = [];
  const names = Object.keys(signatureInputs).sort();
  for (const tensor of mapping.keys()) {
    if (!(tensor in signatureInputs))
      problems.push(
        `input.mapping names "${tensor}", which is not an input of ${describeModel}; its inputs are: ${names.join(', ')}`,
      );
  }
  const bindings: InputBinding[] = [];
  for (const tensor of names) {
    const spec = signatureInputs[tensor]!;
    const field = mapping.get(tensor) ?? tensor;
    let dtype: string;
    try {
      dtype = dataTypeName(spec.dtype);
    } catch {
      dtype = String(spec.dtype);
    }
    if (spec.encoding !== undefined && spec.encoding !== 'name') {
      problems.push(`input "${tensor}" is a ${spec.encoding} tensor; only dense inputs can be fed`);
      continue;
    }
    if (dataTypeValues(dtype) === undefined) {
      problems.push(`input "${tensor}" has dtype ${dtype}, which the connector cannot feed`);
      continue;
    }
    if (spec.shape !== undefined && spec.shape.length === 0) {
      problems.push(
        `input "${tensor}" is a scalar (rank 0); the connector batches records along dimension 0 and needs rank >= 1`,
      );
      continue;
    }
    const fromFile = fileFields.has(field);
    if (fromFile && dtype !== 'DT_STRING')
      problems.push(
        `input "${tensor}" is ${dtype}, but input.file.fields lists its field "${field}": file bytes feed DT_STRING only`,
      );
    bindings.push({ tensor, dtype: dtype as SupportedDataTypeName, shape: spec.shape, field, fromFile });
  }
  if (problems.length > 0) {
    throw new FatalError(
      'CONFIG_INVALID',
      `The input mapping does not fit ${describeModel}: ${problems.join('; ')}`,
      {
        stage: 'TASK_START',
      },
    );
  }
  return bindings;
}

// --------------------------------------------------------------------------------- step 2

/** Why a value cannot feed its tensor; `actual` is a short description for `actual.type`. */
type Problem = { kind: 'missing' | 'mismatch' | 'nonfinite'; detail: string; actual: string };
/** Reads one (possibly nested) value into `out`, recording array lengths per level in `dims`. */
type ValueReader = (value: unknown, out: TensorValue[], dims: number[], level: number) => Problem | undefined;
interface Compiled {
  read: ValueReader;
  /** Array levels below the field. */
  depth: number;
}

const missing = (detail: string): Problem => ({ kind: 'missing', detail, actual: 'null' });
const mismatch = (detail: string, actual: string): Problem => ({ kind: 'mismatch', detail, actual });

interface UnionLike {
  types: AvroType[];
}
interface RecordLike {
  field(name: string): { type: AvroType } | undefined;
}

function describeJs(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Buffer.isBuffer(value)) return `bytes (${value.length})`;
  if (Array.isArray(value)) return `an array (${value.length})`;
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `a ${typeof value}`;
}

/** The JS kind of a decoded value, for `actual.type`. */
function kindOfJs(value: unknown): string {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return 'bytes';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'object') return 'record';
  return typeof value;
}

/** The Avro type of a field in a few words, for messages and `actual.type`. */
export function describeAvro(type: AvroType): string {
  const t = type as AvroType & {
    itemsType?: AvroType;
    valuesType?: AvroType;
    types?: AvroType[];
    underlyingType?: AvroType;
  };
  const name = t.typeName;
  if (name === 'array') return `array<${describeAvro(t.itemsType!)}>`;
  if (name === 'map') return `map<${describeAvro(t.valuesType!)}>`;
  if (name === 'union:wrapped' || name === 'union:unwrapped')
    return `union [${(t.types ?? []).map(describeAvro).join(', ')}]`;
  if (name.startsWith('logical:'))
    return `${describeAvro(t.underlyingType!)} with logicalType ${name.slice('logical:'.length)}`;
  if (name === 'record' || name === 'error' || name === 'enum' || name === 'fixed')
    return t.name !== undefined ? `${name} ${t.name}` : name;
  return name;
}

function leafReader(
  dtype: SupportedDataTypeName,
  avroKind: string,
  type: AvroType,
  options: InputPlanOptions,
): ValueReader {
  const values = dataTypeValues(dtype)!;
  switch (values.kind) {
    case 'integer': {
      const { min, max } = values;
      return (value, out) => {
        if (typeof value !== 'number' || !Number.isInteger(value))
          return mismatch(`got ${describeJs(value)}`, kindOfJs(value));
        if (value < min || value > max)
          return mismatch(`${value} is outside ${dtype}'s range [${min}, ${max}]`, `${avroKind} ${value}`);
        out.push(value);
        return undefined;
      };
    }
    case 'floating': {
      const { maxFinite } = values;
      const pass = options.nonFinite === 'pass';
      return (value, out) => {
        if (typeof value !== 'number') return mismatch(`got ${describeJs(value)}`, kindOfJs(value));
        if (!Number.isFinite(value)) {
          if (!pass) {
            return {
              kind: 'nonfinite',
              detail: `${value} is not a finite number (input.nonfinite.policy=dead-letter; set it to pass if the model takes NaN and infinities)`,
              actual: `${avroKind} ${value}`,
            };
          }
        } else if (value > maxFinite || value < -maxFinite) {
          return mismatch(
            `${value} is beyond ${dtype}'s largest finite value ±${maxFinite}`,
            `${avroKind} ${value}`,
          );
        }
        out.push(value);
        return undefined;
      };
    }
    case 'bool':
      return (value, out) => {
        if (typeof value !== 'boolean') return mismatch(`got ${describeJs(value)}`, kindOfJs(value));
        out.push(value);
        return undefined;
      };
    case 'string': {
      if (avroKind === 'enum') {
        const symbols = new Set((type as unknown as { symbols: string[] }).symbols);
        const enumName = type.name ?? 'enum';
        return (value, out) => {
          if (typeof value !== 'string' || !symbols.has(value))
            return mismatch(
              `${describeJs(value)} is not a symbol of ${enumName} (${[...symbols].join(', ')})`,
              `enum ${enumName} symbol ${typeof value === 'string' ? value : kindOfJs(value)}`,
            );
          out.push(value);
          return undefined;
        };
      }
      return (value, out) => {
        if (typeof value !== 'string' && !(value instanceof Uint8Array))
          return mismatch(`got ${describeJs(value)}`, kindOfJs(value));
        out.push(value);
        return undefined;
      };
    }
  }
}

/** Logical types whose values are not what their underlying type says (no tensor takes them as is). */
const OPAQUE_LOGICAL_TYPES: Readonly<Record<string, string>> = {
  decimal:
    "a decimal's bytes are an unscaled two's-complement integer, neither a number nor text; have the producer write a double or a string",
  duration: "a duration's 12 bytes are three little-endian counts; have the producer write a number",
};

function compileType(
  type: AvroType,
  dtype: SupportedDataTypeName,
  options: InputPlanOptions,
): Compiled | string {
  const typeName = type.typeName;
  if (typeName.startsWith('logical:')) {
    const logical = typeName.slice('logical:'.length);
    const why = OPAQUE_LOGICAL_TYPES[logical];
    if (why !== undefined) return `Avro ${describeAvro(type)} cannot feed ${dtype}: ${why}`;
    return compileType((type as unknown as { underlyingType: AvroType }).underlyingType, dtype, options);
  }
  if (typeName === 'union:wrapped' || typeName === 'union:unwrapped') {
    const branches = (type as unknown as UnionLike).types;
    const nullable = branches.some((b) => b.typeName === 'null');
    const usable: Array<{ key: string; compiled: Compiled }> = [];
    const reasons: string[] = [];
    for (const branch of branches) {
      if (branch.typeName === 'null') continue;
      const compiled = compileType(branch, dtype, options);
      const key = (branch as unknown as { branchName?: string }).branchName ?? branch.typeName;
      if (typeof compiled === 'string') reasons.push(compiled);
      else usable.push({ key, compiled });
    }
    const first = usable[0];
    if (first === undefined) return reasons.join('; ') || `a union of only null cannot feed ${dtype}`;
    if (usable.some((u) => u.compiled.depth !== first.compiled.depth))
      return 'its union branches have different array depths';
    const depth = first.compiled.depth;
    if (typeName === 'union:wrapped') {
      const byKey = new Map(usable.map((u) => [u.key, u.compiled.read]));
      return {
        depth,
        read: (value, out, dims, level) => {
          if (value === null || value === undefined)
            return nullable ? missing('it is null') : mismatch('got null', 'null');
          const key = Object.keys(value)[0] ?? '';
          const read = byKey.get(key);
          if (read === undefined)
            return mismatch(
              `got ${describeJs((value as Record<string, unknown>)[key])} as a ${key}, which cannot feed ${dtype}`,
              key,
            );
          return read((value as Record<string, unknown>)[key], out, dims, level);
        },
      };
    }
    const read = first.compiled.read;
    return {
      depth,
      read: (value, out, dims, level) => {
        if (value === null || value === undefined)
          return nullable ? missing('it is null') : mismatch('got null', 'null');
        return read(value, out, dims, level);
      },
    };
  }
  if (typeName === 'array') {
    const items = compileType((type as unknown as { itemsType: AvroType }).itemsType, dtype, options);
    if (typeof items === 'string') return `its items: ${items}`;
    const readItem = items.read;
    return {
      depth: items.depth + 1,
      read: (value, out, dims, level) => {
        if (!Array.isArray(value))
          return mismatch(`got ${describeJs(value)} where an array belongs`, kindOfJs(value));
        const seen = dims[level];
        if (seen === undefined) dims[level] = value.length;
        else if (seen !== value.length)
          return mismatch(
            `its nested arrays have different lengths (${seen} and ${value.length}), so they do not make a tensor`,
            'ragged arrays',
          );
        for (let i = 0; i < value.length; i++) {
          const problem = readItem(value[i], out, dims, level + 1);
          if (problem) return { ...problem, detail: `element ${i}: ${problem.detail}` };
        }
        return undefined;
      },
    };
  }
  if (['int', 'long', 'float', 'double', 'boolean', 'string', 'bytes', 'enum', 'fixed'].includes(typeName)) {
    if (!avroKindFeeds(typeName, dtype)) return `Avro ${describeAvro(type)} cannot feed ${dtype}`;
    return { depth: 0, read: leafReader(dtype, typeName, type, options) };
  }
  if (typeName === 'record' || typeName === 'error' || typeName === 'map')
    return `Avro ${describeAvro(type)} cannot feed a tensor: map the input to one of its fields (input.mapping=tensor=field.path) or to an array of numbers`;
  return `Avro ${describeAvro(type)} cannot feed a tensor`;
}

interface PathStep {
  name: string;
  /** The record holding this field may be null (a nullable union of one record). */
  nullable: boolean;
  /** The holding union is wrapped: the record sits under this key. */
  wrappedKey: string | undefined;
}

/** The steps from the root record to the field, and the field's type; or why there is no such field. */
function resolvePath(
  root: AvroType,
  path: readonly string[],
): { steps: PathStep[]; type: AvroType } | { problem: string; actual: string } {
  const steps: PathStep[] = [];
  let current: AvroType = root;
  for (let i = 0; i < path.length; i++) {
    const name = path[i]!;
    const here = path.slice(0, i).join('.') || 'the record';
    let nullable = false;
    let wrappedKey: string | undefined;
    if (current.typeName === 'union:wrapped' || current.typeName === 'union:unwrapped') {
      const branches = (current as unknown as UnionLike).types;
      const records = branches.filter((b) => b.typeName === 'record');
      if (
        records.length !== 1 ||
        branches.length - records.length > (branches.some((b) => b.typeName === 'null') ? 1 : 0)
      )
        return {
          problem: `${here} is a union that is not a nullable record, so "${name}" cannot be looked up in it`,
          actual: describeAvro(current),
        };
      nullable = branches.some((b) => b.typeName === 'null');
      if (current.typeName === 'union:wrapped')
        wrappedKey =
          (records[0] as unknown as { branchName?: string }).branchName ?? records[0]!.name ?? 'record';
      current = records[0]!;
    }
    if (current.typeName !== 'record')
      return {
        problem: `${here} is an Avro ${describeAvro(current)}, not a record with field "${name}"`,
        actual: describeAvro(current),
      };
    const field = (current as unknown as RecordLike).field(name);
    if (field === undefined)
      return { problem: `${i === 0 ? 'the record' : here} has no field "${name}"`, actual: 'no such field' };
    steps.push({ name, nullable, wrappedKey });
    current = field.type;
  }
  return { steps, type: current };
}

interface CompiledBinding {
  binding: InputBinding;
  steps: PathStep[];
  read: ValueReader;
  depth: number;
  /** Fixed sizes the signature demands after the batch dimension (-1: any). */
  innerShape: number[] | undefined;
  elementBytes: number | undefined;
}

/** How the records of one writer schema feed the model. */
export class InputPlan {
  private readonly scalar: boolean;
  /** Bindings whose values are file paths to read (input.file.fields). */
  private readonly fileBindings: number[];

  constructor(
    private readonly compiled: readonly CompiledBinding[],
    /** Context of every error about a record's inputs (model, schema id). */
    private readonly errorContext: ErrorContext,
  ) {
    this.scalar = compiled.every((c) => c.depth === 0);
    this.fileBindings = compiled.flatMap((c, i) => (c.binding.fromFile ? [i] : []));
  }

  get bindings(): InputBinding[] {
    return this.compiled.map((c) => c.binding);
  }

  /** The record's inputs, or a RecordError naming the field and tensor that cannot be fed. */
  extract(value: unknown): InputRow | RecordError {
    const values: TensorValue[][] = new Array(this.compiled.length);
    const dims: number[][] = new Array(this.compiled.length);
    let bytes = 0;
    for (let b = 0; b < this.compiled.length; b++) {
      const c = this.compiled[b]!;
      let current: unknown = value;
      for (const step of c.steps) {
        if (current === null || current === undefined) {
          return this.problem(c.binding, missing(`the record holding "${step.name}" is null`));
        }
        if (step.wrappedKey !== undefined) current = (current as Record<string, unknown>)[step.wrappedKey];
        if (current === null || current === undefined) {
          return this.problem(c.binding, missing(`the record holding "${step.name}" is null`));
        }
        current = (current as Record<string, unknown>)[step.name];
      }
      const out: TensorValue[] = [];
      const rowDims: number[] = [];
      const problem = c.read(current, out, rowDims, 0);
      if (problem) return this.problem(c.binding, problem);
      for (let level = 0; level < c.depth; level++) rowDims[level] ??= 0;
      if (c.innerShape !== undefined) {
        for (let level = 0; level < c.innerShape.length; level++) {
          const want = c.innerShape[level]!;
          if (want >= 0 && rowDims[level] !== want && out.length > 0) {
            return this.problem(
              c.binding,
              mismatch(
                `it has shape [${rowDims.join(', ')}] per record; the input expects [${c.innerShape.join(', ')}]`,
                `shape [${rowDims.join(', ')}]`,
              ),
            );
          }
        }
      }
      values[b] = out;
      dims[b] = rowDims;
      bytes += c.elementBytes !== undefined ? c.elementBytes * out.length : stringBytes(out);
    }
    return { values, dims, bytes, shapeKey: this.scalar ? '' : dims.map((d) => d.join('x')).join('|') };
  }

  /** Whether rows of this plan name files to read (input.file.fields). */
  get readsFiles(): boolean {
    return this.fileBindings.length > 0;
  }

  /**
   * Replaces the paths in file bindings by the files' bytes (see file-input.ts for the rules). A
   * file that cannot be read fails that record only (MODEL_INPUT_MISSING), one the rules refuse too
   * (MODEL_INPUT_FILE_REFUSED, naming the field, the path and the rule).
   */
  async readFiles(row: InputRow, reader: FileInputReader): Promise<InputRow | RecordError> {
    let bytes = row.bytes;
    const values = row.values.slice();
    for (const b of this.fileBindings) {
      const binding = this.compiled[b]!.binding;
      const paths = values[b]!.slice();
      for (let i = 0; i < paths.length; i++) {
        const path = paths[i];
        if (typeof path !== 'string') continue;
        const content = await reader.read(path);
        if (isFileRefusal(content)) return this.fileProblem(binding, path, content.rule, content.detail);
        bytes += content.length - path.length;
        paths[i] = content;
      }
      values[b] = paths;
    }
    return { ...row, values, bytes };
  }

  private fileProblem(
    binding: InputBinding,
    path: string,
    rule: string | undefined,
    detail: string,
  ): RecordError {
    const context = {
      ...this.errorContext,
      field: binding.field,
      tensor: binding.tensor,
      path,
      ...(rule !== undefined ? { rule } : {}),
    };
    if (rule === undefined) {
      return new RecordError(
        'MODEL_INPUT_MISSING',
        `Record has no usable value in field "${binding.field}" for model input "${binding.tensor}": the file "${path}" ${detail}`,
        { stage: 'TASK_PROCESS', context },
      );
    }
    return new RecordError(
      'MODEL_INPUT_FILE_REFUSED',
      `The file "${path}" named by field "${binding.field}" (model input "${binding.tensor}") was refused (${rule}): ${detail}`,
      { stage: 'TASK_PROCESS', context },
    );
  }

  private problem(binding: InputBinding, problem: Problem): RecordError {
    const context = {
      ...this.errorContext,
      field: binding.field,
      tensor: binding.tensor,
      'expected.type': binding.dtype,
      'actual.type': problem.actual,
    };
    if (problem.kind === 'missing') {
      return new RecordError(
        'MODEL_INPUT_MISSING',
        `Record has no usable value in field "${binding.field}" for model input "${binding.tensor}" (${binding.dtype}): ${problem.detail}`,
        { stage: 'TASK_PROCESS', context },
      );
    }
    if (problem.kind === 'nonfinite') {
      return new RecordError(
        'MODEL_INPUT_NOT_FINITE',
        `Field "${binding.field}" holds a value model input "${binding.tensor}" (${binding.dtype}) does not take: ${problem.detail}`,
        { stage: 'TASK_PROCESS', context },
      );
    }
    return new RecordError(
      'MODEL_INPUT_TYPE_MISMATCH',
      `Field "${binding.field}" cannot be converted to ${binding.dtype} for model input "${binding.tensor}": ${problem.detail}`,
      { stage: 'TASK_PROCESS', context },
    );
  }
}

function stringBytes(values: readonly TensorValue[]): number {
  let bytes = 0;
  for (const v of values) bytes += (typeof v === 'string' || v instanceof Uint8Array ? v.length : 8) + 2;
  return bytes;
}

/**
 * Checks the bindings against a writer schema and compiles the readers. Returns, instead of a plan,
 * a RecordError (MODEL_INPUT_SCHEMA_MISMATCH) naming every field that cannot feed its tensor when
 * records of this schema can never feed the model: each of them is a bad record.
 */
export function compileInputPlan(
  bindings: readonly InputBinding[],
  writer: { id: number; type: AvroType },
  errorContext: ErrorContext,
  options: InputPlanOptions = { nonFinite: 'dead-letter' },
): InputPlan | RecordError {
  const problems: Array<{ binding: InputBinding; detail: string; actual: string }> = [];
  const compiled: CompiledBinding[] = [];
  for (const binding of bindings) {
    const resolved = resolvePath(writer.type, binding.field.split('.'));
    if ('problem' in resolved) {
      problems.push({ binding, detail: resolved.problem, actual: resolved.actual });
      continue;
    }
    const actual = describeAvro(resolved.type);
    const type = compileType(resolved.type, binding.dtype, options);
    if (typeof type === 'string') {
      problems.push({ binding, detail: type, actual });
      continue;
    }
    if (
      binding.fromFile &&
      type.depth === 0 &&
      !['string', 'union:unwrapped', 'union:wrapped'].includes(resolved.type.typeName)
    ) {
      problems.push({
        binding,
        detail: `input.file.fields lists it, so it must hold a path (Avro string), not ${actual}`,
        actual,
      });
      continue;
    }
    const expectedDepth = binding.shape === undefined ? undefined : binding.shape.length - 1;
    if (expectedDepth !== undefined && expectedDepth !== type.depth) {
      problems.push({
        binding,
        detail:
          `the field has ${type.depth} array level(s), so it gives each record a rank-${type.depth} value; ` +
          `the input takes rank ${expectedDepth} per record (rank ${expectedDepth + 1} with the batch dimension)`,
        actual,
      });
      continue;
    }
    compiled.push({
      binding,
      steps: resolved.steps,
      read: type.read,
      depth: type.depth,
      innerShape: binding.shape?.slice(1),
      elementBytes: ELEMENT_BYTES[binding.dtype],
    });
  }
  const context = { ...errorContext, 'schema.id': writer.id };
  if (problems.length === 0) return new InputPlan(compiled, context);
  const first = problems[0]!;
  const schemaName = writer.type.name ?? writer.type.typeName;
  return new RecordError(
    'MODEL_INPUT_SCHEMA_MISMATCH',
    `Records written with schema id ${writer.id} (${schemaName}) cannot feed the model: ` +
      problems
        .map(
          (p) =>
            `field "${p.binding.field}" for model input "${p.binding.tensor}" expects ${expectedOf(p.binding)}, ` +
            `the schema has ${p.actual}: ${p.detail}`,
        )
        .join('; ') +
      ". Have the producer write the model's fields with these types, or map each input to a field that " +
      'fits (input.mapping=tensor=field.path)',
    {
      stage: 'TASK_PROCESS',
      context: {
        ...context,
        field: first.binding.field,
        tensor: first.binding.tensor,
        'expected.type': expectedOf(first.binding),
        'actual.type': first.actual,
        ...(problems.length > 1 ? { 'problem.count': problems.length } : {}),
      },
    },
  );
}
