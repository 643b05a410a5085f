// From records to model inputs, in two steps:
//
// 1. At start, `bindInputs` binds every input tensor of the signature (from GetModelMetadata) to a
//    field path: the explicit `input.mapping` entry, else the top-level field named like the tensor.
//    A mapping that names no input of the signature, or an input the connector cannot feed (sparse,
//    scalar, an unsupported dtype), fails the task here.
// 2. At the first record of each writer schema, `compileInputPlan` checks every bound field against
//    that schema: the path must exist and its Avro type must be able to feed the tensor's dtype with
//    the tensor's rank (arrays add a dimension; nullable unions are fine). A schema that can never
//    feed a tensor fails the task (FatalError SCHEMA_INCOMPATIBLE): every record written with it
//    would fail, which is a producer or mapping problem, not a bad record. The plan is cached per
//    schema id by the task.
//
// Per record, `InputPlan.extract` reads the values; a null value (MODEL_INPUT_MISSING) or a value of
// the wrong JS type or range (MODEL_INPUT_TYPE_MISMATCH) fails only that record, with a message and
// dead-letter context naming the field and the tensor.
//
// Which Avro types feed which dtype (per element; the JS value is checked per record too):
//   integer dtypes (DT_INT8..DT_INT64, DT_UINT8..DT_UINT64): int, long (range-checked)
//   floating dtypes (DT_FLOAT, DT_DOUBLE, DT_HALF, DT_BFLOAT16): int, long, float, double
//   DT_BOOL: boolean
//   DT_STRING: string (UTF-8), bytes, enum (the symbol), fixed
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { Type as AvroType } from 'avsc';
import { FatalError, RecordError } from '../../runtime/api.js';
import type { TensorSpec } from './grpc-client.js';
import { dataTypeName, type SupportedDataTypeName, type TensorValue } from './tensor-codec.js';

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

const INTEGER_RANGES: Partial<Record<SupportedDataTypeName, [number, number]>> = {
  DT_INT8: [-0x80, 0x7f],
  DT_INT16: [-0x8000, 0x7fff],
  DT_INT32: [-0x80000000, 0x7fffffff],
  DT_INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  DT_UINT8: [0, 0xff],
  DT_UINT16: [0, 0xffff],
  DT_UINT32: [0, 0xffffffff],
  DT_UINT64: [0, Number.MAX_SAFE_INTEGER],
};
const FLOATING = new Set<string>(['DT_FLOAT', 'DT_DOUBLE', 'DT_HALF', 'DT_BFLOAT16']);
const SUPPORTED = new Set<string>([...Object.keys(INTEGER_RANGES), ...FLOATING, 'DT_BOOL', 'DT_STRING']);
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

/** Whether Avro `kind` (a primitive, enum or fixed) can feed `dtype`. */
export function avroKindFeeds(kind: string, dtype: SupportedDataTypeName): boolean {
  if (INTEGER_RANGES[dtype] !== undefined) return kind === 'int' || kind === 'long';
  if (FLOATING.has(dtype)) return kind === 'int' || kind === 'long' || kind === 'float' || kind === 'double';
  if (dtype === 'DT_BOOL') return kind === 'boolean';
  return kind === 'string' || kind === 'bytes' || kind === 'enum' || kind === 'fixed';
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
    if (!SUPPORTED.has(dtype)) {
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

type Problem = { kind: 'missing' | 'mismatch'; detail: string };
/** Reads one (possibly nested) value into `out`, recording array lengths per level in `dims`. */
type ValueReader = (value: unknown, out: TensorValue[], dims: number[], level: number) => Problem | undefined;
interface Compiled {
  read: ValueReader;
  /** Array levels below the field. */
  depth: number;
}

const missing = (detail: string): Problem => ({ kind: 'missing', detail });
const mismatch = (detail: string): Problem => ({ kind: 'mismatch', detail });

interface UnionLike {
  types: AvroType[];
}
interface RecordLike {
  field(name: string): { type: AvroType } | undefined;
}

function describeJs(value: unknown): string {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value)) return `bytes (${value.length})`;
  if (Array.isArray(value)) return `an array (${value.length})`;
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `a ${typeof value}`;
}

