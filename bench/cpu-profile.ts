// Top self-time functions of a V8 CPU profile (`node --cpu-prof`), grouped by function name and
// source file, with repository-relative paths and package names for dependencies.
//
//   npx tsx bench/cpu-profile.ts bench/results/profiles/<name>.cpuprofile [--top 15]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { repoRoot } from './lib.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotFunction {
  /** Function name, `(anonymous)` for unnamed ones, or V8's own entries like `(garbage collector)`. */
  name: string;
  /** Repository-relative file, `node_modules/<package>/...`, `node:<module>`, or '' for V8. */
  location: string;
  selfMs: number;
  selfPercent: number;
}

function location(url: string): string {
  if (url === '') return '';
  if (url.startsWith('node:')) return url;
  let path = url;
  if (url.startsWith('file://')) {
    try {
      path = fileURLToPath(url.split('?')[0]!);
    } catch {
      return url;
    }
  }
  const inRepo = relative(repoRoot, path);
  return inRepo.startsWith('..') ? path : inRepo;
}

/**
 * The `top` functions by self time (ms and % of the sampled non-idle time). With `windowUs`, only
 * samples inside it count: V8 stamps samples with the monotonic clock that
 * `process.hrtime.bigint()` reads, so a caller can cut out start-up and keep the steady state.
 */
export function topSelfTime(
  file: string,
  top = 15,
  windowUs?: { from: number; to: number },
): { totalMs: number; functions: HotFunction[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, { name: string; location: string; us: number }>();
  let totalUs = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = nodes.get(profile.samples[i]!);
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (windowUs && (at < windowUs.from || at > windowUs.to)) continue;
    if (!node || delta <= 0) continue;
    const name = node.callFrame.functionName || '(anonymous)';
    const where = location(node.callFrame.url);
    const id = `${name}\u0000${where}`;
    const entry = selfUs.get(id) ?? { name, location: where, us: 0 };
    entry.us += delta;
    selfUs.set(id, entry);
    totalUs += delta;
  }
  // Idle time is the event loop waiting, not work: leave it out of the percentages.
  const idle = [...selfUs.values()].filter((e) => e.name === '(idle)').reduce((s, e) => s + e.us, 0);
  const busyUs = totalUs - idle;
  const functions = [...selfUs.values()]
    .filter((e) => e.name !== '(idle)')
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({
      name: e.name,
      location: e.location,
      selfMs: e.us / 1000,
      selfPercent: busyUs > 0 ? (100 * e.us) / busyUs : 0,
    }));
  return { totalMs: busyUs / 1000, functions };
}

/** Now on the clock of CPU profile samples, in µs. */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

export function formatTopSelfTime(title: string, result: ReturnType<typeof topSelfTime>): string {
  const lines = [
    `${title}: ${result.totalMs.toFixed(0)} ms of non-idle samples`,
    '| # | self ms | self % | function | where |',
    '|---:|---:|---:|---|---|',
    ...result.functions.map(
      (f, i) =>
        `| ${i + 1} | ${f.selfMs.toFixed(0)} | ${f.selfPercent.toFixed(1)} | \`${f.name}\` | ${f.location || '(V8)'} |`,
    ),
  ];
  return lines.join('\n');
}

if (process.argv[1] === import.meta.filename) {
  const program = new Command()
    .argument('<profile>', '.cpuprofile file')
    .option('--top <n>', 'how many functions', '15')
    .parse();
  const file = program.args[0]!;
  const top = Number(program.opts<{ top: string }>().top);
  process.stdout.write(`${formatTopSelfTime(file, topSelfTime(file, top))}\n`);
}
