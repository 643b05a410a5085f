// Schema refs for schemas a transform derived, handed to processor and sink tasks as the record's
// keySchema/valueSchema. Tasks cache per schema id (TFServingInference keys its plans by it), so
// each derived schema gets its own id: a negative, process-local one from the same counter as the
// JSON converter's schemas (allocateLocalSchemaId), so it can never collide with a registry id
// (positive) or a JSON-derived schema's id. It is not registered anywhere: Kafka
// Connect does not register the transformed input schema either; a processor's output schema is
// registered under its output topic when the output is written, as always.
import type { Type as AvroType } from 'avsc';
import type { SchemaRef } from '../api.js';
import { allocateLocalSchemaId, carryConnectSchemas } from '../converters/index.js';

const ids = new WeakMap<AvroType, SchemaRef>();

/** `original` when the transform kept the schema; else the derived schema's ref (the same object per schema). */
export function derivedSchemaRef(
  original: SchemaRef | undefined,
  type: AvroType | undefined,
): SchemaRef | undefined {
  if (type === undefined) return undefined;
  if (original !== undefined && original.type === type) return original;
  let ref = ids.get(type);
  if (ref === undefined) {
    if (original !== undefined) carryConnectSchemas(original.type, type);
    ref = Object.freeze({ id: allocateLocalSchemaId(), type });
    ids.set(type, ref);
  }
  return ref;
}
