// The OpenInference config spec, built from TFServingInference's (connectors/tf-serving/config.ts)
// rather than copied: every key that is not the protocol's (input.*, output.*, batch.*,
// max.in.flight.*, rate.limit.*, breaker.*) is taken as it is declared there, with its validation
// and cross-key rules, so both connectors keep one definition of what they share. The protocol's
// keys are the `tfserving.*` keys that mean the same over OIP (target, deadline, start-up timeout,
// TLS, message limits, status policy, model name), renamed to `oip.*`; the TF-Serving-only ones
// (version label, signature, transport, and any `tfserving.*` key added later) are left out; and
// `oip.model.version` (a string, as OIP versions are) and `oip.raw.input.contents` are this
// connector's own. Documentation and problem messages are reworded for the protocol by REWORDS.
import { defineConfig, type ConfigKey, type ConfigSpec, type ParsedConfig } from '../../runtime/api.js';
import { readInferenceSettings, tfServingConfigSpec, type InferenceSettings } from '../tf-serving/config.js';
import { OIP_SIGNATURE } from './oip-client.js';
import { modelSpecOf } from './oip-codec.js';

export const OIP_PREFIX = 'oip';
const TF_PREFIX = 'tfserving';

/** The `tfserving.*` keys OpenInference declares as `oip.*`, with documentation of its own where TF's does not fit. */
const PROTOCOL_KEYS: Readonly<Record<string, { documentation?: string }>> = {
  target: {
    documentation:
      "host:port of the model server's Open Inference Protocol (KServe v2) gRPC endpoint: `inference.GRPCInferenceService` " +
      'as KServe, NVIDIA Triton (port 8001), Seldon MLServer (port 8081 by default) and TorchServe serve it. ' +
      'Tasks of this worker that name the same target (and TLS settings) share one gRPC channel.',
  },
  'deadline.ms': {},
  'startup.timeout.ms': {
    documentation:
      'How long (ms) the task keeps retrying at start while the model server is unreachable or the model is not ' +
      'ready yet (`ModelReady` false, UNAVAILABLE and other transient statuses), with capped backoff; then the task ' +
      'fails. A model or version the server does not have (NOT_FOUND) fails the task at once.',
  },
  'tls.enable': {},
  'tls.ca.file': {},
  'tls.cert.file': {},
  'tls.key.file': {},
  'tls.server.name': {},
  'max.send.message.bytes': {},
  'max.receive.message.bytes': {},
  'status.policy': {},
  'model.name': {
    documentation: 'Name of the model on the server (`ModelInferRequest.model_name`).',
  },
};

const OWN_KEYS: ConfigKey[] = [
  {
    name: 'oip.model.version',
    type: 'string',
    default: null,
    importance: 'medium',
    group: 'Model',
    displayName: 'Model version',
    documentation:
      'Pin a model version (`model_version`, a string as the protocol has it, e.g. `1` or `v2`); it must be one of the ' +
      "versions the server lists for the model, else the task fails at start. Unset: the server's choice (its " +
      'policy, usually the latest), followed as it changes: when a whole request is refused with INVALID_ARGUMENT the ' +
      'task re-reads the metadata and, if the tensors changed, rebuilds the input mapping and output schema. A version ' +
      'of digits is written as a number to `model_version` (`output.metadata.fields`).',
    validate: (value) =>
      value !== null && (String(value).trim() === '' || /\s/.test(String(value)))
        ? "must be a version name without spaces, e.g. 1 or v2 (or unset for the server's choice)"
        : undefined,
  },
  {
    name: 'oip.raw.input.contents',
    type: 'boolean',
    default: false,
    importance: 'low',
    group: 'Model server',
    displayName: 'Raw input contents',
    documentation:
      'Send the inputs as `raw_input_contents` (little-endian bytes, BYTES elements length-prefixed) instead of the ' +
      'typed `contents` fields. Raw is smaller on the wire and what Triton reads fastest; requests with an FP16 input ' +
      'are always raw (FP16 has no typed field). Answers are read either way (`raw_output_contents` or `contents`).',
  },
];

