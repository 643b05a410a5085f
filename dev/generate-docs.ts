// Writes the reference docs generated from the code: `npx tsx dev/generate-docs.ts`.
// test/unit/error-catalogue.test.ts fails when a committed doc differs from what this renders.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderErrorsDoc } from '../runtime/error-catalogue.js';
import { renderSpecDoc } from '../runtime/config/spec-doc.js';
import { workerSpec } from '../runtime/config/worker-config.js';

export const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));

const WORKER_INTRO = `
<!-- Generated from runtime/config/worker-config.ts by \`npx tsx dev/generate-docs.ts\`; do not edit. -->

The worker config is a flat JSON object (or a Java \`.properties\` file), given as the first argument of
\`infer-connect standalone\` and \`infer-connect distributed\`. Values may be strings, numbers or booleans.

- \`\${env:VAR}\` and \`\${file:/path/to/file.properties:key}\` references in values are resolved when the
  worker starts and are never logged.
- Keys starting with \`producer.\`, \`consumer.\` or \`admin.\` pass through (prefix removed) to every Kafka
  client of that kind; a connector's \`producer.override.*\` and \`consumer.override.*\` keys win over them.
- Undeclared keys are ignored.
`;

/** Every generated doc, by path relative to the repository root. */
export function generatedDocs(): Record<string, string> {
  return {
    'docs/errors.md': renderErrorsDoc(),
    'docs/worker.md': renderSpecDoc('Worker configuration', WORKER_INTRO, workerSpec),
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [path, text] of Object.entries(generatedDocs())) {
    writeFileSync(join(repoRoot, path), text);
    console.log(`wrote ${path}`);
  }
}
