// Scenario r of `npm run bench`: scenario e (the `census` model at the best batch size of c) over
// TF Serving's REST API (`tfserving.transport=rest`) instead of gRPC, against the same model server
// process, so that e and r side by side show what the transport costs (records/s, CPU s/100k of
// the worker; the model server's own work is the same).
//
// The stack's model server serves REST on 127.0.0.1:8501 (dev/stack.ts `modelServer.rest`); one
// started before dev/stack.ts passed `--rest-port` has no REST port, and r then fails with how to
// fix it instead of measuring something else. INFER_CONNECT_MODEL_SERVER_REST overrides the
// target, as INFER_CONNECT_MODEL_SERVER does for gRPC (bench/model-server.ts).
import { instances } from '../dev/stack.js';

export const modelServerRestTarget =
  process.env.INFER_CONNECT_MODEL_SERVER_REST ?? new URL(instances.default.endpoints.modelServer.rest).host;

/** The connector keys that turn an inference pipeline's connector into the REST transport. */
export function restTransportKeys(): Record<string, string> {
  return { 'tfserving.transport': 'rest', 'tfserving.target': modelServerRestTarget };
}

/** Resolves when the REST API answers for the `census` model; throws saying how to get one. */
export async function checkRestTransport(): Promise<void> {
  const url = `http://${modelServerRestTarget}/v1/models/census`;
  let answer: string;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    answer = `HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`;
    if (response.ok) return;
  } catch (error) {
    answer = (error as Error).message;
  }
  throw new Error(
    `scenario r needs the model server's REST API at ${modelServerRestTarget} (GET ${url}: ${answer}); ` +
      'a model server started before dev/stack.ts passed --rest-port has none: restart it ' +
      '(npm run stack -- down && npm run stack -- up), or point INFER_CONNECT_MODEL_SERVER_REST at one',
  );
}
