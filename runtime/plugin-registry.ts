// The set of connector plugins a worker can run: an instance (no global registry), filled by the
// composition root (app/main.ts: the built-ins of connectors/index.ts, then those `plugin.path`
// names). Plugins are found by name or alias, case-sensitively, as Kafka Connect finds connector
// classes. Each plugin remembers where it came from, so a name clash names both sources.
import type { ConnectorPlugin } from './api.js';

/** Where the built-in plugins come from, as a clash message shows it. */
export const BUILT_IN = 'built-in (connectors/index.ts)';

export class PluginRegistry {
  static of(plugins: readonly ConnectorPlugin[], source = BUILT_IN): PluginRegistry {
    const registry = new PluginRegistry();
    for (const plugin of plugins) registry.register(plugin, source);
    return registry;
  }

  private readonly byName = new Map<string, ConnectorPlugin>();
  private readonly plugins: ConnectorPlugin[] = [];
  private readonly sources = new Map<ConnectorPlugin, string>();

  /** Throws when the plugin's name or one of its aliases is taken, naming both plugins' sources. */
  register(plugin: ConnectorPlugin, source = BUILT_IN): this {
    for (const name of [plugin.name, ...(plugin.aliases ?? [])]) {
      const existing = this.byName.get(name);
      if (existing)
        throw new Error(
          `plugin name "${name}" of ${plugin.name} from ${source} is already taken by ` +
            `${existing.name} from ${this.sourceOf(existing)}`,
        );
    }
    for (const name of [plugin.name, ...(plugin.aliases ?? [])]) this.byName.set(name, plugin);
    this.plugins.push(plugin);
    this.sources.set(plugin, source);
    return this;
  }

  find(nameOrAlias: string): ConnectorPlugin | undefined {
    return this.byName.get(nameOrAlias);
  }

  list(): readonly ConnectorPlugin[] {
    return this.plugins;
  }

  /** Where a registered plugin came from: `BUILT_IN` or the module file `plugin.path` loaded it from. */
  sourceOf(plugin: ConnectorPlugin): string | undefined {
    return this.sources.get(plugin);
  }

  /** A message for an unknown `connector.class`, listing what is available. */
  unknownPluginMessage(name: string): string {
    const available = this.plugins.map((p) => p.name).join(', ');
    if (name.trim() === '') return `connector.class is required: set it to one of ${available}`;
    return `no connector plugin named "${name}"; available: ${available}`;
  }
}
