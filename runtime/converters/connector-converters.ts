// The key and value converters of a connector, built from its parsed config: the converter
// (`key.converter` / `value.converter`, our names or Kafka Connect's class names) and its settings
// as Confluent's and Apache's converters read them (`<which>.converter.*`). An avro converter uses
// the connector's own registry when `<which>.converter.schema.registry.url` is set (one client and
// cache per connector config, shared by its tasks and by its key and value converters when they
// name the same registry), else the worker's.
import type { ParsedConfig } from '../config/config-spec.js';
import { converterName, subjectNameStrategy } from '../config/connector-config.js';
import { FatalError } from '../errors.js';
import { loadTls } from '../kafka-security.js';
import type { DecimalFormat } from './connect-values.js';
import type { Converter } from './converter.js';
import { createConverter } from './index.js';
import { PROCESS_CONNECT_SCHEMA_IDS, type ConnectSchemaIds } from './json-converter.js';
import { CachedSchemaRegistry, type HttpRegistryOptions, type RegistryClient } from './schema-registry.js';

export type Which = 'key' | 'value';

export class ConnectorConverters {
  /** Per connector config (a new config gets new clients), per registry options. */
  private readonly registries = new WeakMap<ParsedConfig, Map<string, RegistryClient>>();

  constructor(
    /** The worker's registry (`schema.registry.url`), if it has one. */
    private readonly workerRegistry: RegistryClient | undefined,
    private readonly schemaIds: ConnectSchemaIds = PROCESS_CONNECT_SCHEMA_IDS,
    /** Builds a registry client (tests inject an in-memory one). */
    private readonly newRegistry: (options: HttpRegistryOptions) => RegistryClient = (options) =>
      new CachedSchemaRegistry(options),
  ) {}

  /** A new converter for one task. Throws FatalError (CONFIG_INVALID) for unusable registry settings. */
  create(config: ParsedConfig, which: Which): Converter {
    const p = `${which}.converter.`;
    const name = converterName(config.getString(`${which}.converter`));
    const given = config.originals[`${p}schemas.enable`];
    const schemasEnable =
      given === undefined
        ? config.getString(`${which}.converter`) === 'org.apache.kafka.connect.json.JsonConverter'
        : config.getBoolean(`${p}schemas.enable`);
    return createConverter(name, {
      isKey: which === 'key',
      registry: name === 'avro' ? this.registryFor(config, which) : undefined,
      schemasEnable,
      decimalFormat: config.getString(`${p}decimal.format`) as DecimalFormat,
      schemaIds: this.schemaIds,
      autoRegister: config.getBoolean(`${p}auto.register.schemas`),
      useLatestVersion: config.getBoolean(`${p}use.latest.version`),
      latestCompatibilityStrict: config.getBoolean(`${p}latest.compatibility.strict`),
      subjectNameStrategy: subjectNameStrategy(config.getString(`${p}${which}.subject.name.strategy`)),
    });
  }

  private registryFor(config: ParsedConfig, which: Which): RegistryClient | undefined {
    const options = converterRegistryOptions(config, which);
    if (options === undefined) return this.workerRegistry;
    let byOptions = this.registries.get(config);
    if (!byOptions) this.registries.set(config, (byOptions = new Map()));
    const key = JSON.stringify(options);
    let registry = byOptions.get(key);
    if (!registry) byOptions.set(key, (registry = this.newRegistry(options)));
    return registry;
  }
}

/**
 * The connector's own registry client options for `which`'s converter, from
 * `<which>.converter.schema.registry.url`, its basic-auth keys and `schema.registry.ssl.*` keys;
 * undefined when the URL is not set (the worker's registry is used).
 */
export function converterRegistryOptions(
  config: ParsedConfig,
  which: Which,
): HttpRegistryOptions | undefined {
  const p = `${which}.converter.`;
  const url = config.getOptionalString(`${p}schema.registry.url`);
  if (url === undefined) return undefined;
  const userInfo =
    config.getOptionalString(`${p}basic.auth.user.info`) ??
    config.getOptionalString(`${p}schema.registry.basic.auth.user.info`);
  const source =
    config.getOptionalString(`${p}basic.auth.credentials.source`) ?? (userInfo ? 'USER_INFO' : 'URL');
  const options: HttpRegistryOptions = { url };
  if (source === 'USER_INFO' && userInfo !== undefined) options.auth = userInfo;
  if (url.startsWith('https:')) {
    const props = Object.fromEntries(
      Object.entries(config.withPrefix(`${p}schema.registry.`)).filter(([key]) => key.startsWith('ssl.')),
    );
    const tls = loadTls(props, (key) => `${p}schema.registry.${key}`, 'client');
    if (!tls.material)
      throw new FatalError(
        'CONFIG_INVALID',
        `Invalid configuration of the ${which} converter's schema registry: ${tls.problems.map((pr) => `${pr.key}: ${pr.message}`).join('; ')}`,
        { stage: 'CONFIG' },
      );
    options.tls = tls.material;
  }
  return options;
}
