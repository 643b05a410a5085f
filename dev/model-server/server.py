"""A stand-in for tensorflow_model_server: TF Serving's gRPC API over real SavedModels.

    python server.py --port 8500 --control-port 8502 [--rest-port 8501] --model-base DIR \
        [--version-labels census:stable=1,null:stable=1,null:canary=2] [--workers 8] \
        [--poll-seconds 0] \
        [--tls-port 0 --tls-cert server.crt --tls-key server.key [--tls-client-ca ca.pem]]

Loads every BASE/<model>/<numeric version>/saved_model.pb at start (like TF
Serving with `model_version_policy { all {} }`); with --poll-seconds N it rescans
the base every N seconds, loading versions that appeared and unloading versions
that went away, as TF Serving does every --file_system_poll_wait_seconds. Serves,
on 127.0.0.1 only:

  tensorflow.serving.PredictionService/Predict
  tensorflow.serving.PredictionService/GetModelMetadata   (metadata_field "signature_def")
  tensorflow.serving.ModelService/GetModelStatus

and with --rest-port, TF Serving's REST API over the same handlers (rest_api.py).

Status codes and messages follow TF Serving (predict_util.cc, server_core.cc,
get_model_metadata_impl.cc, get_model_status_impl.cc) where the client can
observe them. A plain-HTTP control endpoint exposes health, request statistics,
fault injection and version labels (GET/POST /labels moves a label at run time,
as a TF Serving model config reload does); see README.md. Faults affect Predict
only, so a client can always start up (metadata/status stay healthy). Clients'
HTTP/2 keepalive pings are accepted down to one a second (KEEPALIVE_ENFORCEMENT).

With --tls-port the same services are also served over TLS on that port (the plain
port stays), with the PEM certificate chain and key given; --tls-client-ca makes it
mutual TLS: the handshake requires a client certificate signed by that CA.
"""

import argparse
import bisect
import collections
import functools
import json
import logging
import os
import random
import signal
import threading
import time
import urllib.parse
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

import rest_api  # noqa: E402  (TF Serving's REST API, --rest-port)

HOST = "127.0.0.1"
DEFAULT_SIGNATURE = "serving_default"
# Accept clients' HTTP/2 keepalive pings (how they notice a dead connection in seconds) instead
# of gRPC's server defaults, which tensorflow_model_server keeps unless --grpc_channel_arguments
# says otherwise: a ping less than 5 min after the previous one with nothing written in between
# (2 h on a connection without calls) is a strike, and the third strike is answered with GOAWAY
# "too_many_pings". Here a ping is a strike only when it comes less than 1 s after the previous
# one, with or without calls; the infer-connect client pings every 10 s, and only during calls.
KEEPALIVE_ENFORCEMENT = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    # For pings this server sends (it sends none, having no keepalive time): no cap.
    ("grpc.http2.max_pings_without_data", 0),
]
TIMESTAMP_WINDOW = 100_000
log = logging.getLogger("model-server")

# tf.errors codes are the canonical gRPC codes, so the number maps straight across.
STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# Typed TensorProto field per numpy dtype (what TF's Tensor::AsProtoField writes).
TYPED_FIELD = {
    np.dtype(np.float32): "float_val",
    np.dtype(np.float64): "double_val",
    np.dtype(np.int8): "int_val",
    np.dtype(np.int16): "int_val",
    np.dtype(np.int32): "int_val",
    np.dtype(np.uint8): "int_val",
    np.dtype(np.uint16): "int_val",
    np.dtype(np.int64): "int64_val",
    np.dtype(np.uint32): "uint32_val",
    np.dtype(np.uint64): "uint64_val",
    np.dtype(np.bool_): "bool_val",
}


