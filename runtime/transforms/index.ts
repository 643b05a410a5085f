// Single Message Transforms and predicates with Kafka Connect's keys and class names. The runtime
// builds one chain per task from the connector config and applies it where Kafka Connect does:
// to consumed records after the key/value converters (sinks, processors), to source records before
// them. This module is the API the runtime (and the differential tests) use.
import { FatalError, RecordError } from '../errors.js';
import { errorMessage } from '../error-catalogue.js';
import { planTransformChain } from './chain-config.js';
import type { TransformRecord } from './transformation.js';

export type { TransformRecord } from './transformation.js';
export { TRANSFORMS, PREDICATES } from './registry.js';
export { derivedSchemaRef } from './derived-schemas.js';

export interface TransformChain {
  /** In order; empty when the config has no transforms. */
  readonly aliases: readonly string[];
  /**
   * Applies the chain in order; null when a transform (e.g. Filter) dropped the record. Throws
   * TransformError (a RecordError, stage TRANSFORMATION, code TRANSFORM_FAILED) naming the alias
   * and class for a record a transform cannot handle. Never mutates its input.
   */
  apply(record: TransformRecord): TransformRecord | null;
}

/** A record a transform could not handle: the class is the transform's, for `__connect.errors.class.name`. */
export class TransformError extends RecordError {
  constructor(
    readonly alias: string,
    readonly className: string,
    cause: unknown,
  ) {
    super(
      'TRANSFORM_FAILED',
      errorMessage('TRANSFORM_FAILED', {
        alias,
        class: className,
        details: cause instanceof Error ? cause.message : String(cause),
      }),
      { stage: 'TRANSFORMATION', cause, context: { 'transform.alias': alias } },
    );
  }
}

/** Every problem of the transforms/predicates keys, each against its key, with how to fix it. */
export function transformConfigProblems(
  config: Readonly<Record<string, unknown>>,
): Array<{ key: string; message: string }> {
  return planTransformChain(config).problems;
}

const EMPTY_CHAIN: TransformChain = { aliases: [], apply: (record) => record };

/**
 * Builds the chain from a connector's config. Throws FatalError CONFIG_INVALID listing every
 * problem; call transformConfigProblems first to report them against their keys.
 */
export function createTransformChain(config: Readonly<Record<string, unknown>>): TransformChain {
  const { stages, problems } = planTransformChain(config);
  if (problems.length > 0)
    throw new FatalError(
      'CONFIG_INVALID',
      errorMessage('CONFIG_INVALID', {
        source: 'of transforms',
        details: problems.map((p) => `${p.key}: ${p.message}`).join('; '),
      }),
      { stage: 'CONFIG' },
    );
  if (stages.length === 0) return EMPTY_CHAIN;
  const compiled = stages.map((stage) => ({
    alias: stage.alias,
    className: stage.definition.className,
    transform: stage.definition.create(stage.config),
    predicate: stage.predicate?.definition.create(stage.predicate.config),
    negate: stage.negate,
  }));
  return {
    aliases: stages.map((s) => s.alias),
    apply(record) {
      let current: TransformRecord = record;
      for (const stage of compiled) {
        try {
          if (stage.predicate && stage.predicate(current) === stage.negate) continue;
          const next = stage.transform(current);
          if (next === null) return null;
          current = next;
        } catch (error) {
          throw new TransformError(stage.alias, stage.className, error);
        }
      }
      return current;
    },
  };
}
