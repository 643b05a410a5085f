// What `GET /connector-plugins?connectorsOnly=false` lists besides the connectors, as Kafka Connect
// lists its plugins: every transform and predicate by its Kafka Connect class name (types
// `transformation`, `predicate`) and every converter by the class name a connector config may use
// for it (`converter`). They are built into the runtime, so they carry the runtime's version.
import { CONVERTER_CLASSES } from './config/connector-config.js';
import type { PluginInfo } from './herder.js';
import { PREDICATES, TRANSFORMS } from './transforms/index.js';

export function builtinNonConnectorPlugins(version: string): PluginInfo[] {
  const sorted = (names: Iterable<string>) => [...names].sort();
  return [
    ...sorted(TRANSFORMS.map((t) => t.className)).map((c): PluginInfo => ({
      class: c,
      type: 'transformation',
      version,
    })),
    ...sorted(PREDICATES.map((p) => p.className)).map((c): PluginInfo => ({
      class: c,
      type: 'predicate',
      version,
    })),
    ...sorted(Object.keys(CONVERTER_CLASSES)).map((c): PluginInfo => ({
      class: c,
      type: 'converter',
      version,
    })),
  ];
}
