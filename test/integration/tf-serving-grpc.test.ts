// TFServingClient and the tensor codec against the real model server (dev/model-server/server.py)
// that `npm run test:integration` starts. The reference answers come from running the same
// SavedModel in-process with dev/model-server/predict_local.py.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  TFServingCallError,
  TFServingClient,
  type PredictRequest,
} from '../../connectors/tf-serving/grpc-client.js';
import { decodeTensor, encodeTensor, type TensorProto } from '../../connectors/tf-serving/tensor-codec.js';
import { modelServerControl, modelServerTarget } from '../helpers/stack.js';

const repoRoot = join(import.meta.dirname, '..', '..');
const cacheDir = process.env.INFER_CONNECT_CACHE ?? join(homedir(), '.cache', 'infer-connect');
// The model base the server was started with; the stack uses <cache>/models.
const modelBase = process.env.INFER_CONNECT_MODEL_BASE ?? join(cacheDir, 'models');

const CENSUS_INT_COLUMNS = [
  'age',
  'fnlwgt',
  'education_num',
  'capital_gain',
  'capital_loss',
  'hours_per_week',
];
const CENSUS_STRING_COLUMNS = [
  'workclass',
  'education',
  'marital_status',
  'occupation',
  'relationship',
  'race',
  'sex',
  'native_country',
];

/** The model inputs of the first `count` rows of the census test split, as column -> values. */
function censusColumns(count: number): Record<string, (number | string)[]> {
  const [header, ...rows] = readFileSync(join(repoRoot, 'data', 'census', 'adult.test.csv'), 'utf8')
    .split('\n')
    .filter((line) => line !== '');
  const names = header!.split(',');
  const columns: Record<string, (number | string)[]> = {};
  for (const row of rows.slice(0, count)) {
    row.split(',').forEach((value, i) => {
      const name = names[i]!;
      if (CENSUS_INT_COLUMNS.includes(name)) (columns[name] ??= []).push(Number(value));
      else if (CENSUS_STRING_COLUMNS.includes(name)) (columns[name] ??= []).push(value);
    });
  }
  return columns;
}

function censusInputs(columns: Record<string, (number | string)[]>): Record<string, TensorProto> {
  const inputs: Record<string, TensorProto> = {};
  for (const name of CENSUS_INT_COLUMNS)
    inputs[name] = encodeTensor('DT_INT64', [columns[name]!.length], columns[name]!);
  for (const name of CENSUS_STRING_COLUMNS) {
    inputs[name] = encodeTensor('DT_STRING', [columns[name]!.length], columns[name]!);
  }
  return inputs;
}

/** Runs predict_local.py on `rows` ({input: [values]}) and returns its JSON answer. */
function predictLocally(
  modelDir: string,
  rows: Record<string, unknown[]>,
): Promise<Record<string, unknown[]>> {
  const python = join(cacheDir, 'venv', 'bin', 'python');
  const script = join(repoRoot, 'dev', 'model-server', 'predict_local.py');
  return new Promise((resolve, reject) => {
    const child = execFile(
      python,
      [script, modelDir],
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const lastLines = stderr.trim().split('\n').slice(-3).join('\n');
        if (error)
          reject(new Error(`${script} ${modelDir} failed (exit ${String(error.code)}):\n${lastLines}`));
        else resolve(JSON.parse(stdout) as Record<string, unknown[]>);
      },
    );
    child.stdin!.end(JSON.stringify(rows));
  });
}

