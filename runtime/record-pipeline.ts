// The record path of a consumer task, for one chunk of one input partition: convert each consumed
// record (key and value converters), apply the connector's transforms (stage TRANSFORMATION), hand
// the good ones to the task, and encode what it returns.
// A record that fails a stage (a bad record: RecordError) is reported with its position, stage and
// class, for the dead-letter queue; any other error ends the chunk and reaches the caller, which
// retries transient ones and fails the task on the rest. Nothing here writes to Kafka.
import type { KafkaMessage, Message, IHeaders } from 'kafkajs';
import type {
  ConnectRecord,
  OutputRecord,
  ProcessorPlugin,
  ProcessorTask,
  SinkPlugin,
  SinkTask,
} from './api.js';
import type { Converter } from './converters/converter.js';
import type { OutputMessage } from './delivery.js';
import { FatalError, outcomeOf, RecordError, type ConnectError, type Stage } from './errors.js';
import { derivedSchemaRef, TransformError, type TransformChain } from './transforms/index.js';

export interface Failure {
  /** Position of the input record in its chunk. */
  index: number;
  error: Error;
  stage: Stage;
  /** The class that ran the failing stage, for `__connect.errors.class.name`. */
  className: string;
}

export interface ChunkResult {
  /** Encoded outputs, in input order. */
  outputs: OutputMessage[];
  /** Bad records, in input order; none of them has an output. */
  failures: Failure[];
}

export interface RecordPipelineOptions {
  plugin: SinkPlugin | ProcessorPlugin;
  task: () => ProcessorTask | SinkTask;
  keyConverter: Converter;
  valueConverter: Converter;
  now: () => number;
  /** The output partition of a result (undefined: Kafka's default partitioner). */
  partitionFor: (topic: string, inputPartition: number) => number | undefined;
  /** `max.record.bytes`: larger consumed records are bad records, never decoded. */
  maxRecordBytes: number;
  /** Whether an encoded output fits its topic's `max.message.bytes`. */
  fits: (topic: string, message: Message) => { fits: boolean; size: number; limit: number };
  /**
   * The connector's Single Message Transforms (`createTransformChain(config.originals)`), applied
   * to each converted record before the task, as Kafka Connect's WorkerSinkTask does. A record a
   * transform drops (Filter) is skipped and its offset commits with the chunk. Absent: none.
   */
  transforms?: TransformChain;
}

export class RecordPipeline {
  constructor(private readonly options: RecordPipelineOptions) {}

  async run(topic: string, partition: number, chunk: readonly KafkaMessage[]): Promise<ChunkResult> {
    const { keyConverter, valueConverter, plugin } = this.options;
    await Promise.all([
      keyConverter.prepare?.(chunk.map((m) => m.key)),
      valueConverter.prepare?.(chunk.map((m) => m.value)),
    ]);

    const failures: Failure[] = [];
    const records: ConnectRecord[] = [];
    const recordIndex: number[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const message = chunk[i]!;
      let stage: Stage = 'KAFKA_CONSUME';
      try {
        this.checkSize(topic, partition, message);
        stage = 'KEY_CONVERTER';
        const key = keyConverter.toConnect(topic, message.key);
        stage = 'VALUE_CONVERTER';
        const value = valueConverter.toConnect(topic, message.value);
        // One object shape for every record (no conditional spreads): the hot path stays monomorphic.
        const converted: ConnectRecord = {
          topic,
          partition,
          offset: message.offset,
          timestamp: message.timestamp,
          key: key.value,
          value: value.value,
          keySchema: key.schema,
          valueSchema: value.schema,
          headers: message.headers as Record<string, Buffer | undefined>,
          rawKey: message.key,
          rawValue: message.value,
        };
        stage = 'TRANSFORMATION';
        const transformed = this.transform(converted);
        if (transformed === null) continue; // dropped by a transform: no output, the offset commits
        records.push(transformed);
        recordIndex.push(i);
      } catch (error) {
        if (outcomeOf(error) !== 'fail-record') throw error;
        const className = error instanceof TransformError ? error.className : this.stageClassName(stage);
        failures.push({ index: i, error: error as Error, stage, className });
      }
    }

    const outputsByIndex = new Map<number, OutputRecord[]>();
    if (records.length > 0) {
      if (plugin.kind === 'processor') {
        const results = await (this.options.task() as ProcessorTask).process(records);
        expectResults(results, records.length, plugin.name);
        results.forEach((result, j) => {
          const index = recordIndex[j]!;
          if (result instanceof Error) {
            if (outcomeOf(result) !== 'fail-record') throw result;
            failures.push({ index, error: result, stage: 'TASK_PROCESS', className: plugin.name });
          } else outputsByIndex.set(index, result);
        });
      } else {
        const sink = this.options.task() as SinkTask;
        const results = await sink.put(records);
        if (results) {
          expectResults(results, records.length, plugin.name);
          results.forEach((result, j) => {
            if (result === undefined) return;
            if (outcomeOf(result) !== 'fail-record') throw result;
            failures.push({
              index: recordIndex[j]!,
              error: result,
              stage: 'TASK_PUT',
              className: plugin.name,
            });
          });
        }
        await sink.flush?.();
      }
    }

    const outputs = await this.encode(partition, outputsByIndex, failures);
    if (failures.length > 1) failures.sort((a, b) => a.index - b.index);
    return { outputs, failures };
  }

