import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect } from 'chai';
import { generatedDocs, repoRoot } from '../../dev/generate-docs.js';
import {
  catalogueEntry,
  ERROR_CATALOGUE,
  errorMessage,
  type CatalogueOutcome,
} from '../../runtime/error-catalogue.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

interface CodeUse {
  code: string;
  errorClass: string;
  where: string;
}

/** `new XxxError('CODE'` and `new HerderError(404, 'CODE'` across runtime/ and connectors/. */
function codesUsed(): CodeUse[] {
  const uses: CodeUse[] = [];
  const pattern = /new\s+([A-Za-z]*Error)\(\s*(?:\d+\s*,\s*)?['"`]([A-Z][A-Z0-9_]*)['"`]/g;
  for (const file of [
    ...sourceFiles(join(repoRoot, 'runtime')),
    ...sourceFiles(join(repoRoot, 'connectors')),
  ]) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(pattern)) {
      const line = text.slice(0, match.index).split('\n').length;
      uses.push({ errorClass: match[1]!, code: match[2]!, where: `${relative(repoRoot, file)}:${line}` });
    }
  }
  return uses;
}

/** The catalogue outcome each error class stands for; other classes (ConnectError) may carry any. */
const OUTCOME_OF_CLASS: Record<string, CatalogueOutcome> = {
  RetriableError: 'retry',
  RecordError: 'fail-record',
  FatalError: 'fatal',
};

describe('error catalogue', () => {
  it('documents every error code in docs/errors.md and the worker config in docs/worker.md, as generated', () => {
    for (const [path, expected] of Object.entries(generatedDocs())) {
      const actual = readFileSync(join(repoRoot, path), 'utf8');
      expect(actual, `${path} is stale: run npx tsx dev/generate-docs.ts`).to.equal(expected);
    }
    const errorsDoc = readFileSync(join(repoRoot, 'docs/errors.md'), 'utf8');
    for (const { code } of ERROR_CATALOGUE) expect(errorsDoc).to.include(`\`${code}\``);
  });

  it('has an entry for every code the runtime and connectors throw', () => {
    const uses = codesUsed();
    expect(uses.length, 'the scan found no error codes at all').to.be.greaterThan(0);
    const missing = uses.filter((use) => catalogueEntry(use.code) === undefined);
    expect(
      missing.map((m) => `${m.code} at ${m.where}`),
      'codes missing from runtime/error-catalogue.ts',
    ).to.deep.equal([]);
  });

  it('throws each code with the error class of its documented outcome', () => {
    const mismatched = codesUsed().filter((use) => {
      const entry = catalogueEntry(use.code);
      if (!entry) return false;
      if (use.errorClass === 'HerderError') return entry.httpStatus === undefined;
      const expected = OUTCOME_OF_CLASS[use.errorClass];
      return expected !== undefined && expected !== entry.outcome;
    });
    expect(
      mismatched.map(
        (m) =>
          `${m.errorClass}('${m.code}') at ${m.where}: catalogue says ${catalogueEntry(m.code)!.outcome}`,
      ),
    ).to.deep.equal([]);
  });

  it('covers every code the runtime contract names', () => {
    const required = [
      'CONFIG_INVALID',
      'CONFIG_VARIABLE_UNRESOLVED',
      'PLUGIN_NOT_FOUND',
      'CONNECTOR_NOT_FOUND',
      'CONNECTOR_EXISTS',
      'BAD_REQUEST_BODY',
      'CONNECTOR_NOT_STOPPED',
      'AVRO_MAGIC_BYTE',
      'AVRO_UNKNOWN_SCHEMA_ID',
      'AVRO_DECODE_FAILED',
      'AVRO_ENCODE_FAILED',
      'SCHEMA_INCOMPATIBLE',
      'SCHEMA_REGISTRY_UNAVAILABLE',
      'JSON_DECODE_FAILED',
      'NULL_VALUE',
      'KAFKA_PRODUCE_FAILED',
      'KAFKA_UNAVAILABLE',
      'DLQ_PRODUCE_FAILED',
      'SOURCE_RECORD_MALFORMED',
      'SOURCE_FILE_MISSING',
      'TASK_START_FAILED',
      'TASK_STOP_TIMEOUT',
      'MODEL_UNAVAILABLE',
      'MODEL_DEADLINE_EXCEEDED',
      'MODEL_OVERLOADED',
      'MODEL_NOT_FOUND',
      'MODEL_SIGNATURE_NOT_FOUND',
      'MODEL_INVALID_ARGUMENT',
      'MODEL_INPUT_MISSING',
      'MODEL_INPUT_TYPE_MISMATCH',
      'MODEL_OUTPUT_INVALID',
      'BREAKER_OPEN',
      'RATE_LIMIT_QUEUE_FULL',
      'MODEL_AUTH_FAILED',
    ];
    expect(required.filter((code) => catalogueEntry(code) === undefined)).to.deep.equal([]);
  });

  it('keeps transient model and broker failures out of the dead-letter queue', () => {
    for (const code of [
      'MODEL_UNAVAILABLE',
      'MODEL_DEADLINE_EXCEEDED',
      'MODEL_OVERLOADED',
      'BREAKER_OPEN',
      'KAFKA_UNAVAILABLE',
    ]) {
      expect(catalogueEntry(code)!.outcome, code).to.equal('retry');
    }
    expect(catalogueEntry('MODEL_INVALID_ARGUMENT')!.outcome).to.equal('fail-record');
    expect(catalogueEntry('MODEL_NOT_FOUND')!.outcome).to.equal('fatal');
  });

  it('gives every entry a description, a fix, and client errors an HTTP status', () => {
    for (const entry of ERROR_CATALOGUE) {
      expect(entry.description, entry.code).not.to.equal('');
      expect(entry.fix, entry.code).not.to.equal('');
      if (entry.outcome === 'client') expect(entry.httpStatus, entry.code).to.be.within(400, 499);
    }
  });

  it('renders message templates, leaving a placeholder without a parameter visible', () => {
    expect(errorMessage('CONNECTOR_NOT_FOUND', { name: 'scores' })).to.equal('Connector scores not found');
    expect(errorMessage('MODEL_DEADLINE_EXCEEDED', { model: 'fraud' })).to.equal(
      'Model fraud did not answer within {deadlineMs} ms',
    );
  });
});
