// FileSink: appends each record's value to a file as one JSON line, so scored topics are easy to
// look at and to check. Writes of a batch go out in one append; `flush` fsyncs before the runtime
// commits offsets, so a committed offset always has its lines on disk. The file must lie inside the
// worker's `allowed.paths`; the real path the worker resolved is the one opened.
import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  defineConfig,
  FatalError,
  type ConnectRecord,
  type ParsedConfig,
  type SinkPlugin,
  type SinkTask,
  type TaskContext,
} from '../../runtime/api.js';
import { allowedFile } from './file-paths.js';

export const fileSinkConfig = defineConfig([
  {
    name: 'file',
    type: 'string',
    importance: 'high',
    filePath: 'write',
    documentation:
      'Path of the JSON-lines file to append to, created with its directories when missing; relative paths are ' +
      "relative to the worker's working directory. Must lie inside the worker's `allowed.paths` (symbolic links " +
      'resolved).',
  },
  {
    name: 'include.metadata',
    type: 'boolean',
    default: false,
    importance: 'low',
    documentation:
      'Write `{"topic", "partition", "offset", "timestamp", "key", "value"}` per line instead of the value alone.',
  },
]);

/** JSON for Avro values: bytes as base64, bigint as decimal strings. */
function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (
      v &&
      typeof v === 'object' &&
      (v as { type?: string }).type === 'Buffer' &&
      Array.isArray((v as { data?: unknown }).data)
    ) {
      return Buffer.from((v as { data: number[] }).data).toString('base64');
    }
    return v;
  });
}

class FileSinkTask implements SinkTask {
  private handle: FileHandle | undefined;
  private readonly path: string;
  private readonly includeMetadata: boolean;

  constructor(
    private readonly context: TaskContext,
    config: ParsedConfig,
  ) {
    this.path = resolve(config.getString('file'));
    this.includeMetadata = config.getBoolean('include.metadata');
  }

  async start(): Promise<void> {
    const file = allowedFile(this.context, 'file', this.path);
    try {
      await mkdir(dirname(file), { recursive: true });
      this.handle = await open(
        file,
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
        0o666,
      );
    } catch (cause) {
      throw new FatalError(
        'CONFIG_INVALID',
        `cannot open "${this.path}" for appending: ${(cause as Error).message}`,
        {
          cause,
          stage: 'TASK_START',
        },
      );
    }
  }

  async put(records: readonly ConnectRecord[]): Promise<void> {
    let text = '';
    for (const r of records) {
      const value = r.value instanceof Buffer ? r.value.toString('base64') : r.value;
      text += this.includeMetadata
        ? toJson({
            topic: r.topic,
            partition: r.partition,
            offset: Number(r.offset),
            timestamp: Number(r.timestamp),
            key: r.key instanceof Buffer ? r.key.toString('base64') : r.key,
            value,
          })
        : toJson(value);
      text += '\n';
    }
    await this.handle!.appendFile(text);
  }

  async flush(): Promise<void> {
    await this.handle?.sync();
  }

  async stop(): Promise<void> {
    await this.handle?.sync().catch(() => undefined);
    await this.handle?.close();
    this.handle = undefined;
    this.context.logger.debug({ file: this.path }, 'file sink closed');
  }
}

export const fileSinkPlugin: SinkPlugin = {
  name: 'FileSink',
  aliases: ['FileStreamSink', 'org.apache.kafka.connect.file.FileStreamSinkConnector'],
  kind: 'sink',
  version: '0.1.0',
  description: 'Appends record values to a file as JSON lines.',
  config: fileSinkConfig,
  createTask: (context) => new FileSinkTask(context, context.config),
};
