import avro from 'avsc';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { ConnectRecord, OutputRecord, ProcessorTask } from '../../runtime/api.js';
import { FatalError, RecordError, RetriableError } from '../../runtime/errors.js';
import { parseConfig } from '../../runtime/config/config-spec.js';
import { connectorSpecFor } from '../../runtime/config/connector-config.js';
import { createTfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import type { ClientConnector, TFServingApi } from '../../connectors/tf-serving/client-pool.js';
import {
  TFServingCallError,
  type ModelMetadata,
  type CallOptions,
  type ModelSpec,
  type PredictRequest,
  type PredictResult,
} from '../../connectors/tf-serving/grpc-client.js';
import { decodeTensor, encodeTensor } from '../../connectors/tf-serving/tensor-codec.js';
import { METRIC_NAMES } from '../../connectors/tf-serving/metrics.js';

/**
 * A TF Serving stand-in with the `null` model's signature: `age` DT_INT64 [-1] in, `score`
 * DT_FLOAT [-1] = age + (version - 1) out. A request holding age 13 is refused with
 * INVALID_ARGUMENT (like a value the graph rejects); `failWith` makes every Predict fail.
 */
class FakeTFServing implements TFServingApi {
  predictions: number[][] = [];
  metadataCalls = 0;
  failWith: grpc.status | undefined;
  metadataFailures: grpc.status[] = [];
  version = 2;
  hang = false;

  async getModelMetadata(model: ModelSpec): Promise<ModelMetadata> {
    this.metadataCalls++;
    const failure = this.metadataFailures.shift();
    if (failure !== undefined) throw this.error(failure, 'GetModelMetadata', model, 'injected');
    if (model.name !== 'null')
      throw this.error(
        grpc.status.NOT_FOUND,
        'GetModelMetadata',
        model,
        `Servable not found for request: Latest(${model.name})`,
      );
    return {
      model: { name: 'null', version: this.version },
      signatures: {
        serving_default: {
          methodName: 'tensorflow/serving/predict',
          inputs: { age: { dtype: 'DT_INT64', shape: [-1], encoding: 'name', graphTensorName: 'age:0' } },
          outputs: {
            score: { dtype: 'DT_FLOAT', shape: [-1], encoding: 'name', graphTensorName: 'score:0' },
          },
        },
        __saved_model_init_op: { methodName: '', inputs: {}, outputs: {} },
      },
    };
  }

  async predict(request: PredictRequest, options?: CallOptions): Promise<PredictResult> {
    const ages = decodeTensor(request.inputs.age!).values as number[];
    this.predictions.push(ages);
    if (this.hang) {
      // Like the real client: the call ends only when its signal cancels it.
      await new Promise((_, reject) =>
        options?.signal?.addEventListener('abort', () =>
          reject(this.error(grpc.status.CANCELLED, 'Predict', request.model, 'Cancelled on client')),
        ),
      );
    }
    if (this.failWith !== undefined)
      throw this.error(this.failWith, 'Predict', request.model, 'injected fault');
    if (ages.includes(13))
      throw this.error(grpc.status.INVALID_ARGUMENT, 'Predict', request.model, 'age 13 is unlucky');
    return {
      model: { name: 'null', version: this.version, signatureName: 'serving_default' },
      outputs: {
        score: encodeTensor(
          'DT_FLOAT',
          [ages.length],
          ages.map((a) => a + this.version - 1),
        ),
      },
    };
  }

  private error(
    code: grpc.status,
    method: 'Predict' | 'GetModelMetadata',
    model: ModelSpec,
    details: string,
  ) {
    return new TFServingCallError({ code, details, method, modelSpec: model });
  }
}

const personSchema = avro.Type.forSchema(
  {
    type: 'record',
    name: 'Person',
    fields: [
      { name: 'id', type: 'string' },
      { name: 'age', type: ['null', 'long'], default: null },
    ],
  },
  { wrapUnions: 'auto', omitRecordMethods: true } as avro.ForSchemaOptions,
);

function record(id: number, age: number | null, offset = id): ConnectRecord {
  return {
    topic: 'people',
    partition: 0,
    offset: String(offset),
    timestamp: '1700000000000',
    key: `k${id}`,
    value: { id: `p${id}`, age },
    valueSchema: { id: 42, type: personSchema },
    headers: { trace: Buffer.from('t1') },
    rawKey: Buffer.from(`k${id}`),
    rawValue: Buffer.from('raw'),
  };
}

interface Harness {
  task: ProcessorTask;
  server: FakeTFServing;
  registry: Registry;
  controller: AbortController;
  released: () => number;
  clock: { now: number };
}

/**
 * A task built from config text through the real spec, with the fake server, an injected clock,
 * and start-up sleeps that advance that clock instead of waiting.
 */
function harness(config: Record<string, unknown> = {}, server = new FakeTFServing()): Harness {
  let releases = 0;
  const clock = { now: 1_700_000_000_000 };
  const connect: ClientConnector = async () => ({ client: server, release: () => void releases++ });
  const sleep = async (ms: number) => {
    clock.now += ms;
    return true;
  };
  const plugin = createTfServingInferencePlugin({ connect, sleep });
  const { config: parsed, problems } = parseConfig(connectorSpecFor(plugin), {
    name: 'scores',
    'connector.class': 'TFServingInference',
    topics: 'people',
    'output.topic': 'people-scored',
    'tfserving.target': '127.0.0.1:8500',
    'tfserving.model.name': 'null',
    'batch.max.wait.ms': 20,
    ...config,
  });
  if (!parsed) throw new Error(JSON.stringify(problems));
  const registry = new Registry();
  const controller = new AbortController();
  const task = plugin.createTask({
    connectorName: 'scores',
    taskId: 0,
    config: parsed,
    logger: pino({ level: 'silent' }),
    metrics: registry,
    metricLabels: { connector: 'scores', task: '0' },
    signal: controller.signal,
    now: () => clock.now,
  });
  return { task, server, registry, controller, released: () => releases, clock };
}

const outputs = (result: OutputRecord[] | Error): OutputRecord[] => {
  if (result instanceof Error) throw result;
  return result;
};

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('TF Serving inference task', () => {
  it('scores records and writes them with the outputs and metadata under one derived schema', async () => {
    const h = harness({ 'output.metadata.fields': 'model.version,scored.at' });
    await h.task.start!();
    const first = await h.task.process([record(1, 30), record(2, 40)]);
    const [a] = outputs(first[0]!);
    expect(a!.topic).to.equal('people-scored');
    expect(a!.value).to.deep.equal({
      id: 'p1',
      age: 30,
      score: 31,
      model_version: 2,
      scored_at: h.clock.now,
    });
    expect(a!.rawKey).to.deep.equal(Buffer.from('k1'));
    expect(a!.timestamp).to.equal('1700000000000');
    expect(a!.headers).to.deep.equal({ trace: Buffer.from('t1') });
    expect((outputs(first[1]!)[0]!.value as { score: number }).score).to.equal(41);
    const again = await h.task.process([record(3, 50, 3)]);
    expect(outputs(again[0]!)[0]!.valueSchema, 'the same Type object per input schema').to.equal(
      a!.valueSchema,
    );
    const fields = (a!.valueSchema!.schema() as { fields: Array<{ name: string }> }).fields.map(
      (f) => f.name,
    );
    expect(fields).to.deep.equal(['id', 'age', 'score', 'model_version', 'scored_at']);
    await h.task.stop!();
  });

  it('fails only the record with a null feature; its neighbours are scored in the same request', async () => {
    const h = harness();
    await h.task.start!();
    const results = await h.task.process([record(1, 30), record(2, null), record(3, 50)]);
    expect(results[1]).to.be.instanceOf(RecordError);
    expect((results[1] as RecordError).code).to.equal('MODEL_INPUT_MISSING');
    expect((results[1] as RecordError).context).to.include({
      field: 'age',
      tensor: 'age',
      'model.name': 'null',
    });
    expect(outputs(results[0]!)[0]!.value).to.deep.include({ score: 31 });
    expect(outputs(results[2]!)[0]!.value).to.deep.include({ score: 51 });
    expect(h.server.predictions).to.deep.equal([[30, 50]]);
    await h.task.stop!();
  });

  it('isolates the one record the model refuses among 256 and scores the other 255', async () => {
    const h = harness({ 'batch.max.records': 256 });
    await h.task.start!();
    const records = Array.from({ length: 256 }, (_, i) => record(i, i === 77 ? 13 : 20 + (i % 50)));
    const results = await h.task.process(records);
    const failed = results.flatMap((r, i) => (r instanceof Error ? [i] : []));
    expect(failed).to.deep.equal([77]);
    const refused = results[77] as RecordError;
    expect(refused.code).to.equal('MODEL_INVALID_ARGUMENT');
    expect(refused.message).to.contain('age 13 is unlucky');
    expect(refused.context).to.include({
      'grpc.status.code': 'INVALID_ARGUMENT',
      'model.name': 'null',
      'model.signature': 'serving_default',
      attempts: 9,
    });
    expect(outputs(results[255]!)[0]!.value).to.deep.include({ id: 'p255' });
    expect(h.server.predictions.length).to.be.at.most(17);
    const bisections = await h.registry.getSingleMetric(METRIC_NAMES.bisections)!.get();
    expect(bisections.values[0]!.value).to.equal(8);
    await h.task.stop!();
  });

  it('packs the rows of concurrent calls (different partitions) into one request', async () => {
    const h = harness();
    await h.task.start!();
    const [p0, p1] = await Promise.all([
      h.task.process([record(1, 30), record(2, 31)]),
      h.task.process([{ ...record(3, 32), partition: 1 }]),
    ]);
    expect(h.server.predictions).to.deep.equal([[30, 31, 32]]);
    expect(outputs(p1[0]!)[0]!.value).to.deep.include({ id: 'p3', score: 33 });
    expect(p0).to.have.length(2);
    await h.task.stop!();
  });

  it('throws RetriableError on a transient status, then fails fast with BREAKER_OPEN once the breaker opens', async () => {
    const h = harness({ 'breaker.volume.threshold': 3, 'breaker.reset.timeout.ms': 30000 });
    await h.task.start!();
    h.server.failWith = grpc.status.UNAVAILABLE;
    for (let i = 0; i < 3; i++) {
      const error = await rejection(h.task.process([record(i, 30)]));
      expect(error).to.be.instanceOf(RetriableError);
      expect((error as RetriableError).code).to.equal('MODEL_UNAVAILABLE');
    }
    const sent = h.server.predictions.length;
    const fast = (await rejection(h.task.process([record(9, 30)]))) as RetriableError;
    expect(fast.code).to.equal('BREAKER_OPEN');
    expect(fast.retryAfterMs).to.be.within(1, 30000);
    expect(h.server.predictions.length, 'no call while open').to.equal(sent);
    expect(h.task.describe!()).to.deep.include({
      breaker: { state: 'open', retry_after_ms: fast.retryAfterMs, short_circuited: 0 },
    });
    const requests = await h.registry.getSingleMetric(METRIC_NAMES.requests)!.get();
    expect(requests.values.find((v) => v.labels.code === 'UNAVAILABLE')!.value).to.equal(3);
    await h.task.stop!();
  });

  it('fails the task on a fatal status in Predict (e.g. the model was unloaded)', async () => {
    const h = harness();
    await h.task.start!();
    h.server.failWith = grpc.status.NOT_FOUND;
    const error = await rejection(h.task.process([record(1, 30)]));
    expect(error).to.be.instanceOf(FatalError);
    expect((error as FatalError).code).to.equal('MODEL_NOT_FOUND');
    await h.task.stop!();
  });

  it('fails start at once, without retrying, when the model does not exist', async () => {
    const h = harness({ 'tfserving.model.name': 'nope' });
    const error = await rejection(h.task.start!());
    expect(error).to.be.instanceOf(FatalError);
    expect((error as FatalError).code).to.equal('MODEL_NOT_FOUND');
    expect(error.message).to.contain('model "nope"').and.contain('NOT_FOUND');
    expect(h.server.metadataCalls).to.equal(1);
    expect(h.released(), 'the client lease is given back').to.equal(1);
  });

  it('fails start when the signature is missing, listing the signatures the model has', async () => {
    const h = harness({ 'tfserving.signature.name': 'classify' });
    const error = (await rejection(h.task.start!())) as FatalError;
    expect(error.code).to.equal('MODEL_SIGNATURE_NOT_FOUND');
    expect(error.message).to.contain('no signature "classify"; it has: serving_default.');
  });

  it('retries an unreachable server at start until it answers', async () => {
    const server = new FakeTFServing();
    server.metadataFailures = [grpc.status.UNAVAILABLE, grpc.status.UNAVAILABLE];
    const h = harness({}, server);
    await h.task.start!();
    expect(server.metadataCalls).to.equal(3);
    await h.task.stop!();
  });

  it('gives up at start after tfserving.startup.timeout.ms with the last status in the trace', async () => {
    const server = new FakeTFServing();
    server.metadataFailures = Array(100).fill(grpc.status.UNAVAILABLE);
    const h = harness({ 'tfserving.startup.timeout.ms': 1000 }, server);
    const error = (await rejection(h.task.start!())) as FatalError;
    expect(error).to.be.instanceOf(FatalError);
    expect(error.message)
      .to.contain('within tfserving.startup.timeout.ms (1000 ms')
      .and.contain('UNAVAILABLE');
    expect(server.metadataCalls).to.equal(3); // waits 200 + 400 ms; 800 ms more would pass the deadline
  });

  it('fails each record written under a schema without the model input alone, judging that schema once; its neighbours are scored', async () => {
    const h = harness();
    await h.task.start!();
    const otherSchema = avro.Type.forSchema(
      {
        type: 'record',
        name: 'Order',
        fields: [
          { name: 'id', type: 'string' },
          { name: 'total', type: 'double' },
        ],
      },
      { wrapUnions: 'auto', omitRecordMethods: true } as avro.ForSchemaOptions,
    );
    const order = (id: number): ConnectRecord => ({
      ...record(id, null),
      value: { id: `o${id}`, total: 9.5 },
      valueSchema: { id: 77, type: otherSchema },
    });
    const results = await h.task.process([record(1, 30), order(2), record(3, 50), order(4)]);
    const refused = results[1] as RecordError;
    expect(refused).to.be.instanceOf(RecordError);
    expect(refused.code).to.equal('MODEL_INPUT_SCHEMA_MISMATCH');
    expect(refused.message).to.contain('schema id 77 (Order) cannot feed the model');
    expect(refused.context).to.include({
      'schema.id': 77,
      field: 'age',
      tensor: 'age',
      'expected.type': 'DT_INT64 [-1] (Avro int or long)',
      'actual.type': 'no such field',
      'model.name': 'null',
    });
    expect(results[3], 'the verdict is cached per schema id').to.equal(refused);
    expect(outputs(results[0]!)[0]!.value).to.deep.include({ score: 31 });
    expect(outputs(results[2]!)[0]!.value).to.deep.include({ score: 51 });
    expect(h.server.predictions).to.deep.equal([[30, 50]]);
    const later = await h.task.process([order(5), record(6, 60)]);
    expect(later[0]).to.equal(refused);
    expect(outputs(later[1]!)[0]!.value).to.deep.include({ score: 61 });
    expect(h.task.describe!()).to.have.property('output_schemas', 1);
    await h.task.stop!();
  });

  it('forwards tombstones unchanged and refuses records without a value schema', async () => {
    const h = harness();
    await h.task.start!();
    const tombstone = { ...record(1, null), value: null };
    delete tombstone.valueSchema;
    const [result] = await h.task.process([tombstone]);
    expect(outputs(result!)[0]).to.deep.include({ value: null, topic: 'people-scored' });
    const schemaless = { ...record(2, 30) };
    delete schemaless.valueSchema;
    const error = (await rejection(h.task.process([schemaless]))) as FatalError;
    expect(error.code).to.equal('CONFIG_INVALID');
    expect(error.message).to.contain('value.converter=avro');
    await h.task.stop!();
  });

  it('when the task stops, calls waiting for the model or for a batch reject as retriable (redelivered, not failed)', async () => {
    const h = harness({ 'batch.max.wait.ms': 60000, 'batch.max.records': 2 });
    await h.task.start!();
    h.server.hang = true;
    const inFlight = h.task.process([record(1, 30), record(2, 31)]);
    const waiting = h.task.process([record(3, 32)]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.server.predictions).to.deep.equal([[30, 31]]);
    h.controller.abort();
    const [a, b] = await Promise.all([rejection(inFlight), rejection(waiting)]);
    expect(a).to.be.instanceOf(RetriableError);
    expect(b).to.be.instanceOf(RetriableError);
    await h.task.stop!();
  });

  it('releases its client and metric series on stop, and refuses work afterwards', async () => {
    const h = harness();
    await h.task.start!();
    await h.task.process([record(1, 30)]);
    await h.task.stop!();
    await h.task.stop!();
    expect(h.released()).to.equal(1);
    const gauge = await h.registry.getSingleMetric(METRIC_NAMES.breakerState)!.get();
    expect(gauge.values).to.deep.equal([]);
    const error = await rejection(h.task.process([record(2, 30)]));
    expect(error).to.be.instanceOf(RetriableError);
  });
});