function leafReader(dtype: SupportedDataTypeName): ValueReader {
  const range = INTEGER_RANGES[dtype];
  if (range !== undefined) {
    const [min, max] = range;
    return (value, out) => {
      if (typeof value !== 'number' || !Number.isInteger(value)) return mismatch(`got ${describeJs(value)}`);
      if (value < min || value > max)
        return mismatch(`${value} is outside ${dtype}'s range [${min}, ${max}]`);
      out.push(value);
      return undefined;
    };
  }
  if (FLOATING.has(dtype)) {
    return (value, out) => {
      if (typeof value !== 'number') return mismatch(`got ${describeJs(value)}`);
      out.push(value);
      return undefined;
    };
  }
  if (dtype === 'DT_BOOL') {
    return (value, out) => {
      if (typeof value !== 'boolean') return mismatch(`got ${describeJs(value)}`);
      out.push(value);
      return undefined;
    };
  }
  return (value, out) => {
    if (typeof value !== 'string' && !(value instanceof Uint8Array))
      return mismatch(`got ${describeJs(value)}`);
    out.push(value);
    return undefined;
  };
}

function compileType(type: AvroType, dtype: SupportedDataTypeName): Compiled | string {
  const typeName = type.typeName;
  if (typeName === 'union:wrapped' || typeName === 'union:unwrapped') {
    const branches = (type as unknown as UnionLike).types;
    const nullable = branches.some((b) => b.typeName === 'null');
    const usable: Array<{ key: string; compiled: Compiled }> = [];
    const reasons: string[] = [];
    for (const branch of branches) {
      if (branch.typeName === 'null') continue;
      const compiled = compileType(branch, dtype);
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
            return nullable ? missing('it is null') : mismatch('got null');
          const key = Object.keys(value)[0] ?? '';
          const read = byKey.get(key);
          if (read === undefined) return mismatch(`got a ${key} value, which cannot feed ${dtype}`);
          return read((value as Record<string, unknown>)[key], out, dims, level);
        },
      };
    }
    const read = first.compiled.read;
    return {
      depth,
      read: (value, out, dims, level) => {
        if (value === null || value === undefined)
          return nullable ? missing('it is null') : mismatch('got null');
        return read(value, out, dims, level);
      },
    };
  }
  if (typeName === 'array') {
    const items = compileType((type as unknown as { itemsType: AvroType }).itemsType, dtype);
    if (typeof items === 'string') return `its items: ${items}`;
    const readItem = items.read;
    return {
      depth: items.depth + 1,
      read: (value, out, dims, level) => {
        if (!Array.isArray(value)) return mismatch(`got ${describeJs(value)} where an array belongs`);
        const seen = dims[level];
        if (seen === undefined) dims[level] = value.length;
        else if (seen !== value.length)
          return mismatch(`its nested arrays have different lengths (${seen} and ${value.length})`);
        for (let i = 0; i < value.length; i++) {
          const problem = readItem(value[i], out, dims, level + 1);
          if (problem) return { kind: problem.kind, detail: `element ${i}: ${problem.detail}` };
        }
        return undefined;
      },
    };
  }
  if (['int', 'long', 'float', 'double', 'boolean', 'string', 'bytes', 'enum', 'fixed'].includes(typeName)) {
    if (!avroKindFeeds(typeName, dtype)) return `Avro ${typeName} cannot feed ${dtype}`;
    return { depth: 0, read: leafReader(dtype) };
  }
  return `Avro ${typeName} cannot feed a tensor`;
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
): { steps: PathStep[]; type: AvroType } | string {
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
        return `${here} is a union that is not a nullable record, so "${name}" cannot be looked up in it`;
      nullable = branches.some((b) => b.typeName === 'null');
      if (current.typeName === 'union:wrapped')
        wrappedKey =
          (records[0] as unknown as { branchName?: string }).branchName ?? records[0]!.name ?? 'record';
      current = records[0]!;
    }
    if (current.typeName !== 'record')
      return `${here} is an Avro ${current.typeName}, not a record with field "${name}"`;
    const field = (current as unknown as RecordLike).field(name);
    if (field === undefined) return `${i === 0 ? 'the record' : here} has no field "${name}"`;
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

  constructor(
    private readonly compiled: readonly CompiledBinding[],
    private readonly errorContext: ErrorContext,
  ) {
    this.scalar = compiled.every((c) => c.depth === 0);
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

  /** Bindings whose values are file paths to read (input.file.fields). */
  get fileBindings(): number[] {
    const indexes: number[] = [];
    this.compiled.forEach((c, i) => {
      if (c.binding.fromFile) indexes.push(i);
    });
    return indexes;
  }

  /**
   * Replaces the paths in file bindings by the files' bytes. A file that cannot be read (or lies
   * outside `baseDir`) fails that record only (MODEL_INPUT_MISSING).
   */
  async readFiles(row: InputRow, baseDir: string | undefined): Promise<InputRow | RecordError> {
    let bytes = row.bytes;
    for (const b of this.fileBindings) {
      const binding = this.compiled[b]!.binding;
      const values = row.values[b]!;
      for (let i = 0; i < values.length; i++) {
        const path = values[i];
        if (typeof path !== 'string') continue;
        const resolved = resolveFilePath(path, baseDir);
        if (resolved === undefined) {
          return this.problem(
            binding,
            missing(`the file "${path}" is outside input.file.base.dir (${baseDir})`),
          );
        }
        try {
          const content = await readFile(resolved);
          bytes += content.length - path.length;
          values[i] = content;
        } catch (error) {
          return this.problem(
            binding,
            missing(
              `the file "${path}" cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
            ),
          );
        }
      }
    }
    return { ...row, bytes };
  }

  private problem(binding: InputBinding, problem: Problem): RecordError {
    const context = { ...this.errorContext, field: binding.field, tensor: binding.tensor };
    if (problem.kind === 'missing') {
      return new RecordError(
        'MODEL_INPUT_MISSING',
        `Record has no usable value in field "${binding.field}" for model input "${binding.tensor}": ${problem.detail}`,
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

function resolveFilePath(path: string, baseDir: string | undefined): string | undefined {
  if (baseDir === undefined) return path;
  const resolved = resolve(baseDir, path);
  const rel = relative(resolve(baseDir), resolved);
  return rel.startsWith('..') || isAbsolute(rel) ? undefined : resolved;
}

/**
 * Checks the bindings against a writer schema and compiles the readers. Throws FatalError
 * SCHEMA_INCOMPATIBLE, naming every field that cannot feed its tensor, when the schema can never
 * feed the model.
 */
export function compileInputPlan(
  bindings: readonly InputBinding[],
  writer: { id: number; type: AvroType },
  errorContext: ErrorContext,
): InputPlan {
  const problems: string[] = [];
  const compiled: CompiledBinding[] = [];
  const schemaName = writer.type.name ?? writer.type.typeName;
  for (const binding of bindings) {
    const where = `field "${binding.field}" for model input "${binding.tensor}" (${binding.dtype}${binding.shape ? ` [${binding.shape.join(', ')}]` : ''})`;
    const resolved = resolvePath(writer.type, binding.field.split('.'));
    if (typeof resolved === 'string') {
      problems.push(`${where}: ${resolved}`);
      continue;
    }
    const type = compileType(resolved.type, binding.dtype);
    if (typeof type === 'string') {
      problems.push(`${where}: ${type}`);
      continue;
    }
    if (
      binding.fromFile &&
      type.depth === 0 &&
      !['string', 'union:unwrapped', 'union:wrapped'].includes(resolved.type.typeName)
    ) {
      problems.push(
        `${where}: input.file.fields lists it, so it must hold a path (Avro string), not ${resolved.type.typeName}`,
      );
      continue;
    }
    const expectedDepth = binding.shape === undefined ? undefined : binding.shape.length - 1;
    if (expectedDepth !== undefined && expectedDepth !== type.depth) {
      problems.push(
        `${where}: the field has ${type.depth} array level(s), so it gives each record a rank-${type.depth} value; ` +
          `the input takes rank ${expectedDepth} per record (rank ${expectedDepth + 1} with the batch dimension)`,
      );
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
  if (problems.length > 0) {
    throw new FatalError(
      'SCHEMA_INCOMPATIBLE',
      `Records written with schema id ${writer.id} (${schemaName}) can never feed the model: ${problems.join('; ')}. ` +
        'Map each input to a field that fits with input.mapping=tensor=field.path, or fix the producer',
      {
        stage: 'TASK_PROCESS',
        context: {
          ...errorContext,
          'schema.id': writer.id,
          ...(bindings.length === 1 ? { tensor: bindings[0]!.tensor } : {}),
        },
      },
    );
  }
  return new InputPlan(compiled, errorContext);
}
