// The census CSVs (data/census) as rows typed like schemas/census.avsc: the long columns as
// numbers, the rest as strings. Shared by the bench and the tests that check census records.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseCsvLine } from '../connectors/file/csv.js';

const repoRoot = resolve(import.meta.dirname, '..');

export type CensusRow = Record<string, string | number>;

const numericColumns: ReadonlySet<string> = new Set(
  (
    JSON.parse(readFileSync(join(repoRoot, 'schemas/census.avsc'), 'utf8')) as {
      fields: Array<{ name: string; type: unknown }>;
    }
  ).fields
    .filter((field) => field.type === 'long' || field.type === 'int')
    .map((field) => field.name),
);

/** Every row of `data/census/adult.<split>.csv`. */
export function readCensusRows(split: 'train' | 'test'): CensusRow[] {
  const [header, ...lines] = readFileSync(join(repoRoot, `data/census/adult.${split}.csv`), 'utf8')
    .trimEnd()
    .split('\n');
  const columns = parseCsvLine(header!);
  return lines.map((line) => {
    const cells = parseCsvLine(line);
    return Object.fromEntries(
      columns.map((c, i) => [c, numericColumns.has(c) ? Number(cells[i]) : cells[i]!]),
    );
  });
}
