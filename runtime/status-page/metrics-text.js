// Reads the Prometheus text exposition format (what `GET /metrics` answers) in the browser:
// one sample per line, `name{label="value",...} number [timestamp]`; `#` lines are comments.
// Label values may hold escaped `\\`, `\"` and `\n`. Lines it cannot read are skipped, so a
// metric added later never breaks the page.

/**
 * @typedef {{ name: string, labels: Record<string, string>, value: number }} Sample
 */

/** @param {string} text @returns {Sample[]} */
export function parseMetricsText(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseLine(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

/** @param {string} line @returns {Sample | undefined} */
function parseLine(line) {
  const nameEnd = line.search(/[{\s]/);
  if (nameEnd <= 0) return undefined;
  const name = line.slice(0, nameEnd);
  const labels = {};
  let i = nameEnd;
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return undefined;
      const key = line.slice(i, eq).trim();
      let value = '';
      i = eq + 2;
      for (; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === '\\') {
          i++;
          value += line[i] === 'n' ? '\n' : line[i];
        } else value += line[i];
      }
      if (i >= line.length) return undefined;
      i++;
      labels[key] = value;
    }
  }
  const [raw] = line.slice(i).trim().split(/\s+/);
  const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
  if (raw === undefined || raw === '' || (Number.isNaN(value) && raw !== 'NaN')) return undefined;
  return { name, labels, value };
}

/**
 * Indexes samples of the given metric names by connector and task:
 * `index.get(name)?.get('census-inference/0')` is that task's samples of `name`.
 * @param {Sample[]} samples
 * @returns {Map<string, Map<string, Sample[]>>}
 */
export function byTask(samples) {
  const index = new Map();
  for (const sample of samples) {
    const { connector, task } = sample.labels;
    if (connector === undefined || task === undefined) continue;
    const perName = index.get(sample.name) ?? new Map();
    index.set(sample.name, perName);
    const key = `${connector}/${task}`;
    const list = perName.get(key) ?? [];
    list.push(sample);
    perName.set(key, list);
  }
  return index;
}
