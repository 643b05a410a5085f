// What one signature of the model means for the task: which record fields feed which input tensors,
// which output tensors become which fields, and the input and output plans of each writer schema.
//
// A ModelPlan is immutable apart from `version` (the version last seen serving this very
// signature) and its cache of writer-schema verdicts: per schema id, the plan its records feed the
// model with, or the RecordError each of them gets when the schema cannot feed it (a bad record,
// decided once per schema). When the server starts serving a signature that differs, the task
// builds a new plan (see signature-tracker.ts) instead of changing this one: rows extracted and
// requests sent under the old plan keep their meaning, and each scored row is written with the
// plan it was scored by.
import type { Type as AvroType } from 'avsc';
import { ConnectError, FatalError, RecordError, type SchemaRef } from '../../runtime/api.js';
import type { InferenceSettings } from './config.js';
import type { SignatureSpec, TensorSpec } from './grpc-client.js';
import {
  bindInputs,
  compileInputPlan,
  type InputBinding,
  type InputPlan,
  type InputPlanOptions,
} from './input-mapping.js';
import { bindOutputs, OutputSchemas, type OutputBinding } from './output-schema.js';

/** How the records of one writer schema feed one ModelPlan, and the schema their outputs get. */
export interface WriterPlan {
  model: ModelPlan;
  input: InputPlan;
  outputType: AvroType;
}

type Settings = Pick<
  InferenceSettings,
  | 'model'
  | 'inputMapping'
  | 'inputFileFields'
  | 'inputNonFinitePolicy'
  | 'outputFields'
  | 'metadataFields'
  | 'keyPrefix'
>;
type ErrorContext = Record<string, string | number | undefined>;

export class ModelPlan {
  readonly inputs: InputBinding[];
  readonly outputs: OutputBinding[];
  readonly schemas: OutputSchemas;
  /** Per writer schema id: how its records feed this plan, or why none of them can. */
  private readonly verdicts = new Map<number, WriterPlan | RecordError>();
  private readonly writerSchemas = new Map<number, SchemaRef>();
  private readonly inputOptions: InputPlanOptions;

  /**
   * Binds the signature. Throws FatalError CONFIG_INVALID (from bindInputs / bindOutputs) when the
   * mapping does not fit it.
   */
  constructor(
    /** 1 for the plan built at start, one more for each signature change. */
    readonly generation: number,
    readonly signature: SignatureSpec,
    /** The version known to serve this signature; undefined until the server said. */
    public version: number | undefined,
    settings: Settings,
    describeModel: string,
  ) {
    this.inputs = bindInputs(
      signature.inputs,
      settings.inputMapping,
      settings.inputFileFields,
      describeModel,
    );
    this.outputs = bindOutputs(signature.outputs, settings.outputFields, describeModel);
    this.schemas = new OutputSchemas(this.outputs, settings.metadataFields);
    this.inputOptions = { nonFinite: settings.inputNonFinitePolicy };
  }

  /** Writer schemas whose records feed this plan, so far. */
  get writerCount(): number {
    return this.writerSchemas.size;
  }

  /** Whether the schema with this id has been judged already. */
  knows(schemaId: number): boolean {
    return this.verdicts.has(schemaId);
  }

  /** Every writer schema whose records feed this plan, so a successor can plan them up front. */
  knownWriters(): SchemaRef[] {
    return [...this.writerSchemas.values()];
  }

  /**
   * The plan of records written with `writer`, judged at its first record and cached by schema id:
   * a WriterPlan, or the RecordError (MODEL_INPUT_SCHEMA_MISMATCH) of a schema that can never feed
   * this signature or take its output fields, which every record of that schema fails with.
   */
  writerPlan(writer: SchemaRef, errorContext: ErrorContext): WriterPlan | RecordError {
    let verdict = this.verdicts.get(writer.id);
    if (verdict === undefined) {
      verdict = this.judge(writer, errorContext);
      this.verdicts.set(writer.id, verdict);
      if (!(verdict instanceof RecordError)) this.writerSchemas.set(writer.id, writer);
    }
    return verdict;
  }

