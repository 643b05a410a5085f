// The `infer-connect` command: run a standalone worker, validate connector configs, list plugins.
//
//   infer-connect standalone <worker.json> <connector.json>...
//   infer-connect validate [--worker <worker.json>] <connector.json>
//   infer-connect plugins [--json] [--worker <worker.json> | --plugin-path <entries>]
//   infer-connect test <connector.json> --input <records.jsonl> [--expect <expected.jsonl>] (runtime/offline-test.ts)
//
// Which plugins are built in is not decided here: the composition root (app/main.ts) hands
// `runCli` the built-in list, and the worker's `plugin.path` adds the rest (runtime/plugin-loader.ts).
// A plugin that cannot be loaded refuses the start like a bad config (exit 1, every problem listed).
//
// A bad config is refused before anything starts (exit 1, every problem listed per key).
// `validate` checks what depends on a worker (file paths against `allowed.paths`, `${file:...}`
// references against `config.providers.file.param.allowed.paths`, the avro converter's registry)
// only when given the worker config; without it, it says so and resolves references as a worker
// config would.
// SIGTERM/SIGINT drain the worker in order (stop fetching, finish in flight, flush, commit,
// close clients, close HTTP) and exit 0, or exit 1 if a task did not drain (a step failed or
// outlived task.shutdown.graceful.timeout.ms) or the drain outlived its deadline.
import { Command } from 'commander';
import type { ConnectorPlugin } from './api.js';
import { interruptibleSleep } from './backoff.js';
import {
  checkConnectorConfig,
  connectorSpecFor,
  readConnectorConfigFile,
} from './config/connector-config.js';
import type { ParsedConfig } from './config/config-spec.js';
import { formatProblems } from './config/validation-report.js';
import { readWorkerConfigFile, schemaRegistryProblem, workerFileAccess } from './config/worker-config.js';
import { renderSpecDoc } from './config/spec-doc.js';
import { silenceKafkajsTimerWarnings } from './node-warnings.js';
import { ConnectError } from './errors.js';
import { offlineTestOptions, runOfflineTest } from './offline-test.js';
import { PLUGIN_PATH, pluginRegistryWith } from './plugin-loader.js';
import { PluginRegistry } from './plugin-registry.js';
import { guardProcess } from './process-guards.js';
import { createStandaloneWorker } from './standalone.js';
import { VERSION } from './worker.js';
import { DRAIN_MARGIN_MS, drainWorker, exitCodeFor, logDrainOutcome } from './worker-shutdown.js';

class UsageError extends Error {}

async function standalone(
  builtins: readonly ConnectorPlugin[],
  workerFile: string,
  connectorFiles: string[],
): Promise<void> {
  const { config: workerConfig, problems: workerProblems } = readWorkerConfigFile(workerFile);
  // Without a valid worker config its plugin.path is unknown: connectors are checked against the
  // built-ins then, and a plugin.path plugin they name shows up as one more problem.
  const plugins = workerConfig
    ? await pluginRegistryWith(builtins, workerConfig.getList(PLUGIN_PATH))
    : PluginRegistry.of(builtins);
  const problems: string[] = [];
  if (!workerConfig) problems.push(`${workerFile}:\n${formatProblems(workerProblems)}`);
  const connectors: Array<{ name: string; config: Record<string, unknown> }> = [];
  const files = workerConfig ? workerFileAccess(workerConfig) : undefined;
  for (const file of connectorFiles) {
    const read = readConnectorConfigFile(file);
    if ('error' in read) {
      problems.push(`${file}: ${read.error}`);
      continue;
    }
    const parsed = checkConnectorConfig(plugins, read.config, { name: read.name, ...files });
    const registry =
      workerConfig && parsed.config ? schemaRegistryProblem(workerConfig, parsed.config) : undefined;
    if (registry) parsed.problems.push(registry);
    if (parsed.problems.length > 0) problems.push(`${file}:\n${formatProblems(parsed.problems)}`);
    else connectors.push({ name: read.name, config: read.config });
  }
  if (problems.length > 0 || !workerConfig) {
    throw new UsageError(`refusing to start; fix these configs first:\n${problems.join('\n')}`);
  }

  const { worker, rest, logger } = createStandaloneWorker(workerConfig, plugins);
  guardProcess(logger);
  let draining: Promise<void> | undefined;
  const drain = (signal: string) => {
    if (draining) return;
    const deadlineMs = workerConfig.getNumber('task.shutdown.graceful.timeout.ms') + DRAIN_MARGIN_MS;
    logger.info({ signal, deadlineMs }, 'draining the worker');
    draining = (async () => {
      const outcome = await drainWorker({
        stopWorker: () => worker.stop(),
        closeRest: () => rest.close(),
        deadlineMs,
        sleep: interruptibleSleep,
      });
      logDrainOutcome(logger, outcome);
      logger.flush?.();
      process.exit(exitCodeFor(outcome));
    })();
  };
  process.on('SIGTERM', () => drain('SIGTERM'));
  process.on('SIGINT', () => drain('SIGINT'));

  await worker.start();
  const address = await rest.listen();
  logger.info({ rest: address, workerId: worker.workerId, version: VERSION }, 'worker started');
  for (const { name, config } of connectors) {
    await worker.putConnectorConfig(name, config, false);
  }
}

