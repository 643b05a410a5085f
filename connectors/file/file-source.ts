// FileSource: reads a CSV file (with a header row) or a JSON-lines file and emits one Avro record
// per line, typed by a given `.avsc` schema. The source offset is the byte position after the
// last line emitted, so a restart resumes at the next line. Like `tail -f`, it keeps watching the
// file for appended lines. A line that does not fit the schema is reported as a failed record
// (dead-letter queue with errors.tolerance=all), never a crash. Both files must lie inside the
// worker's `allowed.paths`; the real paths the worker resolved are the ones opened.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import avro from 'avsc';
import {
  defineConfig,
  FatalError,
  topicNameProblem,
  RecordError,
  type ParsedConfig,
  type SourcePlugin,
  type SourceRecord,
  type SourceRecordFailure,
  type SourceTask,
  type SourceTaskContext,
} from '../../runtime/api.js';
import { parseCsvLine } from './csv.js';
import { allowedFile } from './file-paths.js';

const READ_CHUNK_BYTES = 1 << 20;

export const fileSourceConfig = defineConfig([
  {
    name: 'file',
    type: 'string',
    importance: 'high',
    filePath: 'read',
    documentation:
      "Path of the file to read; relative paths are relative to the worker's working directory. Must lie inside " +
      "the worker's `allowed.paths` (symbolic links resolved).",
  },
  {
    name: 'topic',
    type: 'string',
    importance: 'high',
    documentation: 'Topic to write the records to.',
    validate: (value) => topicNameProblem(String(value)),
  },
  {
    name: 'format',
    type: 'string',
    default: 'csv',
    validValues: ['csv', 'jsonl'],
    importance: 'high',
    documentation: 'Input format: `csv` (first line is the header) or `jsonl` (one JSON object per line).',
  },
  {
    name: 'value.schema.file',
    type: 'string',
    importance: 'high',
    filePath: 'read',
    documentation:
      'Path of the Avro schema (`.avsc`, a record) each line is converted to. CSV columns map to fields by header name. ' +
      "Must lie inside the worker's `allowed.paths`.",
  },
  {
    name: 'csv.delimiter',
    type: 'string',
    default: ',',
    importance: 'low',
    documentation: 'Column delimiter for CSV input (one character).',
    validate: (v) => (String(v).length === 1 ? undefined : 'must be exactly one character, e.g. "," or ";"'),
  },
  {
    name: 'batch.size',
    type: 'int',
    default: 2000,
    min: 1,
    max: 100_000,
    importance: 'low',
    documentation: 'Lines returned by one poll at most.',
  },
]);

interface Field {
  name: string;
  parse: (text: string) => unknown;
}

/** CSV text -> value for an Avro field type; nullable unions accept an empty cell as null. */
function fieldParser(name: string, type: avro.Type): (text: string) => unknown {
  const typeName = type.typeName;
  if (typeName === 'union:unwrapped' || typeName === 'union:wrapped') {
    const branches = (type as unknown as { types: avro.Type[] }).types;
    const nonNull = branches.filter((t) => t.typeName !== 'null');
    const inner = nonNull.length === 1 ? fieldParser(name, nonNull[0]!) : (text: string) => text;
    return (text) => (text === '' ? null : inner(text));
  }
  switch (typeName) {
    case 'int':
    case 'long':
      return (text) => {
        if (!/^-?\d+$/.test(text.trim()))
          throw new Error(`field "${name}" must be a whole number, got "${text}"`);
        return Number(text);
      };
    case 'float':
    case 'double':
      return (text) => {
        const n = Number(text);
        if (text.trim() === '' || Number.isNaN(n))
          throw new Error(`field "${name}" must be a number, got "${text}"`);
        return n;
      };
    case 'boolean':
      return (text) => {
        if (/^true$/i.test(text)) return true;
        if (/^false$/i.test(text)) return false;
        throw new Error(`field "${name}" must be true or false, got "${text}"`);
      };
    case 'string':
    case 'enum':
      return (text) => text;
    case 'bytes':
      return (text) => Buffer.from(text, 'base64');
    default:
      return () => {
        throw new Error(
          `field "${name}" has Avro type ${typeName}, which CSV input cannot fill; use format=jsonl`,
        );
      };
  }
}

class FileSourceTask implements SourceTask {
  private readonly path: string;
  private readonly topic: string;
  private readonly format: 'csv' | 'jsonl';
  private readonly batchSize: number;
  private readonly delimiter: string;
  private type!: avro.Type;
  private fields: Field[] = [];
  private handle: FileHandle | undefined;
  /** Byte position of the next unread byte, and of the next line's start. */
  private readPosition = 0;
  private lineNumber = 0;
  private pending = Buffer.alloc(0);
  private pendingStart = 0;
  private header: string[] | undefined;

  constructor(
    private readonly context: SourceTaskContext,
    config: ParsedConfig,
  ) {
    this.path = resolve(config.getString('file'));
    this.topic = config.getString('topic');
    this.format = config.getString('format') as 'csv' | 'jsonl';
    this.batchSize = config.getNumber('batch.size');
    this.delimiter = config.getString('csv.delimiter');
    this.schemaFile = resolve(config.getString('value.schema.file'));
  }

  private readonly schemaFile: string;

