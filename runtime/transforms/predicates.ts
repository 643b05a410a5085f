// Kafka Connect 4.1's predicates: TopicNameMatches, HasHeaderKey, RecordIsTombstone. A transform
// with `transforms.<alias>.predicate` runs only on records the predicate matches (or, with
// `negate=true`, does not match).
import { defineConfig } from '../config/config-spec.js';
import { compileJavaRegex } from './java-regex.js';
import type { PredicateDefinition } from './transformation.js';

const PACKAGE = 'org.apache.kafka.connect.transforms.predicates';

export const PREDICATES: readonly PredicateDefinition[] = [
  {
    className: `${PACKAGE}.TopicNameMatches`,
    aliases: ['TopicNameMatches'],
    description:
      'A predicate which is true for records with a topic name that matches the configured regular expression.',
    config: defineConfig([
      {
        name: 'pattern',
        type: 'string',
        importance: 'medium',
        documentation:
          "A Java regular expression for matching against the name of a record's topic (the whole name must match). Nested quantifiers such as `(a+)+` are refused: they can backtrack catastrophically.",
        validate: (value) => {
          if (value === '') return 'String must be non-empty';
          const compiled = compileJavaRegex(String(value));
          return typeof compiled === 'string' ? compiled : undefined;
        },
      },
    ]),
    create: (config) => {
      const pattern = compileJavaRegex(config.getString('pattern')) as RegExp;
      return (record) => pattern.test(record.topic);
    },
  },
  {
    className: `${PACKAGE}.HasHeaderKey`,
    aliases: ['HasHeaderKey'],
    description: 'A predicate which is true for records with at least one header with the configured name.',
    config: defineConfig([
      {
        name: 'name',
        type: 'string',
        importance: 'medium',
        documentation: 'The header name.',
        validate: (value) => (value === '' ? 'String must be non-empty' : undefined),
      },
    ]),
    create: (config) => {
      const name = config.getString('name');
      return (record) => Object.hasOwn(record.headers, name);
    },
  },
  {
    className: `${PACKAGE}.RecordIsTombstone`,
    aliases: ['RecordIsTombstone'],
    description: 'A predicate which is true for records which are tombstones (i.e. have null value).',
    config: defineConfig([]),
    create: () => (record) => record.value === null || record.value === undefined,
  },
];
