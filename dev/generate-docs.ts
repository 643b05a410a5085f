// Writes the reference docs generated from the code: `npx tsx dev/generate-docs.ts`.
// test/unit/error-catalogue.test.ts and test/unit/docs-generated.test.ts fail when a committed doc
// differs from what this renders.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, Histogram, Registry, type MetricObject } from 'prom-client';
import { builtinPlugins } from '../connectors/index.js';
import { InferenceMetrics } from '../connectors/tf-serving/metrics.js';
import type { ConnectorPlugin, PluginKind } from '../runtime/api.js';
import { renderErrorsDoc } from '../runtime/error-catalogue.js';
import { connectorSpecFor } from '../runtime/config/connector-config.js';
import { renderSpecDoc } from '../runtime/config/spec-doc.js';
import { workerSpec } from '../runtime/config/worker-config.js';
import { RuntimeMetrics } from '../runtime/task-metrics.js';
import { renderTransformsDoc } from '../runtime/transforms/docs.js';

export const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));

const WORKER_INTRO = `
<!-- Generated from runtime/config/worker-config.ts by \`npx tsx dev/generate-docs.ts\`; do not edit. -->

The worker config is a flat JSON object (or a Java \`.properties\` file), given as the first argument of
\`infer-connect standalone\` and \`infer-connect distributed\`. Values may be strings, numbers or booleans.

- \`\${env:VAR}\` and \`\${file:/path/to/file.properties:key}\` references in values are resolved when the
  worker starts and are never logged.
- Keys starting with \`producer.\`, \`consumer.\` or \`admin.\` pass through (prefix removed) to every Kafka
  client of that kind; a connector's \`producer.override.*\` and \`consumer.override.*\` keys win over them.
- Undeclared keys are ignored.
`;

// ------------------------------------------------------------------------------ connectors

const KIND_TEXT: Record<PluginKind, string> = {
  source: 'source: reads outside data and writes records to a Kafka topic',
  sink: 'sink: reads the Kafka topics in `topics` and writes them somewhere else',
  processor: 'processor: reads the Kafka topics in `topics` and writes the results to `output.topic`',
};

/** The path of a plugin's reference page, relative to the repository root. */
export const connectorDocPath = (plugin: ConnectorPlugin): string => `docs/connectors/${plugin.name}.md`;

/** Example connector configs in config/ and deploy/config/ that use `plugin`, sorted. */
function examplesOf(plugin: ConnectorPlugin): string[] {
  const names = new Set([plugin.name, ...(plugin.aliases ?? [])]);
  const examples: string[] = [];
  for (const dir of ['config', join('deploy', 'config')]) {
    let files: string[];
    try {
      files = readdirSync(join(repoRoot, dir)).filter((f) => f.endsWith('.json'));
    } catch {
      continue;
    }
    for (const file of files.sort()) {
      try {
        const parsed = JSON.parse(readFileSync(join(repoRoot, dir, file), 'utf8')) as {
          config?: Record<string, unknown>;
        };
        if (names.has(String(parsed.config?.['connector.class'] ?? ''))) examples.push(`${dir}/${file}`);
      } catch {
        // Not a connector config.
      }
    }
  }
  return examples;
}

export function renderConnectorDoc(plugin: ConnectorPlugin): string {
  const examples = examplesOf(plugin);
  const lines = [
    `<!-- Generated from connectors/index.ts and the plugin's config spec by \`npx tsx dev/generate-docs.ts\`; do not edit. -->`,
    '',
    plugin.description,
    '',
    `- Kind: ${KIND_TEXT[plugin.kind]}.`,
    `- \`connector.class\`: \`${plugin.name}\`${
      plugin.aliases?.length ? ` (or ${plugin.aliases.map((a) => `\`${a}\``).join(', ')})` : ''
    }; version ${plugin.version}.`,
    ...(examples.length > 0 ? [`- Examples: ${examples.map((e) => `[${e}](../../${e})`).join(', ')}.`] : []),
    '- Values may be strings (as Kafka Connect sends them) or JSON numbers and booleans; the common keys are ' +
      "Kafka Connect's. Check a config with `infer-connect validate <connector.json>` or " +
      '`PUT /connector-plugins/' +
      plugin.name +
      '/config/validate`.',
  ];
  return renderSpecDoc(`${plugin.name} (${plugin.kind})`, lines.join('\n'), connectorSpecFor(plugin));
}

// --------------------------------------------------------------------------------- metrics

export interface MetricRow {
  name: string;
  type: string;
  labels: string[];
  help: string;
  buckets: number[];
}

/**
 * The metric families `register` creates on a fresh registry, read back with getMetricsAsJSON.
 * Each family gets one sample with placeholder labels first, so histograms report their buckets.
 */
