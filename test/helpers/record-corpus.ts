// The bad-record corpus (test/corpus/records/records.jsonl; its README describes the recipes and
// outcomes): reads the cases and turns each recipe into the bytes to produce, registering and
// deleting schemas and making files on the way. test/integration/corpus-records.test.ts runs them.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, symlinkSync, ftruncateSync } from 'node:fs';
import { dirname, join } from 'node:path';
import avro from 'avsc';
import { parseCsvLine } from '../../connectors/file/csv.js';
import { registryUrl } from './stack.js';

export type ConnectorName = 'census' | 'images';

export interface Expectation {
  outcome: 'dlq' | 'scored';
  code?: string;
  stage?: string;
  message?: string;
  headers?: Record<string, string>;
}

export interface CorpusCase {
  kind: string;
  connector: ConnectorName;
  value: Record<string, unknown>;
  expect: Expectation;
}

const repoRoot = join(import.meta.dirname, '..', '..');
export const corpusFile = join(repoRoot, 'test', 'corpus', 'records', 'records.jsonl');

export const censusSchemaText = readFileSync(join(repoRoot, 'schemas', 'census.avsc'), 'utf8');
export const imagePathSchemaText = readFileSync(join(repoRoot, 'schemas', 'image-path.avsc'), 'utf8');
const censusSchema = JSON.parse(censusSchemaText) as { fields: AvroField[] } & Record<string, unknown>;

interface AvroField {
  name: string;
  type: unknown;
  default?: unknown;
}

/** The cases, in file order; throws naming the line of a case that is not well formed. */
export function loadCorpus(file = corpusFile): CorpusCase[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((line, i) => ({ line: line.trim(), number: i + 1 }))
    .filter(({ line }) => line !== '' && !line.startsWith('//'))
    .map(({ line, number }) => {
      const parsed = JSON.parse(line) as CorpusCase;
      const ok =
        typeof parsed.kind === 'string' &&
        (parsed.connector === 'census' || parsed.connector === 'images') &&
        typeof parsed.value === 'object' &&
        (parsed.expect?.outcome === 'scored' ||
          (parsed.expect?.outcome === 'dlq' && typeof parsed.expect.code === 'string'));
      if (!ok) throw new Error(`${file}:${number} is not a corpus case: ${line}`);
      return parsed;
    });
}

/** Census test split rows, typed as schemas/census.avsc has them. */
export function censusRows(): Array<Record<string, string | number>> {
  const lines = readFileSync(join(repoRoot, 'data', 'census', 'adult.test.csv'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const header = parseCsvLine(lines[0]!);
  const longs = new Set(censusSchema.fields.filter((f) => f.type === 'long').map((f) => f.name));
  return lines.slice(1).map((line) => {
    const cells = parseCsvLine(line);
    return Object.fromEntries(
      header.map((name, i) => [name, longs.has(name) ? Number(cells[i]) : cells[i]!]),
    );
  });
}

/** Parses as the runtime does (unions unwrapped when unambiguous). */
export const parseAvro = (schema: unknown): avro.Type =>
  avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'auto' } as avro.ForSchemaOptions);

/** The Avro schema a recipe's `schema` names ("census" excepted: callers register it once). */
export function schemaOf(spec: unknown, uniqueDoc?: string): Record<string, unknown> | string {
  if (spec === 'census') return censusSchema;
  const census = (spec as { census?: CensusVariant }).census;
  const schema = census !== undefined ? censusVariant(census) : (spec as Record<string, unknown>);
  return uniqueDoc !== undefined && typeof schema === 'object' ? { ...schema, doc: uniqueDoc } : schema;
}

interface CensusVariant {
  replace?: Record<string, unknown>;
  add?: AvroField[];
  remove?: string[];
  first?: string;
}

function censusVariant(variant: CensusVariant): Record<string, unknown> {
  let fields = censusSchema.fields
    .filter((f) => !(variant.remove ?? []).includes(f.name))
    .map((f) =>
      variant.replace?.[f.name] !== undefined ? { name: f.name, type: variant.replace[f.name] } : f,
    );
  if (variant.first !== undefined) {
    const first = fields.find((f) => f.name === variant.first)!;
    fields = [first, ...fields.filter((f) => f !== first)];
  }
  return { ...censusSchema, fields: [...fields, ...(variant.add ?? [])] };
}

/** A recipe value with the `$` forms replaced by what they stand for. */
export function materialise(value: unknown, rows: ReadonlyArray<Record<string, unknown>>): unknown {
  if (Array.isArray(value)) return value.map((v) => materialise(v, rows));
  if (value === null || typeof value !== 'object') return value;
  const object = value as Record<string, unknown>;
  if ('$double' in object) return Number(object.$double);
  if ('$repeat' in object) return String(object.$repeat).repeat(Number(object.times));
  if ('$bytesHex' in object) return Buffer.from(object.$bytesHex as string, 'hex');
  const out: Record<string, unknown> = {};
  if ('$row' in object) Object.assign(out, rows[object.$row as number]);
  for (const [key, v] of Object.entries(object)) if (key !== '$row') out[key] = materialise(v, rows);
  return out;
}

