// The one catalogue of error codes. Every `code` on a ConnectError comes from here; docs/errors.md
// is generated from it (`npx tsx dev/generate-docs.ts`) and a unit test fails when the two
// disagree or when code under runtime/ or connectors/ throws a code missing here.
//
// `outcome` is what the runtime does with the error, matching the class it is thrown as:
//   retry       -> RetriableError: back off, then pause the partitions and redeliver; never a DLQ.
//   fail-record -> RecordError: to the dead-letter queue with errors.tolerance=all, else the task fails.
//   fatal       -> FatalError (or any other error): the task goes to FAILED with this as its trace.
//   client      -> the REST API answers `httpStatus` with {"error_code", "message"}.

export type CatalogueOutcome = 'retry' | 'fail-record' | 'fatal' | 'client';

export interface CatalogueEntry {
  code: string;
  outcome: CatalogueOutcome;
  /** `{name}` placeholders are filled by `errorMessage`. */
  message: string;
  /** What happened, for docs/errors.md. */
  description: string;
  /** How to fix it, for docs/errors.md. */
  fix: string;
  /** The REST status when the error answers a request (client errors, and config errors via REST). */
  httpStatus?: 400 | 403 | 404 | 409 | 500;
}

type EntryWithoutCode = Omit<CatalogueEntry, 'code'>;

