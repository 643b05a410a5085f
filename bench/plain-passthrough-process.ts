// Scenario a as a process of its own: plain kafkajs consume -> produce (bench/lib.ts
// startPlainPassThrough) from the given input topics to `--output`, with the worker's progress
// counters on `GET /metrics` of `--port`, so the bench drives and measures it like the worker.
// SIGTERM stops it (consumer and producer disconnect) and it exits 0.
//
//   node --import tsx bench/plain-passthrough-process.ts --port 9999 --output out [--stock] in1 [in2...]
import { createServer } from 'node:http';
import { Command } from 'commander';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { silenceKafkajsTimerWarnings } from '../runtime/node-warnings.js';
import { startPlainPassThrough } from './lib.js';

silenceKafkajsTimerWarnings();

const program = new Command()
  .requiredOption('--port <port>', 'port of GET /metrics on 127.0.0.1')
  .requiredOption('--output <topic>', 'output topic')
  .option('--stock', 'use kafkajs 2.2.4 as published (without patches/)')
  .argument('<inputs...>', 'input topics')
  .parse();
const { port, output, stock } = program.opts<{ port: string; output: string; stock?: boolean }>();

const registry = new Registry();
collectDefaultMetrics({ register: registry });
const labels = { connector: 'plain-kafkajs', task: '0' };
const pipe = await startPlainPassThrough(program.args, output, stock ? 'stock' : 'patched');
const counter = (name: string, help: string, value: () => number) =>
  new Counter({
    name,
    help,
    labelNames: ['connector', 'task'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc(labels, value());
    },
  });
counter('kafka_connect_sink_task_sink_record_read_total', 'Records fetched.', () => pipe.read);
counter(
  'kafka_connect_sink_task_sink_record_send_total',
  'Records copied and acknowledged.',
  () => pipe.sent,
);
const batchTime = new Histogram({
  name: 'kafka_connect_sink_task_put_batch_time_seconds',
  help: 'Time from a fetched batch to its copy acknowledged.',
  labelNames: ['connector', 'task'],
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});
pipe.onBatch = (seconds) => batchTime.observe(labels, seconds);

const server = createServer((request, response) => {
  if (request.url !== '/metrics') {
    response.writeHead(404).end();
    return;
  }
  registry.metrics().then(
    (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
    (error: unknown) => response.writeHead(500).end(String(error)),
  );
});
server.listen(Number(port), '127.0.0.1');

process.once('SIGTERM', () => {
  server.close();
  pipe.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exit(1);
    },
  );
});
