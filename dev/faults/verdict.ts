// The verdict of one fault case, computed from what the topics hold, never from the worker's own
// counters: every input record is identified by the unique id the harness put in its key, which
// the runtime carries to the output record and to the dead letter unchanged.
//
// Pure functions over plain arrays, so the checks themselves are tested without a stack
// (test/integration/fault-matrix.test.ts).

/** A record of a topic as the harness read it back. */
export interface TopicRecord {
  partition: number;
  offset: number;
  /** The record key (the harness's record id); null when the record has no key. */
  id: string | null;
  headers: Readonly<Record<string, string>>;
}

export interface Evidence {
  inputTopic: string;
  input: readonly TopicRecord[];
  /** Every output record read, including those of an earlier incarnation of a deleted topic. */
  output: readonly TopicRecord[];
  outputPartitions: number;
  deadLetters: readonly TopicRecord[];
  /** The group's committed offset (the next offset to read) per input partition, after the run. */
  committed: ReadonlyMap<number, number>;
  /** Ids the harness made bad on purpose; any other dead letter is a good record the runtime gave up on. */
  expectedDeadLetter: (id: string) => boolean;
}

export interface Verdict {
  recordsIn: number;
  recordsOut: number;
  deadLetters: number;
  /** Input records below the committed offset that are in neither the output nor the DLQ. */
  lost: number;
  /** Input records at or above the committed offset not yet in the output or the DLQ. */
  pending: number;
  /** Output and DLQ records beyond the first for an input record (a record in both counts once). */
  duplicates: number;
  /** Ids the producer wrote more than once to the input (a retried send); informational. */
  inputDuplicates: number;
  /** Output records of input partition p not in output partition p mod the partition count. */
  misrouted: number;
  /** First outputs of an input record that came after the first output of a later input record. */
  outOfOrder: number;
  /** Dead letters whose `__connect.errors.topic/partition/offset` do not name their input record. */
  deadLetterContextMismatches: number;
  /** Output or DLQ records whose id is not in the input at all. */
  foreign: number;
  /** Dead letters of good records (transient trouble must be retried, never dead-lettered). */
  unexpectedDeadLetters: number;
  /** How many unexpected dead letters each `__connect.errors.error.code` (or exception class) has. */
  unexpectedDeadLetterCauses: Record<string, number>;
  /** A few examples of each problem, for the report. */
  examples: string[];
}

const HEADER = '__connect.errors.';
const MAX_EXAMPLES = 8;

interface Position {
  partition: number;
  offset: number;
}

