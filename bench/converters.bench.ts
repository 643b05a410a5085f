// Avro converter throughput on census records: `npx tsx bench/converters.bench.ts [records]`.
// Encodes and decodes through the converter with the in-memory registry, next to avsc alone
// (bodies without framing) and @kafkajs/confluent-schema-registry's async encode/decode (which needs HTTP:
// it uses the local registry when it answers, else that comparison is skipped). Prints numbers only.
import { readFileSync } from 'node:fs';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { createConverter } from '../runtime/converters/index.js';
import {
  CachedSchemaRegistry,
  InMemoryRegistry,
  parseAvroSchema,
} from '../runtime/converters/schema-registry.js';

const RECORDS = Number(process.argv[2] ?? 200_000);
const WARMUP = 20_000;
const ROUNDS = 3;
const registryUrl = process.env.INFER_CONNECT_REGISTRY ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
const schemaText = readFileSync(new URL('../schemas/census.avsc', import.meta.url), 'utf8');
const census = parseAvroSchema(schemaText);

/** RECORDS rows, cycling through the UCI Adult training set. */
function loadRows(): Array<Record<string, string | number>> {
  const [header, ...lines] = readFileSync(new URL('../data/census/adult.train.csv', import.meta.url), 'utf8')
    .trim()
    .split('\n');
  const names = header!.split(',');
  const numeric = new Set([
    'age',
    'fnlwgt',
    'education_num',
    'capital_gain',
    'capital_loss',
    'hours_per_week',
  ]);
  const distinct = lines.map((line) => {
    const cells = line.split(',');
    return Object.fromEntries(names.map((n, i) => [n, numeric.has(n) ? Number(cells[i]) : cells[i]!]));
  });
  return Array.from({ length: RECORDS }, (_, i) => distinct[i % distinct.length]!);
}

function report(label: string, seconds: number): void {
  const perSecond = Math.round(RECORDS / seconds).toLocaleString('en-US');
  console.log(`${label.padEnd(58)} ${perSecond.padStart(11)} records/s`);
}

/** Best of ROUNDS passes over all records, after a warm-up: the machine may be shared. */
function measure(label: string, run: (i: number) => unknown): void {
  for (let i = 0; i < WARMUP; i++) run(i % RECORDS);
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < RECORDS; i++) run(i);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  report(label, best);
}

async function measureAsync(label: string, run: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < WARMUP; i++) await run(i % RECORDS);
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < RECORDS; i++) await run(i);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  report(label, best);
}

async function main(): Promise<void> {
  const rows = loadRows();
  console.log(
    `${RECORDS.toLocaleString('en-US')} census records, best of ${ROUNDS} rounds, Node ${process.version}`,
  );

  const converter = createConverter('avro', {
    isKey: false,
    registry: new CachedSchemaRegistry(new InMemoryRegistry()),
  });
  await converter.prepareEncode!('census', census);
  const framed: Buffer[] = new Array<Buffer>(RECORDS);
  const bodies: Buffer[] = new Array<Buffer>(RECORDS);

  console.log('\nencode');
  measure('avsc type.toBuffer (body only, no framing)', (i) => (bodies[i] = census.toBuffer(rows[i])));
  measure('avsc toBuffer + Buffer.concat with header (2 allocations)', (i) =>
    Buffer.concat([Buffer.from([0, 0, 0, 0, 1]), census.toBuffer(rows[i])]),
  );
  measure(
    'AvroConverter.fromConnect',
    (i) => (framed[i] = converter.fromConnect('census', rows[i], census)!),
  );

  console.log('\ndecode');
  await converter.prepare!(framed);
  measure('avsc type.fromBuffer (body only, no framing)', (i) => census.fromBuffer(bodies[i]!));
  measure('AvroConverter.toConnect', (i) => converter.toConnect('census', framed[i]!));
  measure('AvroConverter.toConnect + copy into a plain object', (i) => ({
    ...(converter.toConnect('census', framed[i]!).value as object),
  }));
  const start = process.hrtime.bigint();
  await converter.prepare!(framed);
  report(
    'AvroConverter.prepare (one call for all, schema cached)',
    Number(process.hrtime.bigint() - start) / 1e9,
  );

  console.log('\n@kafkajs/confluent-schema-registry (async, schema cached after the first call)');
  const plain = new SchemaRegistry({ host: registryUrl, retry: { retries: 0 } });
  let id: number;
  try {
    ({ id } = await plain.register(
      { type: SchemaType.AVRO, schema: schemaText },
      { subject: `bench-census-${Date.now().toString(36)}-value` },
    ));
  } catch (error) {
    console.log(`skipped: the registry at ${registryUrl} did not answer (${(error as Error).message})`);
    return;
  }
  const theirs: Buffer[] = new Array<Buffer>(RECORDS);
  await measureAsync('SchemaRegistry.encode', async (i) => (theirs[i] = await plain.encode(id, rows[i])));
  await measureAsync('SchemaRegistry.decode', (i) => plain.decode(theirs[i]!));
}

await main();
