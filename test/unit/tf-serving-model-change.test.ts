// The inference task while the model changes under it: a new latest version, or a version label
// moved, with another signature. Fakes stand in for TF Serving; the batcher's timer is driven by
// hand, so each test decides exactly which rows share a request.
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
  type ModelSpec,
  type PredictRequest,
  type PredictResult,
  type SignatureSpec,
  type TensorSpec,
} from '../../connectors/tf-serving/grpc-client.js';
import { decodeTensor, encodeTensor, type TensorProto } from '../../connectors/tf-serving/tensor-codec.js';
import { METRIC_NAMES } from '../../connectors/tf-serving/metrics.js';

const dense = (dtype: TensorSpec['dtype']): TensorSpec => ({
  dtype,
  shape: [-1],
  encoding: 'name',
  graphTensorName: 'x:0',
});

interface FakeVersion {
  signatures: Record<string, SignatureSpec>;
  /** Per-row outputs from the decoded inputs (each an array over the batch). */
  compute(inputs: Record<string, Array<number | Buffer>>): Record<string, TensorProto>;
}

/** v1 and v4: age -> score (= age, = age + 100). */
const AGE_TO_SCORE: SignatureSpec = {
  methodName: 'tensorflow/serving/predict',
  inputs: { age: dense('DT_INT64') },
  outputs: { score: dense('DT_FLOAT') },
};

const VERSIONS: Record<number, FakeVersion> = {
  1: {
    signatures: { serving_default: AGE_TO_SCORE },
    compute: ({ age }) => ({ score: encodeTensor('DT_FLOAT', [age!.length], age as number[]) }),
  },
  // Another signature the records can feed: two inputs, another output.
  2: {
    signatures: {
      serving_default: {
        methodName: 'tensorflow/serving/predict',
        inputs: { age: dense('DT_INT64'), hours: dense('DT_INT64') },
        outputs: { risk: dense('DT_DOUBLE') },
      },
    },
    compute: ({ age, hours }) => ({
      risk: encodeTensor(
        'DT_DOUBLE',
        [age!.length],
        (age as number[]).map((a, i) => a * (hours![i] as number)),
      ),
    }),
  },
  // A signature no record field feeds.
  3: {
    signatures: {
      serving_default: {
        methodName: 'tensorflow/serving/predict',
        inputs: { image_bytes: dense('DT_STRING') },
        outputs: { label: dense('DT_STRING') },
      },
    },
    compute: ({ image_bytes }) => ({
      label: encodeTensor(
        'DT_STRING',
        [image_bytes!.length],
        image_bytes!.map(() => 'cat'),
      ),
    }),
  },
  // The signature of v1, other weights.
  4: {
    signatures: { serving_default: AGE_TO_SCORE },
    compute: ({ age }) => ({
      score: encodeTensor(
        'DT_FLOAT',
        [age!.length],
        (age as number[]).map((a) => a + 100),
      ),
    }),
  },
  // No serving_default at all.
  5: { signatures: { classify: AGE_TO_SCORE }, compute: () => ({}) },
};

interface PredictCall {
  version: number;
  ids: number[];
  outcome: 'OK' | string;
}

/**
 * TF Serving with the versions above, following its rules: the latest version (or the labelled
 * one) answers, inputs must match the signature exactly (INVALID_ARGUMENT otherwise, as
 * predict_util.cc), an unknown signature is FAILED_PRECONDITION, an age of 13 is refused with
 * INVALID_ARGUMENT (a value the graph rejects). `hold()` keeps the next Predicts waiting until
 * `release()`, each answered by the version resolved when it arrived (or, with
 * `hold({ resolveOnRelease: true })`, the version served when it is released).
 */
class ChangingTFServing implements TFServingApi {
  latest = 1;
  labels: Record<string, number> = {};
  metadataCalls: number[] = [];
  metadataFailures: grpc.status[] = [];
  predictions: PredictCall[] = [];
  private held: Array<() => void> | undefined;
  private resolveOnRelease = false;

