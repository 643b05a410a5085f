// `npm run faults`: the fault matrix against a separate instance of the local stack. Runs every
// case serially (two cores), writes docs/reliability.md (the full matrix) or a report in the run
// dir (--quick / --only), and exits non-zero when any invariant failed.
//
//   npm run faults                       # full matrix, at most 20 minutes
//   npm run faults -- --quick            # the CI subset, at most 8 minutes
//   npm run faults -- --only a,c,eos-i   # chosen rows
//   npm run faults -- --keep             # leave the faults stack running afterwards
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { silenceKafkajsTimerWarnings } from '../../runtime/node-warnings.js';
import { down, instances, repoRoot, up } from '../stack.js';
import { runCase, type CaseResult, type MatrixSettings } from './case-runner.js';
import { selectCases } from './matrix.js';
import { renderReport } from './report.js';
import { harnessKafka } from './topics.js';
import { killAllWorkers } from './workers.js';

export interface MatrixOptions {
  quick: boolean;
  only?: string[];
  keep: boolean;
  /** Report file; by default docs/reliability.md for the full matrix, the run dir otherwise. */
  out?: string;
  /** The worker entry point (default bin/infer-connect.js of this checkout). */
  cli?: string;
  recordsPerSecond?: number;
  log?: (line: string) => void;
}

export interface MatrixRun {
  results: CaseResult[];
  reportFile: string;
  passed: boolean;
}

function revision(): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'runtime', 'connectors', 'bin'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  const rev = head.status === 0 ? head.stdout.trim() : 'unknown';
  return dirty.status === 0 && dirty.stdout.trim() !== ''
    ? `${rev} with uncommitted changes to the runtime`
    : rev;
}

export async function runMatrix(options: MatrixOptions): Promise<MatrixRun> {
  const log =
    options.log ??
    ((line: string) => process.stderr.write(`[faults ${new Date().toISOString().slice(11, 19)}] ${line}\n`));
  const cases = selectCases({ quick: options.quick, only: options.only });
  const stack = instances.faults;
  const runTag = Date.now().toString(36);
  const runDir = join(stack.runDir, 'matrix', runTag);
  mkdirSync(runDir, { recursive: true });
  const startedAt = new Date();
  const mode = options.only ? 'selected' : options.quick ? 'quick' : 'full';
  const reportFile = resolve(
    options.out ??
      (mode === 'full' ? join(repoRoot, 'docs', 'reliability.md') : join(runDir, 'reliability.md')),
  );

  log(`starting the faults stack instance (Kafka ${stack.endpoints.kafka.bootstrap})`);
  await up(stack);
  const kafka = harnessKafka(stack.endpoints.kafka.bootstrap);
  const settings: MatrixSettings = {
    stack,
    kafka,
    quick: options.quick,
    cli: options.cli ?? join(repoRoot, 'bin', 'infer-connect.js'),
    cwd: repoRoot,
    runDir,
    runTag,
    recordsPerSecond: options.recordsPerSecond ?? 200,
    log,
  };
  const results: CaseResult[] = [];
  try {
    for (const fault of cases) {
      log(`${fault.id}: ${fault.title(options.quick)} (${fault.guarantee})`);
      const result = await runCase(settings, fault);
      results.push(result);
      const v = result.verdict;
      log(
        `${fault.id}: ${result.passed ? 'pass' : 'FAIL'} in ${result.seconds.toFixed(0)} s: in=${v?.recordsIn ?? '-'} ` +
          `out=${v?.recordsOut ?? '-'} dlq=${v?.deadLetters ?? '-'} lost=${v?.lost ?? '-'} dup=${v?.duplicates ?? '-'} ` +
          `regressions=${result.regressions.length} recovery=${result.recoverySeconds?.toFixed(1) ?? '-'}s` +
          (result.passed ? '' : `\n    ${result.violations.join('\n    ')}`),
      );
    }
  } finally {
    killAllWorkers();
    if (!options.keep) {
      log('stopping the faults stack instance (--keep leaves it running)');
      await down(stack);
    }
  }

  const args = [
    ...(options.quick ? ['--quick'] : []),
    ...(options.only ? ['--only', options.only.join(',')] : []),
  ];
  const report = renderReport(results, {
    command: `npm run faults${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`,
    mode,
    startedAt,
    seconds: (Date.now() - startedAt.getTime()) / 1000,
    revision: revision(),
  });
  writeFileSync(reportFile, report);
  log(`report: ${relative(process.cwd(), reportFile) || reportFile}; worker logs under ${runDir}`);
  return { results, reportFile, passed: results.every((r) => r.passed) };
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('faults')
    .description('Run the fault matrix against a separate instance of the local stack')
    .option('--quick', 'the quick subset with shortened faults (CI)', false)
    .option('--only <ids>', 'comma-separated fault ids, e.g. a,c,eos-i')
    .option('--keep', 'leave the faults stack instance running at the end', false)
    .option('--out <file>', 'where to write the report')
    .option('--cli <file>', 'worker entry point taking `standalone worker.json connector.json`')
    .option('--rate <n>', 'records per second of the producer', (v) => Number.parseInt(v, 10), 200);
  program.parse(argv);
  const options = program.opts<{
    quick: boolean;
    only?: string;
    keep: boolean;
    out?: string;
    cli?: string;
    rate: number;
  }>();
  // Interrupted: kill the workers, thaw and stop the faults stack (unless --keep), then exit.
  const onSignal = (signal: NodeJS.Signals) => {
    killAllWorkers();
    process.stderr.write(`[faults] ${signal}: workers killed\n`);
    const stop = options.keep ? Promise.resolve() : down(instances.faults);
    void stop.finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const run = await runMatrix({
    quick: options.quick,
    only: options.only
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    keep: options.keep,
    out: options.out,
    cli: options.cli ? resolve(options.cli) : undefined,
    recordsPerSecond: options.rate,
  });
  // Exit now: a Kafka client of a case that met a frozen broker may still hold a socket open.
  process.exit(run.passed ? 0 : 1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  silenceKafkajsTimerWarnings();
  main(process.argv).catch((error: unknown) => {
    killAllWorkers();
    process.stderr.write(`[faults] ${(error as Error).stack ?? String(error)}\n`);
    process.exit(2);
  });
}