async function postControl(path: string, body: unknown): Promise<void> {
  const response = await fetch(`${modelServerControl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`POST ${path} failed: HTTP ${response.status} ${await response.text()}`);
}

async function callError(promise: Promise<unknown>): Promise<TFServingCallError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(TFServingCallError);
    return error as TFServingCallError;
  }
  throw new Error('expected the call to fail');
}

describe('TFServingClient against the model server', function () {
  this.timeout(120_000);
  let client: TFServingClient;

  before(() => {
    client = new TFServingClient({
      target: modelServerTarget,
      deadlineMs: 30_000,
      maxSendMessageBytes: 16 * 1024 * 1024,
      maxReceiveMessageBytes: 16 * 1024 * 1024,
    });
  });
  after(() => client.close());

  it('reads the census serving signature: 14 named inputs with their dtypes, and both outputs', async () => {
    const metadata = await client.getModelMetadata({ name: 'census' });
    expect(metadata.model).to.deep.equal({ name: 'census', version: 1 });
    const signature = metadata.signatures.serving_default;
    expect(signature, 'serving_default signature').to.not.equal(undefined);
    expect(signature!.methodName).to.equal('tensorflow/serving/predict');
    const inputs = Object.fromEntries(
      Object.entries(signature!.inputs).map(([name, spec]) => [name, spec.dtype]),
    );
    expect(inputs).to.deep.equal({
      ...Object.fromEntries(CENSUS_INT_COLUMNS.map((name) => [name, 'DT_INT64'])),
      ...Object.fromEntries(CENSUS_STRING_COLUMNS.map((name) => [name, 'DT_STRING'])),
    });
    for (const spec of Object.values(signature!.inputs)) {
      expect(spec.shape).to.deep.equal([-1]);
      expect(spec.encoding).to.equal('name');
    }
    expect(signature!.outputs.probability).to.deep.include({ dtype: 'DT_FLOAT', shape: [-1] });
    expect(signature!.outputs.predicted_class).to.deep.include({ dtype: 'DT_STRING', shape: [-1] });
  });

  describe('census predictions', () => {
    const columns = censusColumns(3);
    const request: PredictRequest = { model: { name: 'census' }, inputs: censusInputs(columns) };
    let reference: { probability: number[]; predicted_class: string[] };

    before(async () => {
      reference = (await predictLocally(join(modelBase, 'census', '1'), columns)) as typeof reference;
      expect(reference.probability).to.have.length(3);
    });

    it('match the model run locally on the first 3 test rows', async () => {
      const result = await client.predict(request);
      expect(result.model).to.deep.equal({ name: 'census', version: 1, signatureName: 'serving_default' });
      const probability = decodeTensor(result.outputs.probability!);
      expect(probability.dtype).to.equal('DT_FLOAT');
      expect(probability.shape).to.deep.equal([3]);
      (probability.values as number[]).forEach((p, i) =>
        expect(p).to.be.closeTo(reference.probability[i]!, 1e-5),
      );
      const predicted = decodeTensor(result.outputs.predicted_class!);
      expect((predicted.values as Buffer[]).map((b) => b.toString('utf8'))).to.deep.equal(
        reference.predicted_class,
      );
    });

    it('decode to the same values when the server answers in tensor_content', async () => {
      const typed = await client.predict(request);
      await postControl('/faults', { response_encoding: 'tensor_content' });
      let packed;
      try {
        packed = await client.predict(request);
      } finally {
        await postControl('/reset', {});
      }
      const raw = packed.outputs.probability!;
      expect(raw.tensor_content?.byteLength).to.equal(3 * 4);
      expect(raw.float_val ?? []).to.have.length(0);
      expect(decodeTensor(raw)).to.deep.equal(decodeTensor(typed.outputs.probability!));
      expect(decodeTensor(packed.outputs.predicted_class!)).to.deep.equal(
        decodeTensor(typed.outputs.predicted_class!),
      );
    });

    it('are refused with INVALID_ARGUMENT when an input has the wrong dtype', async () => {
      const inputs = { ...request.inputs, age: encodeTensor('DT_STRING', [3], ['25', '38', '28']) };
      const error = await callError(client.predict({ model: { name: 'census' }, inputs }));
      expect(error.codeName).to.equal('INVALID_ARGUMENT');
      expect(error.details).to.contain("'age'");
    });
  });

  it('answers NOT_FOUND for a model the server does not have', async () => {
    const error = await callError(
      client.predict({
        model: { name: 'no-such-model' },
        inputs: { age: encodeTensor('DT_INT64', [1], [1]) },
      }),
    );
    expect(error.codeName).to.equal('NOT_FOUND');
    expect(error.method).to.equal('Predict');
    expect(error.modelSpec).to.deep.equal({ name: 'no-such-model' });
  });

  describe('version selection on the null model', () => {
    const ages = [17, 39, 90];
    async function scores(model: PredictRequest['model']) {
      const result = await client.predict({ model, inputs: { age: encodeTensor('DT_INT64', [3], ages) } });
      return { version: result.model.version, score: decodeTensor(result.outputs.score!).values };
    }

    it('serves version 1 by number (echoes age) and version 2 by number (age + 1)', async () => {
      expect(await scores({ name: 'null', version: 1 })).to.deep.equal({ version: 1, score: [17, 39, 90] });
      expect(await scores({ name: 'null', version: 2 })).to.deep.equal({ version: 2, score: [18, 40, 91] });
    });

    it('serves the versions the labels stable and canary point at', async () => {
      expect(await scores({ name: 'null', versionLabel: 'stable' })).to.deep.equal({
        version: 1,
        score: [17, 39, 90],
      });
      expect(await scores({ name: 'null', versionLabel: 'canary' })).to.deep.equal({
        version: 2,
        score: [18, 40, 91],
      });
    });

    it('serves the latest version when none is given', async () => {
      expect(await scores({ name: 'null' })).to.deep.equal({ version: 2, score: [18, 40, 91] });
    });

    it('answers NOT_FOUND for a version that is not loaded', async () => {
      const error = await callError(scores({ name: 'null', version: 9 }));
      expect(error.codeName).to.equal('NOT_FOUND');
    });
  });

  it('reports every loaded version as AVAILABLE', async () => {
    expect(await client.getModelStatus({ name: 'census' })).to.deep.equal([
      { version: 1, state: 'AVAILABLE', errorCode: 'OK', errorMessage: '' },
    ]);
    const nullStatus = await client.getModelStatus({ name: 'null' });
    expect(nullStatus.map((s) => [s.version, s.state])).to.deep.equal([
      [1, 'AVAILABLE'],
      [2, 'AVAILABLE'],
    ]);
  });

  it('answers GetModelStatus for an unknown model with NOT_FOUND', async () => {
    const error = await callError(client.getModelStatus({ name: 'no-such-model' }));
    expect(error.codeName).to.equal('NOT_FOUND');
    expect(error.method).to.equal('GetModelStatus');
  });
});