class RpcError(Exception):
    """A failure to report to the client as a gRPC status."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message):
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def dtype_name(enum):
    return types_pb2.DataType.Name(enum)


# -------------------------------------------------------------------- models

class Signature:
    """One callable signature of a loaded SavedModel, with TF-Serving-style input checks."""

    def __init__(self, fn):
        self.fn = fn
        self.inputs = dict(fn.structured_input_signature[1])  # name -> TensorSpec
        self.outputs = dict(fn.structured_outputs)  # name -> TensorSpec
        self.input_names = sorted(self.inputs)

    def decode_inputs(self, request_inputs):
        """PredictRequest.inputs -> {name: np.ndarray}; raises INVALID_ARGUMENT like TF Serving."""
        sent = sorted(request_inputs)
        if len(sent) != len(self.inputs):
            raise invalid(
                f"input size does not match signature: {len(sent)}!={len(self.inputs)} "
                f"len({{{','.join(sent)}}}) != len({{{','.join(self.input_names)}}}). "
                f"Sent extra: {{{','.join(n for n in sent if n not in self.inputs)}}}. "
                f"Missing but required: {{{','.join(n for n in self.input_names if n not in request_inputs)}}}.")
        feeds = {}
        for name, proto in request_inputs.items():
            spec = self.inputs.get(name)
            if spec is None:
                raise invalid(f"input tensor alias not found in signature: {name}. "
                              f"Inputs expected to be in the set {{{','.join(self.input_names)}}}.")
            if proto.dtype != spec.dtype.as_datatype_enum:
                raise invalid(f"Expects arg '{name}' to be {dtype_name(spec.dtype.as_datatype_enum)} "
                              f"but {dtype_name(proto.dtype)} is provided")
            try:
                # Handles typed *_val fields and tensor_content alike.
                array = tf.make_ndarray(proto)
            except Exception:  # malformed content for the declared shape/dtype
                raise invalid(f"tensor parsing error: {name}") from None
            if not spec.shape.is_compatible_with(array.shape):
                raise invalid(f"input tensor '{name}' has shape {list(array.shape)} but the signature "
                              f"expects {spec.shape.as_list()} (-1/None = any size)")
            feeds[name] = array
        return feeds

    def select_outputs(self, output_filter):
        if not output_filter:
            return list(self.outputs)
        if len(set(output_filter)) != len(output_filter):
            duplicate = next(n for n in output_filter if output_filter.count(n) > 1)
            raise invalid(f"duplicate output tensor alias: {duplicate}")
        for name in output_filter:
            if name not in self.outputs:
                raise invalid(f"output tensor alias not found in signature: {name} "
                              f"Outputs expected to be in the set {{{','.join(sorted(self.outputs))}}}.")
        return list(output_filter)

    def run(self, feeds):
        """Execute; TF runtime errors keep their canonical code (INVALID_ARGUMENT for bad data)."""
        try:
            result = self.fn(**feeds)
        except tf.errors.OpError as e:
            raise RpcError(STATUS_BY_NUMBER.get(e.error_code, grpc.StatusCode.UNKNOWN),
                           strip_eager_preamble(e.message)) from None
        except (TypeError, ValueError) as e:  # rejected by the function's own input checks
            raise invalid(str(e)) from None
        return {name: tensor.numpy() for name, tensor in result.items()}


def strip_eager_preamble(message):
    """Drop the "Graph execution error: / Detected at node ... / <stack traces unavailable>"
    lines eager TF puts first, leaving the op's own message as tensorflow_model_server reports it."""
    marker = "<stack traces unavailable>\n"
    return message.split(marker, 1)[1] if marker in message else message


