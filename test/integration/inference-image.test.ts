// The image example end to end: JPEG bytes (or file paths, as in the seed project) in Avro records,
// scored by the `image` model (input `image_bytes` DT_STRING, outputs top-k classes and scores),
// with config/image-inference.json as the connector config.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { builtinPlugins } from '../../connectors/index.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import {
  modelServerControl,
  modelServerTarget,
  registryUrl,
  testKafka,
  uniqueName,
} from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const plugins = builtinPlugins.includes(tfServingInferencePlugin)
  ? builtinPlugins
  : [...builtinPlugins, tfServingInferencePlugin];

const imagesDir = fileURLToPath(new URL('../../data/images/', import.meta.url));
const expected = JSON.parse(readFileSync(`${imagesDir}expected.json`, 'utf8')) as Record<string, string>;
const exampleConfig = (
  JSON.parse(readFileSync(new URL('../../config/image-inference.json', import.meta.url), 'utf8')) as {
    config: Record<string, string>;
  }
).config;
const schemaText = (name: string) => readFileSync(new URL(`../../schemas/${name}`, import.meta.url), 'utf8');

const registry = new SchemaRegistry({ host: registryUrl });

async function produceRecords(
  topic: string,
  schema: string,
  values: Array<{ id: string } & object>,
): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  await admin.disconnect();
  const { id } = await registry.register({ type: SchemaType.AVRO, schema }, { subject: `${topic}-value` });
  const type = avro.Type.forSchema(JSON.parse(schema) as avro.Schema);
  const producer = testKafka().producer();
  await producer.connect();
  await producer.send({
    topic,
    messages: values.map((value) => {
      const header = Buffer.alloc(5);
      header.writeInt32BE(id, 1);
      return { key: value.id, value: Buffer.concat([header, type.toBuffer(value)]) };
    }),
  });
  await producer.disconnect();
}

interface Read {
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

async function readTopic(topic: string, count: number): Promise<Read[]> {
  const admin = testKafka().admin();
  await admin.connect();
  await waitFor(
    async () => (await admin.listTopics()).includes(topic) || undefined,
    30_000,
    `topic ${topic}`,
  );
  await admin.disconnect();
  const consumer = testKafka().consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: Read[] = [];
  await consumer.run({
    eachMessage: async ({ message }) =>
      void out.push({
        key: message.key?.toString() ?? '',
        value: message.value ?? Buffer.alloc(0),
        headers: Object.fromEntries(
          Object.entries(message.headers ?? {}).map(([k, v]) => [k, v?.toString() ?? '']),
        ),
      }),
  });
  try {
    await waitFor(() => out.length >= count, 60_000, `${count} records on ${topic} (have ${out.length})`);
    return out;
  } finally {
    await consumer.disconnect();
  }
}

interface Scored {
  id: string;
  top_k_classes: string[];
  top_k_scores: number[];
  model_version: number;
}

function checkTopK(scored: Scored[]): void {
  expect(scored.map((s) => s.id).sort()).to.deep.equal(Object.keys(expected).sort());
  for (const s of scored) {
    expect(s.top_k_classes, s.id).to.have.length(3);
    expect(s.top_k_classes[0], `top-1 class of ${s.id}`).to.equal(expected[s.id]);
    expect(new Set(s.top_k_classes).size).to.equal(3);
    expect(s.top_k_scores).to.have.length(3);
    expect(s.top_k_scores[0]).to.be.within(0, 1);
    expect(s.top_k_scores).to.deep.equal([...s.top_k_scores].sort((a, b) => b - a));
    expect(s.model_version).to.equal(1);
  }
}

describe('image inference end to end', function () {
  this.timeout(120_000);

  afterEach(async () => {
    await fetch(`${modelServerControl}/reset`, { method: 'POST' });
  });

  it('writes top-k classes and scores for JPEG bytes; an undecodable image alone goes to the DLQ', async () => {
    const input = uniqueName('images');
    const images = Object.keys(expected).map((file) => ({
      id: file,
      image: readFileSync(`${imagesDir}${file}`),
    }));
    // The broken one sits among the good ones, so the model refuses their whole request.
    images.splice(3, 0, { id: 'broken.jpg', image: Buffer.from('this is not a JPEG') });
    await produceRecords(input, schemaText('image.avsc'), images);
    const worker = await startTestWorker({}, plugins);
    try {
      await worker.worker.putConnectorConfig(
        'images',
        {
          ...exampleConfig,
          topics: input,
          'output.topic': `${input}-scored`,
          'errors.deadletterqueue.topic.name': `${input}-dlq`,
          'tfserving.target': modelServerTarget,
        },
        false,
      );
      const scored = await readTopic(`${input}-scored`, 6);
      checkTopK(await Promise.all(scored.map(async (m) => (await registry.decode(m.value)) as Scored)));
      const [letter] = await readTopic(`${input}-dlq`, 1);
      expect(letter!.key).to.equal('broken.jpg');
      expect(letter!.headers['__connect.errors.error.code']).to.equal('MODEL_INVALID_ARGUMENT');
      expect(letter!.headers['__connect.errors.grpc.status.code']).to.equal('INVALID_ARGUMENT');
      expect(letter!.headers['__connect.errors.model.name']).to.equal('image');
      expect(Number(letter!.headers['__connect.errors.attempts'])).to.be.greaterThan(1);
    } finally {
      await worker.stop();
    }
  });

  it('reads the image from a file path field (input.file.fields); an unreadable path alone goes to the DLQ', async () => {
    const input = uniqueName('image-paths');
    const paths = Object.keys(expected).map((file) => ({ id: file, path: file }));
    paths.push({ id: 'missing.jpg', path: 'missing.jpg' });
    await produceRecords(input, schemaText('image-path.avsc'), paths);
    const worker = await startTestWorker({}, plugins);
    try {
      await worker.worker.putConnectorConfig(
        'image-paths',
        {
          ...exampleConfig,
          topics: input,
          'output.topic': `${input}-scored`,
          'errors.deadletterqueue.topic.name': `${input}-dlq`,
          'tfserving.target': modelServerTarget,
          'input.mapping': 'image_bytes=path',
          'input.file.fields': 'path',
          'input.file.base.dir': imagesDir,
        },
        false,
      );
      const scored = await readTopic(`${input}-scored`, 6);
      const values = await Promise.all(scored.map(async (m) => (await registry.decode(m.value)) as Scored));
      checkTopK(values);
      const [letter] = await readTopic(`${input}-dlq`, 1);
      expect(letter!.key).to.equal('missing.jpg');
      expect(letter!.headers['__connect.errors.error.code']).to.equal('MODEL_INPUT_MISSING');
      expect(letter!.headers['__connect.errors.field']).to.equal('path');
      expect(letter!.headers['__connect.errors.exception.message']).to.contain('ENOENT');
    } finally {
      await worker.stop();
    }
  });
});
