// Redraws bench/results/latest.svg (and copies latest.json) from one results file, e.g. to make a
// full run the latest again after a --quick run:  npx tsx bench/replot.ts bench/results/<file>.json
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderChart } from './chart.js';
import { chartOf, type BenchResults } from './report.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: npx tsx bench/replot.ts bench/results/<start time>.json\n');
  process.exit(2);
}
const results = JSON.parse(readFileSync(file, 'utf8')) as BenchResults;
const resultsDir = join(import.meta.dirname, 'results');
writeFileSync(join(resultsDir, 'latest.svg'), await renderChart(chartOf(results)));
copyFileSync(file, join(resultsDir, 'latest.json'));
process.stderr.write(`bench/results/latest.json and latest.svg now show ${file}\n`);
