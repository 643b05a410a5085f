// The one process-local id space for schemas no registry assigned (schemas read from JSON
// envelopes, schemas a transform derived). Tasks cache per SchemaRef id (TFServingInference keys
// its plans by it), so every such schema needs an id no other schema in the process has: they are
// negative (-1, -2, ...), which no registry id is (registry ids are positive), and handed out by
// this one counter so that two sources of local schemas never give out the same id.
let next = -1;

/** A new id, never given before in this process. */
export function allocateLocalSchemaId(): number {
  return next--;
}
