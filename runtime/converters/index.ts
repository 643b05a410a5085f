// Builds the key or value converter a connector config names (`key.converter`, `value.converter`).
import { FatalError } from '../errors.js';
import { AvroConverter } from './avro-converter.js';
import { BytesConverter } from './bytes-converter.js';
import type { Converter, ConverterName } from './converter.js';
import type { DecimalFormat } from './connect-values.js';
import { JsonConverter, type ConnectSchemaIds } from './json-converter.js';
import type { SubjectNameStrategy } from './avro-converter.js';
import type { RegistryClient } from './schema-registry.js';
import { StringConverter } from './string-converter.js';

export type { Converter, ConverterName, Decoded } from './converter.js';
export { AvroConverter } from './avro-converter.js';
export { BytesConverter } from './bytes-converter.js';
export { allocateLocalSchemaId } from './local-schema-ids.js';
export { carryConnectSchemas } from './connect-schema.js';
export { ConnectSchemaIds, JsonConverter, PROCESS_CONNECT_SCHEMA_IDS } from './json-converter.js';
export { StringConverter } from './string-converter.js';
export {
  AVRO_PARSE_OPTIONS,
  CachedSchemaRegistry,
  HttpRegistryTransport,
  InMemoryRegistry,
  UnreadableSchema,
  parseAvroSchema,
} from './schema-registry.js';
export type {
  CachedSchemaRegistryOptions,
  HttpRegistryOptions,
  RegistryClient,
  RegistrySchema,
  RegistryTransport,
} from './schema-registry.js';

export interface ConverterOptions {
  /** Converts keys (subject `<topic>-key`, stage KEY_CONVERTER) rather than values. */
  isKey: boolean;
  /** Required by `avro`; share one per worker so every task uses the same schema cache. */
  registry?: RegistryClient;
  /** `json` only: Kafka Connect's `{"schema", "payload"}` envelope. Default false. */
  schemasEnable?: boolean;
  /** `json` only: how Decimals are written (`decimal.format`). Default BASE64. */
  decimalFormat?: DecimalFormat;
  /** `json` only: where envelope schemas get their ids; default the process's. */
  schemaIds?: ConnectSchemaIds;
  /** `avro` only: register schemas that are not registered yet (`auto.register.schemas`). Default true. */
  autoRegister?: boolean;
  /** `avro` only: the subject a schema is registered under (`*.subject.name.strategy`). Default TopicNameStrategy. */
  subjectNameStrategy?: SubjectNameStrategy;
  /** `avro` only, with autoRegister false: write with the subject's latest version (`use.latest.version`). */
  useLatestVersion?: boolean;
  /** `avro` only: refuse a latest version that cannot read the value's schema. Default true. */
  latestCompatibilityStrict?: boolean;
}

export function createConverter(name: ConverterName, options: ConverterOptions): Converter {
  switch (name) {
    case 'avro':
      if (options.registry === undefined) {
        const which = options.isKey ? 'key' : 'value';
        throw new FatalError(
          'CONFIG_INVALID',
          `Invalid configuration: ${which}.converter=avro needs a schema registry; the avro converter needs schema.registry.url in the worker config`,
          { stage: 'CONFIG' },
        );
      }
      return new AvroConverter(options.registry, {
        isKey: options.isKey,
        autoRegister: options.autoRegister,
        subjectNameStrategy: options.subjectNameStrategy,
        useLatestVersion: options.useLatestVersion,
        latestCompatibilityStrict: options.latestCompatibilityStrict,
      });
    case 'json':
      return new JsonConverter({
        isKey: options.isKey,
        schemasEnable: options.schemasEnable,
        decimalFormat: options.decimalFormat,
        schemaIds: options.schemaIds,
      });
    case 'string':
      return new StringConverter({ isKey: options.isKey });
    case 'bytes':
      return new BytesConverter({ isKey: options.isKey });
    default:
      throw new FatalError(
        'CONFIG_INVALID',
        `Invalid configuration: unknown converter ${JSON.stringify(name)}; use avro, json, string or bytes`,
        { stage: 'CONFIG' },
      );
  }
}