export function judge(evidence: Evidence): Verdict {
  const examples: string[] = [];
  const example = (text: string) => {
    if (examples.length < MAX_EXAMPLES) examples.push(text);
  };

  // Every input copy of each id, in offset order per partition (a retried producer send can write
  // an id twice; each copy is an input record that must be delivered).
  const inputById = new Map<string, Position[]>();
  let inputDuplicates = 0;
  for (const record of evidence.input) {
    if (record.id === null) continue;
    const copies = inputById.get(record.id);
    if (copies) {
      copies.push(record);
      inputDuplicates++;
    } else inputById.set(record.id, [{ partition: record.partition, offset: record.offset }]);
  }

  const occurrences = new Map<string, number>();
  let foreign = 0;
  for (const record of [...evidence.output, ...evidence.deadLetters]) {
    if (record.id === null || !inputById.has(record.id)) {
      foreign++;
      example(
        `foreign record ${record.id ?? '(no key)'} at partition ${record.partition} offset ${record.offset}`,
      );
      continue;
    }
    occurrences.set(record.id, (occurrences.get(record.id) ?? 0) + 1);
  }

  let lost = 0;
  let pending = 0;
  let duplicates = 0;
  for (const [id, copies] of inputById) {
    const seen = occurrences.get(id) ?? 0;
    duplicates += Math.max(0, seen - copies.length);
    copies.forEach((copy, index) => {
      if (index < seen) return;
      const committed = evidence.committed.get(copy.partition) ?? -1;
      if (copy.offset < committed) {
        lost++;
        example(
          `lost: ${id} (input partition ${copy.partition} offset ${copy.offset}, committed ${committed})`,
        );
      } else pending++;
    });
  }

  // Order: within each output partition, the first outputs of each input partition's records
  // must come in input offset order. Replays of records already written are duplicates, not
  // disorder, so only first occurrences count.
  let misrouted = 0;
  let outOfOrder = 0;
  const firstSeen = new Set<string>();
  const byPartition = new Map<number, TopicRecord[]>();
  for (const record of evidence.output) {
    let list = byPartition.get(record.partition);
    if (!list) byPartition.set(record.partition, (list = []));
    list.push(record);
  }
  for (const [outputPartition, records] of byPartition) {
    // An earlier incarnation of a deleted topic comes first in `output`: keep that order.
    const lastOffsetOf = new Map<number, number>();
    for (const record of records) {
      const copies = record.id === null ? undefined : inputById.get(record.id);
      if (!copies || copies.length !== 1) continue;
      const origin = copies[0]!;
      if (origin.partition % evidence.outputPartitions !== outputPartition) {
        misrouted++;
        example(
          `misrouted: ${record.id} from input partition ${origin.partition} in output partition ${outputPartition}`,
        );
      }
      if (firstSeen.has(record.id!)) continue;
      firstSeen.add(record.id!);
      const last = lastOffsetOf.get(origin.partition) ?? -1;
      if (origin.offset < last) {
        outOfOrder++;
        example(
          `out of order: input ${origin.partition}@${origin.offset} (${record.id}) written after input ${origin.partition}@${last}`,
        );
      } else lastOffsetOf.set(origin.partition, origin.offset);
    }
  }

  let unexpectedDeadLetters = 0;
  const unexpectedDeadLetterCauses: Record<string, number> = {};
  for (const letter of evidence.deadLetters) {
    if (letter.id === null || !inputById.has(letter.id) || evidence.expectedDeadLetter(letter.id)) continue;
    unexpectedDeadLetters++;
    const h = letter.headers;
    const cause = h[`${HEADER}error.code`] ?? h[`${HEADER}exception.class.name`] ?? '(no context headers)';
    if (!(cause in unexpectedDeadLetterCauses)) {
      example(
        `unexpected dead letter ${letter.id}: ${cause}: ${(h[`${HEADER}exception.message`] ?? '').slice(0, 200)}`,
      );
    }
    unexpectedDeadLetterCauses[cause] = (unexpectedDeadLetterCauses[cause] ?? 0) + 1;
  }

  let deadLetterContextMismatches = 0;
  for (const letter of evidence.deadLetters) {
    const copies = letter.id === null ? undefined : inputById.get(letter.id);
    if (!copies || copies.length !== 1) continue;
    const origin = copies[0]!;
    const h = letter.headers;
    if (
      h[`${HEADER}topic`] !== evidence.inputTopic ||
      h[`${HEADER}partition`] !== String(origin.partition) ||
      h[`${HEADER}offset`] !== String(origin.offset)
    ) {
      deadLetterContextMismatches++;
      example(
        `DLQ context of ${letter.id}: ${h[`${HEADER}topic`]}/${h[`${HEADER}partition`]}/${h[`${HEADER}offset`]}, ` +
          `expected ${evidence.inputTopic}/${origin.partition}/${origin.offset}`,
      );
    }
  }

  return {
    recordsIn: evidence.input.length,
    recordsOut: evidence.output.length,
    deadLetters: evidence.deadLetters.length,
    lost,
    pending,
    duplicates,
    inputDuplicates,
    misrouted,
    outOfOrder,
    deadLetterContextMismatches,
    foreign,
    unexpectedDeadLetters,
    unexpectedDeadLetterCauses,
    examples,
  };
}

/** A decrease of a group's committed offset seen between two polls. */
export interface OffsetRegression {
  at: number;
  partition: number;
  from: number;
  to: number;
}

/**
 * Compares two successive snapshots of committed offsets. A partition missing from `next` (not
 * committed yet, or the poll lost it) is no regression; a lower offset is.
 */
export function regressionsBetween(
  previous: ReadonlyMap<number, number>,
  next: ReadonlyMap<number, number>,
  at: number,
): OffsetRegression[] {
  const out: OffsetRegression[] = [];
  for (const [partition, to] of next) {
    const from = previous.get(partition);
    if (from !== undefined && from >= 0 && to < from) out.push({ at, partition, from, to });
  }
  return out;
}
