// docs/transforms.md, generated from each transform's and predicate's config spec
// (`npx tsx dev/generate-docs.ts`), so the docs and the validation cannot drift apart.
import { renderSpecDoc } from '../config/spec-doc.js';
import { PREDICATES, TRANSFORMS } from './registry.js';
import type { PredicateDefinition, TransformDefinition } from './transformation.js';

const INTRO = `
<!-- Generated from runtime/transforms/ by \`npx tsx dev/generate-docs.ts\`; do not edit. -->

Kafka Connect's Single Message Transforms (SMTs) and predicates, configured with Kafka Connect's keys
and class names, so an existing connector config runs unchanged:

\`\`\`json
"transforms": "dropPii,addTopic",
"transforms.dropPii.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
"transforms.dropPii.exclude": "ssn",
"transforms.addTopic.type": "InsertField$Value",
"transforms.addTopic.topic.field": "source_topic",
"transforms.addTopic.predicate": "isOrders",
"transforms.addTopic.negate": "false",
"predicates": "isOrders",
"predicates.isOrders.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
"predicates.isOrders.pattern": "orders.*"
\`\`\`

- \`transforms\`: the aliases, applied in this order. \`transforms.<alias>.type\`: the class, either Kafka
  Connect's class name (\`org.apache.kafka.connect.transforms.InsertField$Value\`) or the short alias
  (the simple class name, \`InsertField$Value\`). The transform's own keys follow under
  \`transforms.<alias>.\` (tables below). \`transforms.<alias>.predicate\` names a predicate alias: the
  transform runs only on records the predicate matches (with \`transforms.<alias>.negate=true\`, only on
  records it does not match). \`predicates\`, \`predicates.<alias>.type\` and the predicate's keys work
  the same way. Every problem (unknown class, missing key, bad value, undeclared predicate alias) is
  reported against its key when the config is submitted or validated.
- **Where they run** (as in Kafka Connect): for sink and processor connectors, on each consumed record
  after the key and value converters and before the task; for source connectors, on each polled
  record before the converters. Processors transform their **input**, the way a sink does: the task
  receives the consumed record, and the transforms shape what it sees (e.g. drop or cast fields
  before inference); what the task returns is written as it is. To transform a processor's output,
  run a second connector on the output topic.
- **Schemas.** Schema'd values are Avro (Kafka Connect's types mapped the way Confluent's AvroConverter
  maps them: int8/int16/int32 -> int, int64 -> long, float32 -> float, float64 -> double, struct ->
  record, optional -> union with null first and default null, Timestamp/Date/Time ->
  timestamp-millis/date/time-millis). A transform that changes a schema derives a new one once per
  input schema. A source record's derived schema is registered under its topic's subject when it is
  written. A sink or processor task receives a derived schema with its own schema id, a negative,
  process-local number (it is not registered: Kafka Connect does not register transformed input
  schemas either); a processor's outputs are registered under the output topic as always.
- **Errors.** A record a transform cannot handle is a bad record with code \`TRANSFORM_FAILED\` and stage
  \`TRANSFORMATION\`: with \`errors.tolerance=all\` it goes to the dead-letter queue (headers
  \`__connect.errors.stage=TRANSFORMATION\` and \`__connect.errors.class.name=<the transform's class>\`),
  with \`none\` the task fails. A record a transform drops (\`Filter\`) is skipped and its offset commits.
- **Regular expressions** (\`RegexRouter\`, \`TopicNameMatches\`) use Java syntax and must match the whole
  topic name. JavaScript's engine backtracks without bounds, so patterns with nested quantifiers such as
  \`(a+)+\` are refused, as are Java-only constructs (possessive quantifiers, atomic groups, inline flags
  other than a leading \`(?i)\`); patterns are at most 1000 characters and inputs are topic names (at most
  249 characters).
- **Known differences from Kafka Connect 4.1.1:** record headers are a name -> value map here, so a
  header added under an existing name replaces it rather than adding a second one; without a schema,
  Date/Time/Timestamp values are JavaScript \`Date\`s and InsertField's timestamp is epoch milliseconds
  (Connect: \`java.util.Date\`/\`Long\`); \`connect.type\` (int8/int16) is not kept on registered Avro
  schemas; header values of structs and maps are JSON text; \`field.syntax.version\` (nested field
  paths, KIP-821) is not supported (v1 behaviour: top-level fields only); schemaless integers are
  int64 and other numbers float64, as JsonConverter reads them.
`;

function names(definition: TransformDefinition | PredicateDefinition): string {
  return `Class \`${definition.className}\`, alias ${definition.aliases.map((a) => `\`${a}\``).join(', ')}.`;
}

function section(definition: TransformDefinition | PredicateDefinition): string[] {
  const title = definition.aliases[0]!;
  const body = `${definition.description}\n\n${names(definition)}`;
  const page =
    definition.config.keys.length === 0
      ? `# ${title}\n\n${body}\n\nNo configuration keys.\n`
      : renderSpecDoc(title, body, definition.config);
  return ['', page.trimEnd().replace(/^# /, '### ')];
}

export function renderTransformsDoc(): string {
  const lines = ['# Single Message Transforms and predicates', '', INTRO.trim(), '', '## Transforms'];
  for (const transform of TRANSFORMS) lines.push(...section(transform));
  lines.push('', '## Predicates');
  for (const predicate of PREDICATES) lines.push(...section(predicate));
  return lines.join('\n') + '\n';
}
