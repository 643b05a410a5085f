// Kafka Connect's transform and predicate keys in a connector config (ConnectorConfig.enrich):
// `transforms` (aliases, in order), `transforms.<alias>.type`, `.predicate`, `.negate`, each
// transform's own keys under `transforms.<alias>.`, and the same for `predicates`. Each stage's own
// keys are parsed with its config spec; every problem is reported against its full key.
import {
  parseConfig,
  stringifyValues,
  type ConfigProblem,
  type ParsedConfig,
} from '../config/config-spec.js';
import {
  findPredicate,
  findTransform,
  unknownPredicateMessage,
  unknownTransformMessage,
} from './registry.js';
import type { PredicateDefinition, TransformDefinition } from './transformation.js';

export interface StagePlan {
  alias: string;
  definition: TransformDefinition;
  config: ParsedConfig;
  predicate?: { alias: string; definition: PredicateDefinition; config: ParsedConfig };
  negate: boolean;
}

const RESERVED = new Set(['type', 'predicate', 'negate']);

const aliasesOf = (text: string | undefined): string[] =>
  text === undefined
    ? []
    : text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');

/** The keys under `<prefix>` with the prefix removed, minus the chain's own keys. */
function ownKeys(values: Record<string, string>, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    if (!RESERVED.has(name)) out[name] = value;
  }
  return out;
}

function parseStage<T extends { config: import('../config/config-spec.js').ConfigSpec }>(
  definition: T,
  values: Record<string, string>,
  prefix: string,
  problems: ConfigProblem[],
): ParsedConfig | undefined {
  const parsed = parseConfig(definition.config, ownKeys(values, prefix));
  for (const p of parsed.problems) problems.push({ key: prefix + p.key, message: p.message });
  return parsed.config;
}

function duplicates(aliases: string[]): string[] {
  return [...new Set(aliases.filter((a, i) => aliases.indexOf(a) !== i))];
}

/** The chain's stages in order and every problem; stages are complete only without problems. */
export function planTransformChain(raw: Readonly<Record<string, unknown>>): {
  stages: StagePlan[];
  problems: ConfigProblem[];
} {
  const relevant: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw))
    if (
      key === 'transforms' ||
      key === 'predicates' ||
      key.startsWith('transforms.') ||
      key.startsWith('predicates.')
    )
      relevant[key] = value;
  const { values, problems } = stringifyValues(relevant);
  const transformAliases = aliasesOf(values['transforms']);
  const predicateAliases = aliasesOf(values['predicates']);
  for (const [key, list] of [
    ['transforms', transformAliases],
    ['predicates', predicateAliases],
  ] as const) {
    const repeated = duplicates(list);
    if (repeated.length > 0)
      problems.push({
        key,
        message: `Duplicate alias provided: ${repeated.join(', ')}; each alias may appear once`,
      });
  }

  const predicates = new Map<string, StagePlan['predicate']>();
  for (const alias of predicateAliases) {
    const prefix = `predicates.${alias}.`;
    const className = values[`${prefix}type`];
    if (className === undefined || className.trim() === '') {
      problems.push({
        key: `${prefix}type`,
        message: `is required: the predicate class of "${alias}", e.g. org.apache.kafka.connect.transforms.predicates.TopicNameMatches (or TopicNameMatches)`,
      });
      continue;
    }
    const definition = findPredicate(className.trim());
    if (!definition) {
      problems.push({ key: `${prefix}type`, message: unknownPredicateMessage(className.trim()) });
      continue;
    }
    const config = parseStage(definition, values, prefix, problems);
    if (config) predicates.set(alias, { alias, definition, config });
  }

  const stages: StagePlan[] = [];
  for (const alias of transformAliases) {
    const prefix = `transforms.${alias}.`;
    const className = values[`${prefix}type`];
    let definition: TransformDefinition | undefined;
    if (className === undefined || className.trim() === '')
      problems.push({
        key: `${prefix}type`,
        message: `is required: the transform class of "${alias}", e.g. org.apache.kafka.connect.transforms.InsertField$Value (or InsertField$Value)`,
      });
    else {
      definition = findTransform(className.trim());
      if (!definition)
        problems.push({ key: `${prefix}type`, message: unknownTransformMessage(className.trim()) });
    }
    const config = definition ? parseStage(definition, values, prefix, problems) : undefined;

    let negate = false;
    const negateText = values[`${prefix}negate`];
    if (negateText !== undefined) {
      if (/^(true|false)$/i.test(negateText.trim())) negate = /^true$/i.test(negateText.trim());
      else problems.push({ key: `${prefix}negate`, message: `must be true or false, got "${negateText}"` });
    }
    const predicateAlias = values[`${prefix}predicate`]?.trim();
    let predicate: StagePlan['predicate'];
    if (predicateAlias !== undefined && predicateAlias !== '') {
      if (!predicateAliases.includes(predicateAlias))
        problems.push({
          key: `${prefix}predicate`,
          message: `names the predicate alias "${predicateAlias}", which predicates does not declare: add it to predicates and set predicates.${predicateAlias}.type`,
        });
      else predicate = predicates.get(predicateAlias);
    }
    if (definition && config)
      stages.push({ alias, definition, config, negate, ...(predicate ? { predicate } : {}) });
  }
  return { stages, problems };
}
