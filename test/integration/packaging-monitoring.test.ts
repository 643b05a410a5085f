// The monitoring that ships in deploy/: promtool (of the Prometheus that docker-compose.yml runs,
// built into the cache by dev/tools.ts on first use) accepts the Prometheus config and the alert
// rules and passes their unit tests, and every metric (and label) that an alert expression or a Grafana
// panel uses exists in the /metrics output of a real worker that has run the census flow: a
// FileSource feeding a TFServingInference connector, plus one undecodable record for the DLQ.
// PromQL is parsed with Prometheus' own lezer grammar, not with regular expressions.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parser as promql } from '@prometheus-io/lezer-promql';
import type { SyntaxNode } from '@lezer/common';
import { parse as parseYaml } from 'yaml';
import { documentedMetrics, repoRoot } from '../../dev/generate-docs.js';
import { ensurePromtool, PROMETHEUS_VERSION, promtoolTool } from '../../dev/tools.js';
import { silenceKafkajsTimerWarnings } from '../../runtime/node-warnings.js';
import { modelServerTarget, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const promDir = join(repoRoot, 'deploy', 'prometheus');
const rulesFiles = readdirSync(promDir)
  .filter((f) => f.endsWith('.rules.yml'))
  .map((f) => join(promDir, f));
const ruleTestFiles = readdirSync(join(promDir, 'tests')).map((f) => join(promDir, 'tests', f));
const dashboardFile = join(repoRoot, 'deploy', 'grafana', 'dashboards', 'infer-connect.json');

/** Series Prometheus itself adds to every scrape; they are never in a target's /metrics. */
const SCRAPE_SERIES = new Set(['up']);
/** Labels Prometheus attaches to every scraped series (the target's). */
const TARGET_LABELS = new Set(['job', 'instance']);
/**
 * Series that appear only after their first event (a failed DLQ write, a retry, a breaker refusal,
 * a pause), which the happy census flow does not cause: their families must still be announced.
 */
const FIRST_EVENT_SERIES = new Set([
  'kafka_connect_task_error_deadletterqueue_produce_failures',
  'kafka_connect_task_error_total_retries',
  'infer_connect_breaker_rejections_total',
  'infer_connect_task_paused_partitions',
]);

interface Query {
  where: string;
  expr: string;
}

function alertQueries(): Query[] {
  const queries: Query[] = [];
  for (const file of rulesFiles) {
    const { groups } = parseYaml(readFileSync(file, 'utf8')) as {
      groups: Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }>;
    };
    for (const rule of groups.flatMap((g) => g.rules)) {
      queries.push({ where: `alert ${rule.alert ?? rule.record}`, expr: String(rule.expr) });
    }
  }
  return queries;
}

interface Dashboard {
  panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ name: string; query: { query: string } | string }> };
}

const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as Dashboard;

function panelQueries(): Query[] {
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ where: `panel "${panel.title}"`, expr: target.expr })),
  );
}

/** Grafana's interval variables become a plain duration; $job and $connector only occur inside strings. */
const withoutGrafanaVariables = (expr: string) => expr.replace(/\$__(rate_)?interval\b/g, '1m');

interface Usage {
  metrics: Set<string>;
  /** Label names used in selectors, per metric. */
  matcherLabels: Array<{ metric: string; label: string }>;
  /** `by (...)` labels with the metrics under that aggregation. */
  groupingLabels: Array<{ label: string; metrics: string[] }>;
}