  hold(options: { resolveOnRelease?: boolean } = {}): void {
    this.held = [];
    this.resolveOnRelease = options.resolveOnRelease ?? false;
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const go of held) go();
  }

  private resolve(model: ModelSpec, method: 'Predict' | 'GetModelMetadata'): number {
    if (model.versionLabel !== undefined) {
      const version = this.labels[model.versionLabel];
      if (version === undefined)
        throw this.error(
          grpc.status.INVALID_ARGUMENT,
          method,
          model,
          `Unrecognized servable version label: ${model.versionLabel}`,
        );
      return version;
    }
    return model.version ?? this.latest;
  }

  async getModelMetadata(model: ModelSpec): Promise<ModelMetadata> {
    const failure = this.metadataFailures.shift();
    if (failure !== undefined) throw this.error(failure, 'GetModelMetadata', model, 'injected');
    const version = this.resolve(model, 'GetModelMetadata');
    this.metadataCalls.push(version);
    return {
      model: { name: model.name, version },
      signatures: {
        ...VERSIONS[version]!.signatures,
        __saved_model_init_op: { methodName: '', inputs: {}, outputs: {} },
      },
    };
  }

  async predict(request: PredictRequest): Promise<PredictResult> {
    let version = this.resolve(request.model, 'Predict');
    if (this.held !== undefined) {
      const late = this.resolveOnRelease;
      await new Promise<void>((go) => this.held!.push(go));
      if (late) version = this.resolve(request.model, 'Predict');
    }
    const inputs = Object.fromEntries(
      Object.entries(request.inputs).map(([name, tensor]) => [
        name,
        decodeTensor(tensor).values as Array<number | Buffer>,
      ]),
    );
    const ids = (inputs.age as number[] | undefined) ?? [];
    const refuse = (code: grpc.status, details: string) => {
      this.predictions.push({ version, ids, outcome: grpc.status[code]! });
      return this.error(code, 'Predict', request.model, details);
    };
    const signature = VERSIONS[version]!.signatures[request.model.signatureName || 'serving_default'];
    if (signature === undefined)
      throw refuse(grpc.status.FAILED_PRECONDITION, 'Serving signature key "serving_default" not found.');
    const expected = Object.keys(signature.inputs).sort().join(',');
    if (Object.keys(inputs).sort().join(',') !== expected)
      throw refuse(
        grpc.status.INVALID_ARGUMENT,
        `input size does not match signature: expected {${expected}}`,
      );
    for (const name of request.outputFilter ?? [])
      if (!(name in signature.outputs))
        throw refuse(grpc.status.INVALID_ARGUMENT, `output tensor alias not found in signature: ${name}`);
    if (ids.includes(13)) throw refuse(grpc.status.INVALID_ARGUMENT, 'age 13 is unlucky');
    this.predictions.push({ version, ids, outcome: 'OK' });
    return {
      model: { name: request.model.name, version, signatureName: 'serving_default' },
      outputs: VERSIONS[version]!.compute(inputs),
    };
  }

  /** Ids scored by a successful Predict, in order. */
  scoredIds(): number[] {
    return this.predictions.filter((p) => p.outcome === 'OK').flatMap((p) => p.ids);
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
      { name: 'age', type: 'long' },
      { name: 'hours', type: 'long' },
    ],
  },
  { wrapUnions: 'auto', omitRecordMethods: true } as avro.ForSchemaOptions,
);

/** Record `n` has age n (so the fake's Predict log names the records it saw) and hours 2. */
function record(n: number): ConnectRecord {
  return {
    topic: 'people',
    partition: 0,
    offset: String(n),
    timestamp: '1700000000000',
    key: `k${n}`,
    value: { id: `p${n}`, age: n, hours: 2 },
    valueSchema: { id: 42, type: personSchema },
    headers: {},
    rawKey: Buffer.from(`k${n}`),
    rawValue: Buffer.from('raw'),
  };
}

interface Harness {
  task: ProcessorTask;
  server: ChangingTFServing;
  registry: Registry;
  /** Fires every pending batcher timer (rows waiting for a fuller batch are sent). */
  flush(): void;
}