class Servable:
    """One loaded model version."""

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        # Keep the loaded object alive: the signature functions reference its resources.
        self.loaded = tf.saved_model.load(path)
        self.signatures = {key: Signature(fn) for key, fn in self.loaded.signatures.items()}
        # Metadata is the MetaGraphDef's SignatureDef map verbatim, as TF Serving returns it
        # (tensor names such as serving_default_age:0, and __saved_model_init_op included).
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        self.signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in saved_model.meta_graphs[0].signature_def.items():
            self.signature_def_map.signature_def[key].CopyFrom(signature_def)
        self._warm_up()

    def _warm_up(self):
        """Call each batch-shaped signature once with zero rows so the first request is not slow.

        Best effort: some graphs reject an empty batch (the image CNN's oneDNN
        conv does), and that is the model's answer to such a request anyway.
        """
        for key, signature in self.signatures.items():
            specs = signature.inputs.values()
            if not all(spec.shape.rank and spec.shape[0] is None for spec in specs):
                continue
            try:
                signature.fn(**{name: tf.zeros([0] + spec.shape.as_list()[1:], spec.dtype)
                                for name, spec in signature.inputs.items()})
            except tf.errors.OpError as e:
                log.info("%s v%d %s: zero-row warm-up rejected: %.200s", self.name, self.version, key,
                         " ".join(e.message.split()))

    def signature(self, key):
        key = key or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise RpcError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        return key, self.signatures[key]


def scan_model_base(base):
    """BASE/<model>/<numeric version>/saved_model.pb -> {model: {version: path}}, sorted."""
    found = {}
    for name in sorted(os.listdir(base)):
        model_dir = os.path.join(base, name)
        if name.startswith(".") or not os.path.isdir(model_dir):
            continue
        versions = {}
        for entry in os.listdir(model_dir):
            path = os.path.join(model_dir, entry)
            if entry.isdigit() and os.path.exists(os.path.join(path, "saved_model.pb")):
                versions[int(entry)] = path
        if versions:
            found[name] = dict(sorted(versions.items()))
    return found


class ModelRegistry:
    """All servables under the model base, plus version labels.

    `models` and `labels` are replaced as a whole, never changed in place, so request
    threads read a consistent snapshot without a lock; `lock` orders the writers.
    """

    def __init__(self, base, labels):
        self.base = base
        self.lock = threading.Lock()
        self.load_failures = {}  # path -> last load error logged, so each is logged once
        self.models = {}  # name -> {version: Servable}
        for name, paths in scan_model_base(base).items():
            self.models[name] = {version: Servable(name, version, path) for version, path in paths.items()}
        if not self.models:
            raise SystemExit(f"no SavedModels found under {base} (expected <model>/<version>/saved_model.pb)")
        for model, model_labels in labels.items():
            for label, version in model_labels.items():
                if version not in self.models.get(model, {}):
                    raise SystemExit(f"version label {model}:{label}={version} points at a version that is not loaded")
        self.labels = labels

    def rescan(self):
        """Load the versions that appeared under the base and unload those that went away.

        A version that fails to load (e.g. still being copied: write it elsewhere and rename
        it into place, as with TF Serving) is logged and tried again at the next rescan.
        """
        with self.lock:
            found = scan_model_base(self.base)
            models = {name: dict(versions) for name, versions in self.models.items()}
            changed = False
            for name, paths in found.items():
                versions = models.setdefault(name, {})
                for version, path in paths.items():
                    if version in versions:
                        continue
                    try:
                        versions[version] = Servable(name, version, path)
                    except Exception as e:  # noqa: BLE001 - any load failure is retried
                        reason = " ".join(str(e).split())[:200]
                        if self.load_failures.get(path) != reason:
                            log.warning("%s v%d: cannot load %s (%s); retrying at every poll",
                                        name, version, path, reason)
                        self.load_failures[path] = reason
                        continue
                    self.load_failures.pop(path, None)
                    log.info("loaded model %s version %d", name, version)
                    changed = True
            for name, versions in models.items():
                for version in [v for v in versions if v not in found.get(name, {})]:
                    del versions[version]
                    log.info("unloaded model %s version %d (its directory is gone)", name, version)
                    changed = True
            if changed:
                self.models = {name: dict(sorted(versions.items()))
                               for name, versions in sorted(models.items()) if versions}

    def set_label(self, model, label, version):
        """Point `model:label` at a loaded version (TF Serving's model config reload does this;
        it too refuses a label on a version that is not available). Raises ValueError."""
        with self.lock:
            if version not in self.models.get(model, {}):
                raise ValueError(f"model {model} has no loaded version {version}")
            labels = {name: dict(model_labels) for name, model_labels in self.labels.items()}
            labels.setdefault(model, {})[label] = version
            self.labels = labels
        log.info("version label %s:%s now points at version %d", model, label, version)

    def describe(self):
        return {name: list(versions) for name, versions in self.models.items()}

    def resolve(self, model_spec):
        """ModelSpec -> Servable, with TF Serving's codes: unknown label INVALID_ARGUMENT
        (server_core.cc GetModelVersionForLabel), unknown model/version NOT_FOUND."""
        name = model_spec.name
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version_label":
            label = model_spec.version_label
            version = self.labels.get(name, {}).get(label)  # one snapshot of the labels
            if version is None:
                raise invalid(f"Unrecognized servable version label: {label}")
        elif choice == "version":
            version = model_spec.version.value
        else:
            version = None
        versions = self.models.get(name, {})  # one snapshot of the model's versions
        servable = versions[max(versions)] if version is None and versions else versions.get(version)
        if servable is None:
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        return servable