function analyse(query: Query): Usage {
  const expr = withoutGrafanaVariables(query.expr);
  const tree = promql.parse(expr);
  const text = (node: SyntaxNode) => expr.slice(node.from, node.to);
  const usage: Usage = { metrics: new Set(), matcherLabels: [], groupingLabels: [] };
  const metricsUnder = (node: SyntaxNode): string[] => {
    const names: string[] = [];
    for (let child = node.firstChild; child; child = child.nextSibling) {
      const identifier = child.name === 'VectorSelector' ? child.getChild('Identifier') : null;
      if (identifier) names.push(text(identifier));
      else names.push(...metricsUnder(child));
    }
    return names;
  };
  tree.iterate({
    enter: (ref) => {
      if (ref.type.isError)
        throw new Error(`${query.where}: PromQL syntax error at ${ref.from} in ${query.expr}`);
      if (ref.name === 'VectorSelector') {
        const identifier = ref.node.getChild('Identifier');
        if (!identifier) throw new Error(`${query.where}: a selector without a metric name in ${query.expr}`);
        const metric = text(identifier);
        usage.metrics.add(metric);
        for (const name of ref.node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []) {
          usage.matcherLabels.push({ metric, label: text(name.getChild('LabelName')!) });
        }
      }
      if (ref.name === 'AggregateExpr') {
        const grouping = ref.node.getChild('AggregateModifier')?.getChild('GroupingLabels');
        const body = ref.node.getChild('FunctionCallBody');
        for (const label of grouping?.getChildren('LabelName') ?? []) {
          usage.groupingLabels.push({ label: text(label), metrics: body ? metricsUnder(body) : [] });
        }
      }
    },
  });
  return usage;
}

interface Exposition {
  /** Metric families announced by `# TYPE` lines. */
  families: Map<string, string>;
  /** Sample names (a histogram's _bucket, _sum and _count) with the label names their samples carry. */
  samples: Map<string, Set<string>>;
}

/** Reads the Prometheus text format: `# TYPE` lines and `name{label="value",...} value` samples. */
function readExposition(text: string): Exposition {
  const families = new Map<string, string>();
  const samples = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    if (line.startsWith('#') || line.trim() === '') continue;
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+( \d+)?$/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    const labels = samples.get(sample[1]!) ?? new Set<string>();
    for (const [, name] of (sample[2] ?? '').matchAll(/(\w+)="(?:[^"\\]|\\.)*"/g)) labels.add(name!);
    samples.set(sample[1]!, labels);
  }
  return { families, samples };
}

