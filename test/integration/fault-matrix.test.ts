// The fault matrix's quick subset (dev/faults, `npm run faults -- --quick`) against a separate
// `faults` instance of the stack, so the shared one is never frozen or killed. Each row must lose
// nothing and never move the group's committed offsets back; the full verdict of every row
// (duplicates, recovery, RUNNING after recovery) is in the report the run writes.
//
// The checks the matrix relies on are tested first, on hand-made topic contents.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { runMatrix, type MatrixRun } from '../../dev/faults/run.js';
import { selectCases } from '../../dev/faults/matrix.js';
import { judge, regressionsBetween, type Evidence, type TopicRecord } from '../../dev/faults/verdict.js';
import { silenceKafkajsTimerWarnings } from '../../runtime/node-warnings.js';

silenceKafkajsTimerWarnings();

const rec = (
  partition: number,
  offset: number,
  id: string,
  headers: Record<string, string> = {},
): TopicRecord => ({
  partition,
  offset,
  id,
  headers,
});

/** Input: partition 0 holds a0..a3 at offsets 0..3, partition 1 holds b0..b1. */
const input = [
  rec(0, 0, 'a0'),
  rec(0, 1, 'a1'),
  rec(0, 2, 'a2'),
  rec(0, 3, 'a3'),
  rec(1, 0, 'b0'),
  rec(1, 1, 'b1'),
];

const evidence = (overrides: Partial<Evidence>): Evidence => ({
  inputTopic: 'in',
  input,
  output: [],
  outputPartitions: 2,
  deadLetters: [],
  committed: new Map([
    [0, 4],
    [1, 2],
  ]),
  expectedDeadLetter: (id) => id === 'a3',
  ...overrides,
});

const dlqHeaders = (partition: number, offset: number) => ({
  '__connect.errors.topic': 'in',
  '__connect.errors.partition': String(partition),
  '__connect.errors.offset': String(offset),
});

describe('the fault matrix verdict, computed from topic contents', () => {
  it('counts a committed input record missing from output and DLQ as lost, an uncommitted one as pending', () => {
    const verdict = judge(
      evidence({
        output: [rec(0, 0, 'a0'), rec(0, 1, 'a1'), rec(1, 0, 'b0')],
        deadLetters: [rec(0, 0, 'a3', dlqHeaders(0, 3))],
        committed: new Map([
          [0, 4],
          [1, 1],
        ]),
      }),
    );
    expect(verdict).to.include({ lost: 1, pending: 1, duplicates: 0, deadLetterContextMismatches: 0 });
    expect(verdict.examples.join('\n')).to.contain('a2');
  });

  it('counts a replay as duplicates, not disorder, and a record written after a later one as out of order', () => {
    const replayed = judge(
      evidence({
        output: [
          rec(0, 0, 'a0'),
          rec(0, 1, 'a1'),
          rec(0, 2, 'a0'),
          rec(0, 3, 'a1'),
          rec(0, 4, 'a2'),
          rec(0, 5, 'a3'),
        ],
        deadLetters: [],
        committed: new Map([[0, 4]]),
        input: input.slice(0, 4),
      }),
    );
    expect(replayed).to.include({ duplicates: 2, outOfOrder: 0, lost: 0 });

    const swapped = judge(
      evidence({
        output: [rec(0, 0, 'a0'), rec(0, 1, 'a2'), rec(0, 2, 'a1'), rec(0, 3, 'a3')],
        committed: new Map([[0, 4]]),
        input: input.slice(0, 4),
      }),
    );
    expect(swapped.outOfOrder).to.equal(1);
  });

  it('flags an output in another partition than its input partition, and a dead letter naming the wrong offset', () => {
    const verdict = judge(
      evidence({
        output: [rec(0, 0, 'a0'), rec(0, 1, 'a1'), rec(0, 2, 'a2'), rec(0, 3, 'b0'), rec(1, 0, 'b1')],
        deadLetters: [rec(0, 0, 'a3', dlqHeaders(0, 2))],
      }),
    );
    expect(verdict).to.include({ misrouted: 1, deadLetterContextMismatches: 1, lost: 0 });
  });

  it('counts a good record in the DLQ as an unexpected dead letter, by its error code', () => {
    const verdict = judge(
      evidence({
        output: [rec(0, 0, 'a0'), rec(0, 1, 'a1'), rec(0, 2, 'a2'), rec(1, 0, 'b0')],
        deadLetters: [
          rec(0, 0, 'a3', dlqHeaders(0, 3)),
          rec(0, 1, 'b1', { ...dlqHeaders(1, 1), '__connect.errors.error.code': 'AVRO_SCHEMA_NOT_FOUND' }),
        ],
      }),
    );
    expect(verdict).to.include({ lost: 0, unexpectedDeadLetters: 1 });
    expect(verdict.unexpectedDeadLetterCauses).to.deep.equal({ AVRO_SCHEMA_NOT_FOUND: 1 });
  });

  it('keeps an id the producer wrote twice as two input records that both need an output', () => {
    const verdict = judge(
      evidence({
        input: [rec(0, 0, 'a0'), rec(0, 1, 'a0')],
        output: [rec(0, 0, 'a0')],
        committed: new Map([[0, 2]]),
      }),
    );
    expect(verdict).to.include({ inputDuplicates: 1, lost: 1 });
  });

  it('reports committed offsets that go down between two polls, and nothing for a partition missing from a poll', () => {
    const before = new Map([
      [0, 10],
      [1, 5],
    ]);
    expect(regressionsBetween(before, new Map([[0, 12]]), 1)).to.deep.equal([]);
    expect(
      regressionsBetween(
        before,
        new Map([
          [0, 7],
          [1, 5],
        ]),
        2,
      ),
    ).to.deep.equal([{ at: 2, partition: 0, from: 10, to: 7 }]);
  });
});

describe('the fault matrix, quick subset, against a separate instance of the stack', function () {
  const cases = selectCases({ quick: true });
  let run: MatrixRun | undefined;

  before(async function () {
    this.timeout(15 * 60_000);
    run = await runMatrix({
      quick: true,
      keep: false,
      out: join(mkdtempSync(join(tmpdir(), 'infer-connect-faults-')), 'reliability.md'),
      log: (line) => process.stderr.write(`      [faults] ${line}\n`),
    });
    process.stderr.write(`      report: ${run.reportFile}\n`);
  });

  for (const fault of cases) {
    it(`${fault.id}: ${fault.title(true)}: loses nothing and never moves committed offsets back`, () => {
      const result = run!.results.find((r) => r.id === fault.id)!;
      expect(result.verdict, result.violations.join('; ')).to.not.equal(undefined);
      expect(result.verdict!.lost, 'records lost').to.equal(0);
      expect(result.regressions, 'committed-offset regressions').to.deep.equal([]);
    });
  }
});
