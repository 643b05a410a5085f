// Builds a real standalone worker (the same composition the CLI uses) against the local stack,
// plus small polling helpers for integration tests.
import { createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { builtinPlugins } from '../../connectors/index.js';
import type { ConnectorPlugin } from '../../runtime/api.js';
import { parseWorkerConfig } from '../../runtime/config/worker-config.js';
import { createLogger } from '../../runtime/logger.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { createStandaloneWorker } from '../../runtime/standalone.js';
import { kafkaBootstrap, registryUrl } from './stack.js';

export async function startTestWorker(
  overrides: Record<string, unknown> = {},
  plugins: readonly ConnectorPlugin[] = builtinPlugins,
) {
  const dir = mkdtempSync(join(tmpdir(), 'infer-connect-worker-'));
  const { config, problems } = parseWorkerConfig({
    'bootstrap.servers': kafkaBootstrap,
    'schema.registry.url': registryUrl,
    listeners: 'http://127.0.0.1:0',
    'offset.storage.file.filename': join(dir, 'offsets.json'),
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