/** Rewording of TF Serving's documentation and problem messages for OIP, applied in order. */
const REWORDS: ReadonlyArray<[RegExp, string]> = [
  [/\btfserving\./g, `${OIP_PREFIX}.`],
  [/PredictRequest/g, 'ModelInferRequest'],
  [/\bPredict requests\b/g, 'ModelInfer requests'],
  [/\bPredict\b/g, 'ModelInfer'],
  [/\(`output_filter`\)/g, "(the request's `outputs`)"],
  [/TensorFlow Serving|TF Serving/g, 'the model server'],
];

export function reword(text: string): string {
  return REWORDS.reduce((t, [pattern, replacement]) => t.replace(pattern, replacement), text);
}

const toOip = (name: string) =>
  name.startsWith(`${TF_PREFIX}.`) ? `${OIP_PREFIX}.${name.slice(TF_PREFIX.length + 1)}` : name;
const toTf = (name: string) =>
  name.startsWith(`${OIP_PREFIX}.`) ? `${TF_PREFIX}.${name.slice(OIP_PREFIX.length + 1)}` : name;

/** The values of an OIP config as the TF spec's validations and rules read them. */
function asTfValues<V>(values: ReadonlyMap<string, V>): Map<string, V> {
  return new Map([...values].map(([k, v]) => [toTf(k), v]));
}

/**
 * The OpenInference spec from the TF Serving spec `base`: shared keys as they are, protocol keys
 * renamed and reworded, rules kept when every key they name is declared.
 */
export function openInferenceSpecFrom(base: ConfigSpec): ConfigSpec {
  const keys: ConfigKey[] = [];
  for (const key of base.keys) {
    const isProtocolKey = key.name.startsWith(`${TF_PREFIX}.`);
    const protocol = isProtocolKey ? PROTOCOL_KEYS[key.name.slice(TF_PREFIX.length + 1)] : undefined;
    if (isProtocolKey && protocol === undefined) continue;
    const validate = key.validate;
    keys.push({
      ...key,
      name: toOip(key.name),
      documentation: protocol?.documentation ?? reword(key.documentation),
      ...(key.dependents ? { dependents: key.dependents.map(toOip) } : {}),
      ...(validate
        ? {
            validate: (value, values) => {
              const problem = validate(value, asTfValues(values));
              return problem === undefined ? undefined : reword(problem);
            },
          }
        : {}),
    });
    if (key.name === `${TF_PREFIX}.model.name`) keys.push(...OWN_KEYS);
  }
  const declared = new Set(keys.map((k) => k.name));
  const rules: ConfigSpec['rules'][number][] = base.rules
    .filter((rule) => rule.keys.every((k) => declared.has(toOip(k))))
    .map((rule) => ({
      keys: rule.keys.map(toOip),
      check: (values) => {
        const problem = rule.check(asTfValues(values));
        return problem === undefined ? undefined : reword(problem);
      },
    }));
  return defineConfig(keys, rules);
}

export const openInferenceConfigSpec: ConfigSpec = openInferenceSpecFrom(tfServingConfigSpec);

/** The model an OpenInference task calls: `oip.model.name`, `oip.model.version`, one signature. */
function readOipModel(config: ParsedConfig): InferenceSettings['model'] {
  return {
    ...modelSpecOf(config.getString('oip.model.name'), config.getOptionalString('oip.model.version')),
    signatureName: OIP_SIGNATURE,
  };
}

/** Reads a config validated against openInferenceConfigSpec into the inference task's settings. */
export function readOpenInferenceSettings(config: ParsedConfig): InferenceSettings {
  return readInferenceSettings(config, OIP_PREFIX, readOipModel);
}

/** `oip.raw.input.contents`: the request encoding the client pool is opened with. */
export function readRawInputContents(config: ParsedConfig): boolean {
  return config.getBoolean('oip.raw.input.contents');
}