# ------------------------------------------------------- stats and faults

class Stats:
    """Request counters for GET /stats. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = collections.Counter()
            self.errors = collections.Counter()
            self.instances = 0
            self.max_in_flight = self.in_flight
            self.predict_timestamps_ms = collections.deque(maxlen=TIMESTAMP_WINDOW)

    def count_request(self, method):
        with self.lock:
            self.requests[method] += 1

    def count_error(self, code):
        with self.lock:
            self.errors[code.name] += 1

    def predict_started(self):
        with self.lock:
            self.predict_timestamps_ms.append(int(time.time() * 1000))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def predict_finished(self, rows):
        with self.lock:
            self.in_flight -= 1
            self.instances += rows

    def snapshot(self):
        with self.lock:
            timestamps = sorted(self.predict_timestamps_ms)
            snapshot = {
                "requests": dict(self.requests),
                "instances": self.instances,
                "errors": dict(self.errors),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
            }
        snapshot["max_predict_per_second"] = max_in_window(timestamps, 1000)
        snapshot["predict_timestamps_ms"] = timestamps
        return snapshot


def max_in_window(sorted_ms, window_ms):
    """Largest number of timestamps inside any half-open window [t, t + window_ms)."""
    best = 0
    for i, start in enumerate(sorted_ms):
        best = max(best, bisect.bisect_left(sorted_ms, start + window_ms, lo=i) - i)
    return best


class Faults:
    """Fault-injection state for Predict, changed through the control endpoint."""

    DEFAULTS = {
        "latency_ms": 0,
        "failure_rate": 0.0,
        "failure_code": "UNAVAILABLE",
        "failure_message": "injected fault",
        "response_encoding": "typed",
        # Capacity cap (like TF Serving's batching queue): at most max_concurrent Predicts execute,
        # up to queue_limit more wait for a slot, any other is answered UNAVAILABLE "queue full"
        # at once. max_concurrent 0 = no cap. latency_ms then counts from the start of execution,
        # so capacity is max_concurrent / latency_ms.
        "max_concurrent": 0,
        "queue_limit": 0,
    }
    # How often a held request re-checks whether its client is still there.
    POLL_SECONDS = 0.02

    def __init__(self):
        self.changed = threading.Condition()
        self.executing = 0
        self.waiting = 0
        self.reset()

    def reset(self):
        with self.changed:
            self.state = dict(self.DEFAULTS)
            self.stall_until = 0.0  # time.monotonic() deadline
            self.changed.notify_all()

    def update(self, patch):
        """Merge a JSON object into the state; raises ValueError on an unknown key or bad value."""
        if not isinstance(patch, dict):
            raise ValueError("expected a JSON object")
        with self.changed:
            self._apply(patch)
            self.changed.notify_all()

    def _apply(self, patch):
        """Validate the whole patch first, so a bad key leaves the state unchanged."""
        new = dict(self.state)
        stall_seconds = None
        for key, value in patch.items():
            if key == "stall_seconds":
                stall_seconds = _number(key, value, 0, None)
            elif key == "latency_ms":
                new[key] = _number(key, value, 0, None)
            elif key in ("max_concurrent", "queue_limit"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{key} must be a whole number >= 0")
                new[key] = value
            elif key == "failure_rate":
                new[key] = _number(key, value, 0, 1)
            elif key == "failure_code":
                if value not in grpc.StatusCode.__members__ or value == "OK":
                    raise ValueError(f"failure_code must be a non-OK grpc status code name, got {value!r}")
                new[key] = value
            elif key == "failure_message":
                new[key] = str(value)
            elif key == "response_encoding":
                if value not in ("typed", "tensor_content"):
                    raise ValueError("response_encoding must be 'typed' or 'tensor_content'")
                new[key] = value
            else:
                raise ValueError(f"unknown fault key {key!r}")
        self.state = new
        if stall_seconds is not None:
            self.stall_until = time.monotonic() + stall_seconds

    def snapshot(self):
        with self.changed:
            remaining = max(0.0, self.stall_until - time.monotonic())
            return {**self.state, "stall_seconds": round(remaining, 3),
                    "executing": self.executing, "waiting": self.waiting}

    def admit(self, context, arrival):
        """Admission under the capacity cap; returns when this Predict starts executing.

        Without a cap (max_concurrent 0) returns arrival at once. Otherwise takes an executing
        slot, or waits in the queue for one (up to queue_limit waiting), or raises UNAVAILABLE
        "queue full" at once. The caller must call finish() after a successful admit.
        """
        with self.changed:
            if self.state["max_concurrent"] == 0:
                self.executing += 1
                return arrival
            if self.executing >= self.state["max_concurrent"]:
                if self.waiting >= self.state["queue_limit"]:
                    raise RpcError(grpc.StatusCode.UNAVAILABLE,
                                   "The batching queue is full: too many requests in flight (queue full)")
                self.waiting += 1
                try:
                    while self.state["max_concurrent"] and self.executing >= self.state["max_concurrent"]:
                        if not context.is_active():
                            raise RpcError(grpc.StatusCode.CANCELLED,
                                           "client went away while the request waited in the queue")
                        self.changed.wait(self.POLL_SECONDS)
                finally:
                    self.waiting -= 1
            self.executing += 1
            return time.monotonic()

    def finish(self):
        """A Predict admitted by admit() is done: its slot goes to the next waiting one."""
        with self.changed:
            self.executing -= 1
            self.changed.notify_all()

    def hold(self, context, arrival=None):
        """Block while a stall is active (and, when arrival is given, until arrival + latency_ms).

        Re-reads the state each wake-up, so changing or resetting faults releases
        held requests. Raises RpcError once the client has gone (cancelled or
        deadline passed) so the worker thread is freed.
        """
        with self.changed:
            while True:
                until = self.stall_until
                if arrival is not None:
                    until = max(until, arrival + self.state["latency_ms"] / 1000.0)
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return
                if not context.is_active():
                    left = context.time_remaining()  # None when the call has no deadline
                    expired = left is not None and left <= 0
                    code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                    raise RpcError(code, "client went away while the request was held by a fault")
                self.changed.wait(min(remaining, self.POLL_SECONDS))

    def maybe_fail(self):
        state = self.state
        if state["failure_rate"] > 0 and random.random() < state["failure_rate"]:
            raise RpcError(grpc.StatusCode[state["failure_code"]], state["failure_message"])

    @property
    def tensor_content(self):
        return self.state["response_encoding"] == "tensor_content"


def _number(key, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{key} must be in [{low}, {'inf' if high is None else high}]")
    return value


# ------------------------------------------------------------ gRPC services

def encode_tensor(array, spec, tensor_content):
    """ndarray -> TensorProto: typed *_val fields (TF Serving's default) or tensor_content.

    Strings always use string_val, as TF does for both encodings.
    """
    proto = tensor_pb2.TensorProto(dtype=spec.dtype.as_datatype_enum)
    proto.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]))
    if spec.dtype == tf.string:
        proto.string_val.extend(array.ravel().tolist())
    elif tensor_content or array.dtype not in TYPED_FIELD:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    else:
        getattr(proto, TYPED_FIELD[array.dtype]).extend(array.ravel().tolist())
    return proto


def rpc(method):
    """Count the call, and turn RpcError into a gRPC status (also counted)."""
    def decorate(fn):
        @functools.wraps(fn)
        def handler(self, request, context):
            self.stats.count_request(method)
            try:
                return fn(self, request, context)
            except RpcError as e:
                self.stats.count_error(e.code)
                context.abort(e.code, e.message)
            except Exception:
                log.exception("%s failed", method)
                self.stats.count_error(grpc.StatusCode.INTERNAL)
                context.abort(grpc.StatusCode.INTERNAL, f"{method} failed; see server log")
        return handler
    return decorate


def require_model_spec(request):
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry, stats, faults):
        self.registry, self.stats, self.faults = registry, stats, faults

    @rpc("Predict")
    def Predict(self, request, context):
        arrival = time.monotonic()
        self.stats.predict_started()
        rows = 0
        admitted = False
        try:
            # Faults first: an unavailable or stalled server fails before it looks at the request.
            started = self.faults.admit(context, arrival)
            admitted = True
            self.faults.hold(context, started)
            self.faults.maybe_fail()
            require_model_spec(request)
            servable = self.registry.resolve(request.model_spec)
            signature_name, signature = servable.signature(request.model_spec.signature_name)
            feeds = signature.decode_inputs(request.inputs)
            output_names = signature.select_outputs(list(request.output_filter))
            outputs = signature.run(feeds)
            self.faults.hold(context)  # a stall posted while this request ran holds it too

            response = predict_pb2.PredictResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature_name
            tensor_content = self.faults.tensor_content
            for name in output_names:
                response.outputs[name].CopyFrom(
                    encode_tensor(outputs[name], signature.outputs[name], tensor_content))
            first = next(iter(feeds.values()), None)
            rows = first.shape[0] if first is not None and first.ndim else 1
            return response
        finally:
            if admitted:
                self.faults.finish()
            self.stats.predict_finished(rows)

    @rpc("GetModelMetadata")
    def GetModelMetadata(self, request, context):
        require_model_spec(request)
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise invalid(f"Metadata field {field} is not supported")
        servable = self.registry.resolve(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(servable.signature_def_map)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry, stats):
        self.registry, self.stats = registry, stats

    @rpc("GetModelStatus")
    def GetModelStatus(self, request, context):
        require_model_spec(request)
        spec = request.model_spec
        name = spec.name
        versions = self.registry.models.get(name)
        if not versions:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        choice = spec.WhichOneof("version_choice")
        if choice:
            # Labels are validated to point at loaded versions, so resolve() settles them.
            version = spec.version.value if choice == "version" else self.registry.resolve(spec).version
            if version not in versions:
                raise RpcError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            selected = [version]
        else:
            selected = list(versions)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in selected:
            status = response.model_version_status.add()
            status.version = version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            status.status.error_code = 0  # tensorflow.error.OK
        return response


# ------------------------------------------------------------ control HTTP

def make_control_handler(registry, stats, faults):
    class ControlHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status, body):
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _read_json(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            return json.loads(raw or b"{}")

        def do_GET(self):
            path = urllib.parse.urlsplit(self.path).path
            if path == "/health":
                self._send(200, {"status": "ok", "models": registry.describe()})
            elif path == "/stats":
                self._send(200, stats.snapshot())
            elif path == "/faults":
                self._send(200, faults.snapshot())
            elif path == "/labels":
                self._send(200, registry.labels)
            else:
                self._send(404, {"error": f"no such endpoint: GET {self.path}"})

        def do_POST(self):
            path = urllib.parse.urlsplit(self.path).path
            try:
                body = self._read_json()
            except ValueError as e:
                self._send(400, {"error": f"invalid JSON: {e}"})
                return
            if path == "/faults":
                try:
                    faults.update(body)
                except ValueError as e:
                    self._send(400, {"error": str(e)})
                    return
                self._send(200, faults.snapshot())
            elif path == "/reset":
                faults.reset()
                stats.reset()
                self._send(200, faults.snapshot())
            elif path == "/labels":
                try:
                    model, label, version = body["model"], body["label"], body["version"]
                    if not (isinstance(model, str) and isinstance(label, str) and label
                            and isinstance(version, int) and not isinstance(version, bool)):
                        raise ValueError('expected {"model": str, "label": str, "version": int}')
                    registry.set_label(model, label, version)
                except (KeyError, TypeError, ValueError) as e:
                    self._send(400, {"error": str(e) if not isinstance(e, KeyError) else f"missing {e}"})
                    return
                self._send(200, registry.labels)
            else:
                self._send(404, {"error": f"no such endpoint: POST {self.path}"})

        def log_message(self, format, *args):  # keep the server log to one line per event
            pass

    return ControlHandler


# -------------------------------------------------------------------- main

def parse_labels(text):
    """'census:stable=1,null:canary=2' -> {'census': {'stable': 1}, 'null': {'canary': 2}}."""
    labels = collections.defaultdict(dict)
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        try:
            model, assignment = item.split(":", 1)
            label, version = assignment.split("=", 1)
            labels[model][label] = int(version)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad version label {item!r}; expected model:label=version") from None
    return dict(labels)


def tls_server_credentials(cert_file, key_file, client_ca_file):
    """grpc server credentials from PEM files; with a client CA, client certificates are required
    and verified against it (mutual TLS). Raises SystemExit naming an unreadable file."""
    def read(option, path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise SystemExit(f"{option} {path}: {e.strerror}") from None

    pair = (read("--tls-key", key_file), read("--tls-cert", cert_file))
    client_ca = read("--tls-client-ca", client_ca_file) if client_ca_file else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def check_tls_args(parser, args):
    """The TLS options go together: a port needs a certificate and key, and they need a port."""
    tls_files = [args.tls_cert, args.tls_key, args.tls_client_ca]
    if args.tls_port is None:
        if any(tls_files):
            parser.error("--tls-cert, --tls-key and --tls-client-ca need --tls-port")
    elif not (args.tls_cert and args.tls_key):
        parser.error("--tls-port needs --tls-cert and --tls-key")


def poll_model_base(registry, seconds, stop):
    """Rescan the model base every `seconds` until `stop` is set."""
    while not stop.wait(seconds):
        try:
            registry.rescan()
        except Exception:  # noqa: BLE001 - keep polling; the next scan may succeed
            log.exception("rescanning the model base failed")


def main():
    parser = argparse.ArgumentParser(description="TF Serving gRPC stand-in for dev and tests.")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0 = pick a free one)")
    parser.add_argument("--control-port", type=int, default=8502, help="HTTP control port (0 = pick a free one)")
    parser.add_argument("--rest-port", type=int,
                        help="also serve TF Serving's REST API on this port (0 = pick a free one; TF Serving "
                             "uses 8501); absent = off, as tensorflow_model_server without --rest_api_port")
    parser.add_argument("--model-base", required=True, help="directory with <model>/<version>/saved_model.pb")
    parser.add_argument("--version-labels", type=parse_labels, default={},
                        help="comma-separated model:label=version, e.g. null:stable=1,null:canary=2")
    parser.add_argument("--workers", type=int, default=8, help="gRPC worker threads (max concurrent RPCs)")
    parser.add_argument("--poll-seconds", type=float, default=0,
                        help="rescan the model base this often, loading new versions and unloading removed "
                             "ones (TF Serving's --file_system_poll_wait_seconds); 0 = load once at start")
    parser.add_argument("--tls-port", type=int,
                        help="also serve gRPC over TLS on this port (0 = pick a free one); needs --tls-cert "
                             "and --tls-key")
    parser.add_argument("--tls-cert", help="PEM certificate chain of the TLS port")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", help="PEM CA certificates: the TLS port then requires a client "
                                                "certificate signed by one of them (mutual TLS)")
    args = parser.parse_args()
    check_tls_args(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Read before the (slow) model loading, so a wrong TLS file fails the start at once.
    tls_credentials = (tls_server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca)
                       if args.tls_port is not None else None)

    registry = ModelRegistry(os.path.abspath(os.path.expanduser(args.model_base)), args.version_labels)
    stats, faults = Stats(), Faults()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="grpc"),
        # tensorflow_model_server lifts gRPC's 4 MB default; large image batches need it.
        options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
                 *KEEPALIVE_ENFORCEMENT])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(registry, stats, faults), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(registry, stats), server)
    grpc_port = server.add_insecure_port(f"{HOST}:{args.port}")
    if grpc_port == 0:
        raise SystemExit(f"could not bind gRPC to {HOST}:{args.port}")
    tls = "off"
    if tls_credentials is not None:
        tls_port = server.add_secure_port(f"{HOST}:{args.tls_port}", tls_credentials)
        if tls_port == 0:
            raise SystemExit(f"could not bind gRPC over TLS to {HOST}:{args.tls_port}")
        tls = f"{HOST}:{tls_port} client_auth={'required' if args.tls_client_ca else 'none'}"
    server.start()

    control = ThreadingHTTPServer((HOST, args.control_port), make_control_handler(registry, stats, faults))
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, name="control", daemon=True).start()

    # TF Serving's REST API over the same handlers (and so the same servables, labels, stats and faults).
    rest = None
    if args.rest_port is not None:
        prediction, models_service = PredictionService(registry, stats, faults), ModelService(registry, stats)
        rest = ThreadingHTTPServer((HOST, args.rest_port), rest_api.make_rest_handler(
            prediction, models_service, stats, RpcError, PredictionService.Predict.__wrapped__,
            PredictionService.GetModelMetadata.__wrapped__, ModelService.GetModelStatus.__wrapped__))
        rest.daemon_threads = True
        threading.Thread(target=rest.serve_forever, name="rest", daemon=True).start()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.poll_seconds > 0:
        threading.Thread(target=poll_model_base, args=(registry, args.poll_seconds, stop),
                         name="poll", daemon=True).start()
    models = " ".join(f"{name}[{','.join(map(str, versions))}]" for name, versions in registry.describe().items())
    labels = ",".join(f"{m}:{label}={v}" for m, ls in registry.labels.items() for label, v in ls.items()) or "none"
    log.info("serving grpc=%s:%d control=%s:%d workers=%d models=%s labels=%s poll=%s tls=%s rest=%s",
             HOST, grpc_port, HOST, control.server_address[1], args.workers, models, labels,
             f"{args.poll_seconds:g}s" if args.poll_seconds > 0 else "off", tls,
             f"{HOST}:{rest.server_address[1]}" if rest is not None else "off")
    while not stop.wait(0.5):  # a bounded wait keeps the main thread responsive to signals
        pass
    log.info("shutting down")
    if rest is not None:
        rest.shutdown()
        rest.server_close()
    control.shutdown()
    control.server_close()
    server.stop(grace=2).wait()
    log.info("stopped")


if __name__ == "__main__":
    main()
