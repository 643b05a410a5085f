// The benchmark's chart: scenario c's throughput and its p99 latency (at 50% of its own maximum
// rate) against batch size, with the plain-kafkajs ceiling (a) and the pass-through runtime (b) as
// reference lines. Vega-Lite compiled to Vega and rendered to SVG headless (no canvas needed).
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface ChartPoint {
  batchSize: number;
  recordsPerSecond: number;
  p99Ms: number | undefined;
}

export async function renderChart(options: {
  title: string;
  points: ChartPoint[];
  references: Array<{ label: string; recordsPerSecond: number }>;
}): Promise<string> {
  const batchAxis = {
    field: 'batchSize',
    type: 'quantitative' as const,
    title: 'batch.max.records',
    scale: { type: 'log' as const, base: 2 },
    axis: { values: options.points.map((p) => p.batchSize), format: 'd' },
  };
  // Room above the highest point for its label.
  const headroom = (max: number) => Math.ceil((max * 1.15) / 10) * 10;
  const throughputMax = Math.max(
    ...options.points.map((p) => p.recordsPerSecond),
    ...options.references.map((r) => r.recordsPerSecond),
  );
  const latencyMax = Math.max(0, ...options.points.map((p) => p.p99Ms ?? 0));
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: options.title, fontSize: 13, anchor: 'start', offset: 14 },
    config: { font: 'sans-serif', view: { stroke: '#ddd' } },
    hconcat: [
      {
        width: 340,
        height: 240,
        title: 'throughput (records/s, median of runs)',
        layer: [
          {
            data: { values: options.references },
            mark: { type: 'rule', strokeDash: [4, 4] },
            encoding: {
              y: { field: 'recordsPerSecond', type: 'quantitative' },
              color: { field: 'label', type: 'nominal', title: 'reference', scale: { scheme: 'set2' } },
            },
          },
          {
            data: { values: options.points },
            mark: { type: 'line', point: true, color: '#1f77b4' },
            encoding: {
              x: batchAxis,
              y: {
                field: 'recordsPerSecond',
                type: 'quantitative',
                title: 'records/s',
                scale: { domainMax: headroom(throughputMax) },
              },
            },
          },
          {
            data: { values: options.points },
            mark: { type: 'text', dy: -10, fontSize: 10 },
            encoding: {
              x: batchAxis,
              y: { field: 'recordsPerSecond', type: 'quantitative' },
              text: { field: 'recordsPerSecond', type: 'quantitative', format: ',.0f' },
            },
          },
        ],
      },
      {
        width: 340,
        height: 240,
        title: 'end-to-end p99 latency at 50% load (ms)',
        data: { values: options.points.filter((p) => p.p99Ms !== undefined) },
        layer: [
          {
            mark: { type: 'line', point: true, color: '#d62728' },
            encoding: {
              x: batchAxis,
              y: {
                field: 'p99Ms',
                type: 'quantitative',
                title: 'p99 ms',
                scale: { domainMax: headroom(latencyMax) },
              },
            },
          },
          {
            mark: { type: 'text', dy: -10, fontSize: 10 },
            encoding: {
              x: batchAxis,
              y: { field: 'p99Ms', type: 'quantitative' },
              text: { field: 'p99Ms', type: 'quantitative', format: ',.0f' },
            },
          },
        ],
      },
    ],
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