function harness(config: Record<string, unknown> = {}, server = new ChangingTFServing()): Harness {
  const clock = { now: 1_700_000_000_000 };
  const timers = new Set<() => void>();
  const connect: ClientConnector = async () => ({ client: server, release: () => undefined });
  const plugin = createTfServingInferencePlugin({
    connect,
    sleep: async (ms) => {
      clock.now += ms;
      return true;
    },
    setTimer: (fn) => {
      timers.add(fn);
      return () => timers.delete(fn);
    },
  });
  const { config: parsed, problems } = parseConfig(connectorSpecFor(plugin), {
    name: 'scores',
    'connector.class': 'TFServingInference',
    topics: 'people',
    'output.topic': 'people-scored',
    'tfserving.target': '127.0.0.1:8500',
    'tfserving.model.name': 'people',
    'output.metadata.fields': 'model.version',
    'batch.max.records': 2,
    'batch.max.wait.ms': 50,
    ...config,
  });
  if (!parsed) throw new Error(JSON.stringify(problems));
  const registry = new Registry();
  const task = plugin.createTask({
    connectorName: 'scores',
    taskId: 0,
    config: parsed,
    logger: pino({ level: 'silent' }),
    metrics: registry,
    metricLabels: { connector: 'scores', task: '0' },
    signal: new AbortController().signal,
    now: () => clock.now,
  });
  const flush = () => {
    const due = [...timers];
    timers.clear();
    for (const fn of due) fn();
  };
  return { task, server, registry, flush };
}

const written = (results: Array<OutputRecord[] | Error>): OutputRecord[] =>
  results.map((r) => {
    if (r instanceof Error) throw r;
    return r[0]!;
  });