  /**
   * The record after the transform chain, or null when a transform dropped it. A schema a
   * transform derived reaches the task as a SchemaRef with its own (negative, process-local) id;
   * the raw key and value bytes stay the consumed ones (they are what a dead letter carries).
   */
  private transform(record: ConnectRecord): ConnectRecord | null {
    const chain = this.options.transforms;
    if (chain === undefined || chain.aliases.length === 0) return record;
    const out = chain.apply({
      topic: record.topic,
      partition: record.partition,
      timestamp: record.timestamp,
      offset: record.offset,
      key: record.key,
      keySchema: record.keySchema?.type,
      value: record.value,
      valueSchema: record.valueSchema?.type,
      headers: record.headers,
    });
    if (out === null) return null;
    return {
      topic: out.topic,
      partition: out.partition ?? record.partition,
      offset: record.offset,
      timestamp: out.timestamp ?? record.timestamp,
      key: out.key,
      value: out.value,
      keySchema: derivedSchemaRef(record.keySchema, out.keySchema),
      valueSchema: derivedSchemaRef(record.valueSchema, out.valueSchema),
      headers: out.headers,
      rawKey: record.rawKey,
      rawValue: record.rawValue,
    };
  }

  /** The class a failure at `stage` is reported under (`__connect.errors.class.name`). */
  private stageClassName(stage: Stage): string {
    if (stage === 'KAFKA_PRODUCE') return 'KafkaProducer';
    if (stage === 'KAFKA_CONSUME') return 'KafkaConsumer';
    const converter = stage === 'KEY_CONVERTER' ? this.options.keyConverter : this.options.valueConverter;
    return converter.className ?? (stage === 'KEY_CONVERTER' ? 'KeyConverter' : 'ValueConverter');
  }

  /** Output schemas the registry refused, per topic, as the bad-record error their records get. */
  private readonly refused = new Map<string, WeakMap<object, RecordError>>();

  private refusal(topic: string, schema: object): RecordError | undefined {
    return this.refused.get(topic)?.get(schema);
  }

  private refuse(topic: string, schema: object, cause: ConnectError): void {
    let byTopic = this.refused.get(topic);
    if (!byTopic) this.refused.set(topic, (byTopic = new WeakMap()));
    byTopic.set(
      schema,
      new RecordError(
        'OUTPUT_SCHEMA_REFUSED',
        `the output schema derived for this record was refused by the schema registry: ${cause.message}. Records ` +
          'whose output needs a schema compatible with the subject are written; fix the input schema or the ' +
          "subject's compatibility level and replay these from the dead-letter topic",
        { stage: 'VALUE_CONVERTER', cause, context: cause.context },
      ),
    );
  }

  private checkSize(topic: string, partition: number, message: KafkaMessage): void {
    const bytes = (message.key?.length ?? 0) + (message.value?.length ?? 0);
    const limit = this.options.maxRecordBytes;
    if (bytes <= limit) return;
    throw new RecordError(
      'RECORD_TOO_LARGE',
      `the record ${topic}-${partition}@${message.offset} takes ${bytes} bytes (key and value), more than ` +
        `max.record.bytes (${limit}); it was not decoded. Raise max.record.bytes if such records are expected`,
      { stage: 'KAFKA_CONSUME', context: { 'record.bytes': bytes, 'max.record.bytes': limit } },
    );
  }

