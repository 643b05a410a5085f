import { fileURLToPath } from 'node:url';
// The bad-record corpus end to end (test/corpus/records/records.jsonl and its README). Every case is produced between good neighbours into a 3-partition
// input topic and run through a real worker: TFServingInference with the census model for the
// wire-level, schema and value cases, and with the image model reading files (input.file.fields)
// for the file cases, against the real Kafka, schema registry and model server. Everything is
// checked from the topics: each bad record is in the dead-letter topic with its original key, value
// bytes, headers and timestamp and the `__connect.errors.*` context headers; each good neighbour is
// scored exactly once. The worker's event-loop delay is sampled through GET /metrics meanwhile.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { builtinPlugins } from '../../connectors/index.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import { sampleEventLoopLag, type LagSummary } from '../helpers/event-loop-lag.js';
import {
  createTopic,
  messageCount,
  producePartitions,
  readTopic,
  TopicReader,
  type Consumed,
  type Produced,
} from '../helpers/kafka-topics.js';
import {
  censusRows,
  censusSchemaText,
  censusValue,
  frame,
  imagePathSchemaText,
  loadCorpus,
  makeFile,
  parseAvro,
  register,
  type CorpusCase,
} from '../helpers/record-corpus.js';
import { modelServerTarget, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const plugins = builtinPlugins.includes(tfServingInferencePlugin)
  ? builtinPlugins
  : [...builtinPlugins, tfServingInferencePlugin];

const exampleConfig = (file: string) =>
  (
    JSON.parse(readFileSync(new URL(`../../config/${file}`, import.meta.url), 'utf8')) as {
      config: Record<string, string>;
    }
  ).config;

const imagesDir = new URL('../../data/images/', import.meta.url).pathname;
const jpegs = readdirSync(imagesDir)
  .filter((f) => f.endsWith('.jpg'))
  .sort();

/** The `__connect.errors.*` headers every dead letter carries, whatever failed. */
const REQUIRED_HEADERS = [
  'topic',
  'partition',
  'offset',
  'connector.name',
  'task.id',
  'stage',
  'class.name',
  'exception.class.name',
  'exception.message',
  'exception.stacktrace',
  'error.code',
];
const MAX_RECORD_BYTES = 4096;
const MAX_FILE_BYTES = 65536;
const GOOD_BETWEEN = 2;

// ------------------------------------------------------------------------------ the corpus

interface Planned {
  index: number;
  corpusCase: CorpusCase;
  message: Produced;
  partition: number;
  /** The good records right before and after it in its partition. */
  neighbours: string[];
  /** What the registry did with a deleted schema's id, for the table. */
  note?: string;
}

let timestamp = 1_700_000_000_000;
const nextTimestamp = () => String(timestamp++);

function message(key: string, value: Buffer, kind: string): Produced {
  return {
    key,
    value,
    headers: { 'corpus.case': kind, 'corpus.trace': `trace-${key}` },
    timestamp: nextTimestamp(),
  };
}

const slug = (kind: string) =>
  kind
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);

/**
 * Lays the cases of one connector out over three partitions, round robin, each between
 * GOOD_BETWEEN good records on either side.
 */
function layout(
  cases: Array<{ index: number; corpusCase: CorpusCase; value: Buffer; note?: string }>,
  good: (n: number) => Produced,
): { partitions: Produced[][]; planned: Planned[]; goodKeys: string[] } {
  const partitions: Produced[][] = [[], [], []];
  const planned: Planned[] = [];
  const goodKeys: string[] = [];
  let n = 0;
  const addGood = (partition: number) => {
    for (let g = 0; g < GOOD_BETWEEN; g++) {
      const record = good(n++);
      partitions[partition]!.push(record);
      goodKeys.push(record.key);
    }
  };
  for (const partition of [0, 1, 2]) addGood(partition);
  cases.forEach(({ index, corpusCase, value, note }, i) => {
    const partition = i % 3;
    const list = partitions[partition]!;
    const before = list[list.length - 1]!.key;
    const produced = message(`bad-${index}-${slug(corpusCase.kind)}`, value, corpusCase.kind);
    list.push(produced);
    addGood(partition);
    planned.push({
      index,
      corpusCase,
      message: produced,
      partition,
      neighbours: [before, list[list.length - GOOD_BETWEEN]!.key],
      ...(note !== undefined ? { note } : {}),
    });
  });
  return { partitions, planned, goodKeys };
}