async function metricRows(register: (registry: Registry) => void): Promise<MetricRow[]> {
  const registry = new Registry();
  register(registry);
  const labelNames = new Map<string, string[]>();
  for (const metric of registry.getMetricsAsArray() as Array<MetricObject & { labelNames?: string[] }>) {
    const names = [...(metric.labelNames ?? [])];
    labelNames.set(metric.name, names);
    const labels = Object.fromEntries(names.map((n) => [n, 'x']));
    if (metric instanceof Histogram) metric.observe(labels, 0);
    else if (metric instanceof Counter) metric.inc(labels, 0);
    else if (metric instanceof Gauge) metric.set(labels, 0);
  }
  const json = await registry.getMetricsAsJSON();
  return json.map((metric) => ({
    name: metric.name,
    type: String(metric.type),
    labels: labelNames.get(metric.name) ?? [],
    help: metric.help,
    buckets:
      String(metric.type) === 'histogram'
        ? [
            ...new Set(
              metric.values
                .map((v) => v.labels.le)
                .filter((le): le is number => typeof le === 'number' && Number.isFinite(le)),
            ),
          ]
        : [],
  }));
}

function metricsTable(rows: MetricRow[]): string[] {
  const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
  const lines = ['| Metric | Type | Labels | Help |', '| --- | --- | --- | --- |'];
  for (const row of rows) {
    const name =
      row.type === 'histogram' ? `\`${row.name}\` (\`_bucket\`, \`_sum\`, \`_count\`)` : `\`${row.name}\``;
    const labels = row.labels.map((l) => `\`${l}\``).join(', ');
    const help = row.buckets.length > 0 ? `${row.help} Buckets: ${row.buckets.join(', ')}.` : row.help;
    lines.push(`| ${name} | ${row.type} | ${labels} | ${cell(help)} |`);
  }
  return lines;
}

/** The metric families the runtime and the inference connector register, as docs/metrics.md lists them. */
export async function documentedMetrics(): Promise<{ runtime: MetricRow[]; inference: MetricRow[] }> {
  return {
    runtime: await metricRows((registry) => new RuntimeMetrics(registry)),
    inference: await metricRows(
      (registry) => new InferenceMetrics(registry, { connector: 'x', task: '0' }, 'x'),
    ),
  };
}

/** docs/metrics.md: every metric family of the runtime and of TFServingInference. */
export async function renderMetricsDoc(): Promise<string> {
  const { runtime, inference } = await documentedMetrics();
  return [
    '# Metrics',
    '',
    '<!-- Generated from runtime/task-metrics.ts and connectors/tf-serving/metrics.ts by `npx tsx dev/generate-docs.ts`; do not edit. -->',
    '',
    "`GET /metrics` on the worker's REST listener answers in the Prometheus text format. Every series of a task",
    'carries the labels `connector` (the connector name) and `task` (its task number); the names follow Kafka',
    "Connect's JMX metrics as the Prometheus JMX exporter spells them, so existing dashboards translate. The",
    'alert rules in [deploy/prometheus](../deploy/prometheus/) and the Grafana dashboard in',
    '[deploy/grafana](../deploy/grafana/) use these names (a test checks that every name they use exists).',
    '',
    '## Runtime (every task)',
    '',
    'Recorded by the runtime around every connector, so connectors never register them. Sink and processor',
    'tasks fill the `sink_task` families, source tasks the `source_task` ones.',
    '',
    ...metricsTable(runtime),
    '',
    '## TFServingInference',
    '',
    'Recorded by each task of the inference connector; `model` is `tfserving.model.name`, `code` the gRPC',
    'status name of a Predict call (`OK` for success). Gauges of a stopped task are removed; counters and',
    'histograms keep their totals.',
    '',
    ...metricsTable(inference),
    '',
    '## Process',
    '',
    "Every worker also exports prom-client's default metrics (`collectDefaultMetrics`): `process_*` (CPU seconds,",
    '`process_resident_memory_bytes`, open file descriptors, start time) and `nodejs_*` (event loop lag,',
    '`nodejs_heap_size_used_bytes` and other V8 heap sizes, garbage collection durations, active handles,',
    'Node.js version). Which ones appear depends on the platform (file descriptors are Linux only).',
    '',
  ].join('\n');
}

// ------------------------------------------------------------------------------------ all

/** The docs test/unit/error-catalogue.test.ts checks: the error catalogue and the worker keys. */
export function generatedDocs(): Record<string, string> {
  return {
    'docs/errors.md': renderErrorsDoc(),
    'docs/worker.md': renderSpecDoc('Worker configuration', WORKER_INTRO, workerSpec),
    // Single Message Transforms and predicates, from their config specs.
    'docs/transforms.md': renderTransformsDoc(),
  };
}

/**
 * Every generated doc, by path relative to the repository root: generatedDocs(), one page per
 * built-in connector plugin, and docs/metrics.md (read back from prom-client registries).
 */
export async function allGeneratedDocs(): Promise<Record<string, string>> {
  return {
    ...generatedDocs(),
    ...Object.fromEntries(
      builtinPlugins.map((plugin) => [connectorDocPath(plugin), renderConnectorDoc(plugin)]),
    ),
    'docs/metrics.md': await renderMetricsDoc(),
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [path, text] of Object.entries(await allGeneratedDocs())) {
    mkdirSync(dirname(join(repoRoot, path)), { recursive: true });
    writeFileSync(join(repoRoot, path), text);
    console.log(`wrote ${path}`);
  }
}