  private judge(writer: SchemaRef, errorContext: ErrorContext): WriterPlan | RecordError {
    const input = compileInputPlan(this.inputs, writer, errorContext, this.inputOptions);
    if (input instanceof RecordError) return input;
    const outputType = this.schemas.derive(writer, errorContext);
    if (outputType instanceof RecordError) return outputType;
    return { model: this, input, outputType };
  }

  /** `input<-field` and `output->field` pairs, for logs. */
  describeBindings(): { inputs: string[]; outputs: string[] } {
    return {
      inputs: this.inputs.map((b) => `${b.tensor}<-${b.field}`),
      outputs: this.outputs.map((o) => `${o.tensor}->${o.field}`),
    };
  }
}

/**
 * Whether two signatures feed and answer alike: the same input and output aliases, each with the
 * same dtype, shape and encoding. Graph tensor names and the method name do not matter to a
 * client, so a re-export of the same model with other internal names is the same signature.
 */
export function sameSignature(a: SignatureSpec, b: SignatureSpec): boolean {
  return sameTensors(a.inputs, b.inputs) && sameTensors(a.outputs, b.outputs);
}

function sameTensors(a: Record<string, TensorSpec>, b: Record<string, TensorSpec>): boolean {
  const names = Object.keys(a);
  if (names.length !== Object.keys(b).length) return false;
  return names.every((name) => {
    const x = a[name]!;
    const y = b[name];
    return (
      y !== undefined &&
      x.dtype === y.dtype &&
      x.encoding === y.encoding &&
      (x.shape === undefined
        ? y.shape === undefined
        : y.shape !== undefined &&
          x.shape.length === y.shape.length &&
          x.shape.every((d, i) => d === y.shape![i]))
    );
  });
}

/**
 * The plan that follows `previous` when the server serves `signature` (version `version`) instead,
 * with every writer schema whose records fed `previous` planned up front: a signature those records
 * cannot feed as configured fails here, at the change, with FatalError MODEL_SIGNATURE_CHANGED
 * naming the version and (when one is to blame) the tensor and field. (Schemas `previous` already
 * refused are judged again at their next record, like any new schema.)
 */
export function planForChangedSignature(
  previous: ModelPlan,
  signature: SignatureSpec,
  version: number | undefined,
  how: { settings: Settings; describeModel: string; errorContext: ErrorContext },
): ModelPlan {
  try {
    const next = new ModelPlan(previous.generation + 1, signature, version, how.settings, how.describeModel);
    for (const writer of previous.knownWriters()) {
      const verdict = next.writerPlan(writer, how.errorContext);
      if (verdict instanceof RecordError) throw verdict;
    }
    return next;
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    const { model } = how.settings;
    const label = model.versionLabel;
    const following = label !== undefined ? `version label "${label}"` : 'latest version';
    const before = previous.version === undefined ? '' : ` (it was version ${previous.version})`;
    const remedy =
      (previous.version === undefined
        ? `pin ${how.settings.keyPrefix}.model.version to a version the records fit`
        : `pin ${how.settings.keyPrefix}.model.version=${previous.version}`) +
      (label !== undefined ? ' or move the label back' : '');
    throw new FatalError(
      'MODEL_SIGNATURE_CHANGED',
      `Model "${model.name}" now serves version ${version ?? '?'} as its ${following}${before}, and its signature ` +
        `"${model.signatureName}" cannot be fed as configured: ${error.message}. Nothing was dead-lettered: the ` +
        `model changed, not the records. To go on, ${remedy}, or adapt input.mapping / output.fields to the new ` +
        'signature, then restart the task',
      {
        stage: 'TASK_PROCESS',
        cause: error,
        context: {
          ...how.errorContext,
          'model.version': version,
          ...(error.context.tensor !== undefined ? { tensor: error.context.tensor } : {}),
          ...(error.context.field !== undefined ? { field: error.context.field } : {}),
        },
      },
    );
  }
}
