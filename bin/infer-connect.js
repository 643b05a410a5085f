#!/usr/bin/env node
// Entry point of the `infer-connect` command. An installed package runs the compiled CLI from
// dist/; a source checkout without a build runs the TypeScript sources through tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('../dist/runtime/cli.js', import.meta.url);
if (existsSync(fileURLToPath(compiled))) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../runtime/cli.ts', import.meta.url).href);
}
