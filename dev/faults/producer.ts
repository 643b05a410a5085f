// The load of a fault case: Avro census records (Confluent framing, schema registered in the
// faults registry) at a steady pace, spread round-robin over the input partitions, each keyed by a
// unique id the verdict follows through output and DLQ. Every `poisonEvery`-th record is not Avro
// at all, so each case also exercises the dead-letter path.
//
// A send that fails (broker frozen or restarting) is not retried with the same records: the input
// topic, read back at the end, is the ground truth of what was produced. The producer keeps its
// pace by skipping ticks while a send is outstanding, so a long outage builds no unbounded queue.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type { Kafka, Message, Producer } from 'kafkajs';
import { readCensusRows, type CensusRow } from '../census.js';
import { repoRoot } from '../stack.js';

export interface CensusSchema {
  id: number;
  type: avro.Type;
  /** Extra field values this version carries beyond the census columns. */
  extra: Record<string, unknown>;
}

const censusText = readFileSync(join(repoRoot, 'schemas', 'census.avsc'), 'utf8');

/** Version 2 of the census schema: one more field, with a default (BACKWARD compatible). */
export const censusV2Text = (() => {
  const schema = JSON.parse(censusText) as { fields: unknown[] };
  schema.fields.push({ name: 'faults_schema_version', type: 'string', default: 'v1' });
  return JSON.stringify(schema);
})();

export async function registerCensusSchema(
  registryUrl: string,
  subject: string,
  version: 1 | 2,
): Promise<CensusSchema> {
  const text = version === 1 ? censusText : censusV2Text;
  const registry = new SchemaRegistry({ host: registryUrl });
  const { id } = await registry.register({ type: SchemaType.AVRO, schema: text }, { subject });
  return {
    id,
    type: avro.Type.forSchema(JSON.parse(text) as avro.Schema),
    extra: version === 1 ? {} : { faults_schema_version: 'v2' },
  };
}

export function frame(schemaId: number, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}

let censusRows: CensusRow[] | undefined;
const rows = () => (censusRows ??= readCensusRows('test'));

export interface PacedProducerOptions {
  kafka: Kafka;
  topic: string;
  partitions: number;
  recordsPerSecond: number;
  idPrefix: string;
  schema: CensusSchema;
  /** Every n-th record is undecodable (a dead letter); 0 for none. */
  poisonEvery: number;
  log: (message: string) => void;
}

export class PacedProducer {
  private producer: Producer | undefined;
  private seq = 0;
  private schema: CensusSchema;
  private running = false;
  private loop: Promise<void> | undefined;
  failedSends = 0;
  lastError: string | undefined;

  constructor(private readonly options: PacedProducerOptions) {
    this.schema = options.schema;
  }

  /** Records handed to a send so far (sent or failed). */
  get attempted(): number {
    return this.seq;
  }

  async start(): Promise<void> {
    this.producer = this.options.kafka.producer({ allowAutoTopicCreation: false });
    await this.producer.connect();
    this.running = true;
    this.loop = this.run();
  }

  /** Records produced from now on use `schema` (the producer switching to a new version). */
  useSchema(schema: CensusSchema): void {
    this.schema = schema;
  }

  /** Stops the pace and waits for the send in progress. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.producer?.disconnect().catch(() => undefined);
    this.producer = undefined;
  }

  /** Sends one extra census record now, with `patch` applied to its row (e.g. a huge field). */
  async sendOne(patch: CensusRow): Promise<string> {
    const message = this.message({ ...this.nextRow(), ...patch }, false);
    await this.producer!.send({ topic: this.options.topic, messages: [message] });
    return message.key as string;
  }

  private async run(): Promise<void> {
    const tickMs = 100;
    const perTick = Math.max(1, Math.round((this.options.recordsPerSecond * tickMs) / 1000));
    let next = Date.now();
    while (this.running) {
      const messages: Message[] = [];
      for (let i = 0; i < perTick; i++) {
        const poison = this.options.poisonEvery > 0 && (this.seq + 1) % this.options.poisonEvery === 0;
        messages.push(this.message(this.nextRow(), poison));
      }
      try {
        await this.producer!.send({ topic: this.options.topic, messages });
      } catch (error) {
        this.failedSends++;
        const text = (error as Error).message;
        if (text !== this.lastError) this.options.log(`producer: send failed (${text}); continuing`);
        this.lastError = text;
      }
      next += tickMs;
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else next = Date.now(); // behind (a send hung): skip the missed ticks instead of bursting
    }
  }

  /** True for the ids this producer wrote as undecodable records (the expected dead letters). */
  isPoison(id: string): boolean {
    const { idPrefix, poisonEvery } = this.options;
    if (poisonEvery <= 0 || !id.startsWith(`${idPrefix}-`)) return false;
    const seq = Number(id.slice(idPrefix.length + 1));
    return Number.isInteger(seq) && (seq + 1) % poisonEvery === 0;
  }

  private nextRow(): CensusRow {
    const all = rows();
    return all[this.seq % all.length]!;
  }

  private message(row: CensusRow, poison: boolean): Message & { partition: number } {
    const seq = this.seq++;
    const key = `${this.options.idPrefix}-${String(seq).padStart(7, '0')}`;
    const value = poison
      ? Buffer.from(`poison ${key}: not a schema-registry Avro record`)
      : frame(this.schema.id, this.schema.type.toBuffer({ ...row, ...this.schema.extra }));
    return { key, value, partition: seq % this.options.partitions };
  }
}
