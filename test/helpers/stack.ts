// Endpoints of the real local stack for integration tests. `npm run test:integration` starts the
// stack before mocha runs; these helpers only read where it is and give each test unique names.
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { silenceKafkajsTimerWarnings } from '../../runtime/node-warnings.js';

silenceKafkajsTimerWarnings();

export const kafkaBootstrap = process.env.INFER_CONNECT_KAFKA ?? '127.0.0.1:9092';
export const registryUrl = process.env.INFER_CONNECT_REGISTRY ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
export const modelServerTarget = process.env.INFER_CONNECT_MODEL_SERVER ?? '127.0.0.1:8500';
export const modelServerControl = process.env.INFER_CONNECT_MODEL_CONTROL ?? 'http://127.0.0.1:8502';

/** A name no other test run uses, so tests never see each other's topics, subjects or groups. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function testKafka(clientId = 'infer-connect-test'): Kafka {
  return new Kafka({ clientId, brokers: [kafkaBootstrap], logLevel: logLevel.NOTHING });
}
