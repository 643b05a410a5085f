import { expect } from 'chai';
import {
  compareWithExpected,
  firstDifference,
  jsonLine,
  parseExpected,
  parseJsonExact,
  printable,
  type Outcome,
} from '../../runtime/offline-test-report.js';

describe('offline test outcomes and comparison', () => {
  it('keeps longs beyond 2^53 exact from the printed line to the parsed expected one', () => {
    const line = jsonLine({
      line: 1,
      outputs: [{ topic: 't', key: null, value: { id: 9007199254740993n } }],
    });
    expect(line).to.include('"id":9007199254740993');
    const parsed = parseJsonExact(line) as { outputs: Array<{ value: { id: unknown } }> };
    expect(parsed.outputs[0]!.value.id).to.equal(9007199254740993n);
    expect(firstDifference(9007199254740993n, 9007199254740992n, 1e-6)).to.deep.equal({
      path: '(whole outcome)',
      expected: 9007199254740993n,
      actual: 9007199254740992n,
    });
  });

  it('prints bytes as text when they are UTF-8 and as base64 otherwise, and non-finite numbers as text', () => {
    expect(printable({ k: Buffer.from('row-1'), b: Buffer.from([0xff, 0x00]), n: Number.NaN })).to.deep.equal(
      {
        k: 'row-1',
        b: { base64: '/wA=' },
        n: 'NaN',
      },
    );
  });

  it('matches numbers within tolerance × max(1, |expected|) and names the first differing path otherwise', () => {
    expect(firstDifference({ p: [0.4115028] }, { p: [0.4115028381347656] }, 1e-6)).to.equal(undefined);
    expect(firstDifference({ p: 1000 }, { p: 1000.0009 }, 1e-6)).to.equal(undefined);
    expect(firstDifference({ p: 1000 }, { p: 1000.002 }, 1e-6)).to.deep.include({ path: 'p' });
    expect(firstDifference({ p: 0.5 }, { p: 0.5000001 }, 0)).to.deep.include({ path: 'p' });
    expect(firstDifference({ a: 1 }, { a: 1, b: 2 }, 0)).to.deep.equal({
      path: 'b',
      expected: undefined,
      actual: 2,
    });
  });

  it('compares dead letters by topic, code and stage only', () => {
    const outcome: Outcome = {
      line: 4,
      dead_letter: { topic: 'dlq', code: 'X', stage: 'TASK_PROCESS', class: 'C', message: 'new wording' },
    };
    const expected = parseExpected(
      '{"line":4,"dead_letter":{"topic":"dlq","code":"X","stage":"TASK_PROCESS","message":"old wording","class":"Other"}}\n',
      'e.jsonl',
    );
    expect(expected.problems).to.deep.equal([]);
    const { differing } = compareWithExpected([outcome], expected.byLine, {
      tolerance: 0,
      ignoreFields: [],
      expectedSource: 'e.jsonl',
      inputSource: 'in.jsonl',
    });
    expect(differing).to.equal(0);
  });

  it('refuses expected lines that are not one outcome of one input line', () => {
    const { problems } = parseExpected(
      '{"line":1,"written":true}\n{"line":1,"written":true}\n{"line":2,"written":true,"outputs":[]}\n[]\n',
      'e.jsonl',
    );
    expect(problems).to.deep.equal([
      'e.jsonl line 2: a second outcome for input line 1',
      'e.jsonl line 3: must have exactly one of "outputs", "written", "dead_letter", "task_failed", "retry_timeout", "not_processed"',
      'e.jsonl line 4: is not a JSON object',
    ]);
  });
});
