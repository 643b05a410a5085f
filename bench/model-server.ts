// The model server as the benchmarks see it: counters from its control endpoint (deltas around a
// measured phase, so the bench never needs to reset the server), fault injection for the stall
// scenario, and its own Predict latency measured directly with the connector's gRPC client.
import { TFServingClient } from '../connectors/tf-serving/grpc-client.js';
import { encodeTensor } from '../connectors/tf-serving/tensor-codec.js';
import { censusRows } from './lib.js';

export const modelServerTarget = process.env.INFER_CONNECT_MODEL_SERVER ?? '127.0.0.1:8500';
export const modelServerControl = process.env.INFER_CONNECT_MODEL_CONTROL ?? 'http://127.0.0.1:8502';

export interface ModelServerCounters {
  predicts: number;
  instances: number;
  errors: Record<string, number>;
}

interface StatsResponse {
  requests?: Record<string, number>;
  instances?: number;
  errors?: Record<string, number>;
}

async function control(path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${modelServerControl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`model server control ${path} answered ${response.status}`);
  return response.json();
}

export async function modelServerCounters(): Promise<ModelServerCounters> {
  const stats = (await control('/stats')) as StatsResponse;
  return {
    predicts: stats.requests?.['Predict'] ?? 0,
    instances: stats.instances ?? 0,
    errors: stats.errors ?? {},
  };
}

/** What happened on the model server between two counter readings. */
export function counterDelta(before: ModelServerCounters, after: ModelServerCounters): ModelServerCounters {
  const errors: Record<string, number> = {};
  for (const [code, count] of Object.entries(after.errors)) {
    const delta = count - (before.errors[code] ?? 0);
    if (delta > 0) errors[code] = delta;
  }
  return {
    predicts: after.predicts - before.predicts,
    instances: after.instances - before.instances,
    errors,
  };
}

/** Makes every Predict wait for `seconds` from now (0 lifts the stall). */
export async function stallModelServer(seconds: number): Promise<void> {
  await control('/faults', { stall_seconds: seconds });
}

export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

/** p50/p99/max of `values` (nearest-rank), or undefined for none. */
export function summarize(values: number[]): LatencySummary | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: rank(0.5), p99: rank(0.99), max: sorted[sorted.length - 1]!, count: sorted.length };
}

/**
 * The model server's own Predict latency: `calls` sequential Predicts of `batchSize` census ages
 * on the `null` model through the connector's gRPC client (after a warm-up), in ms.
 */
export async function measurePredictLatency(batchSize: number, calls: number): Promise<LatencySummary> {
  const client = new TFServingClient({
    target: modelServerTarget,
    deadlineMs: 10_000,
    maxSendMessageBytes: 64 * 1024 * 1024,
    maxReceiveMessageBytes: 64 * 1024 * 1024,
  });
  try {
    const ages = censusRows().map((row) => Number(row['age']));
    const inputs = {
      age: encodeTensor(
        'DT_INT64',
        [batchSize],
        Array.from({ length: batchSize }, (_, i) => ages[i % ages.length]!),
      ),
    };
    const request = { model: { name: 'null' }, inputs, outputFilter: ['score'] };
    for (let i = 0; i < 20; i++) await client.predict(request);
    const latencies: number[] = [];
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      await client.predict(request);
      latencies.push(performance.now() - started);
    }
    return summarize(latencies)!;
  } finally {
    client.close();
  }
}
