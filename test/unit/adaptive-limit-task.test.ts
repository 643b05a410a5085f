import avro from 'avsc';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { ConnectRecord, ProcessorTask } from '../../runtime/api.js';
import { RetriableError } from '../../runtime/errors.js';
import { parseConfig } from '../../runtime/config/config-spec.js';
import { connectorSpecFor } from '../../runtime/config/connector-config.js';
import { createTfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import { SharedAdaptiveLimits } from '../../connectors/tf-serving/adaptive-limit.js';
import type { TFServingApi } from '../../connectors/tf-serving/client-pool.js';
import {
  TFServingCallError,
  type ModelMetadata,
  type PredictRequest,
  type PredictResult,
} from '../../connectors/tf-serving/grpc-client.js';
import { decodeTensor, encodeTensor } from '../../connectors/tf-serving/tensor-codec.js';
import { METRIC_NAMES } from '../../connectors/tf-serving/metrics.js';

/** The `null` model (age -> score); `queueFull` answers every Predict UNAVAILABLE like a full batching queue. */
class FakeServer implements TFServingApi {
  queueFull = false;

  async getModelMetadata(): Promise<ModelMetadata> {
    return {
      model: { name: 'null', version: 1 },
      signatures: {
        serving_default: {
          methodName: 'tensorflow/serving/predict',
          inputs: { age: { dtype: 'DT_INT64', shape: [-1], encoding: 'name', graphTensorName: 'age:0' } },
          outputs: {
            score: { dtype: 'DT_FLOAT', shape: [-1], encoding: 'name', graphTensorName: 'score:0' },
          },
        },
      },
    };
  }

  async predict(request: PredictRequest): Promise<PredictResult> {
    if (this.queueFull)
      throw new TFServingCallError({
        code: grpc.status.UNAVAILABLE,
        details: 'queue full',
        method: 'Predict',
        modelSpec: request.model,
      });
    const ages = decodeTensor(request.inputs.age!).values as number[];
    return {
      model: { name: 'null', version: 1, signatureName: 'serving_default' },
      outputs: { score: encodeTensor('DT_FLOAT', [ages.length], ages) },
    };
  }
}

const schema = avro.Type.forSchema({
  type: 'record',
  name: 'Person',
  fields: [{ name: 'age', type: 'long' }],
});

const record = (age: number): ConnectRecord => ({
  topic: 'people',
  partition: 0,
  offset: String(age),
  timestamp: '1700000000000',
  key: null,
  value: { age },
  valueSchema: { id: 7, type: schema },
  headers: {},
  rawKey: null,
  rawValue: Buffer.from('raw'),
});

type Status = { rate_limiter: { max_in_flight: number; adaptive_limit?: { limit: number } } };

/** Tasks of one worker (one registry, one set of shared limits) built from config text. */
function worker(server: FakeServer, config: Record<string, unknown>) {
  const limits = new SharedAdaptiveLimits();
  const registry = new Registry();
  const plugin = createTfServingInferencePlugin({
    connect: async () => ({ client: server, release: () => undefined }),
    adaptiveLimits: limits,
  });
  const { config: parsed, problems } = parseConfig(connectorSpecFor(plugin), {
    name: 'scores',
    'connector.class': 'TFServingInference',
    topics: 'people',
    'output.topic': 'people-scored',
    'tfserving.target': '127.0.0.1:8500',
    'tfserving.model.name': 'null',
    'batch.max.wait.ms': 0,
    ...config,
  });
  if (!parsed) throw new Error(JSON.stringify(problems));
  const task = (id: number): ProcessorTask =>
    plugin.createTask({
      connectorName: 'scores',
      taskId: id,
      config: parsed,
      logger: pino({ level: 'silent' }),
      metrics: registry,
      metricLabels: { connector: 'scores', task: String(id) },
      signal: new AbortController().signal,
      now: () => 1_700_000_000_000,
    });
  const series = async (name: string) =>
    (await registry.getSingleMetric(name)?.get())?.values.map((v) => ({ labels: v.labels, value: v.value }));
  return { limits, task, series };
}

describe('TFServingInference with max.in.flight.requests=auto', () => {
  it("shares the target's limit between the worker's tasks, shrinks it on a queue-full answer, and drops it after both stop", async () => {
    const server = new FakeServer();
    const { limits, task, series } = worker(server, { 'max.in.flight.requests': 'auto' });
    const first = task(0);
    const second = task(1);
    await first.start!();
    await second.start!();
    const status = (t: ProcessorTask) => (t.describe!() as Status).rate_limiter;
    expect(limits.size).to.equal(1);
    expect(status(first)).to.include({ max_in_flight: 2 });
    expect(status(first).adaptive_limit).to.include({ limit: 4 });
    expect(status(second)).to.include({ max_in_flight: 2 });
    const target = { target: '127.0.0.1:8500', model: 'null' };
    expect(await series(METRIC_NAMES.concurrencyLimit)).to.deep.equal([{ labels: target, value: 4 }]);

    const scored = await first.process([record(30)]);
    expect(scored[0]).to.not.be.instanceOf(Error);

    server.queueFull = true;
    const error = await first.process([record(31)]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(RetriableError);
    // The server refused our only request: it holds none of ours now, so the limit falls to the
    // minimum (1), both tasks see it and each keeps one slot.
    expect(status(second).adaptive_limit).to.include({ limit: 1 });
    expect([status(first).max_in_flight, status(second).max_in_flight]).to.deep.equal([1, 1]);
    expect(await series(METRIC_NAMES.concurrencyLimit)).to.deep.equal([{ labels: target, value: 1 }]);
    expect(await series(METRIC_NAMES.overloadAnswers)).to.deep.equal([{ labels: target, value: 1 }]);

    await first.stop!();
    expect(status(second).max_in_flight).to.equal(1);
    expect(await series(METRIC_NAMES.concurrencyLimit)).to.deep.equal([{ labels: target, value: 1 }]);
    await second.stop!();
    expect(limits.size).to.equal(0);
    expect(await series(METRIC_NAMES.concurrencyLimit)).to.deep.equal([]);
  });

  it('with a fixed limit, counts overload answers and keeps its concurrency', async () => {
    const server = new FakeServer();
    const { limits, task, series } = worker(server, { 'max.in.flight.requests': 8 });
    const only = task(0);
    await only.start!();
    server.queueFull = true;
    await only.process([record(1)]).catch(() => undefined);
    await only.process([record(2)]).catch(() => undefined);
    expect(limits.size).to.equal(0);
    const rateLimiter = (only.describe!() as Status).rate_limiter;
    expect(rateLimiter.max_in_flight).to.equal(8);
    expect(rateLimiter.adaptive_limit).to.equal(undefined);
    expect(await series(METRIC_NAMES.overloadAnswers)).to.deep.equal([
      { labels: { target: '127.0.0.1:8500', model: 'null' }, value: 2 },
    ]);
    await only.stop!();
  });
});