  private async encode(
    inputPartition: number,
    outputsByIndex: Map<number, OutputRecord[]>,
    failures: Failure[],
  ): Promise<OutputMessage[]> {
    if (outputsByIndex.size === 0) return [];
    const { keyConverter, valueConverter } = this.options;
    if (valueConverter.prepareEncode) {
      // Each distinct (topic, schema) once; outputs nearly always repeat the previous one's.
      const prepared = new Map<string, Set<unknown>>();
      let lastTopic: string | undefined;
      let lastSchema: unknown;
      for (const outputs of outputsByIndex.values()) {
        for (const output of outputs) {
          const schema = output.valueSchema;
          if (output.topic === lastTopic && schema === lastSchema) continue;
          lastTopic = output.topic;
          lastSchema = schema;
          let schemas = prepared.get(output.topic);
          if (!schemas) prepared.set(output.topic, (schemas = new Set()));
          if (schemas.has(schema)) continue;
          schemas.add(schema);
          if (schema !== undefined && this.refusal(output.topic, schema)) continue;
          try {
            await valueConverter.prepareEncode(output.topic, schema);
          } catch (error) {
            // A registry that refuses one derived schema (an input schema whose output breaks the
            // subject's compatibility) is a problem of the records written with it, not of the
            // stream: they become bad records; auth and connection problems stay fatal/transient.
            if ((error as ConnectError).code !== 'SCHEMA_INCOMPATIBLE' || schema === undefined) throw error;
            this.refuse(output.topic, schema, error as ConnectError);
          }
        }
      }
    }
    const now = String(this.options.now());
    const out: OutputMessage[] = [];
    // outputsByIndex is filled in input order except after a failed record; sort only then.
    let ordered = true;
    let previousIndex = -1;
    for (const [index, outputs] of outputsByIndex) {
      if (index < previousIndex) ordered = false;
      previousIndex = index;
      let stage: Stage = 'KEY_CONVERTER';
      // All of a record's outputs, or none of them: a record is either written or dead-lettered.
      const encoded: OutputMessage[] = [];
      try {
        for (const output of outputs) {
          const refused = output.valueSchema !== undefined && this.refusal(output.topic, output.valueSchema);
          if (refused) {
            stage = 'VALUE_CONVERTER';
            throw refused;
          }
          stage = 'KEY_CONVERTER';
          const key =
            output.rawKey !== undefined
              ? output.rawKey
              : keyConverter.fromConnect(output.topic, output.key ?? null);
          stage = 'VALUE_CONVERTER';
          const value = valueConverter.fromConnect(output.topic, output.value, output.valueSchema);
          const message: Message = {
            key,
            value,
            timestamp: output.timestamp ?? now,
            headers: output.headers as IHeaders | undefined,
            partition: this.options.partitionFor(output.topic, inputPartition),
          };
          stage = 'KAFKA_PRODUCE';
          const size = this.options.fits(output.topic, message);
          if (!size.fits) {
            throw new RecordError(
              'KAFKA_RECORD_TOO_LARGE',
              `the output record for ${output.topic} takes ${size.size} bytes, more than the topic's ` +
                `max.message.bytes (${size.limit}); raise the topic's max.message.bytes or make the record smaller`,
              {
                stage: 'KAFKA_PRODUCE',
                context: { 'record.bytes': size.size, 'max.message.bytes': size.limit },
              },
            );
          }
          encoded.push({ index, topic: output.topic, message });
        }
        for (const item of encoded) out.push(item);
      } catch (error) {
        if (outcomeOf(error) !== 'fail-record') throw error;
        failures.push({ index, error: error as Error, stage, className: this.stageClassName(stage) });
      }
    }
    if (!ordered) out.sort((a, b) => a.index - b.index);
    return out;
  }
}

function expectResults(results: unknown[], expected: number, plugin: string): void {
  if (!Array.isArray(results) || results.length !== expected) {
    throw new FatalError(
      'TASK_CONTRACT_VIOLATED',
      `connector ${plugin} returned ${Array.isArray(results) ? results.length : typeof results} results for ${expected} records; ` +
        'a task must return exactly one result per record, by position',
    );
  }
}