const ENTRIES = {
  // Configuration
  CONFIG_INVALID: {
    outcome: 'fatal',
    httpStatus: 400,
    message: 'Invalid configuration {source}: {details}',
    description:
      'A worker or connector config failed validation, or its file could not be read or parsed. Every problem is listed, one per key.',
    fix: 'Fix each listed key (the message says how); `infer-connect validate <connector.json>` checks a connector config without starting it.',
  },
  CONFIG_VARIABLE_UNRESOLVED: {
    outcome: 'fatal',
    httpStatus: 400,
    message: 'cannot resolve {reference}: {reason}',
    description:
      'A `${env:VAR}` or `${file:/path:key}` reference in a config value names an environment variable, file or key that does not exist on the worker.',
    fix: 'Set the variable or create the file and key on every worker (the path is read by the worker, not by the REST client), or correct the reference.',
  },
  PLUGIN_NOT_FOUND: {
    outcome: 'fatal',
    httpStatus: 400,
    message:
      'Failed to find any class that implements Connector and which name matches {name}; available: {available}',
    description: '`connector.class` names no registered connector plugin.',
    fix: 'Use a name (or alias) listed by `GET /connector-plugins` or `infer-connect plugins`.',
  },

  REST_LISTENERS_INVALID: {
    outcome: 'fatal',
    message: 'listeners "{listeners}" {details}',
    description:
      "The worker's `listeners` setting is not a single `http://host:port` or `https://host:port` URL, so the REST API cannot start.",
    fix: 'Set `listeners` to one http:// or https:// URL such as `http://127.0.0.1:8083` (https needs the `listeners.https.ssl.*` keys).',
  },

  // REST API
  CONNECTOR_NOT_FOUND: {
    outcome: 'client',
    httpStatus: 404,
    message: 'Connector {name} not found',
    description: 'The request names a connector this worker does not know.',
    fix: 'Check the name with `GET /connectors`.',
  },
  TASK_NOT_FOUND: {
    outcome: 'client',
    httpStatus: 404,
    message: 'Task {name}-{task} not found',
    description:
      'The request names a task id the connector does not have (or it is stopped and has no tasks).',
    fix: 'List the tasks with `GET /connectors/{name}/tasks`; ids run from 0 to `tasks.max` - 1.',
  },
  // --- REST: active topics and log levels (KIP-558, KIP-495) ---
  TOPIC_TRACKING_DISABLED: {
    outcome: 'client',
    httpStatus: 403,
    message: '{details}',
    description:
      '`GET /connectors/{name}/topics` while `topic.tracking.enable` is false, or `PUT .../topics/reset` while `topic.tracking.allow.reset` is false (Kafka Connect answers the same 403).',
    fix: 'Set `topic.tracking.enable` (and `topic.tracking.allow.reset` for resets) to true in the worker config.',
  },
  LOGGER_NOT_FOUND: {
    outcome: 'client',
    httpStatus: 404,
    message: 'Logger {name} not found.',
    description:
      "`GET /admin/loggers/{logger}` named a logger that is neither `root`, a connector's logger, nor one set before.",
    fix: 'List the loggers with `GET /admin/loggers`; connector loggers are named `connectors.<connector name>`.',
  },
  LOG_LEVEL_INVALID: {
    outcome: 'client',
    httpStatus: 400,
    message: '{details}',
    description:
      '`PUT /admin/loggers/{logger}` without a `level`, or with one that is not a Log4j level name.',
    fix: 'Send `{"level": "DEBUG"}` with one of OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE.',
  },
  // --- end REST: active topics and log levels ---
  CONNECTOR_EXISTS: {
    outcome: 'client',
    httpStatus: 409,
    message: 'Connector {name} already exists',
    description: '`POST /connectors` used a name that is taken.',
    fix: 'Choose another name, or update the existing connector with `PUT /connectors/{name}/config`.',
  },
  BAD_REQUEST_BODY: {
    outcome: 'client',
    httpStatus: 400,
    message: 'Bad request body: {details}',
    description: 'The request body is not valid JSON or does not have the shape the endpoint expects.',
    fix: 'Send `Content-Type: application/json` and the shape Kafka Connect documents for the endpoint.',
  },
  REST_BAD_REQUEST: {
    outcome: 'client',
    httpStatus: 400,
    message: '{details}',
    description: 'A path or query parameter of the request is invalid (e.g. a task id that is not a number).',
    fix: "Follow the request forms in Kafka Connect's REST API documentation.",
  },
  CONNECTOR_NOT_STOPPED: {
    outcome: 'client',
    httpStatus: 409,
    message: 'Connector {name} must be in the STOPPED state to alter or reset its offsets; it is {state}',
    description: 'Offsets can only be changed while the connector is stopped, as in Kafka Connect.',
    fix: 'Call `PUT /connectors/{name}/stop` first, then alter or reset the offsets, then resume.',
  },
  WORKER_STOPPING: {
    outcome: 'client',
    httpStatus: 409,
    message: 'The worker is shutting down; {action} of connector {name} was not applied',
    description:
      'A change to a connector (create, update, pause, resume, stop, restart, delete, offsets) arrived after the worker began draining its tasks; nothing new is started once shutdown began.',
    fix: 'Send the request to the worker that replaces this one, once it is healthy (`GET /health`).',
  },

  // Converters and the schema registry
  AVRO_MAGIC_BYTE: {
    outcome: 'fail-record',
    message: 'Unknown magic byte {byte} in {topic}; expected 0 (Confluent Avro framing)',
    description:
      'The bytes do not start with the Confluent framing (magic byte 0 and a 4-byte schema id), so they were not written by an Avro serializer that uses a schema registry.',
    fix: 'Produce with a Confluent-compatible Avro serializer, or set the converter to the format the topic really holds (json, string, bytes).',
  },
  AVRO_UNKNOWN_SCHEMA_ID: {
    outcome: 'fail-record',
    message: 'Schema id {id} is not in the schema registry (topic {topic})',
    description: 'The record names a writer schema id the registry does not have.',
    fix: 'Point `schema.registry.url` at the registry the producer used; a deleted schema cannot be recovered, so such records end in the DLQ.',
  },
  AVRO_DECODE_FAILED: {
    outcome: 'fail-record',
    message: 'Cannot decode Avro record from {topic} with schema id {id}: {details}',
    description:
      'The bytes after the framing do not decode with the writer schema they name (truncated or corrupt).',
    fix: 'Find the producer writing corrupt records; the raw bytes are in the dead-letter record.',
  },
  AVRO_ENCODE_FAILED: {
    outcome: 'fail-record',
    message: 'Cannot encode a value for {topic} with its Avro schema: {details}',
    description: 'An output value does not fit the Avro schema it is written with.',
    fix: 'Check that the connector output (e.g. model outputs) matches the output schema; the message names the field.',
  },
  SCHEMA_INCOMPATIBLE: {
    outcome: 'fatal',
    message: 'The schema registry refused the schema for subject {subject}: {details}',
    description:
      "Registering the output schema failed, usually because it breaks the subject's compatibility rule.",
    fix: "Make the new schema compatible (add fields with defaults), or change the subject's compatibility level in the registry.",
  },
  OUTPUT_SCHEMA_REFUSED: {
    outcome: 'fail-record',
    message: 'The output schema derived for a record was refused by the schema registry: {details}',
    description:
      "A record's output schema (derived from its writer schema) breaks the output subject's compatibility rule, so the registry refused it. The records written with that schema go to the dead-letter queue; records whose outputs use an accepted schema are written. The refusal is remembered for the task's life, so it costs one registry call per schema.",
    fix: "Make the input schema evolve compatibly (or change the output subject's compatibility level), restart the task, and replay the dead letters.",
  },
  SCHEMA_REGISTRY_UNAVAILABLE: {
    outcome: 'retry',
    message: 'Schema registry {url} is unavailable: {details}',
    description: 'The schema registry did not answer or answered 5xx.',
    fix: 'Check that the registry runs and that `schema.registry.url` (and its credentials) are right; records are redelivered when it is back.',
  },
  SCHEMA_REGISTRY_AUTH_FAILED: {
    outcome: 'fatal',
    message: 'Schema registry {url} refused access to {what}: {details}',
    description: 'The schema registry answered 401 or 403.',
    fix: 'Set `schema.registry.basic.auth.user.info` in the worker config to `<user>:<password>` the registry accepts.',
  },
  SCHEMA_REGISTRY_MISCONFIGURED: {
    outcome: 'fatal',
    message: 'Schema registry {url} cannot serve {what}: {details}',
    description:
      'The registry answered in a way retrying cannot fix (an unexpected 4xx, or a registration without an id), usually because `schema.registry.url` does not point at a Confluent-compatible API.',
    fix: 'Check `schema.registry.url`, including its path prefix (Apicurio Registry: `.../apis/ccompat/v7`).',
  },
  JSON_DECODE_FAILED: {
    outcome: 'fail-record',
    message: 'Cannot decode JSON from {topic}: {details}',
    description:
      'The record is not valid JSON (or, with schemas.enable=true, lacks the {"schema", "payload"} envelope).',
    fix: 'Fix the producer, or set `*.converter.schemas.enable` to match how records are written.',
  },
  // --- converters (issue 18 item 3): JSON with Connect schemas ---
  JSON_ENCODE_FAILED: {
    outcome: 'fail-record',
    message: 'Cannot write the {what} of a record for {topic} as JSON: {details}',
    description:
      'A record value (or key) does not fit its schema, or (with schemas.enable=true) its Avro schema has no Connect equivalent (a union of several non-null types).',
    fix: 'Make the connector output values that fit their schema; use `["null", T]` unions only, or write the topic with the avro converter.',
  },
  // --- end converters ---
  NULL_VALUE: {
    outcome: 'fail-record',
    message: 'Record {topic}/{partition}@{offset} has a null value',
    description: 'A record with a null value (a tombstone) reached a connector that needs a value.',
    fix: 'Do not produce tombstones to this topic, or accept that they go to the dead-letter queue with errors.tolerance=all.',
  },

  // Kafka
  KAFKA_PRODUCE_FAILED: {
    outcome: 'retry',
    message: 'Writing to {topic} failed: {details}',
    description:
      'Kafka did not acknowledge a write. The consumed offsets are not committed, so the input is redelivered.',
    fix: 'Check broker health, topic existence and ACLs; a record larger than `max.message.bytes` must be made smaller.',
  },
  KAFKA_UNAVAILABLE: {
    outcome: 'retry',
    message: 'Kafka at {brokers} is unavailable: {details}',
    description: 'The brokers in `bootstrap.servers` cannot be reached.',
    fix: 'Check `bootstrap.servers`, the network and the brokers; the worker reconnects by itself.',
  },
  RECORD_TOO_LARGE: {
    outcome: 'fail-record',
    message: 'The record {record} takes {bytes} bytes, more than max.record.bytes ({limit})',
    description:
      "A consumed record (key and value together) is larger than the connector's `max.record.bytes`. It goes to the dead-letter queue without being decoded, so an oversized record cannot exhaust the worker's memory.",
    fix: 'Raise `max.record.bytes` if such records are expected, or find the producer that writes them; replay them from the dead-letter topic.',
  },
  KAFKA_RECORD_TOO_LARGE: {
    outcome: 'fail-record',
    message: 'The broker refused a record for {topic} ({type}): {details}',
    description:
      "The broker answered MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE or INVALID_RECORD for one record, alone in its request (the runtime splits a refused request until one record is left, as Kafka's Java producer does). The input record goes to the dead-letter queue; its neighbours are written.",
    fix: "Raise the output topic's `max.message.bytes` (and the broker's `message.max.bytes`), or make the record smaller; replay it from the dead-letter topic.",
  },
  KAFKA_AUTHORIZATION_FAILED: {
    outcome: 'fatal',
    message: 'Writing to {topic} is not authorized ({type})',
    description:
      'The broker refused a write with TOPIC_, CLUSTER_, GROUP_ or TRANSACTIONAL_ID_AUTHORIZATION_FAILED. Retrying cannot help, so the task fails instead of looping.',
    fix: "Grant the worker's principal WRITE (and, with exactly_once, the transactional id) on the topic, then restart the task.",
  },
  KAFKA_PRODUCE_REJECTED: {
    outcome: 'fatal',
    message: 'Writing to {topic} failed and retrying cannot help: {details}',
    description:
      'The broker refused a write with a non-retriable error (an invalid topic name, a policy violation, an unsupported version).',
    fix: 'Read the broker error in the trace; fix the topic or the broker setting it names, then restart the task.',
  },
  KAFKA_PRODUCER_FENCED: {
    outcome: 'retry',
    message: 'The transactional producer writing to {topic} was fenced: {details}',
    description:
      'With processing.guarantee=exactly_once each input partition has its own transactional producer; another task took the partition over (a rebalance, a second worker) and fenced this one. The transaction is aborted and the new owner processes the records.',
    fix: 'Nothing, if it follows a rebalance. If it repeats, two workers run the same connector with different group membership (check `group.id` and the consumer group).',
  },
  KAFKA_TOPIC_MISSING: {
    outcome: 'retry',
    message: 'The topic {topic} does not exist: {details}',
    description:
      'A write went to a topic that was deleted while the task ran. The runtime creates its output and dead-letter topics again (like at start) and retries; if it cannot create them the task fails with TOPIC_CREATE_FAILED.',
    fix: 'Nothing for a processor output or DLQ topic the worker may create; otherwise create the topic.',
  },
  DLQ_RECORD_TOO_LARGE: {
    outcome: 'fatal',
    message: 'A dead letter is too large for {topic}: {details}',
    description:
      "A bad record could not be written to the dead-letter topic because it exceeds that topic's `max.message.bytes`. Losing it silently is not an option, so the task fails with the record's offset uncommitted.",
    fix: "Raise the dead-letter topic's `max.message.bytes` to at least the input topic's, then restart the task.",
  },
  KAFKA_AUTHENTICATION_FAILED: {
    outcome: 'fatal',
    message: 'Kafka refused the SASL credentials ({how}): {details}',
    description:
      'The brokers refused the user and password of `sasl.jaas.config` (wrong password, unknown user, or a `sasl.mechanism` the user has no credential for). Retrying cannot help, so the worker does not start or the task fails.',
    fix: 'Check the username and password in `sasl.jaas.config` (and the file or variable they come from) and `sasl.mechanism`; with SCRAM the user needs a credential for that exact mechanism.',
  },
  KAFKA_TLS_FAILED: {
    outcome: 'fatal',
    message: 'TLS connection to Kafka failed ({how}): {details}; {hint}',
    description:
      "The TLS handshake with a broker failed: its certificate is not signed by a trusted CA, does not name the host, has expired, or the broker refused this worker's client certificate.",
    fix: 'Set `ssl.truststore.location` (PEM) to the CA that signed the broker certificate; check `bootstrap.servers` names a host in the certificate; with mutual TLS check `ssl.keystore.*`.',
  },
  TOPIC_CREATE_FAILED: {
    outcome: 'fatal',
    message: 'Could not create topic {topic}: {details}',
    description:
      'At task start the runtime creates a missing dead-letter or processor output topic, and the broker refused (ACLs, a replication factor above the broker count, a topic-creation policy).',
    fix: 'Create the topic yourself, grant the worker CREATE on it, or lower `errors.deadletterqueue.topic.replication.factor` (1 on a single-broker cluster).',
  },
  DLQ_PRODUCE_FAILED: {
    outcome: 'retry',
    message: 'Writing a dead letter to {topic} failed: {details}',
    description:
      'A bad record could not be written to the dead-letter queue; its offset is not committed, so it is redelivered rather than lost.',
    fix: 'Check that the DLQ topic exists or can be created (`errors.deadletterqueue.topic.replication.factor` must not exceed the broker count) and that the worker may write to it.',
  },

  // Sources
  SOURCE_RECORD_MALFORMED: {
    outcome: 'fail-record',
    message: 'Malformed source record at {position}: {details}',
    description: 'A source input (e.g. a line of a file) cannot be turned into a record.',
    fix: 'Fix the input; with errors.tolerance=all the raw input goes to the dead-letter queue and the source moves on.',
  },
  SOURCE_FILE_MISSING: {
    outcome: 'fatal',
    message: 'Source file {path} does not exist or cannot be read ({details})',
    description: 'A file source points at a file the worker cannot read.',
    fix: 'Correct the path (it is read on the worker) and its permissions, then restart the task.',
  },
  FILE_PATH_NOT_ALLOWED: {
    outcome: 'fatal',
    httpStatus: 400,
    message: '{key} {path} {details}',
    description:
      "A connector names a file outside the directories the worker's `allowed.paths` lets connectors read and write (symbolic links and `..` are followed first, so neither can leave them). Refused when the config is validated or submitted, and again when a task starts, before any byte is read or written.",
    fix: 'Move the file into an allowed directory, or add its directory to `allowed.paths` in the worker config and restart the worker.',
  },

  // Task lifecycle
  TASK_START_FAILED: {
    outcome: 'fatal',
    message: 'Task {task} of connector {connector} failed to start: {details}',
    description: "The task's start (connecting clients, checking the model, creating topics) failed.",
    fix: "Read the task's trace in `GET /connectors/{name}/status`, fix the cause, then `POST /connectors/{name}/tasks/{id}/restart`.",
  },
  TASK_STOP_TIMEOUT: {
    outcome: 'fatal',
    message: '{what} took longer than {ms} ms',
    description:
      'A task did not finish its in-flight work within `task.shutdown.graceful.timeout.ms`; its uncommitted records are redelivered after restart.',
    fix: 'Raise `task.shutdown.graceful.timeout.ms`, or find what blocks (e.g. a model call without a deadline).',
  },
  TASK_STOP_FAILED: {
    outcome: 'fatal',
    message: 'Task {task} of connector {connector} did not stop cleanly: {details}',
    description:
      'Stopping a task finished every step (stop polling or consuming, store or commit offsets, stop the task, close its clients), but at least one failed or outlasted `task.shutdown.graceful.timeout.ms`. Work not committed is redone after a restart.',
    fix: 'Read the listed steps and their causes in the worker log; raise `task.shutdown.graceful.timeout.ms` for a slow step, or fix the failing one (e.g. the offset file folder).',
  },
  TASK_STATE_CHANGE_FAILED: {
    outcome: 'fatal',
    message: 'Task {task} of connector {connector} could not {action}: {details}',
    description:
      'A task refused a lifecycle change (start, pause or resume). The worker stops it and reports it FAILED rather than leave it running against the state the connector was asked for.',
    fix: "Read the task's trace in `GET /connectors/{name}/status`, then `POST /connectors/{name}/tasks/{id}/restart`: the task comes back in the connector's current state (paused if the connector is paused).",
  },

  // Source offsets (standalone)
  OFFSET_FILE_CORRUPT: {
    outcome: 'fatal',
    message: 'offset file {file} {problem}, and its backup {file}.bak cannot replace it',
    description:
      'The worker found its `offset.storage.file.filename` unreadable (empty, torn or not JSON) at start, and no valid `<file>.bak` to start from instead.',
    fix: 'Restore the file from a copy, or delete it and its `.bak` to start every source connector of the worker from the beginning (their records are produced again).',
  },
  OFFSET_STORE_WRITE_FAILED: {
    outcome: 'fatal',
    message: 'cannot write the offset file {file} ({step}): {details}',
    description:
      'Storing source offsets in `offset.storage.file.filename` failed (disk full, read-only or missing folder, permissions). The source task fails rather than run on without durable offsets.',
    fix: 'Fix the disk or the folder permissions, then restart the task; it resumes from the last offsets stored.',
  },

  TASK_CONTRACT_VIOLATED: {
    outcome: 'fatal',
    message: 'connector {plugin} returned {got} results for {expected} records',
    description:
      'A task broke the runtime contract (e.g. did not return exactly one result per input record), so its output cannot be matched to offsets.',
    fix: 'A bug in the connector: report it with the task trace.',
  },

  // The TF Serving inference connector
  MODEL_UNAVAILABLE: {
    outcome: 'retry',
    message: 'Model server {target} is unavailable: {details}',
    description: 'The model server cannot be reached (gRPC UNAVAILABLE).',
    fix: 'Check that TF Serving runs and the target address; records are retried with backoff, then redelivered.',
  },
  MODEL_DEADLINE_EXCEEDED: {
    outcome: 'retry',
    message: 'Model {model} did not answer within {deadlineMs} ms',
    description: 'A prediction call exceeded its deadline (gRPC DEADLINE_EXCEEDED).',
    fix: 'Raise the request deadline, lower the batch size or scale the model server.',
  },
  MODEL_OVERLOADED: {
    outcome: 'retry',
    message: 'Model server is overloaded: {details}',
    description: 'The model server shed load (gRPC RESOURCE_EXHAUSTED).',
    fix: 'Lower the request rate or concurrency, or add model server capacity.',
  },
  MODEL_NOT_FOUND: {
    outcome: 'fatal',
    message: 'Model {model} (version {version}) is not served by {target}',
    description: 'The model name or version is not loaded on the server (gRPC NOT_FOUND).',
    fix: 'Correct the model name or version in the connector config, or load the model on the server.',
  },
  MODEL_SIGNATURE_NOT_FOUND: {
    outcome: 'fatal',
    message: 'Model {model} has no signature {signature}; it has: {available}',
    description: 'The configured signature is not in the model.',
    fix: 'Use one of the listed signatures (see `saved_model_cli show --all`).',
  },
  MODEL_INVALID_ARGUMENT: {
    outcome: 'fail-record',
    message: 'Model {model} refused the record: {details}',
    description: 'The model server rejected the input of this record (gRPC INVALID_ARGUMENT).',
    fix: "Check the record against the model's signature; with errors.tolerance=all it goes to the DLQ with the gRPC status in its headers.",
  },
  MODEL_INPUT_MISSING: {
    outcome: 'fail-record',
    message: 'Record has no field {field} for model input {input}',
    description: 'A field the input mapping needs is missing or null in the record.',
    fix: 'Fix the producer, give the field a default in the input mapping, or correct the mapping.',
  },
  MODEL_INPUT_TYPE_MISMATCH: {
    outcome: 'fail-record',
    message: 'Field {field} cannot be converted to {dtype} for model input {input}: {details}',
    description: "A record field has a type or shape that the model input's dtype cannot take.",
    fix: "Fix the producer or the input mapping so the field matches the model's signature.",
  },
  MODEL_INPUT_SCHEMA_MISMATCH: {
    outcome: 'fail-record',
    message: 'Records written with schema id {id} cannot feed the model: {details}',
    description:
      "The record's writer schema (e.g. a schema registered under another subject) lacks a field an input is mapped to, has a type the input's dtype cannot take (a string for a number, a decimal, a nested record or map, another array depth), is not a record, or already has a field named like an output field. Judged once per schema id; every record written with it is a bad record, so the stream goes on. The `field`, `tensor`, `expected.type` and `actual.type` headers name the first problem.",
    fix: "Have the producer write the model's fields with the types the message names, or map each input to a field that fits (`input.mapping`, `output.fields`); replay the records from the dead-letter topic.",
  },
  MODEL_INPUT_NOT_FINITE: {
    outcome: 'fail-record',
    message: 'Field {field} holds {value} for model input {input}, which is not a finite number',
    description:
      'A value feeding a floating-point input is NaN or an infinity, and `input.nonfinite.policy` is `dead-letter` (the default).',
    fix: 'Fix the producer, or set `input.nonfinite.policy=pass` if the model takes NaN and infinities.',
  },
  MODEL_INPUT_FILE_REFUSED: {
    outcome: 'fail-record',
    message: 'The file {path} named by field {field} was refused ({rule}): {details}',
    description:
      'A path in an `input.file.fields` field breaks a rule: it leads outside `input.file.base.dir` (rule `outside-base-dir`), is not a regular file (`not-regular-file`: a directory, FIFO or device), is larger than `input.file.max.bytes` (`too-large`), or took longer than `input.file.read.timeout.ms` to read (`timeout`). Only that record fails.',
    fix: 'Have the producer name regular files inside the base directory, or raise the size or time limit if such files are expected.',
  },
  MODEL_OUTPUT_INVALID: {
    outcome: 'fatal',
    message: 'Model {model} returned an unusable output {output}: {details}',
    description:
      "The model's response lacks a configured output tensor or has a shape that does not match the request batch, which points at a model/config mismatch rather than a bad record.",
    fix: "Check the output mapping against the model's signature and the model version being served.",
  },
  MODEL_SIGNATURE_CHANGED: {
    outcome: 'fatal',
    message:
      'Model {model} now serves version {version}, whose signature cannot be fed as configured: {details}',
    description:
      'Following the latest version or a version label, the server started serving a version whose signature the records cannot feed with the configured mapping (an input without a field to feed it, an input or output the mapping names that is gone, an output field that clashes with an input field). The model changed, not the records, so nothing is dead-lettered; records are redelivered after a restart.',
    fix: 'Pin `tfserving.model.version` to the version that served so far (or move the label back), or adapt `input.mapping` / `output.fields` to the new signature, then restart the task.',
  },
  BREAKER_OPEN: {
    outcome: 'retry',
    message: 'Circuit breaker for {target} is open; retry after {retryAfterMs} ms',
    description:
      'Too many recent model calls failed, so calls are short-circuited until the breaker half-opens.',
    fix: 'Fix the model server (see the errors that opened the breaker); the breaker closes by itself after a successful probe.',
  },
  RATE_LIMIT_QUEUE_FULL: {
    outcome: 'retry',
    message: 'Rate limiter queue for {target} is full ({depth} waiting)',
    description: 'More model requests are waiting for the rate limiter than its queue holds.',
    fix: 'Raise the rate limit or queue size, or lower `consumer.partitions.concurrency`.',
  },
  MODEL_AUTH_FAILED: {
    outcome: 'fatal',
    message: 'Model server {target} refused the credentials: {details}',
    description: 'The model server answered UNAUTHENTICATED or PERMISSION_DENIED.',
    fix: 'Correct the credentials or TLS settings in the connector config.',
  },
  MODEL_SERVER_TLS_FAILED: {
    outcome: 'fatal',
    message: 'TLS connection to the model server {target} failed: {details}; {hint}',
    description:
      "The connection to the model server failed because of the TLS settings, which retrying cannot change: its certificate is not signed by a trusted CA, does not name the host of `tfserving.target`, the server refused this worker's client certificate (or requires one), or one side speaks TLS and the other does not.",
    fix: 'Do what the message says: set `tfserving.tls.ca.file` to the CA that signed the server certificate; make `tfserving.target` name a host the certificate holds; for mutual TLS set `tfserving.tls.cert.file` and `tfserving.tls.key.file` to a certificate the server trusts; match `tfserving.tls.enable` to the port. Then restart the task.',
  },

  // Single Message Transforms (runtime/transforms)
  TRANSFORM_FAILED: {
    outcome: 'fail-record',
    message: 'transform {alias} ({class}) cannot handle this record: {details}',
    description:
      "A Single Message Transform refused a record (Kafka Connect's DataException): e.g. a schemaless transform got a value that is not a map, a field named in its config is missing, or a cast is impossible. The stage is `TRANSFORMATION` and `__connect.errors.class.name` is the transform's class.",
    fix: "Make the records match the transform's config (or change the config), or guard the transform with a predicate (`transforms.<alias>.predicate`) so it only sees records it can handle.",
  },
} as const satisfies Record<string, EntryWithoutCode>;

