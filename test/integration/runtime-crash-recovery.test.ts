import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import type { Consumer } from 'kafkajs';
import { kafkaBootstrap, testKafka, uniqueName } from '../helpers/stack.js';
import { waitFor } from '../helpers/worker.js';

const cli = resolve(import.meta.dirname, '../../bin/infer-connect.js');
const RECORDS = 30_000;

const PREFILL = 2_000;
const CHUNK = 1_000;
const PACE_MS = 250;

/**
 * The input topic gets PREFILL records at once and the rest in paced chunks once `start()` is
 * called, so a kill always lands while input is still arriving, however fast the worker runs
 * (with all 30,000 records written up front, a fast machine had scored them all before the
 * kill took effect).
 */
async function prepareInput(topic: string) {
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic, numPartitions: 3 },
      { topic: `${topic}-out`, numPartitions: 3 },
    ],
    waitForLeaders: true,
  });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  let produced = 0;
  const send = async (count: number) => {
    const start = produced;
    await producer.send({
      topic,
      messages: Array.from({ length: count }, (_, i) => ({ key: `k${start + i}`, value: `v${start + i}` })),
    });
    produced += count;
  };
  await send(PREFILL);
  let finished: Promise<void> | undefined;
  return {
    produced: () => produced,
    start(): void {
      finished ??= (async () => {
        while (produced < RECORDS) {
          await new Promise((r) => setTimeout(r, PACE_MS));
          await send(Math.min(CHUNK, RECORDS - produced));
        }
      })();
    },
    async close(): Promise<void> {
      await finished;
      await producer.disconnect();
    },
  };
}

/** Starts the paced input once the worker writes output, and waits for `atLeast` outputs. */
async function midStream(
  input: Awaited<ReturnType<typeof prepareInput>>,
  output: { total: () => number },
  atLeast: number,
): Promise<void> {
  await waitFor(() => output.total() >= PREFILL / 2, 60_000, 'the first output');
  input.start();
  await waitFor(() => output.total() >= atLeast, 60_000, `${atLeast} outputs`);
  expect(input.produced()).to.be.below(RECORDS, 'the kill must land while input is still arriving');
}

/** Counts every value seen on the output topic (duplicates included). */
async function watchOutput(topic: string) {
  const seen = new Map<string, number>();
  let total = 0;
  const consumer: Consumer = testKafka().consumer({ groupId: uniqueName('watch') });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const v = m.value!.toString();
        seen.set(v, (seen.get(v) ?? 0) + 1);
        total++;
      }
    },
  });
  return { seen, total: () => total, stop: () => consumer.disconnect() };
}

function startWorker(
  dir: string,
  input: string,
  name: string,
  extra: Record<string, string> = {},
): ChildProcess {
  const workerFile = join(dir, 'worker.json');
  const connectorFile = join(dir, 'connector.json');
  writeFileSync(
    workerFile,
    JSON.stringify({
      'bootstrap.servers': kafkaBootstrap,
      listeners: 'http://127.0.0.1:0',
      'offset.storage.file.filename': join(dir, 'offsets.json'),
      'task.shutdown.graceful.timeout.ms': 10_000,
      'log.level': 'warn',
    }),
  );
  writeFileSync(
    connectorFile,
    JSON.stringify({
      name,
      config: {
        'connector.class': 'PassThrough',
        topics: input,
        'output.topic': `${input}-out`,
        'key.converter': 'string',
        'value.converter': 'string',
        ...extra,
      },
    }),
  );
  return spawn(process.execPath, [cli, 'standalone', workerFile, connectorFile], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );

describe('a standalone worker process that dies or is stopped mid-stream', function () {
  this.timeout(240_000);

  it('after SIGKILL and a restart, every input record is in the output (duplicates allowed, none missing)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-connect-kill-'));
    const input = uniqueName('kill-in');
    const feed = await prepareInput(input);
    const output = await watchOutput(`${input}-out`);
    try {
      const first = startWorker(dir, input, uniqueName('kill'));
      await midStream(feed, output, 3_000);
      first.kill('SIGKILL');
      await exited(first);
      const killedAt = output.total();

      const second = startWorker(dir, input, uniqueName('kill'));
      try {
        await waitFor(() => output.seen.size === RECORDS, 120_000, `all ${RECORDS} distinct values`);
      } finally {
        second.kill('SIGTERM');
        await exited(second);
      }
      const duplicates = output.total() - output.seen.size;
      process.stderr.write(
        `      killed after ${killedAt} outputs; ${duplicates} duplicate(s) after restart\n`,
      );
      for (let i = 0; i < RECORDS; i++) expect(output.seen.has(`v${i}`), `v${i}`).to.equal(true);
    } finally {
      await feed.close();
      await output.stop();
    }
  });

  it('with processing.guarantee=exactly_once, a SIGKILL and a restart leave every record exactly once for read_committed readers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-connect-eos-'));
    const input = uniqueName('eos-in');
    const name = uniqueName('eos');
    const eos = { 'processing.guarantee': 'exactly_once' };
    const feed = await prepareInput(input);
    const output = await watchOutput(`${input}-out`); // kafkajs reads committed transactions only
    try {
      const first = startWorker(dir, input, name, eos);
      await midStream(feed, output, 3_000);
      first.kill('SIGKILL');
      await exited(first);

      const second = startWorker(dir, input, name, eos);
      try {
        await waitFor(() => output.seen.size === RECORDS, 120_000, `all ${RECORDS} distinct values`);
        await new Promise((r) => setTimeout(r, 2_000));
      } finally {
        second.kill('SIGTERM');
        await exited(second);
      }
      expect(output.total(), 'duplicates visible to a read_committed reader').to.equal(RECORDS);
    } finally {
      await feed.close();
      await output.stop();
    }
  });

  it('on SIGTERM under load, it exits 0 within the deadline and a restart produces no duplicates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-connect-term-'));
    const input = uniqueName('term-in');
    const name = uniqueName('term');
    const feed = await prepareInput(input);
    const output = await watchOutput(`${input}-out`);
    try {
      const first = startWorker(dir, input, name);
      await midStream(feed, output, 3_000);
      const stoppedAt = Date.now();
      first.kill('SIGTERM');
      const { code } = await exited(first);
      expect(code).to.equal(0);
      expect(Date.now() - stoppedAt).to.be.below(15_000);

      const second = startWorker(dir, input, name);
      try {
        await waitFor(() => output.seen.size === RECORDS, 120_000, `all ${RECORDS} distinct values`);
        // Give a duplicate the chance to show up before counting.
        await new Promise((r) => setTimeout(r, 2_000));
      } finally {
        second.kill('SIGTERM');
        expect((await exited(second)).code).to.equal(0);
      }
      expect(output.total()).to.equal(RECORDS);
    } finally {
      await feed.close();
      await output.stop();
    }
  });
});