async function validate(
  builtins: readonly ConnectorPlugin[],
  file: string,
  workerFile: string | undefined,
): Promise<number> {
  let worker: ParsedConfig | undefined;
  if (workerFile !== undefined) {
    const read = readWorkerConfigFile(workerFile);
    if (!read.config) {
      process.stderr.write(
        `${workerFile}: ${read.problems.length} problem(s)\n${formatProblems(read.problems)}\n`,
      );
      return 1;
    }
    worker = read.config;
  }
  const plugins = await pluginRegistryWith(builtins, worker ? worker.getList(PLUGIN_PATH) : []);
  const read = readConnectorConfigFile(file);
  if ('error' in read) {
    process.stderr.write(`${file}: ${read.error}\n`);
    return 1;
  }
  const { plugin, config, problems } = checkConnectorConfig(plugins, read.config, {
    name: read.name,
    ...(worker ? workerFileAccess(worker) : {}),
  });
  const registry = worker && config ? schemaRegistryProblem(worker, config) : undefined;
  if (registry) problems.push(registry);
  if (!plugin || !config || problems.length > 0) {
    process.stderr.write(`${file}: ${problems.length} problem(s)\n${formatProblems(problems)}\n`);
    return 1;
  }
  process.stdout.write(`${file}: valid ${plugin.kind} connector "${read.name}" (${plugin.name})\n`);
  if (!worker)
    process.stdout.write(
      '  not checked without --worker <worker.json>: file paths against allowed.paths, ${file:...} references ' +
        'against config.providers.file.param.allowed.paths, and the schema registry of the avro converter\n',
    );
  return 0;
}

/** The plugin.path of `--plugin-path`, else of the `--worker` config, else none. */
function pluginPathOption(options: { worker?: string; pluginPath?: string }): string[] {
  if (options.pluginPath !== undefined)
    return options.pluginPath
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== '');
  if (options.worker === undefined) return [];
  const read = readWorkerConfigFile(options.worker);
  if (!read.config) throw new UsageError(`${options.worker}:\n${formatProblems(read.problems)}`);
  return read.config.getList(PLUGIN_PATH);
}

function listPlugins(registry: PluginRegistry, json: boolean): void {
  const plugins = registry.list();
  if (json) {
    process.stdout.write(
      `${JSON.stringify(
        plugins.map((p) => ({
          class: p.name,
          type: p.kind,
          version: p.version,
          aliases: p.aliases ?? [],
          source: registry.sourceOf(p),
        })),
        null,
        2,
      )}\n`,
    );
    return;
  }
  for (const plugin of plugins) {
    const title = `${plugin.name} (${plugin.kind}, from ${registry.sourceOf(plugin) ?? 'unknown'})`;
    process.stdout.write(renderSpecDoc(title, plugin.description, connectorSpecFor(plugin)) + '\n');
  }
}

