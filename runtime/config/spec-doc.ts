// Reference docs generated from a config spec, so docs and validation cannot drift apart.
import { isSecret, type ConfigKey, type ConfigSpec } from './config-spec.js';

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const code = (text: string): string => `\`${text}\``;

function defaultCell(key: ConfigKey): string {
  if (key.default === undefined) return '*required*';
  if (key.default === null) return '';
  if (Array.isArray(key.default)) return key.default.length === 0 ? '' : code(key.default.join(','));
  if (key.default === '') return code('""');
  return code(String(key.default));
}

/** Kafka's notation: `[1,...]`, `[0,...,100]`, or the allowed values. */
export function validValuesText(key: ConfigKey): string {
  if (key.validValues) return key.validValues.map(code).join(', ');
  if (key.min !== undefined || key.max !== undefined)
    return `[${key.min ?? '...'},...${key.max !== undefined ? `,${key.max}` : ''}]`;
  return '';
}

function table(keys: readonly ConfigKey[]): string[] {
  const lines = [
    '| Key | Type | Default | Importance | Valid values | Description |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const key of keys) {
    const type = isSecret(key) && key.type !== 'password' ? `${key.type} (secret)` : key.type;
    lines.push(
      `| ${code(key.name)} | ${type} | ${defaultCell(key)} | ${key.importance} | ${cell(validValuesText(key))} | ${cell(key.documentation)} |`,
    );
  }
  return lines;
}

/**
 * A markdown page for `spec`: `# title`, the intro, then one table of keys (key, type, default,
 * importance, valid values, description), split into `## group` sections when keys have more
 * than one group. Keys keep their spec order within a group; groups appear in order of first use.
 */
export function renderSpecDoc(title: string, intro: string, spec: ConfigSpec): string {
  const lines = [`# ${title}`, '', intro.trim(), ''];
  const groups = new Map<string, ConfigKey[]>();
  for (const key of spec.keys) {
    const group = key.group ?? '';
    groups.set(group, [...(groups.get(group) ?? []), key]);
  }
  if (groups.size <= 1) lines.push(...table(spec.keys));
  else
    for (const [group, keys] of groups) {
      lines.push(`## ${group || 'Other'}`, '', ...table(keys), '');
    }
  while (lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n') + '\n';
}
