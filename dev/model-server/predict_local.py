"""Run a SavedModel signature in-process: the reference answer for gRPC results.

    python predict_local.py MODEL_DIR [--signature serving_default] < rows.json

MODEL_DIR is one version directory (e.g. BASE/census/1). stdin is a JSON object
{input_name: [values...]} (nested lists for higher ranks); values are cast to
the signature's dtype. String inputs take JSON strings (UTF-8 encoded) or
{"b64": "..."} for raw bytes (TF Serving's REST convention). stdout is
{output_name: [values...]}: numbers as JSON numbers (float32 values printed
exactly, so they compare equal to float_val decoded as a double), strings as
UTF-8 text or {"b64": ...} when not valid UTF-8.
"""

import argparse
import base64
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def to_bytes(value):
    if isinstance(value, list):
        return [to_bytes(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, str):
        return value.encode()
    raise ValueError(f"expected a string or {{\"b64\": ...}} for a string input, got {value!r}")


def to_json(value):
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    return value


def main():
    parser = argparse.ArgumentParser(description="Run a SavedModel signature on JSON rows from stdin.")
    parser.add_argument("model_dir", help="a SavedModel directory, e.g. BASE/census/1")
    parser.add_argument("--signature", default="serving_default")
    args = parser.parse_args()

    fn = tf.saved_model.load(args.model_dir).signatures[args.signature]
    specs = fn.structured_input_signature[1]
    rows = json.load(sys.stdin)
    unknown = set(rows) - set(specs)
    if unknown:
        sys.exit(f"unknown inputs {sorted(unknown)}; signature takes {sorted(specs)}")
    feeds = {}
    for name, spec in specs.items():
        if name not in rows:
            sys.exit(f"missing input {name!r}; signature takes {sorted(specs)}")
        values = to_bytes(rows[name]) if spec.dtype == tf.string else rows[name]
        feeds[name] = tf.constant(np.array(values, dtype=object if spec.dtype == tf.string
                                           else spec.dtype.as_numpy_dtype), dtype=spec.dtype)
    outputs = fn(**feeds)
    json.dump({name: to_json(tensor.numpy().tolist()) for name, tensor in sorted(outputs.items())}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
