#!/usr/bin/env node
// Entry point of the `infer-connect` command. An installed package runs the compiled composition
// root from dist/ (app/main.ts: built-in plugins + the runtime's CLI); a source checkout without a
// build runs the TypeScript sources through tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('../dist/app/main.js', import.meta.url);
if (existsSync(fileURLToPath(compiled))) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../app/main.ts', import.meta.url).href);
}
