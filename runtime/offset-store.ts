// Source offsets in standalone mode: one JSON file for the worker (Kafka Connect's
// `offset.storage.file.filename`), keyed by connector and source partition. Writes go to a
// temporary file that is renamed over the old one, so a crash leaves either the old or the new
// offsets, never a torn file.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SourceOffset, SourcePartition } from './api.js';

type Stored = Record<string, Record<string, SourceOffset>>;

/** A stable key for a source partition, whatever the order of its fields. */
export function partitionKey(partition: SourcePartition): string {
  return JSON.stringify(Object.fromEntries(Object.entries(partition).sort(([a], [b]) => a.localeCompare(b))));
}

export class FileOffsetStore {
  private data: Stored;

  constructor(private readonly file: string) {
    this.data = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Stored) : {};
  }

  get(connector: string, partition: SourcePartition): SourceOffset | undefined {
    return this.data[connector]?.[partitionKey(partition)];
  }

  all(connector: string): Array<{ partition: SourcePartition; offset: SourceOffset }> {
    return Object.entries(this.data[connector] ?? {}).map(([key, offset]) => ({
      partition: JSON.parse(key) as SourcePartition,
      offset,
    }));
  }

  /** Records acknowledged offsets and writes the file. */
  commit(connector: string, offsets: ReadonlyMap<string, SourceOffset>): void {
    if (offsets.size === 0) return;
    const forConnector = (this.data[connector] ??= {});
    for (const [key, offset] of offsets) forConnector[key] = offset;
    this.write();
  }

  /** Replaces a connector's offsets (REST PATCH/DELETE /offsets, connector STOPPED). */
  replace(
    connector: string,
    offsets: Array<{ partition: SourcePartition; offset: SourceOffset | null }>,
  ): void {
    const forConnector = (this.data[connector] ??= {});
    for (const { partition, offset } of offsets) {
      if (offset === null) delete forConnector[partitionKey(partition)];
      else forConnector[partitionKey(partition)] = offset;
    }
    this.write();
  }

  reset(connector: string): void {
    delete this.data[connector];
    this.write();
  }

  private write(): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const temporary = `${this.file}.tmp`;
    writeFileSync(temporary, JSON.stringify(this.data));
    renameSync(temporary, this.file);
  }
}