const fieldsOf = (record: OutputRecord): string[] =>
  (record.valueSchema!.schema() as { fields: Array<{ name: string }> }).fields.map((f) => f.name);

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('TF Serving inference task when the model changes under it', () => {
  it('follows a new latest version with another signature: metadata re-read, plan rebuilt, the refused batch scored once, nothing dead-lettered', async () => {
    const h = harness();
    await h.task.start!();
    const before = written(await h.task.process([record(1), record(2)]));
    expect(before.map((r) => r.value)).to.deep.equal([
      { id: 'p1', age: 1, hours: 2, score: 1, model_version: 1 },
      { id: 'p2', age: 2, hours: 2, score: 2, model_version: 1 },
    ]);

    h.server.latest = 2;
    const after = written(await h.task.process([record(3), record(4)]));
    expect(after.map((r) => r.value)).to.deep.equal([
      { id: 'p3', age: 3, hours: 2, risk: 6, model_version: 2 },
      { id: 'p4', age: 4, hours: 2, risk: 8, model_version: 2 },
    ]);
    expect(fieldsOf(before[0]!)).to.deep.equal(['id', 'age', 'hours', 'score', 'model_version']);
    expect(fieldsOf(after[0]!), 'the output schema follows the new signature').to.deep.equal([
      'id',
      'age',
      'hours',
      'risk',
      'model_version',
    ]);
    expect(h.server.metadataCalls, 'read at start, then once at the change').to.deep.equal([1, 2]);
    expect(h.server.predictions.map((p) => [p.version, p.ids, p.outcome])).to.deep.equal([
      [1, [1, 2], 'OK'],
      [2, [3, 4], 'INVALID_ARGUMENT'],
      [2, [3, 4], 'OK'],
    ]);
    const bisections = await h.registry.getSingleMetric(METRIC_NAMES.bisections)!.get();
    expect(bisections.values[0]?.value ?? 0, 'no bisection').to.equal(0);
    expect(h.task.describe!()).to.deep.include({
      model: {
        name: 'people',
        served_version: 2,
        signature: 'serving_default',
        signature_changes: 1,
      },
    });
    await h.task.stop!();
  });

  it('writes rows the old version answered with the old schema, and sends rows the new version refused again under the new signature', async () => {
    const h = harness();
    await h.task.start!();
    h.server.hold();
    const old = h.task.process([record(1), record(2)]); // a full batch: sent now, held, version 1
    await tick();
    h.server.latest = 2;
    const refused = h.task.process([record(3), record(4)]); // sent under the old plan to version 2
    await tick();
    h.server.release();
    const [answered, rescored] = [written(await old), written(await refused)];

    expect(answered.map((r) => r.value)).to.deep.equal([
      { id: 'p1', age: 1, hours: 2, score: 1, model_version: 1 },
      { id: 'p2', age: 2, hours: 2, score: 2, model_version: 1 },
    ]);
    expect(fieldsOf(answered[0]!)).to.include('score').and.not.include('risk');
    expect(rescored.map((r) => r.value)).to.deep.equal([
      { id: 'p3', age: 3, hours: 2, risk: 6, model_version: 2 },
      { id: 'p4', age: 4, hours: 2, risk: 8, model_version: 2 },
    ]);
    expect(fieldsOf(rescored[0]!)).to.include('risk').and.not.include('score');
    expect(
      h.server.scoredIds().sort((a, b) => a - b),
      'every record scored exactly once',
    ).to.deep.equal([1, 2, 3, 4]);
    await h.task.stop!();
  });

  it('extracts rows still waiting for a batch at the change again, and sends them once, under the new signature', async () => {
    const h = harness();
    await h.task.start!();
    h.server.hold({ resolveOnRelease: true });
    const inFlight = h.task.process([record(1), record(2)]); // sent now, held
    await tick();
    const waiting = h.task.process([record(3)]); // waits for a fuller batch under the old plan
    await tick();
    h.server.latest = 2;
    h.server.release(); // version 2 refuses [1, 2]: signature re-read, [1, 2] sent again
    const first = written(await inFlight);
    h.flush(); // the waiting row goes out now
    const late = written(await waiting);

    expect(first.map((r) => (r.value as { risk: number }).risk)).to.deep.equal([2, 4]);
    expect(late.map((r) => r.value)).to.deep.equal([
      { id: 'p3', age: 3, hours: 2, risk: 6, model_version: 2 },
    ]);
    expect(late[0]!.valueSchema, 'one output schema object per plan and input schema').to.equal(
      first[0]!.valueSchema,
    );
    expect(h.server.predictions.map((p) => [p.version, p.ids, p.outcome])).to.deep.equal([
      [2, [1, 2], 'INVALID_ARGUMENT'],
      [2, [1, 2], 'OK'],
      [2, [3], 'OK'],
    ]);
    await h.task.stop!();
  });

  it('follows a version label moved to a version with another signature', async () => {
    const server = new ChangingTFServing();
    server.labels = { live: 1 };
    const h = harness({ 'tfserving.model.version.label': 'live' }, server);
    await h.task.start!();
    expect(written(await h.task.process([record(1), record(2)]))[0]!.value).to.include({ score: 1 });
    server.labels = { live: 2 };
    const moved = written(await h.task.process([record(3), record(4)]));
    expect(moved.map((r) => r.value)).to.deep.equal([
      { id: 'p3', age: 3, hours: 2, risk: 6, model_version: 2 },
      { id: 'p4', age: 4, hours: 2, risk: 8, model_version: 2 },
    ]);
    expect(server.metadataCalls).to.deep.equal([1, 2]);
    await h.task.stop!();
  });

  it('only notes the version when a new version keeps the signature: same plan, same output schema, one metadata read', async () => {
    const h = harness();
    await h.task.start!();
    const [first] = written(await h.task.process([record(1), record(2)]));
    h.server.latest = 4;
    const next = written(await h.task.process([record(3), record(4)]));
    const later = written(await h.task.process([record(5), record(6)]));
    expect(next.map((r) => r.value)).to.deep.equal([
      { id: 'p3', age: 3, hours: 2, score: 103, model_version: 4 },
      { id: 'p4', age: 4, hours: 2, score: 104, model_version: 4 },
    ]);
    expect(later[0]!.valueSchema).to.equal(first!.valueSchema);
    expect(h.server.metadataCalls, 'one check at the first answer of version 4').to.deep.equal([1, 4]);
    expect(h.task.describe!()).to.have.nested.property('model.signature_changes', 0);
    await h.task.stop!();
  });

  it('fails the task with MODEL_SIGNATURE_CHANGED naming the version and the tensor when the records cannot feed the new version; nothing is dead-lettered', async () => {
    const h = harness();
    await h.task.start!();
    written(await h.task.process([record(1), record(2)]));
    h.server.latest = 3;
    const error = (await rejection(h.task.process([record(3), record(4)]))) as FatalError;
    expect(error).to.be.instanceOf(FatalError);
    expect(error.code).to.equal('MODEL_SIGNATURE_CHANGED');
    expect(error.message)
      .to.contain('now serves version 3')
      .and.contain('"image_bytes"')
      .and.contain('Nothing was dead-lettered')
      .and.contain('pin tfserving.model.version=1');
    expect(error.context).to.include({ 'model.version': 3, tensor: 'image_bytes' });
    const sent = h.server.predictions.length;
    const again = await rejection(h.task.process([record(5)]));
    expect(again, 'later calls fail with the same error').to.equal(error);
    expect(h.server.predictions.length, 'without calling the model').to.equal(sent);
    expect(h.server.scoredIds()).to.deep.equal([1, 2]);
    await h.task.stop!();
  });

  it('fails the task when the new version lacks the signature (FAILED_PRECONDITION), naming that version', async () => {
    const h = harness();
    await h.task.start!();
    h.server.latest = 5;
    const error = (await rejection(h.task.process([record(1), record(2)]))) as FatalError;
    expect(error).to.be.instanceOf(FatalError);
    expect(error.code).to.equal('MODEL_SIGNATURE_NOT_FOUND');
    expect(error.message).to.contain('(version 5) has no signature "serving_default"; it has: classify');
    await h.task.stop!();
  });

  it('re-reads the signature once for several requests refused after the same change', async () => {
    const h = harness({ 'max.in.flight.requests': 4 });
    await h.task.start!();
    h.server.latest = 2;
    const results = await Promise.all([
      h.task.process([record(1), record(2)]),
      h.task.process([
        { ...record(3), partition: 1 },
        { ...record(4), partition: 1 },
      ]),
      h.task.process([
        { ...record(5), partition: 2 },
        { ...record(6), partition: 2 },
      ]),
    ]);
    expect(results.flat().every((r) => !(r instanceof Error))).to.equal(true);
    expect(h.server.metadataCalls).to.deep.equal([1, 2]);
    expect(h.server.scoredIds().sort((a, b) => a - b)).to.deep.equal([1, 2, 3, 4, 5, 6]);
    await h.task.stop!();
  });

  it('still isolates a record the model refuses when the signature did not change: one metadata read per refused batch, none per half', async () => {
    const h = harness({ 'batch.max.records': 8 });
    await h.task.start!();
    const results = await h.task.process(Array.from({ length: 8 }, (_, i) => record(i === 5 ? 13 : 20 + i)));
    expect(results.map((r) => r instanceof RecordError)).to.deep.equal([
      false,
      false,
      false,
      false,
      false,
      true,
      false,
      false,
    ]);
    expect((results[5] as RecordError).code).to.equal('MODEL_INVALID_ARGUMENT');
    expect(h.server.metadataCalls).to.deep.equal([1, 1]);
    await h.task.stop!();
  });

  it('with a pinned version, bisects a refused batch without re-reading the signature', async () => {
    const h = harness({ 'tfserving.model.version': 1, 'batch.max.records': 4 });
    await h.task.start!();
    const results = await h.task.process([record(20), record(13), record(22), record(23)]);
    expect(results.filter((r) => r instanceof RecordError)).to.have.length(1);
    expect(h.server.metadataCalls).to.deep.equal([1]);
    await h.task.stop!();
  });

  it('redelivers the batch (RetriableError) when the signature cannot be re-read yet, and scores it on the next attempt', async () => {
    const h = harness();
    await h.task.start!();
    h.server.latest = 2;
    h.server.metadataFailures = [grpc.status.UNAVAILABLE];
    const error = await rejection(h.task.process([record(1), record(2)]));
    expect(error).to.be.instanceOf(RetriableError);
    expect((error as RetriableError).code).to.equal('MODEL_UNAVAILABLE');
    expect(error.message).to.contain('GetModelMetadata');
    const retried = written(await h.task.process([record(1), record(2)]));
    expect(retried.map((r) => (r.value as { risk: number }).risk)).to.deep.equal([2, 4]);
    expect(h.server.scoredIds()).to.deep.equal([1, 2]);
    await h.task.stop!();
  });
});
