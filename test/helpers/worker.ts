// Builds a real standalone worker (the same composition the CLI uses) against the local stack,
// plus small polling helpers for integration tests. Connectors of a test worker may read and
// write the repository's data/ and schemas/ and the worker's own `dir` (its `allowed.paths`); the
// worker's offsets live in a separate folder, which allowed.paths must not reach.
import { createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { builtinPlugins } from '../../connectors/index.js';
import type { ConnectorPlugin } from '../../runtime/api.js';
import { parseWorkerConfig } from '../../runtime/config/worker-config.js';
import { createLogger } from '../../runtime/logger.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { createStandaloneWorker } from '../../runtime/standalone.js';
import { kafkaBootstrap, registryUrl } from './stack.js';

const repo = resolve(import.meta.dirname, '../..');

export async function startTestWorker(
  overrides: Record<string, unknown> = {},
  plugins: readonly ConnectorPlugin[] = builtinPlugins,
) {
  const dir = mkdtempSync(join(tmpdir(), 'infer-connect-worker-'));
  const state = mkdtempSync(join(tmpdir(), 'infer-connect-worker-state-'));
  const { config, problems } = parseWorkerConfig({
    'bootstrap.servers': kafkaBootstrap,
    'schema.registry.url': registryUrl,
    listeners: 'http://127.0.0.1:0',
    'offset.storage.file.filename': join(state, 'offsets.json'),
    'allowed.paths': [join(repo, 'data'), join(repo, 'schemas'), dir].join(','),
    'offset.flush.interval.ms': 500,
    'task.shutdown.graceful.timeout.ms': 10_000,
    'log.level': process.env.INFER_CONNECT_TEST_LOG ?? 'info',
    ...overrides,
  });
  if (!config) throw new Error(`test worker config invalid: ${JSON.stringify(problems)}`);
  const parts = createStandaloneWorker(config, PluginRegistry.of(plugins), {
    // Logs go to the test's own folder (set INFER_CONNECT_TEST_LOG=debug for more detail there).
    logger: createLogger(config.getString('log.level'), createWriteStream(join(dir, 'worker.log'))),
  });
  await parts.worker.start();
  const url = await parts.rest.listen();
  return {
    ...parts,
    url,
    dir,
    async stop() {
      await parts.worker.stop();
      await parts.rest.close();
    },
  };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws `what`). */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const result = await check();
      if (result) return result as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
      );
    }
    await sleep(200);
  }
}