/** The family a sample name belongs to (http_request_duration_seconds_bucket -> ..._seconds). */
function familyOf(exposition: Exposition, name: string): string | undefined {
  if (exposition.families.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return ['histogram', 'summary'].includes(exposition.families.get(base) ?? '') ? base : undefined;
}

/** promtool of the Prometheus that docker-compose.yml runs, built into the cache on first use. */
let promtoolPath: string;

function promtool(args: string[]): { status: number | null; output: string } {
  const result = spawnSync(promtoolPath, args, { cwd: repoRoot, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('monitoring (deploy/prometheus, deploy/grafana)', function () {
  this.timeout(180_000);

  describe('promtool', () => {
    before(async function () {
      this.timeout(promtoolTool.timeoutMs + 120_000); // the first run builds promtool
      promtoolPath = await ensurePromtool();
    });

    it('is the version of the Prometheus image that docker-compose.yml runs', () => {
      const compose = parseYaml(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8')) as {
        services: Record<string, { image?: string }>;
      };
      const images = Object.values(compose.services)
        .map((service) => service.image)
        .filter((image) => image?.startsWith('prom/prometheus:'));
      expect(images).to.deep.equal([`prom/prometheus:v${PROMETHEUS_VERSION}`]);
      const version = promtool(['--version']);
      expect(version.status, version.output).to.equal(0);
      expect(version.output, promtoolPath).to.include(`promtool, version ${PROMETHEUS_VERSION}`);
    });

    it('accepts the alert rules', () => {
      expect(rulesFiles).to.have.length.at.least(1);
      const result = promtool(['check', 'rules', ...rulesFiles]);
      expect(result.status, result.output).to.equal(0);
    });

    it('accepts the Prometheus config, which loads those rules', () => {
      const result = promtool(['check', 'config', join(promDir, 'prometheus.yml')]);
      expect(result.status, result.output).to.equal(0);
      for (const file of rulesFiles) expect(result.output).to.include(file.slice(promDir.length + 1));
    });

    it('passes the unit tests of the alert rules (firing and quiet cases of each alert)', () => {
      const result = promtool(['test', 'rules', ...ruleTestFiles]);
      expect(result.status, result.output).to.equal(0);
    });
  });

  it('alerts on an open breaker, dead letters, growing lag and FAILED tasks', () => {
    const alerts = new Map(alertQueries().map((q) => [q.where.replace(/^alert /, ''), q.expr]));
    expect(alerts.get('InferConnectTaskFailed')).to.equal(
      'kafka_connect_connector_task_status{status="FAILED"} == 1',
    );
    expect(alerts.get('InferConnectCircuitBreakerOpen')).to.include('infer_connect_breaker_state');
    expect(alerts.get('InferConnectDeadLetterRateHigh')).to.include(
      'kafka_connect_task_error_deadletterqueue_produce_requests',
    );
    expect(alerts.get('InferConnectConsumerLagGrowing')).to.include('infer_connect_consumer_lag');
  });

  it('charts throughput, lag, latency p50/p99, batch size, breaker, queue depth, DLQ, gRPC errors and memory', () => {
    const used = new Set(panelQueries().flatMap((q) => [...analyse(q).metrics]));
    expect([...used]).to.include.members([
      'kafka_connect_sink_task_sink_record_read_total',
      'kafka_connect_sink_task_sink_record_send_total',
      'infer_connect_consumer_lag',
      'infer_connect_inference_request_duration_seconds_bucket',
      'infer_connect_inference_batch_size_bucket',
      'infer_connect_breaker_state',
      'infer_connect_rate_limiter_queue_depth',
      'kafka_connect_task_error_deadletterqueue_produce_requests',
      'infer_connect_inference_requests_total',
      'process_resident_memory_bytes',
    ]);
    const exprs = panelQueries().map((q) => q.expr);
    for (const quantile of ['0.5', '0.99']) {
      expect(
        exprs.some((e) => e.startsWith(`histogram_quantile(${quantile}, `) && e.includes('request_duration')),
      ).to.equal(true);
    }
    expect(
      exprs.some((e) =>
        /sum by \([^)]*\bcode\b[^)]*\) \(rate\(infer_connect_inference_requests_total/.test(e),
      ),
    ).to.equal(true);
  });

  describe('against the /metrics of a worker that ran the census flow', () => {
    let exposition: Exposition;
    /** Label names each family declares (from the metric definitions, as docs/metrics.md lists them). */
    let declared: Map<string, string[]>;

    before(async function () {
      this.timeout(180_000);
      silenceKafkajsTimerWarnings();
      const input = uniqueName('monitoring-census');
      const worker = await startTestWorker();
      try {
        const admin = testKafka().admin();
        await admin.connect();
        await admin.createTopics({
          topics: [{ topic: input, numPartitions: 1, replicationFactor: 1 }],
          waitForLeaders: true,
        });
        await admin.disconnect();
        // One record no converter can read: it goes to the dead-letter topic.
        const producer = testKafka().producer();
        await producer.connect();
        await producer.send({ topic: input, messages: [{ key: 'garbage', value: Buffer.from('not avro') }] });
        await producer.disconnect();

        const csv = readFileSync(join(repoRoot, 'data', 'census', 'adult.test.csv'), 'utf8').split('\n');
        const file = join(worker.dir, 'census.csv');
        writeFileSync(file, `${csv.slice(0, 11).join('\n')}\n`);
        await worker.worker.putConnectorConfig(
          `${input}-source`,
          {
            'connector.class': 'FileSource',
            file,
            format: 'csv',
            'value.schema.file': join(repoRoot, 'schemas', 'census.avsc'),
            topic: input,
            'value.converter': 'avro',
          },
          false,
        );
        const example = JSON.parse(
          readFileSync(join(repoRoot, 'config', 'census-inference.json'), 'utf8'),
        ) as {
          config: Record<string, string>;
        };
        await worker.worker.putConnectorConfig(
          input,
          {
            ...example.config,
            topics: input,
            'output.topic': `${input}-scored`,
            'errors.deadletterqueue.topic.name': `${input}-dlq`,
            'tfserving.target': modelServerTarget,
          },
          false,
        );
        const metric = (text: string, name: string) =>
          Number(new RegExp(`^${name}\\{connector="${input}",task="0"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
        const text = await waitFor(
          async () => {
            const body = await (await fetch(`${worker.url}/metrics`)).text();
            const done =
              metric(body, 'kafka_connect_sink_task_sink_record_send_total') === 10 &&
              metric(body, 'kafka_connect_task_error_deadletterqueue_produce_requests') === 1;
            return done ? body : undefined;
          },
          60_000,
          '10 scored records and 1 dead letter in the metrics',
        );
        exposition = readExposition(text);
        const { runtime, inference } = await documentedMetrics();
        declared = new Map([...runtime, ...inference].map((row) => [row.name, row.labels]));
      } catch (error) {
        const log = readFileSync(join(worker.dir, 'worker.log'), 'utf8').split('\n').slice(-30).join('\n');
        throw new Error(`${(error as Error).message}\nlast lines of the worker log:\n${log}`);
      } finally {
        await worker.stop();
      }
    });

    for (const [what, queries] of [
      ['alert expression', alertQueries],
      ['Grafana panel query', panelQueries],
    ] as const) {
      it(`has every metric and label each ${what} uses`, () => {
        const problems: string[] = [];
        /** Label names a sample name can carry: seen on its samples, or declared by its definition. */
        const labelsOf = (metric: string): Set<string> | undefined => {
          const family = familyOf(exposition, metric);
          if (family === undefined) return undefined;
          const labels = new Set([
            ...(exposition.samples.get(metric) ?? []),
            ...(declared.get(family) ?? []),
          ]);
          if (metric.endsWith('_bucket')) labels.add('le');
          return labels;
        };
        for (const query of queries()) {
          const usage = analyse(query);
          for (const metric of usage.metrics) {
            if (SCRAPE_SERIES.has(metric)) continue;
            if (labelsOf(metric) === undefined) problems.push(`${query.where}: ${metric} is not in /metrics`);
            else if (!exposition.samples.has(metric) && !FIRST_EVENT_SERIES.has(metric)) {
              problems.push(`${query.where}: ${metric} has no samples after the census flow`);
            }
          }
          for (const { metric, label } of usage.matcherLabels) {
            if (SCRAPE_SERIES.has(metric) || TARGET_LABELS.has(label)) continue;
            if (labelsOf(metric)?.has(label) === false)
              problems.push(`${query.where}: ${metric} has no label ${label}`);
          }
          for (const { label, metrics } of usage.groupingLabels) {
            if (TARGET_LABELS.has(label)) continue;
            if (!metrics.some((m) => labelsOf(m)?.has(label))) {
              problems.push(
                `${query.where}: by (${label}) but no metric under it has ${label}: ${metrics.join(', ')}`,
              );
            }
          }
        }
        expect(problems).to.deep.equal([]);
      });
    }

    it('has the metric and label of each dashboard variable (label_values)', () => {
      for (const variable of dashboard.templating.list) {
        const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
        const match = /^label_values\((\w+)(?:\{[^}]*\})?,\s*(\w+)\)$/.exec(query);
        expect(match, `variable ${variable.name}: ${query}`).not.to.equal(null);
        const [, metric, label] = match!;
        expect(exposition.families.has(metric!), metric).to.equal(true);
        if (!TARGET_LABELS.has(label!)) expect([...exposition.samples.get(metric!)!]).to.include(label);
      }
    });
  });
});
