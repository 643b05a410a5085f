// Every built-in transform and predicate, found by Kafka Connect class name or short alias.
import { CAST } from './cast.js';
import { EXTRACT_FIELD, HOIST_FIELD } from './extract-hoist.js';
import { FLATTEN } from './flatten.js';
import { DROP_HEADERS, FILTER, HEADER_FROM, INSERT_HEADER } from './headers.js';
import { INSERT_FIELD } from './insert-field.js';
import { MASK_FIELD } from './mask-field.js';
import { PREDICATES } from './predicates.js';
import { REPLACE_FIELD } from './replace-field.js';
import { REGEX_ROUTER, TIMESTAMP_ROUTER } from './routers.js';
import { TIMESTAMP_CONVERTER } from './timestamp-converter.js';
import type { PredicateDefinition, TransformDefinition } from './transformation.js';
import { VALUE_TO_KEY } from './value-to-key.js';

export const TRANSFORMS: readonly TransformDefinition[] = [
  ...CAST,
  DROP_HEADERS,
  ...EXTRACT_FIELD,
  FILTER,
  ...FLATTEN,
  ...HEADER_FROM,
  ...HOIST_FIELD,
  INSERT_HEADER,
  ...INSERT_FIELD,
  ...MASK_FIELD,
  REGEX_ROUTER,
  ...REPLACE_FIELD,
  ...TIMESTAMP_CONVERTER,
  TIMESTAMP_ROUTER,
  VALUE_TO_KEY,
];

export { PREDICATES };

const byName = <T extends { className: string; aliases: readonly string[] }>(list: readonly T[]) =>
  new Map(list.flatMap((d) => [d.className, ...d.aliases].map((name) => [name, d] as const)));

const TRANSFORMS_BY_NAME = byName(TRANSFORMS);
const PREDICATES_BY_NAME = byName(PREDICATES);

export const findTransform = (name: string): TransformDefinition | undefined => TRANSFORMS_BY_NAME.get(name);
export const findPredicate = (name: string): PredicateDefinition | undefined => PREDICATES_BY_NAME.get(name);

/** Why `name` names no transform, with the nearest fix (`InsertField` -> `InsertField$Value`). */
export function unknownTransformMessage(name: string): string {
  const simple = name.replace(/^org\.apache\.kafka\.connect\.transforms\./, '');
  const variants = [`${simple}$Value`, `${simple}$Key`].filter((v) => TRANSFORMS_BY_NAME.has(v));
  if (variants.length > 0)
    return `"${name}" has a key and a value variant: use ${variants.map((v) => `${name}$${v.split('$')[1]}`).join(' or ')}`;
  return `Class ${name} could not be found; use one of: ${TRANSFORMS.map((t) => t.aliases[0]).join(', ')} (or their class names, e.g. ${TRANSFORMS[0]!.className})`;
}

export function unknownPredicateMessage(name: string): string {
  return `Class ${name} could not be found; use one of: ${PREDICATES.map((p) => `${p.aliases[0]} (${p.className})`).join(', ')}`;
}
