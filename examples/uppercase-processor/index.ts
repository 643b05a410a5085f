// UppercaseProcessor: an example connector plugin kept as its own package. It reads the topics in
// `topics`, upper-cases each string value and writes it to `output.topic` with the input's key
// bytes and headers. Load it with the worker key `plugin.path` (a folder or a package name);
// docs/writing-a-connector.md walks through it.
//
// It imports the contract only from `infer-connect/api`, which the runtime resolves to its own
// api module when it loads the plugin. The file uses only TypeScript that Node can strip (no enums,
// no parameter properties), so Node 24 runs it without a build step; a published package would
// ship compiled JavaScript.
import {
  defineConfig,
  RecordError,
  type ConnectRecord,
  type OutputRecord,
  type ProcessorPlugin,
  type ProcessorTask,
  type TaskContext,
} from 'infer-connect/api';

/** This plugin's own error code (a RecordError: the record goes to the DLQ with errors.tolerance=all). */
export const VALUE_NOT_TEXT = 'UPPERCASE_VALUE_NOT_TEXT';

const config = defineConfig([
  {
    name: 'uppercase.locale',
    type: 'string',
    default: '',
    importance: 'low',
    documentation:
      'The BCP 47 language tag whose case rules apply, e.g. `tr` (where "i" becomes "İ"). Empty (the ' +
      'default): the locale-independent Unicode rules of String.prototype.toUpperCase.',
    validate: (value) => {
      const tag = String(value);
      if (tag === '') return undefined;
      try {
        Intl.getCanonicalLocales(tag);
        return undefined;
      } catch {
        return `"${tag}" is not a BCP 47 language tag; use e.g. en, tr or de-CH, or leave it empty`;
      }
    },
  },
]);

function createTask(context: TaskContext): ProcessorTask {
  const output = context.config.getString('output.topic');
  const locale = context.config.getString('uppercase.locale');
  const upper = (text: string) => (locale === '' ? text.toUpperCase() : text.toLocaleUpperCase(locale));

  const convert = (record: ConnectRecord): OutputRecord[] | Error => {
    const { value } = record;
    // A null value (a tombstone) stays null: there is nothing to upper-case.
    if (value !== null && typeof value !== 'string') {
      return new RecordError(
        VALUE_NOT_TEXT,
        `the value at ${record.topic}-${record.partition}@${record.offset} is ${Buffer.isBuffer(value) ? 'bytes' : typeof value}, not text; ` +
          'set value.converter to string',
        { stage: 'TASK_PROCESS' },
      );
    }
    return [
      {
        topic: output,
        rawKey: record.rawKey,
        value: value === null ? null : upper(value),
        headers: record.headers as Record<string, Buffer>,
      },
    ];
  };

  return {
    // Pure and synchronous per record: nothing to start, retry or stop.
    async process(records) {
      return records.map(convert);
    },
  };
}

export const uppercaseProcessor: ProcessorPlugin = {
  name: 'UppercaseProcessor',
  aliases: ['com.example.connect.UppercaseProcessor'],
  kind: 'processor',
  version: '0.1.0',
  description:
    'Upper-cases string record values and writes them to output.topic (key and headers unchanged).',
  config,
  createTask,
};

export default uppercaseProcessor;
