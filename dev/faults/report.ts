// docs/reliability.md: the fault matrix's table, what failed and why, and how it was measured.
import type { CaseResult } from './case-runner.js';
import { selectCases } from './matrix.js';

const quickIds = selectCases({ quick: true })
  .map((c) => c.id)
  .join(', ');

export interface RunInfo {
  command: string;
  mode: 'full' | 'quick' | 'selected';
  startedAt: Date;
  seconds: number;
  revision: string;
}

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
const num = (value: number | undefined) => (value === undefined ? '-' : String(value));

export function renderReport(results: readonly CaseResult[], run: RunInfo): string {
  const failed = results.filter((r) => !r.passed);
  const lines: string[] = [
    '# Reliability under faults',
    '',
    '<!-- Written by `npm run faults` (dev/faults/run.ts); do not edit by hand. -->',
    '',
    `Fault matrix run on ${run.startedAt.toISOString()} (${run.mode}, ${Math.round(run.seconds / 60)} min, ` +
      `revision ${run.revision}): ${results.length - failed.length} of ${results.length} rows pass.`,
    '',
    '```sh',
    run.command,
    '```',
    '',
    '| fault | guarantee | records in | out | DLQ | lost | duplicates | committed-offset regressions | recovery s | worker restarts | result |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of results) {
    const v = r.verdict;
    lines.push(
      `| ${cell(`${r.id}. ${r.title}`)} | ${r.guarantee} | ${num(v?.recordsIn)} | ${num(v?.recordsOut)} | ` +
        `${num(v?.deadLetters)} | ${num(v?.lost)} | ${num(v?.duplicates)} | ${r.regressions.length} | ` +
        `${r.recoverySeconds === undefined ? '-' : r.recoverySeconds.toFixed(1)} | ${r.workerRestarts} | ` +
        `${r.passed ? 'pass' : '**FAIL**'} |`,
    );
  }
  lines.push('');

  if (failed.length > 0) {
    lines.push('## What failed', '');
    for (const r of failed) {
      lines.push(`### ${r.id}. ${r.title}`, '');
      for (const v of r.violations) lines.push(`- ${cell(v)}`);
      if (r.verdict && r.verdict.pending > 0)
        lines.push(`- pending (not yet processed) at the end: ${r.verdict.pending}`);
      for (const n of r.notes) lines.push(`- note: ${cell(n)}`);
      if (r.workerProblems.length > 0) {
        lines.push('- worker log (warn/error lines by message, count):');
        for (const [message, count] of r.workerProblems) lines.push(`  - ${count} x \`${cell(message)}\``);
      }
      lines.push('');
    }
  }
  const passedWithNotes = results.filter((r) => r.passed && r.notes.length > 0);
  if (passedWithNotes.length > 0) {
    lines.push('## Notes on passing rows', '');
    for (const r of passedWithNotes) lines.push(`- ${r.id}: ${r.notes.map(cell).join('; ')}`);
    lines.push('');
  }

  lines.push(
    '## Method',
    '',
    '- **Stack.** A second, separate instance of the local stack (`npx tsx dev/stack.ts up --instance faults`): Kafka on ' +
      '127.0.0.1:19092 (controller :19093), Apicurio Registry on :18081 with its H2 database in a file (so a killed and ' +
      'restarted registry keeps its schemas and ids), the model server on :18500 (control :18502). The shared dev stack ' +
      "(:9092, :8081, :8500) is never touched. Freezing is SIGSTOP/SIGCONT on the service's process group; a kill is " +
      "SIGKILL and the restart runs on the same data (Kafka's log dirs, the registry's H2 file); model server faults " +
      'go through its control API (`stall_seconds`, `latency_ms`, `failure_rate` + `failure_code`).',
    '- **Load.** Per row, a fresh input topic with 3 partitions, fed at a steady pace (200 records/s) with Confluent-framed ' +
      'Avro census records keyed by a unique id, round-robin over the partitions; every 100th record is not Avro (a ' +
      'dead letter). The worker runs as a child process (`node bin/infer-connect.js standalone worker.json ' +
      'connector.json`) with `TFServingInference` (census model), `tasks.max=2`, `errors.tolerance=all`, a DLQ with ' +
      'context headers, `offset.flush.interval.ms=1000`; exactly-once rows run two workers with ' +
      '`processing.guarantee=exactly_once` and read output and DLQ as a `read_committed` consumer.',
    '- **Sequence.** Start producer and workers, wait for output, inject one fault, lift it, produce 6 s more, stop ' +
      'producing, then wait until the group has committed every input offset, or nothing moved for 70 s (longer than ' +
      "the runtime's default 60 s maximum redelivery backoff), or a task is FAILED, or 150 s (100 s quick) passed. " +
      "Then read the connector status from each worker's REST API, stop the workers (SIGTERM) and read the input, " +
      'output and DLQ topics back to their ends.',
    "- **Checks, all from the topics.** *lost*: input records below the group's final committed offset found neither in " +
      'the output nor in the DLQ (by id); *pending*: input records above it not processed yet (must be 0 unless the ' +
      'row allows a visible task failure); *duplicates*: output + DLQ records beyond one per input record; order: in ' +
      "every output partition, the first outputs of each input partition's records follow input offset order, and " +
      "input partition p lands in output partition p; every dead letter's `__connect.errors.topic/partition/offset` " +
      "names its input record; *committed-offset regressions*: decreases of the group's committed offsets, polled " +
      'every 500 ms during the whole row; the worker processes never exit on their own and their tasks are RUNNING ' +
      'at the end. *recovery s*: from the moment the fault was lifted until the committed offset of every input ' +
      'partition moved again (sampled every 500 ms; offsets are committed every second). *worker restarts*: restarts the fault itself made (i, j; k adds and removes a worker).',
    '- **Pass.** No invariant broken: lost = 0, no regression, order kept, DLQ context right, no duplicates where the ' +
      'row demands none (exactly-once rows and j), the expected dead letter present (l2), caught up and RUNNING after ' +
      'recovery. Rows l1 and l3 also pass when the task goes FAILED with a trace naming the topic (nothing else can ' +
      'fix a DLQ that cannot be created), provided nothing was lost.',
    `- **Quick mode** (\`npm run faults -- --quick\`, what CI runs through test/integration/fault-matrix.test.ts): rows ` +
      `${quickIds} with the 60 s faults shortened to 20 s (row a lowers the consumer session timeout to 10 s so the ` +
      'freeze still outlasts it) and the other waits shortened as each title says. `--only a,c,eos-i` runs chosen ' +
      'rows; `--keep` leaves the faults stack running.',
    '',
  );
  return lines.join('\n');
}