export function frame(id: number, body: Buffer, magic = 0): Buffer {
  const header = Buffer.alloc(5);
  header[0] = magic;
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, body]);
}

/** Applies the body modifiers of a census recipe. */
export function modifyBody(body: Buffer, recipe: Record<string, unknown>): Buffer {
  let out = body;
  if (typeof recipe.truncateBody === 'number') out = out.subarray(0, recipe.truncateBody);
  const patch = recipe.patch as { at: number; delete: number; insertHex: string } | undefined;
  if (patch !== undefined) {
    out = Buffer.concat([
      out.subarray(0, patch.at),
      Buffer.from(patch.insertHex, 'hex'),
      out.subarray(patch.at + patch.delete),
    ]);
  }
  if (typeof recipe.appendHex === 'string') out = Buffer.concat([out, Buffer.from(recipe.appendHex, 'hex')]);
  return out;
}

/** Creates what an images recipe's `make` asks for, at `path` inside `baseDir` (or next to it). */
export function makeFile(baseDir: string, path: string, make: Record<string, unknown> | undefined): void {
  if (make === undefined) return;
  const target = join(baseDir, path);
  mkdirSync(dirname(target), { recursive: true });
  if (make.fifo === true) execFileSync('mkfifo', [target]);
  else if (make.dir === true) mkdirSync(target);
  else if (typeof make.symlink === 'string') symlinkSync(make.symlink, target);
  else if (typeof make.bytes === 'number') {
    const fd = openSync(target, 'w');
    ftruncateSync(fd, make.bytes);
    closeSync(fd);
  } else if (make.outside === true) {
    closeSync(openSync(target, 'w'));
  }
}

// --------------------------------------------------------------------------- the registry

const REGISTRY_JSON = { 'Content-Type': 'application/vnd.schemaregistry.v1+json' };

/** Registers `schema` (text or object) under `subject` in the stack's registry; resolves its id. */
export async function register(subject: string, schema: unknown): Promise<number> {
  const response = await fetch(`${registryUrl}/subjects/${encodeURIComponent(subject)}/versions`, {
    method: 'POST',
    headers: REGISTRY_JSON,
    body: JSON.stringify({ schema: typeof schema === 'string' ? schema : JSON.stringify(schema) }),
  });
  const body = (await response.json()) as { id?: number };
  if (!response.ok || body.id === undefined)
    throw new Error(`registering under ${subject}: ${response.status} ${JSON.stringify(body)}`);
  return body.id;
}

/** Deletes version 1 of `subject`: soft, or soft and then for good. */
async function deleteFirstVersion(subject: string, permanent: boolean): Promise<void> {
  const url = `${registryUrl}/subjects/${encodeURIComponent(subject)}/versions/1`;
  for (const suffix of permanent ? ['', '?permanent=true'] : ['']) {
    const response = await fetch(url + suffix, { method: 'DELETE' });
    if (!response.ok) throw new Error(`DELETE ${url}${suffix}: ${response.status} ${await response.text()}`);
  }
}

async function idServed(id: number): Promise<boolean> {
  return (await fetch(`${registryUrl}/schemas/ids/${id}`)).ok;
}

/**
 * The value bytes of a census recipe, registering (and deleting) its schema on the way; `note` says
 * what the registry did with a deleted schema's id.
 */
export async function censusValue(
  recipe: Record<string, unknown>,
  context: { run: string; index: number; censusId: number; rows: ReadonlyArray<Record<string, unknown>> },
): Promise<{ value: Buffer; note?: string }> {
  if (typeof recipe.hex === 'string') return { value: Buffer.from(recipe.hex, 'hex') };
  if (typeof recipe.text === 'string') return { value: Buffer.from(recipe.text, 'utf8') };
  const subject = `${context.run}-case-${context.index}-value`;
  let id: number;
  let schema: unknown;
  if (typeof recipe.schemaId === 'number') id = recipe.schemaId;
  else if (recipe.schema === 'census') {
    id = context.censusId;
    schema = censusSchema;
  } else {
    // A schema of its own (with a unique text when it is to be deleted), under a subject of its own.
    const unique = recipe.delete !== undefined ? `corpus ${context.run} case ${context.index}` : undefined;
    schema = schemaOf(recipe.schema, unique);
    id = await register(subject, schema);
  }
  const body =
    recipe.avro !== undefined
      ? parseAvro(schema).toBuffer(materialise(recipe.avro, context.rows))
      : Buffer.from((recipe.bodyHex as string | undefined) ?? '', 'hex');
  const magic = typeof recipe.magicHex === 'string' ? parseInt(recipe.magicHex, 16) : 0;
  const value = frame(id, modifyBody(body, recipe), magic);
  if (recipe.delete !== 'soft' && recipe.delete !== 'permanent') return { value };
  await deleteFirstVersion(subject, recipe.delete === 'permanent');
  const served = await idServed(id);
  return {
    value,
    note: `schema id ${id} ${served ? 'still served' : 'gone (404)'} after a ${recipe.delete} delete`,
  };
}