export type ErrorCode = keyof typeof ENTRIES;

export const ERROR_CATALOGUE: readonly CatalogueEntry[] = Object.entries(ENTRIES).map(([code, entry]) => ({
  code,
  ...(entry as EntryWithoutCode),
}));

const BY_CODE = new Map(ERROR_CATALOGUE.map((entry) => [entry.code, entry]));

export function catalogueEntry(code: ErrorCode): CatalogueEntry;
export function catalogueEntry(code: string): CatalogueEntry | undefined;
export function catalogueEntry(code: string): CatalogueEntry | undefined {
  return BY_CODE.get(code);
}

/**
 * Renders `code`'s template with `params`. A placeholder without a param stays visible as
 * `{name}` rather than throwing: this runs while reporting another failure.
 */
export function errorMessage(
  code: ErrorCode,
  params: Readonly<Record<string, string | number>> = {},
): string {
  return BY_CODE.get(code)!.message.replace(/\{(\w+)\}/g, (placeholder, name: string) =>
    Object.hasOwn(params, name) ? String(params[name]) : placeholder,
  );
}

const OUTCOME_SECTIONS: ReadonlyArray<{ outcome: CatalogueOutcome; title: string; intro: string }> = [
  {
    outcome: 'retry',
    title: 'Transient: retried, never dead-lettered',
    intro:
      'Retried with capped exponential backoff (`errors.retry.timeout`, `errors.retry.delay.max.ms`); when the failure persists the partitions are paused and the records redelivered later. Offsets are not committed past them.',
  },
  {
    outcome: 'fail-record',
    title: 'Bad record: dead-letter queue or task failure',
    intro:
      'Only this record is affected. With `errors.tolerance=all` it goes to `errors.deadletterqueue.topic.name` (raw bytes, original headers, and context headers when enabled) and the stream moves on; with `errors.tolerance=none` the task fails.',
  },
  {
    outcome: 'fatal',
    title: 'Fatal: the task fails',
    intro:
      'The connector or task goes to FAILED with the error in its `trace` (`GET /connectors/{name}/status`) and does not retry. Fix the cause and restart it. Config errors in a REST request answer 400 instead.',
  },
  {
    outcome: 'client',
    title: 'REST API client errors',
    intro: 'Answered as `{"error_code": <http status>, "message": "..."}`, like Kafka Connect.',
  },
];

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** docs/errors.md: one table per outcome. */
export function renderErrorsDoc(): string {
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from runtime/error-catalogue.ts by `npx tsx dev/generate-docs.ts`; do not edit. -->',
    '',
    'Every error the runtime and its connectors raise carries one of these codes (in logs, task traces,',
    'REST error bodies and the `__connect.errors.exception.message` header of dead-letter records).',
  ];
  for (const section of OUTCOME_SECTIONS) {
    const entries = ERROR_CATALOGUE.filter((e) => e.outcome === section.outcome);
    const withStatus = section.outcome === 'client';
    lines.push('', `## ${section.title}`, '', section.intro, '');
    lines.push(withStatus ? '| Code | HTTP | Meaning | How to fix |' : '| Code | Meaning | How to fix |');
    lines.push(withStatus ? '| --- | --- | --- | --- |' : '| --- | --- | --- |');
    for (const e of entries) {
      const status = withStatus ? ` ${e.httpStatus ?? ''} |` : '';
      lines.push(`| \`${e.code}\` |${status} ${cell(e.description)} | ${cell(e.fix)} |`);
    }
  }
  return lines.join('\n') + '\n';
}