describe('bad-record corpus end to end', function () {
  this.timeout(300_000);

  it('dead-letters every kind of bad record alone, byte for byte with its context headers, scores every good neighbour once, and keeps the event loop responsive', async () => {
    const corpus = loadCorpus();
    const dlqCases = corpus.filter((c) => c.expect.outcome === 'dlq');
    expect(dlqCases.length, 'kinds of bad record in the corpus').to.be.at.least(25);
    const rows = censusRows();
    const run = uniqueName('corpus');
    const topics = { census: `${run}-census`, images: `${run}-images` };
    await Promise.all([createTopic(topics.census, 3), createTopic(topics.images, 3)]);
    const censusId = await register(`${topics.census}-value`, censusSchemaText);
    const imagePathId = await register(`${topics.images}-value`, imagePathSchemaText);
    const censusType = parseAvro(JSON.parse(censusSchemaText));
    const imagePathType = parseAvro(JSON.parse(imagePathSchemaText));

    // Files the image records name: the sample JPEGs, and whatever the cases make.
    const baseDir = join(mkdtempSync(join(tmpdir(), 'corpus-files-')), 'images');
    mkdirSync(baseDir);
    for (const jpeg of jpegs) copyFileSync(join(imagesDir, jpeg), join(baseDir, jpeg));

    // The bytes of each case.
    const built: Record<
      'census' | 'images',
      Array<{ index: number; corpusCase: CorpusCase; value: Buffer; note?: string }>
    > = { census: [], images: [] };
    for (const [index, corpusCase] of corpus.entries()) {
      const recipe = corpusCase.value;
      if (corpusCase.connector === 'images') {
        const path = recipe.path as string;
        makeFile(baseDir, path, recipe.make as Record<string, unknown> | undefined);
        const key = `bad-${index}-${slug(corpusCase.kind)}`;
        built.images.push({
          index,
          corpusCase,
          value: frame(imagePathId, imagePathType.toBuffer({ id: key, path })),
        });
        continue;
      }
      const { value, note } = await censusValue(recipe, { run, index, censusId, rows });
      built.census.push({ index, corpusCase, value, ...(note !== undefined ? { note } : {}) });
    }

    const census = layout(built.census, (n) =>
      message(`good-census-${n}`, frame(censusId, censusType.toBuffer(rows[n + 1])), 'good'),
    );
    const images = layout(built.images, (n) => {
      const key = `good-image-${n}`;
      return message(
        key,
        frame(imagePathId, imagePathType.toBuffer({ id: key, path: jpegs[n % jpegs.length] })),
        'good',
      );
    });

    // The image connector reads record-named files inside baseDir: the worker must allow it.
    const repo = fileURLToPath(new URL('../..', import.meta.url));
    const worker = await startTestWorker(
      { 'allowed.paths': [join(repo, 'data'), join(repo, 'schemas'), baseDir].join(',') },
      plugins,
    );
    try {
      await worker.worker.putConnectorConfig(
        'corpus-census',
        {
          ...exampleConfig('census-inference.json'),
          topics: topics.census,
          'output.topic': `${topics.census}-scored`,
          'errors.deadletterqueue.topic.name': `${topics.census}-dlq`,
          'tfserving.target': modelServerTarget,
          'key.converter': 'string',
          'max.record.bytes': MAX_RECORD_BYTES,
        },
        false,
      );
      await worker.worker.putConnectorConfig(
        'corpus-images',
        {
          ...exampleConfig('image-inference.json'),
          topics: topics.images,
          'output.topic': `${topics.images}-scored`,
          'errors.deadletterqueue.topic.name': `${topics.images}-dlq`,
          'tfserving.target': modelServerTarget,
          'input.mapping': 'image_bytes=path',
          'input.file.fields': 'path',
          'input.file.base.dir': baseDir,
          'input.file.max.bytes': MAX_FILE_BYTES,
          'input.file.read.timeout.ms': 2000,
        },
        false,
      );
      await waitFor(
        () =>
          ['corpus-census', 'corpus-images'].every(
            (name) => worker.worker.connectorStatus(name).tasks[0]?.state === 'RUNNING',
          ),
        60_000,
        'both corpus connectors to run',
      );

      // Readers join their groups, and a first record per partition is scored, before the sampling
      // starts: what is measured is the corpus, not start-up or the test's own consumers joining.
      const readers = await Promise.all(
        [
          `${topics.census}-scored`,
          `${topics.images}-scored`,
          `${topics.census}-dlq`,
          `${topics.images}-dlq`,
        ].map((topic) => TopicReader.start(topic)),
      );
      const [censusScoredReader, imagesScoredReader, censusDlqReader, imagesDlqReader] = readers as [
        TopicReader,
        TopicReader,
        TopicReader,
        TopicReader,
      ];
      const warmUp = {
        census: [0, 1, 2].map((p) => [
          message(`warm-census-${p}`, frame(censusId, censusType.toBuffer(rows[p])), 'warm-up'),
        ]),
        images: [0, 1, 2].map((p) => [
          message(
            `warm-image-${p}`,
            frame(imagePathId, imagePathType.toBuffer({ id: `warm-${p}`, path: jpegs[p] })),
            'warm-up',
          ),
        ]),
      };
      await producePartitions(topics.census, warmUp.census);
      await producePartitions(topics.images, warmUp.images);
      await censusScoredReader.waitFor(3);
      await imagesScoredReader.waitFor(3);
      census.goodKeys.push(...warmUp.census.flat().map((m) => m.key));
      images.goodKeys.push(...warmUp.images.flat().map((m) => m.key));

      const sampler = await sampleEventLoopLag(worker.url, 100);
      const offsets = new Map([
        ...(await producePartitions(topics.census, census.partitions)),
        ...(await producePartitions(topics.images, images.partitions)),
      ]);
      const planned = [...census.planned, ...images.planned].sort((a, b) => a.index - b.index);
      const scoredCases = planned.filter((p) => p.corpusCase.expect.outcome === 'scored');
      const expected = {
        censusScored:
          census.goodKeys.length + scoredCases.filter((p) => p.corpusCase.connector === 'census').length,
        imagesScored:
          images.goodKeys.length + scoredCases.filter((p) => p.corpusCase.connector === 'images').length,
        censusDlq:
          census.planned.length - scoredCases.filter((p) => p.corpusCase.connector === 'census').length,
        imagesDlq:
          images.planned.length - scoredCases.filter((p) => p.corpusCase.connector === 'images').length,
      };
      const [censusScored, imagesScored, censusDlq, imagesDlq] = await Promise.all([
        censusScoredReader.waitFor(expected.censusScored, 120_000),
        imagesScoredReader.waitFor(expected.imagesScored, 120_000),
        censusDlqReader.waitFor(expected.censusDlq, 120_000),
        imagesDlqReader.waitFor(expected.imagesDlq, 120_000),
      ]);
      const lag: LagSummary = await sampler.stop();
      // Anything extra (a duplicate, a bad record scored) would have arrived by now.
      await sleep(2000);
      await Promise.all(readers.map((r) => r.stop()));

      const counts = {
        censusScored: await messageCount(`${topics.census}-scored`),
        imagesScored: await messageCount(`${topics.images}-scored`),
        censusDlq: await messageCount(`${topics.census}-dlq`),
        imagesDlq: await messageCount(`${topics.images}-dlq`),
      };
      const scored = [...censusScored, ...imagesScored];
      const scoredTimes = new Map<string, number>();
      for (const m of scored) scoredTimes.set(m.key, (scoredTimes.get(m.key) ?? 0) + 1);
      const letters = new Map<string, Consumed>([...censusDlq, ...imagesDlq].map((m) => [m.key, m]));
      const inputTopic = (p: Planned) => topics[p.corpusCase.connector];
      const connectorName = (p: Planned) => `corpus-${p.corpusCase.connector}`;

      // One row per case; every problem found is listed in the row, and all of them fail the test.
      const table: string[][] = [];
      const problems: string[] = [];
      for (const p of planned) {
        const want = p.corpusCase.expect;
        const found: string[] = [];
        const letter = letters.get(p.message.key);
        const h = (name: string) => letter?.headers[`__connect.errors.${name}`]?.toString();
        let outcome: string;
        let headersPresent = '-';
        if (letter !== undefined) {
          outcome = `DLQ ${h('error.code')} @ ${h('stage')}`;
          const present = REQUIRED_HEADERS.filter((name) => h(name) !== undefined);
          const context = Object.keys(letter.headers).filter(
            (name) =>
              name.startsWith('__connect.errors.') &&
              !REQUIRED_HEADERS.includes(name.slice('__connect.errors.'.length)),
          );
          headersPresent = `${present.length}/${REQUIRED_HEADERS.length} +${context.length} context`;
          if (present.length !== REQUIRED_HEADERS.length)
            found.push(`missing headers ${REQUIRED_HEADERS.filter((n) => !present.includes(n)).join(', ')}`);
          if (want.outcome !== 'dlq') found.push('dead-lettered, expected scored');
          if (want.code !== undefined && h('error.code') !== want.code)
            found.push(`code ${h('error.code')}, expected ${want.code}`);
          if (want.stage !== undefined && h('stage') !== want.stage)
            found.push(`stage ${h('stage')}, expected ${want.stage}`);
          if (want.message !== undefined && !(h('exception.message') ?? '').includes(want.message))
            found.push(`message lacks ${JSON.stringify(want.message)}: ${h('exception.message')}`);
          for (const [name, value] of Object.entries(want.headers ?? {}))
            if (h(name) !== value) found.push(`header ${name}=${h(name)}, expected ${value}`);
          // The original record, unchanged.
          const at = offsets.get(p.message.key)!;
          if (h('topic') !== inputTopic(p)) found.push(`topic header ${h('topic')}`);
          if (h('partition') !== String(at.partition)) found.push(`partition header ${h('partition')}`);
          if (h('offset') !== at.offset) found.push(`offset header ${h('offset')}, produced at ${at.offset}`);
          if (h('connector.name') !== connectorName(p)) found.push(`connector.name ${h('connector.name')}`);
          if (Buffer.compare(letter.value ?? Buffer.alloc(0), p.message.value) !== 0)
            found.push('value bytes differ from the produced ones');
          if (letter.timestamp !== p.message.timestamp)
            found.push(`timestamp ${letter.timestamp}, produced ${p.message.timestamp}`);
          for (const [name, value] of Object.entries(p.message.headers))
            if (letter.headers[name]?.toString() !== value) found.push(`original header ${name} lost`);
        } else {
          const times = scoredTimes.get(p.message.key) ?? 0;
          outcome = times > 0 ? `scored${times > 1 ? ` ${times} times` : ''}` : 'nowhere';
          if (want.outcome !== 'scored' || times !== 1) found.push(`${outcome}, expected ${want.outcome}`);
        }
        const neighbours = p.neighbours.filter((key) => scoredTimes.get(key) === 1).length;
        if (neighbours !== p.neighbours.length)
          found.push(`neighbours ${p.neighbours.map((k) => `${k}x${scoredTimes.get(k) ?? 0}`).join(', ')}`);
        table.push([
          p.corpusCase.kind + (p.note !== undefined ? ` [${p.note}]` : ''),
          outcome,
          headersPresent,
          `${neighbours}/${p.neighbours.length}`,
          found.length === 0 ? 'ok' : `FAIL: ${found.join('; ')}`,
        ]);
        problems.push(...found.map((f) => `${p.corpusCase.kind}: ${f}`));
      }
      printTable(['kind', 'outcome', 'DLQ headers present', 'neighbours scored', 'check'], table);
      console.log(
        `\n  goods: census ${census.goodKeys.length}, images ${images.goodKeys.length}; ` +
          `topics hold: census scored ${counts.censusScored}, dlq ${counts.censusDlq}; images scored ${counts.imagesScored}, dlq ${counts.imagesDlq}`,
      );
      console.log(
        `  event loop during the corpus: nodejs_eventloop_lag_max_seconds ${lag.maxSeconds.toFixed(4)} s, ` +
          `p99 ${lag.p99Seconds.toFixed(4)} s (largest over ${lag.scrapes} scrapes of GET /metrics)\n`,
      );

      expect(problems).to.deep.equal([]);
      // Every good record scored exactly once, nothing else written.
      for (const key of [...census.goodKeys, ...images.goodKeys])
        expect(scoredTimes.get(key), key).to.equal(1);
      expect(counts).to.deep.equal(expected);
      expect(lag.scrapes).to.be.greaterThan(0);
      expect(lag.maxSeconds, 'largest event-loop delay (s) while the corpus ran').to.be.below(0.1);
    } finally {
      await worker.stop();
    }
  });

  it("with errors.tolerance=none, fails the task at a valid record written under another subject's schema", async () => {
    const run = uniqueName('corpus-none');
    const rows = censusRows();
    await createTopic(run, 1);
    const censusId = await register(`${run}-value`, censusSchemaText);
    const censusType = parseAvro(JSON.parse(censusSchemaText));
    const order = {
      type: 'record',
      name: 'Order',
      namespace: 'corpus',
      fields: [{ name: 'order_id', type: 'string' }],
    };
    const orderId = await register(`${run}-orders-value`, order);
    await producePartitions(run, [
      [
        message('k0', frame(censusId, censusType.toBuffer(rows[0])), 'good'),
        message('order', frame(orderId, parseAvro(order).toBuffer({ order_id: 'o-1' })), 'other subject'),
        message('k2', frame(censusId, censusType.toBuffer(rows[2])), 'good'),
      ],
    ]);
    const worker = await startTestWorker({}, plugins);
    try {
      await worker.worker.putConnectorConfig(
        'corpus-none',
        {
          ...Object.fromEntries(
            Object.entries(exampleConfig('census-inference.json')).filter(
              ([key]) => !key.startsWith('errors.'),
            ),
          ),
          topics: run,
          'output.topic': `${run}-scored`,
          'errors.tolerance': 'none',
          'tfserving.target': modelServerTarget,
          'key.converter': 'string',
        },
        false,
      );
      const failed = await waitFor(
        () => {
          const task = worker.worker.connectorStatus('corpus-none').tasks[0];
          return task?.state === 'FAILED' ? task : undefined;
        },
        60_000,
        'the task to fail',
      );
      expect(failed.trace).to.contain('MODEL_INPUT_SCHEMA_MISMATCH').and.contain(`schema id ${orderId}`);
      const committed = await worker.worker.connectorOffsets('corpus-none');
      expect(committed.offsets).to.deep.equal([
        { partition: { kafka_topic: run, kafka_partition: 0 }, offset: { kafka_offset: 1 } },
      ]);
      expect((await readTopic(`${run}-scored`, 1)).map((m) => m.key)).to.deep.equal(['k0']);
    } finally {
      await worker.stop();
    }
  });
});

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(r[i]!.length, 90))));
  const line = (cells: string[]) => `  | ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(`\n${line(header)}\n  |${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}