  async start(): Promise<void> {
    const schemaFile = allowedFile(this.context, 'value.schema.file', this.schemaFile);
    const file = allowedFile(this.context, 'file', this.path);
    let schema: unknown;
    try {
      schema = JSON.parse(await readNoFollow(schemaFile));
      this.type = avro.Type.forSchema(schema as avro.Schema);
    } catch (cause) {
      throw new FatalError(
        'CONFIG_INVALID',
        `value.schema.file "${this.schemaFile}" is not a readable Avro schema: ${(cause as Error).message}`,
        { cause, stage: 'TASK_START' },
      );
    }
    if (this.type.typeName !== 'record') {
      throw new FatalError(
        'CONFIG_INVALID',
        `value.schema.file "${this.schemaFile}" must define a record schema`,
      );
    }
    try {
      this.handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (cause) {
      throw new FatalError(
        'SOURCE_FILE_MISSING',
        `cannot open file "${this.path}": ${(cause as Error).message}; check the "file" setting`,
        { cause, stage: 'TASK_START' },
      );
    }
    const stored = this.context.offsetFor({ file: this.path });
    if (stored) {
      this.readPosition = Number(stored.position);
      this.pendingStart = this.readPosition;
      this.lineNumber = Number(stored.line);
      this.header = typeof stored.header === 'string' ? (JSON.parse(stored.header) as string[]) : undefined;
      this.context.logger.info({ file: this.path, line: this.lineNumber }, 'resuming after stored offset');
    }
    if (this.header) this.bindHeader(this.header);
  }

  async poll(): Promise<Array<SourceRecord | SourceRecordFailure>> {
    const out: Array<SourceRecord | SourceRecordFailure> = [];
    while (out.length < this.batchSize) {
      const line = await this.nextLine();
      if (line === undefined) break;
      this.lineNumber++;
      const offset = {
        line: this.lineNumber,
        position: line.end,
        ...(this.header ? { header: JSON.stringify(this.header) } : {}),
      };
      const partition = { file: this.path };
      if (line.text.trim() === '') continue;
      if (this.format === 'csv' && !this.header) {
        this.header = parseCsvLine(line.text, this.delimiter);
        this.bindHeader(this.header);
        continue;
      }
      try {
        const value = this.format === 'csv' ? this.fromCsv(line.text) : this.fromJson(line.text);
        out.push({
          topic: this.topic,
          value,
          valueSchema: this.type,
          sourcePartition: partition,
          sourceOffset: offset,
        });
      } catch (cause) {
        out.push({
          error: new RecordError(
            'SOURCE_RECORD_MALFORMED',
            `${this.path} line ${this.lineNumber}: ${(cause as Error).message}`,
            { cause, stage: 'TASK_POLL', context: { file: this.path, line: this.lineNumber } },
          ),
          raw: Buffer.from(line.text),
          sourcePartition: partition,
          sourceOffset: offset,
        });
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }

  private bindHeader(header: string[]): void {
    const record = this.type as unknown as { fields: Array<{ name: string; type: avro.Type }> };
    const missing = record.fields.filter((f) => !header.includes(f.name)).map((f) => f.name);
    if (missing.length > 0) {
      throw new FatalError(
        'CONFIG_INVALID',
        `CSV header of "${this.path}" lacks column(s) ${missing.join(', ')} that the schema requires`,
      );
    }
    this.fields = header.map((name) => {
      const field = record.fields.find((f) => f.name === name);
      return { name, parse: field ? fieldParser(name, field.type) : () => undefined };
    });
  }

  private fromCsv(text: string): Record<string, unknown> {
    const cells = parseCsvLine(text, this.delimiter);
    if (cells.length !== this.fields.length) {
      throw new Error(`expected ${this.fields.length} columns, found ${cells.length}`);
    }
    const value: Record<string, unknown> = {};
    for (let i = 0; i < cells.length; i++) {
      const field = this.fields[i]!;
      const parsed = field.parse(cells[i]!);
      if (parsed !== undefined) value[field.name] = parsed;
    }
    return value;
  }

  private fromJson(text: string): unknown {
    const value = JSON.parse(text) as unknown;
    const problems: string[] = [];
    this.type.isValid(value, {
      errorHook: (path, v) => problems.push(`${path.join('.') || '(record)'} = ${JSON.stringify(v)}`),
    });
    if (problems.length > 0) throw new Error(`does not match the schema: ${problems.join('; ')}`);
    return value;
  }

  /** The next complete line (without its newline) and the byte position after it. */
  private async nextLine(): Promise<{ text: string; end: number } | undefined> {
    for (;;) {
      const newline = this.pending.indexOf(0x0a);
      if (newline !== -1) {
        const raw = this.pending.subarray(0, newline);
        const text = (raw.at(-1) === 0x0d ? raw.subarray(0, -1) : raw).toString('utf8');
        this.pending = this.pending.subarray(newline + 1);
        this.pendingStart += newline + 1;
        return { text, end: this.pendingStart };
      }
      const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
      const { bytesRead } = await this.handle!.read(chunk, 0, chunk.length, this.readPosition);
      if (bytesRead === 0) return undefined;
      this.readPosition += bytesRead;
      this.pending =
        this.pending.length === 0
          ? chunk.subarray(0, bytesRead)
          : Buffer.concat([this.pending, chunk.subarray(0, bytesRead)]);
    }
  }
}

/** Reads a whole file without following a symbolic link swapped in since its path was resolved. */
async function readNoFollow(path: string): Promise<string> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

export const fileSourcePlugin: SourcePlugin = {
  name: 'FileSource',
  aliases: ['FileStreamSource', 'org.apache.kafka.connect.file.FileStreamSourceConnector'],
  kind: 'source',
  version: '0.1.0',
  description: 'Reads CSV or JSON-lines files into Avro records, resuming after the last line written.',
  config: fileSourceConfig,
  createTask: (context) => new FileSourceTask(context, context.config),
};
