// The set of connector plugins a worker can run: an instance (no global registry), filled by
// connectors/index.ts. Plugins are found by name or alias, case-sensitively, as Kafka Connect
// finds connector classes.
import type { ConnectorPlugin } from './api.js';

export class PluginRegistry {
  static of(plugins: readonly ConnectorPlugin[]): PluginRegistry {
    const registry = new PluginRegistry();
    for (const plugin of plugins) registry.register(plugin);
    return registry;
  }

  private readonly byName = new Map<string, ConnectorPlugin>();
  private readonly plugins: ConnectorPlugin[] = [];

  register(plugin: ConnectorPlugin): this {
    for (const name of [plugin.name, ...(plugin.aliases ?? [])]) {
      const existing = this.byName.get(name);
      if (existing)
        throw new Error(`plugin name "${name}" of ${plugin.name} is already taken by ${existing.name}`);
    }
    for (const name of [plugin.name, ...(plugin.aliases ?? [])]) this.byName.set(name, plugin);
    this.plugins.push(plugin);
    return this;
  }

  find(nameOrAlias: string): ConnectorPlugin | undefined {
    return this.byName.get(nameOrAlias);
  }

  list(): readonly ConnectorPlugin[] {
    return this.plugins;
  }

  /** A message for an unknown `connector.class`, listing what is available. */
  unknownPluginMessage(name: string): string {
    const available = this.plugins.map((p) => p.name).join(', ');
    if (name.trim() === '') return `connector.class is required: set it to one of ${available}`;
    return `no connector plugin named "${name}"; available: ${available}`;
  }
}
