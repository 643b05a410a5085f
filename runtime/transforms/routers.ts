// TimestampRouter and RegexRouter (Kafka Connect 4.1): change the record's topic.
import { defineConfig } from '../config/config-spec.js';
import { formatDate, tokenize } from './java-date-format.js';
import { compileJavaRegex, javaReplacement, replacementProblem } from './java-regex.js';
import { DataError, single } from './transformation.js';

const TIMESTAMP_ROUTER_CONFIG = defineConfig([
  {
    name: 'topic.format',
    type: 'string',
    default: '${topic}-${timestamp}',
    importance: 'high',
    documentation:
      'Format string which can contain `${topic}` and `${timestamp}` as placeholders for the topic and timestamp, respectively.',
  },
  {
    name: 'timestamp.format',
    type: 'string',
    default: 'yyyyMMdd',
    importance: 'high',
    documentation:
      'Format string for the timestamp that is compatible with java.text.SimpleDateFormat (in UTC).',
    validate: (value) => {
      const tokens = tokenize(String(value));
      return typeof tokens === 'string' ? tokens : undefined;
    },
  },
]);

export const TIMESTAMP_ROUTER = single(
  'TimestampRouter',
  "Update the record's topic field as a function of the original topic value and the record timestamp. This is mainly useful for sink connectors, since the topic field is often used to determine the equivalent entity name in the destination system (e.g. database table or search index name).",
  TIMESTAMP_ROUTER_CONFIG,
  (config) => {
    const topicFormat = config.getString('topic.format');
    const timestampFormat = config.getString('timestamp.format');
    return (record) => {
      if (record.timestamp === null)
        throw new DataError(
          `Timestamp missing on record: topic=${record.topic}, partition=${record.partition}`,
        );
      const formatted = formatDate(Number(record.timestamp), timestampFormat);
      const topic = topicFormat.replaceAll('${topic}', record.topic).replaceAll('${timestamp}', formatted);
      return { ...record, topic };
    };
  },
);

const REGEX_ROUTER_CONFIG = defineConfig([
  {
    name: 'regex',
    type: 'string',
    importance: 'high',
    documentation:
      'Regular expression to use for matching (Java syntax, matched against the whole topic name). Patterns with nested quantifiers such as `(a+)+` are refused: they can backtrack catastrophically.',
    validate: (value) => {
      const compiled = compileJavaRegex(String(value));
      return typeof compiled === 'string' ? compiled : undefined;
    },
  },
  {
    name: 'replacement',
    type: 'string',
    importance: 'high',
    documentation:
      'Replacement string: `$1` or `${name}` insert a group, `\\$` a dollar sign (Java Matcher syntax).',
    validate: (value) => replacementProblem(String(value)),
  },
]);

export const REGEX_ROUTER = single(
  'RegexRouter',
  'Update the record topic using the configured regular expression and replacement string. Under the hood, the regex is compiled to a Java-compatible pattern; if the pattern matches the whole input topic, the first match is replaced with the replacement string, otherwise the record passes unchanged.',
  REGEX_ROUTER_CONFIG,
  (config) => {
    const regex = compileJavaRegex(config.getString('regex')) as RegExp;
    const replace = javaReplacement(config.getString('replacement'));
    return (record) => {
      const match = regex.exec(record.topic);
      if (!match) return record;
      return { ...record, topic: replace(match) };
    };
  },
);