/** Parses `argv` and runs the command with these built-in plugins (plus the worker's plugin.path). */
export async function main(argv: string[], builtins: readonly ConnectorPlugin[]): Promise<void> {
  const program = new Command('infer-connect')
    .description('A Kafka Connect-style connector runtime that scores streams with TensorFlow Serving models')
    .version(VERSION);
  program
    .command('standalone')
    .description('run a standalone worker with the given connectors')
    .argument('<worker.json>', 'worker config')
    .argument('<connector.json...>', 'connector configs')
    .action((workerFile: string, connectorFiles: string[]) =>
      standalone(builtins, workerFile, connectorFiles),
    );
  program
    .command('validate')
    .description('check a connector config; exits 1 and lists every problem per key when it is invalid')
    .argument('<connector.json>', 'connector config')
    .option(
      '--worker <worker.json>',
      "also check it against this worker config: file paths against allowed.paths, ${file:...} references, the avro converter's registry",
    )
    .action(async (file: string, options: { worker?: string }) => {
      process.exitCode = await validate(builtins, file, options.worker);
    });
  program
    .command('plugins')
    .description('list the connector plugins and their config keys')
    .option('--json', 'print JSON')
    .option('--worker <worker.json>', "also list the plugins this worker config's plugin.path loads")
    .option('--plugin-path <entries>', 'also list the plugins of these comma-separated folders or packages')
    .action(async (options: { json?: boolean; worker?: string; pluginPath?: string }) =>
      listPlugins(await pluginRegistryWith(builtins, pluginPathOption(options)), Boolean(options.json)),
    );
  program
    .command('test')
    .description(
      'run a processor or sink connector config on recorded input records, without Kafka, and print each ' +
        "record's outputs or dead-letter decision; with --expect, exit 1 when they differ (docs/testing-a-connector-config.md)",
    )
    .argument('<connector.json>', 'connector config')
    .requiredOption(
      '--input <file>',
      'recorded inputs, one JSON value (or record, see --input-format) per line',
    )
    .option(
      '--input-format <format>',
      'values: each line is a record value; records: {"key", "value", "headers", "topic", ...}',
      'values',
    )
    .option('--value-schema <schema.avsc>', 'writer schema of the recorded values (value.converter=avro)')
    .option('--key-schema <schema.avsc>', 'writer schema of the recorded keys (key.converter=avro)')
    .option(
      '--worker <worker.json>',
      'worker config: allowed.paths, config providers, plugin.path, consumer.max.poll.records',
    )
    .option(
      '--expect <expected.jsonl>',
      'compare with these outcomes (the --output-format json lines of an earlier run)',
    )
    .option(
      '--float-tolerance <t>',
      'numbers match when they differ by at most t × max(1, |expected|)',
      '1e-6',
    )
    .option(
      '--ignore-fields <fields>',
      'comma-separated output value fields the comparison leaves out (e.g. scored_at)',
      '',
    )
    .option(
      '--output-format <format>',
      'json (one outcome per line, the --expect format) or pretty',
      'pretty',
    )
    .option(
      '--timeout-ms <ms>',
      'how long transient failures of a chunk are retried before it is reported',
      '30000',
    )
    .option('--log-level <level>', "level of the connector's log lines on stderr", 'warn')
    .action(async (connectorFile: string, raw: Record<string, string | undefined>) => {
      const options = offlineTestOptions(connectorFile, raw);
      if ('error' in options) throw new UsageError(options.error);
      process.exitCode = await runOfflineTest(builtins, options, {
        stdout: (text) => process.stdout.write(text),
        stderr: (text) => process.stderr.write(text),
      });
    });
  await program.parseAsync(argv);
}

/**
 * Runs the command and exits 1 on failure: a refused config or plugin prints its message, anything
 * unexpected its stack.
 */
export function runCli(argv: string[], builtins: readonly ConnectorPlugin[]): void {
  silenceKafkajsTimerWarnings();
  main(argv, builtins).catch((error: unknown) => {
    const expected =
      error instanceof UsageError || (error instanceof ConnectError && error.code === 'CONFIG_INVALID');
    process.stderr.write(
      `${expected ? (error as Error).message : ((error as Error).stack ?? String(error))}\n`,
    );
    process.exit(1);
  });
}
