// Exports the census SavedModel for docker-compose and Kubernetes: builds (or loads from the cache)
// the dev models, then copies census version 1 into deploy/models/census/1, the TF Serving layout
// that `tensorflow/serving` loads with MODEL_NAME=census and /models mounted from deploy/models.
//
//   npm run models:export [-- --out <dir>]
//
// The exported folder is committed (about 0.5 MB), so `docker-compose up` needs no Python.
import { cpSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ensureModels, paths, repoRoot } from './stack.js';

export const CENSUS_EXPORT_DIR = join(repoRoot, 'deploy', 'models', 'census', '1');

/** Files (relative paths) and total bytes under `dir`. */
export function listFiles(dir: string): { files: string[]; bytes: number } {
  const files: string[] = [];
  let bytes = 0;
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) walk(path);
      else {
        files.push(relative(dir, path));
        bytes += statSync(path).size;
      }
    }
  };
  walk(dir);
  return { files: files.sort(), bytes };
}

/** Copies the cached census v1 SavedModel to `outDir` (replacing it); returns what was written. */
export function exportCensusModel(outDir: string = CENSUS_EXPORT_DIR): { files: string[]; bytes: number } {
  const source = join(paths.modelBase, 'census', '1');
  if (!existsSync(join(source, 'saved_model.pb'))) {
    throw new Error(`no census SavedModel at ${source}; run npm run stack -- models first`);
  }
  rmSync(outDir, { recursive: true, force: true });
  cpSync(source, outDir, { recursive: true });
  return listFiles(outDir);
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('export-census-model')
    .description('copy the census SavedModel into the TF Serving model folder of docker-compose')
    .option('--out <dir>', 'version folder to write', CENSUS_EXPORT_DIR)
    .option('--skip-build', 'copy what the cache holds without building the models first')
    .action((options: { out: string; skipBuild?: boolean }) => {
      if (!options.skipBuild) ensureModels();
      const out = resolve(options.out);
      const { files, bytes } = exportCensusModel(out);
      process.stdout.write(
        `exported census v1 to ${relative(process.cwd(), out) || '.'}: ${files.length} files, ` +
          `${(bytes / 1024).toFixed(0)} KiB\n${files.map((f) => `  ${f}`).join('\n')}\n`,
      );
    });
  await program.parseAsync(argv);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv).catch((error: unknown) => {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  });
}
