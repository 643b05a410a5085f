"""End-to-end checks of server.py through TF Serving's own gRPC stubs.

    python test_server.py [--model-base ~/.cache/infer-connect/models]

Builds the models (build_models.py; a no-op when cached), starts server.py on
free ports (--port 0 --control-port 0, ports read from its start line), runs
every check, stops the server with SIGTERM and prints "N passed, M failed".
Exits non-zero on any failure.
"""

import argparse
import base64
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
CENSUS_TEST = os.path.join(REPO, "data", "census", "adult.test.csv")
IMAGES = os.path.join(REPO, "data", "images")
INT_COLUMNS = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
STRING_COLUMNS = ["workclass", "education", "marital_status", "occupation",
                  "relationship", "race", "sex", "native_country"]
LABELS = "census:stable=1,null:stable=1,null:canary=2"
START_TIMEOUT_S = 180

TESTS = []


def check(fn):
    TESTS.append(fn)
    return fn


# ----------------------------------------------------------------- harness

class Server:
    """server.py as a subprocess; stderr is drained into self.log lines."""

    def __init__(self, model_base, labels=LABELS, extra=()):
        self.log = []
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "server.py"), "--port", "0", "--control-port", "0",
             "--rest-port", "0", "--model-base", model_base, "--version-labels", labels, "--workers", "8",
             *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ready = threading.Event()
        ports = {}

        def drain():
            for line in self.proc.stderr:
                self.log.append(line.rstrip())
                match = re.search(r"serving grpc=127\.0\.0\.1:(\d+) control=127\.0\.0\.1:(\d+)", line)
                if match:
                    ports["grpc"], ports["control"] = int(match[1]), int(match[2])
                    tls = re.search(r" tls=127\.0\.0\.1:(\d+)", line)
                    ports["tls"] = int(tls[1]) if tls else None
                    rest = re.search(r" rest=127\.0\.0\.1:(\d+)", line)
                    ports["rest"] = int(rest[1]) if rest else None
                    ready.set()
            ready.set()  # process ended; the check below reports it

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or not ports:
            self.proc.kill()
            raise SystemExit("server did not start:\n" + "\n".join(self.log[-30:]))
        self.grpc_port, self.control_port, self.tls_port = ports["grpc"], ports["control"], ports["tls"]
        self.rest_port = ports["rest"]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_stub = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def control(self, method, path, body=None):
        """HTTP control call -> (status, parsed JSON)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data,
                                         method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def rest(self, method, path, body=None):
        """TF Serving REST call -> (status, parsed JSON, raw text); `body` is sent as JSON text."""
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.rest_port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
                return response.status, json.loads(text), text
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, json.loads(text), text

    def stop(self):
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


def predict_request(model, inputs, version=None, label=None, signature=None, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if signature is not None:
        request.model_spec.signature_name = signature
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    request.output_filter.extend(output_filter)
    return request


def typed(values, dtype):
    """A TensorProto using the typed *_val field (make_tensor_proto uses tensor_content for numbers)."""
    array = np.asarray(values, dtype=dtype)
    dtype_enum, field = {np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val"),
                         np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
                         np.dtype(object): (types_pb2.DT_STRING, "string_val")}[array.dtype]
    proto = tensor_pb2.TensorProto(dtype=dtype_enum)
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape)
    getattr(proto, field).extend(array.ravel().tolist())
    return proto


def census_rows(count):
    with open(CENSUS_TEST, newline="") as f:
        reader = csv.DictReader(f)
        return [next(reader) for _ in range(count)]


def census_inputs(rows, encode=typed):
    inputs = {c: encode([int(r[c]) for r in rows], np.int64) for c in INT_COLUMNS}
    inputs.update({c: encode([r[c].encode() for r in rows], object) for c in STRING_COLUMNS})
    return inputs


def content(values, dtype):
    return tf.make_tensor_proto(np.asarray(values, dtype=dtype))


def expect_error(call, code, contains=None):
    try:
        call()
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code.name}, got {e.code().name}: {e.details()}"
        if contains is not None:
            assert contains in e.details(), f"expected {contains!r} in {e.details()!r}"
        return e.details()
    raise AssertionError(f"expected {code.name}, call succeeded")


def null_predict(server, ages, timeout=10, **spec):
    return server.predict_stub.Predict(predict_request("null", {"age": typed(ages, np.int64)}, **spec),
                                       timeout=timeout)


# ------------------------------------------------------------------ checks

@check
def health_lists_models(server, base):
    status, body = server.control("GET", "/health")
    assert status == 200 and body["status"] == "ok", body
    assert body["models"] == {"census": [1], "image": [1], "null": [1, 2]}, body["models"]


@check
def census_metadata(server, base):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "census"
    response = server.predict_stub.GetModelMetadata(request, timeout=10)
    assert response.model_spec.name == "census" and response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    signature = signature_map.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict", signature.method_name
    expected = {**{c: types_pb2.DT_INT64 for c in INT_COLUMNS}, **{c: types_pb2.DT_STRING for c in STRING_COLUMNS}}
    assert {k: v.dtype for k, v in signature.inputs.items()} == expected
    for name, info in signature.inputs.items():
        assert [d.size for d in info.tensor_shape.dim] == [-1], (name, info.tensor_shape)
        assert info.name == f"serving_default_{name}:0", info.name
    assert signature.outputs["probability"].dtype == types_pb2.DT_FLOAT
    assert signature.outputs["predicted_class"].dtype == types_pb2.DT_STRING
    assert [d.size for d in signature.outputs["probability"].tensor_shape.dim] == [-1]


@check
def census_predict_matches_predict_local(server, base):
    rows = census_rows(3)
    response = server.predict_stub.Predict(predict_request("census", census_inputs(rows)), timeout=10)
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    local_in = {c: [int(r[c]) for r in rows] for c in INT_COLUMNS}
    local_in.update({c: [r[c] for r in rows] for c in STRING_COLUMNS})
    local = json.loads(subprocess.run(
        [sys.executable, os.path.join(HERE, "predict_local.py"), os.path.join(base, "census", "1")],
        input=json.dumps(local_in), capture_output=True, text=True, check=True).stdout)
    assert list(response.outputs["probability"].float_val) == local["probability"], \
        (list(response.outputs["probability"].float_val), local["probability"])
    assert [v.decode() for v in response.outputs["predicted_class"].string_val] == local["predicted_class"]
    assert [d.size for d in response.outputs["probability"].tensor_shape.dim] == [3]


@check
def inputs_as_tensor_content_match_typed(server, base):
    rows = census_rows(5)
    a = server.predict_stub.Predict(predict_request("census", census_inputs(rows)), timeout=10)
    b = server.predict_stub.Predict(predict_request("census", census_inputs(rows, content)), timeout=10)
    assert a.outputs["probability"].float_val == b.outputs["probability"].float_val


@check
def null_latest_version_and_row_order(server, base):
    response = null_predict(server, [5, 40, 17])
    assert response.model_spec.version.value == 2
    assert list(response.outputs["score"].float_val) == [6.0, 41.0, 18.0]
    response = null_predict(server, [5, 40, 17], version=1)
    assert response.model_spec.version.value == 1
    assert list(response.outputs["score"].float_val) == [5.0, 40.0, 17.0]


@check
def version_labels_resolve(server, base):
    stable = null_predict(server, [30], label="stable")
    canary = null_predict(server, [30], label="canary")
    assert (stable.model_spec.version.value, stable.outputs["score"].float_val[0]) == (1, 30.0)
    assert (canary.model_spec.version.value, canary.outputs["score"].float_val[0]) == (2, 31.0)
    # TF Serving answers an unknown label with INVALID_ARGUMENT (not NOT_FOUND).
    expect_error(lambda: null_predict(server, [30], label="nope"), grpc.StatusCode.INVALID_ARGUMENT,
                 "Unrecognized servable version label: nope")


@check
def unknown_model_and_version_not_found(server, base):
    expect_error(lambda: server.predict_stub.Predict(predict_request("nope", {"age": typed([1], np.int64)}),
                                                     timeout=10),
                 grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")
    expect_error(lambda: null_predict(server, [1], version=9), grpc.StatusCode.NOT_FOUND,
                 "Servable not found for request: Specific(null, 9)")
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "nope"
    expect_error(lambda: server.predict_stub.GetModelMetadata(request, timeout=10), grpc.StatusCode.NOT_FOUND)


@check
def unknown_signature_failed_precondition(server, base):
    expect_error(lambda: null_predict(server, [1], signature="x"), grpc.StatusCode.FAILED_PRECONDITION,
                 'Serving signature key "x" not found.')


@check
def bad_inputs_invalid_argument(server, base):
    def call(inputs, model="null", **kw):
        return lambda: server.predict_stub.Predict(predict_request(model, inputs, **kw), timeout=10)

    INVALID = grpc.StatusCode.INVALID_ARGUMENT
    expect_error(call({"age": typed([1.5], np.float32)}), INVALID, "'age'")
    expect_error(call({"age": content([[1, 2]], np.int64)}), INVALID, "'age'")
    expect_error(call({}), INVALID, "Missing but required: {age}")
    expect_error(call({"age": typed([1], np.int64), "extra": typed([1], np.int64)}), INVALID,
                 "Sent extra: {extra}")
    expect_error(call({"agee": typed([1], np.int64)}), INVALID, "input tensor alias not found in signature: agee")
    expect_error(call({"age": typed([1], np.int64)}, output_filter=["nope"]), INVALID,
                 "output tensor alias not found in signature: nope")
    # Errors raised by TF while executing the graph come back as INVALID_ARGUMENT too.
    inputs = census_inputs(census_rows(2))
    inputs["age"].CopyFrom(typed([30, 40, 50], np.int64))
    expect_error(call(inputs, model="census"), INVALID)
    expect_error(call({"image_bytes": typed([b"not a jpeg"], object)}, model="image"), INVALID)


@check
def output_filter_limits_outputs(server, base):
    response = server.predict_stub.Predict(
        predict_request("census", census_inputs(census_rows(2)), output_filter=["probability"]), timeout=10)
    assert list(response.outputs) == ["probability"], list(response.outputs)


@check
def tensor_content_response_encoding(server, base):
    request = predict_request("census", census_inputs(census_rows(4)))
    typed_response = server.predict_stub.Predict(request, timeout=10)
    assert typed_response.outputs["probability"].float_val and not typed_response.outputs["probability"].tensor_content
    status, state = server.control("POST", "/faults", {"response_encoding": "tensor_content"})
    assert status == 200 and state["response_encoding"] == "tensor_content", state
    packed = server.predict_stub.Predict(request, timeout=10)
    server.control("POST", "/reset")
    probability = packed.outputs["probability"]
    assert probability.tensor_content and not probability.float_val
    assert tf.make_ndarray(probability).tolist() == list(typed_response.outputs["probability"].float_val)
    assert tf.make_ndarray(packed.outputs["predicted_class"]).tolist() == \
        list(typed_response.outputs["predicted_class"].string_val)


@check
def model_status(server, base):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "null"
    response = server.model_stub.GetModelStatus(request, timeout=10)
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == \
        [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0),
         (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]
    request.model_spec.version.value = 2
    assert [s.version for s in server.model_stub.GetModelStatus(request, timeout=10).model_version_status] == [2]
    request.model_spec.version.value = 7
    expect_error(lambda: server.model_stub.GetModelStatus(request, timeout=10), grpc.StatusCode.NOT_FOUND,
                 "Could not find version 7 of model null")
    request.model_spec.name = "nope"
    request.model_spec.ClearField("version")
    expect_error(lambda: server.model_stub.GetModelStatus(request, timeout=10), grpc.StatusCode.NOT_FOUND,
                 "Could not find any versions of model nope")


@check
def image_model_classifies_test_images(server, base):
    with open(os.path.join(IMAGES, "expected.json")) as f:
        expected = json.load(f)
    names = sorted(expected)
    images = []
    for name in names:
        with open(os.path.join(IMAGES, name), "rb") as f:
            images.append(f.read())
    response = server.predict_stub.Predict(
        predict_request("image", {"image_bytes": typed(images, object)}), timeout=30)
    classes = tf.make_ndarray(response.outputs["top_k_classes"])
    scores = tf.make_ndarray(response.outputs["top_k_scores"])
    assert classes.shape == (len(names), 3) and scores.shape == (len(names), 3), (classes.shape, scores.shape)
    assert [c.decode() for c in classes[:, 0]] == [expected[n] for n in names], classes[:, 0]
    assert np.all(np.diff(scores, axis=1) <= 0), scores


@check
def fault_failure_rate(server, base):
    status, state = server.control("POST", "/faults", {"failure_rate": 1, "failure_code": "UNAVAILABLE",
                                                       "failure_message": "chaos"})
    assert status == 200 and state["failure_rate"] == 1, state
    expect_error(lambda: null_predict(server, [1]), grpc.StatusCode.UNAVAILABLE, "chaos")
    # Metadata and status stay healthy under Predict faults.
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "null"
    server.predict_stub.GetModelMetadata(request, timeout=10)
    status, _ = server.control("POST", "/reset")
    assert status == 200
    assert null_predict(server, [1]).outputs["score"].float_val[0] == 2.0


@check
def fault_latency(server, base):
    server.control("POST", "/faults", {"latency_ms": 300})
    start = time.monotonic()
    null_predict(server, [1])
    slow = time.monotonic() - start
    server.control("POST", "/reset")
    start = time.monotonic()
    null_predict(server, [1])
    fast = time.monotonic() - start
    assert slow >= 0.3, slow
    assert fast < 0.25, fast


@check
def fault_stall_respects_deadline(server, base):
    server.control("POST", "/faults", {"stall_seconds": 30})
    start = time.monotonic()
    expect_error(lambda: null_predict(server, [1], timeout=0.5), grpc.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - start < 2
    status, state = server.control("GET", "/faults")
    assert status == 200 and state["stall_seconds"] > 20, state
    # A request held by the stall is released as soon as the stall is lifted.
    result = {}
    waiter = threading.Thread(target=lambda: result.update(r=null_predict(server, [3], timeout=30)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive(), "request was not held by the stall"
    server.control("POST", "/faults", {"stall_seconds": 0})
    waiter.join(5)
    assert not waiter.is_alive() and result["r"].outputs["score"].float_val[0] == 4.0
    # The server notices the abandoned request within its poll interval.
    time.sleep(0.2)
    _, stats = server.control("GET", "/stats")
    assert stats["errors"].get("DEADLINE_EXCEEDED", 0) >= 1, stats["errors"]
    assert stats["in_flight"] == 0, stats["in_flight"]
    server.control("POST", "/reset")


# --- capacity cap (max_concurrent / queue_limit): the bench of max.in.flight.requests=auto uses it
@check
def fault_capacity_cap_queues_then_refuses_queue_full(server, base):
    server.control("POST", "/reset")
    assert server.control("POST", "/faults", {"max_concurrent": -1})[0] == 400
    assert server.control("POST", "/faults", {"queue_limit": 1.5})[0] == 400
    status, state = server.control("POST", "/faults", {"max_concurrent": 2, "queue_limit": 2, "latency_ms": 300})
    assert status == 200 and (state["max_concurrent"], state["queue_limit"]) == (2, 2), state
    request = predict_request("null", {"age": typed([7], np.int64)})
    start = time.monotonic()
    calls = []
    for _ in range(6):
        calls.append(server.predict_stub.Predict.future(request, timeout=10))
        time.sleep(0.02)  # in order: 2 execute, 2 wait, 2 find the queue full
    time.sleep(0.1)
    _, during = server.control("GET", "/faults")
    assert (during["executing"], during["waiting"]) == (2, 2), during
    done, refused = [], []
    for call in calls:
        try:
            call.result()
            done.append(time.monotonic() - start)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE and "queue full" in e.details(), e
            refused.append(e)
    assert (len(done), len(refused)) == (4, 2), (done, refused)
    # latency_ms counts from the start of execution: the queued pair ends a full latency later.
    assert sorted(done)[-1] >= 0.6, done
    _, stats = server.control("GET", "/stats")
    assert stats["errors"] == {"UNAVAILABLE": 2}, stats["errors"]
    server.control("POST", "/reset")
    _, state = server.control("GET", "/faults")
    assert (state["max_concurrent"], state["executing"], state["waiting"]) == (0, 0, 0), state
# --- end capacity cap


@check
def fault_validation(server, base):
    assert server.control("POST", "/faults", {"nope": 1})[0] == 400
    assert server.control("POST", "/faults", {"failure_rate": 2})[0] == 400
    assert server.control("POST", "/faults", {"failure_code": "NOT_A_CODE"})[0] == 400
    assert server.control("POST", "/faults", {"response_encoding": "xml"})[0] == 400
    status, state = server.control("GET", "/faults")
    assert status == 200 and state["failure_rate"] == 0 and state["response_encoding"] == "typed", state


@check
def stats_count_requests(server, base):
    server.control("POST", "/reset")
    for _ in range(20):
        null_predict(server, [1, 2, 3, 4, 5])
    expect_error(lambda: null_predict(server, [1], version=9), grpc.StatusCode.NOT_FOUND)
    status, stats = server.control("GET", "/stats")
    assert status == 200
    assert stats["requests"] == {"Predict": 21}, stats["requests"]
    assert stats["instances"] == 100, stats["instances"]
    assert stats["errors"] == {"NOT_FOUND": 1}, stats["errors"]
    assert len(stats["predict_timestamps_ms"]) == 21
    assert 1 <= stats["max_predict_per_second"] <= 21, stats["max_predict_per_second"]
    assert stats["in_flight"] == 0 and stats["max_in_flight"] >= 1, stats


@check
def version_labels_move_at_run_time(server, base):
    status, labels = server.control("POST", "/labels", {"model": "null", "label": "stable", "version": 2})
    try:
        assert status == 200 and labels["null"] == {"stable": 2, "canary": 2}, (status, labels)
        moved = null_predict(server, [30], label="stable")
        assert (moved.model_spec.version.value, moved.outputs["score"].float_val[0]) == (2, 31.0)
        status, body = server.control("POST", "/labels", {"model": "null", "label": "stable", "version": 9})
        assert status == 400 and "no loaded version 9" in body["error"], (status, body)
        assert server.control("POST", "/labels", {"model": "null", "label": "stable"})[0] == 400
        assert server.control("GET", "/labels")[1]["null"]["stable"] == 2
    finally:
        server.control("POST", "/labels", {"model": "null", "label": "stable", "version": 1})
    assert null_predict(server, [30], label="stable").model_spec.version.value == 1


@check
def keepalive_pings_during_a_long_call_are_accepted(server, base):
    """A client pinging every second while its call is held 8 s keeps its connection.

    With gRPC's server defaults (what tensorflow_model_server runs with) the third strike, a
    few pings without anything written in between, is answered with GOAWAY "too_many_pings"
    and the call fails UNAVAILABLE ("Too many pings").
    """
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=[
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.http2.max_pings_without_data", 0),
    ])
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request("null", {"age": typed([1], np.int64)}, version=1)
        stub.Predict(request, timeout=10)  # connect first, so only the held call is timed
        server.control("POST", "/faults", {"latency_ms": 8000})
        response = stub.Predict(request, timeout=15)
        assert response.outputs["score"].float_val[0] == 1.0
    finally:
        server.control("POST", "/reset")
        channel.close()


@check
def poll_loads_new_versions_and_unloads_removed_ones(server, base):
    """--poll-seconds: a version renamed into the base is served, a deleted one is dropped."""
    with tempfile.TemporaryDirectory(prefix="model-base-") as tmp:
        shutil.copytree(os.path.join(base, "null", "1"), os.path.join(tmp, "null", "1"))
        polling = Server(tmp, labels="", extra=("--poll-seconds", "0.5"))
        try:
            assert "poll=0.5s" in "\n".join(polling.log), polling.log[-3:]
            assert null_predict(polling, [5]).model_spec.version.value == 1
            staging = os.path.join(tmp, "null", ".staging-2")
            shutil.copytree(os.path.join(base, "null", "2"), staging)
            os.rename(staging, os.path.join(tmp, "null", "2"))
            wait_until(lambda: polling.control("GET", "/health")[1]["models"] == {"null": [1, 2]},
                       "version 2 to be loaded")
            latest = null_predict(polling, [5])
            assert (latest.model_spec.version.value, latest.outputs["score"].float_val[0]) == (2, 6.0)
            shutil.rmtree(os.path.join(tmp, "null", "1"))
            wait_until(lambda: polling.control("GET", "/health")[1]["models"] == {"null": [2]},
                       "version 1 to be unloaded")
            expect_error(lambda: null_predict(polling, [5], version=1), grpc.StatusCode.NOT_FOUND,
                         "Specific(null, 1)")
            log = "\n".join(polling.log)
            assert "loaded model null version 2" in log and "unloaded model null version 1" in log, \
                polling.log[-5:]
        finally:
            assert polling.stop() == 0


def openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 signed by it, a client certificate signed by it, and
    a second CA that signed neither: {name: path of its PEM file}."""
    for ca in ("ca", "other-ca"):
        openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=test {ca}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    for leaf, extensions in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                             ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(directory, f"{leaf}.ext"), "w") as f:
            f.write(extensions)
        openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{leaf}.key",
                "-out", f"{leaf}.csr", "-subj", f"/CN=test {leaf}")
        openssl(directory, "x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{leaf}.crt", "-days", "2", "-extfile", f"{leaf}.ext")
    return {name: os.path.join(directory, name)
            for name in ("ca.pem", "other-ca.pem", "server.crt", "server.key", "client.crt", "client.key")}


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def tls_null_predict(port, root, client=None):
    """Predict on `null` over a fresh TLS channel trusting `root`, with an optional (cert, key)."""
    key, cert = (None, None) if client is None else (read_bytes(client[1]), read_bytes(client[0]))
    credentials = grpc.ssl_channel_credentials(read_bytes(root), key, cert)
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(predict_request("null", {"age": typed([7], np.int64)}), timeout=10)


@check
def tls_port_serves_with_and_without_client_certificates(server, base):
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(tmp)
        models = os.path.join(tmp, "models")
        shutil.copytree(os.path.join(base, "null", "1"), os.path.join(models, "null", "1"))
        tls = Server(models, labels="", extra=("--tls-port", "0", "--tls-cert", pki["server.crt"],
                                               "--tls-key", pki["server.key"]))
        try:
            assert tls.tls_port is not None and tls.tls_port != tls.grpc_port, tls.log[-1:]
            assert f"tls=127.0.0.1:{tls.tls_port} client_auth=none" in "\n".join(tls.log)
            assert tls_null_predict(tls.tls_port, pki["ca.pem"]).outputs["score"].float_val == [7.0]
            # A client certificate is accepted, though not asked for.
            client = (pki["client.crt"], pki["client.key"])
            assert tls_null_predict(tls.tls_port, pki["ca.pem"], client).outputs["score"].float_val == [7.0]
            # The plain port keeps serving plaintext.
            assert null_predict(tls, [7]).outputs["score"].float_val == [7.0]
            expect_error(lambda: tls_null_predict(tls.tls_port, pki["other-ca.pem"]),
                         grpc.StatusCode.UNAVAILABLE)
        finally:
            assert tls.stop() == 0


@check
def mutual_tls_port_requires_a_client_certificate_from_its_ca(server, base):
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(tmp)
        models = os.path.join(tmp, "models")
        shutil.copytree(os.path.join(base, "null", "1"), os.path.join(models, "null", "1"))
        mtls = Server(models, labels="", extra=("--tls-port", "0", "--tls-cert", pki["server.crt"],
                                                "--tls-key", pki["server.key"],
                                                "--tls-client-ca", pki["ca.pem"]))
        try:
            assert f"tls=127.0.0.1:{mtls.tls_port} client_auth=required" in "\n".join(mtls.log)
            client = (pki["client.crt"], pki["client.key"])
            assert tls_null_predict(mtls.tls_port, pki["ca.pem"], client).outputs["score"].float_val == [7.0]
            expect_error(lambda: tls_null_predict(mtls.tls_port, pki["ca.pem"]), grpc.StatusCode.UNAVAILABLE)
            # A certificate signed by another CA is refused too: the CA's own (self-signed) one.
            stranger = (pki["other-ca.pem"], os.path.join(tmp, "other-ca.key"))
            expect_error(lambda: tls_null_predict(mtls.tls_port, pki["ca.pem"], stranger),
                         grpc.StatusCode.UNAVAILABLE)
        finally:
            assert mtls.stop() == 0


@check
def tls_options_are_checked_before_models_load(server, base):
    for extra, expected in (
            (("--tls-port", "0"), "--tls-port needs --tls-cert and --tls-key"),
            (("--tls-cert", "x.crt", "--tls-key", "x.key"), "need --tls-port"),
            (("--tls-port", "0", "--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"),
             "/nonexistent.key: No such file or directory")):
        result = subprocess.run(
            [sys.executable, os.path.join(HERE, "server.py"), "--port", "0", "--control-port", "0",
             "--model-base", "/nonexistent-base", *extra], capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and expected in result.stderr, (extra, result.stderr[-500:])


# --- TF Serving's REST API (--rest-port, rest_api.py)

def census_columnar(rows):
    inputs = {c: [int(r[c]) for r in rows] for c in INT_COLUMNS}
    inputs.update({c: [r[c] for r in rows] for c in STRING_COLUMNS})
    return inputs


@check
def rest_census_predict_matches_grpc_exactly(server, base):
    rows = census_rows(20)
    grpc_answer = server.predict_stub.Predict(predict_request("census", census_inputs(rows)), timeout=10)
    status, body, _ = server.rest("POST", "/v1/models/census:predict",
                                  {"signature_name": "serving_default", "inputs": census_columnar(rows)})
    assert status == 200, body
    # float32 written as the shortest double that reads back to it: equal after the float32 cast.
    assert np.array_equal(np.float32(body["outputs"]["probability"]),
                          np.float32(list(grpc_answer.outputs["probability"].float_val))), body
    assert body["outputs"]["predicted_class"] == [v.decode() for v in grpc_answer.outputs["predicted_class"].string_val]


@check
def rest_versions_labels_and_single_output(server, base):
    for path, expected in (("/v1/models/null:predict", [6.0, 41.0]),
                           ("/v1/models/null/versions/1:predict", [5.0, 40.0]),
                           ("/v1/models/null/labels/stable:predict", [5.0, 40.0]),
                           ("/v1/models/null/labels/canary:predict", [6.0, 41.0])):
        status, body, _ = server.rest("POST", path, {"inputs": {"age": [5, 40]}})
        # One output tensor: "outputs" is the tensor itself, without its alias (json_tensor.cc).
        assert (status, body) == (200, {"outputs": expected}), (path, status, body)
    # A lone input may be given without its alias too.
    assert server.rest("POST", "/v1/models/null/versions/1:predict", {"inputs": [7]})[1] == {"outputs": [7.0]}


@check
def rest_status_and_metadata(server, base):
    status, body, _ = server.rest("GET", "/v1/models/null")
    assert status == 200 and [s["version"] for s in body["model_version_status"]] == ["1", "2"], body
    assert body["model_version_status"][0]["state"] == "AVAILABLE", body
    status, body, _ = server.rest("GET", "/v1/models/null/labels/stable")
    assert [s["version"] for s in body["model_version_status"]] == ["1"], body
    status, body, _ = server.rest("GET", "/v1/models/census/metadata")
    assert status == 200 and body["model_spec"] == {"name": "census", "version": "1"}, body["model_spec"]
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["age"]["dtype"] == "DT_INT64", signature["inputs"]["age"]
    assert signature["inputs"]["age"]["tensor_shape"] == {"dim": [{"size": "-1"}]}, signature["inputs"]["age"]
    assert signature["outputs"]["predicted_class"]["dtype"] == "DT_STRING"
    assert server.rest("GET", "/v1/models/null/versions/2/metadata")[1]["model_spec"]["version"] == "2"


@check
def rest_errors_have_tf_servings_http_status_and_error_json(server, base):
    cases = (
        ("POST", "/v1/models/nope:predict", {"inputs": {"age": [1]}}, 404, "Servable not found for request: Latest(nope)"),
        ("POST", "/v1/models/null/versions/9:predict", {"inputs": {"age": [1]}}, 404, "Specific(null, 9)"),
        ("POST", "/v1/models/null/labels/nope:predict", {"inputs": {"age": [1]}}, 400,
         "Unrecognized servable version label: nope"),
        ("POST", "/v1/models/null:predict", {"signature_name": "x", "inputs": {"age": [1]}}, 400,
         'Serving signature key "x" not found.'),
        ("POST", "/v1/models/null:predict", {"inputs": {"age": [1.5]}}, 400, "is not of expected type int64"),
        ("POST", "/v1/models/null:predict", {"inputs": {"age": [1], "extra": [2]}}, 400, "input size does not match"),
        ("POST", "/v1/models/null:predict", {"instances": [{"age": 1}]}, 400, "columnar format only"),
        ("POST", "/v1/models/null:predict", "{not json", 400, "JSON Parse error"),
        ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found"),
        ("GET", "/v1/models/null:predict", None, 400, "Malformed request"),
    )
    for method, path, body, expected_status, message in cases:
        status, answer, _ = server.rest(method, path, body)
        assert status == expected_status and message in answer.get("error", ""), (path, body, status, answer)


@check
def rest_int64_exact_and_b64_strings(server, base):
    # The image model takes encoded JPEGs (DT_STRING): bytes that are not UTF-8 go as {"b64": ...}.
    with open(os.path.join(IMAGES, "expected.json")) as f:
        expected = json.load(f)
    name = sorted(expected)[0]
    with open(os.path.join(IMAGES, name), "rb") as f:
        image = base64.b64encode(f.read()).decode()
    status, body, _ = server.rest("POST", "/v1/models/image:predict", {"inputs": {"image_bytes": [{"b64": image}]}})
    assert status == 200 and body["outputs"]["top_k_classes"][0][0] == expected[name], body
    # int64 beyond 2^53 reaches the model exactly (the null model adds version - 1 in float32, so
    # the exactness is checked on the way in: a value beyond int64 is refused, one inside accepted).
    status, body, _ = server.rest("POST", "/v1/models/null/versions/1:predict", "{\"inputs\": [9007199254740993]}")
    assert status == 200 and body == {"outputs": [9007199254740992.0]}, body
    status, body, _ = server.rest("POST", "/v1/models/null/versions/1:predict", "{\"inputs\": [9223372036854775808]}")
    assert status == 400, body


@check
def rest_faults_answer_with_the_http_status_of_their_code(server, base):
    for code, http_status in (("UNAVAILABLE", 503), ("RESOURCE_EXHAUSTED", 429), ("INVALID_ARGUMENT", 400),
                              ("INTERNAL", 500), ("DEADLINE_EXCEEDED", 504)):
        server.control("POST", "/faults", {"failure_rate": 1, "failure_code": code, "failure_message": "chaos"})
        status, body, _ = server.rest("POST", "/v1/models/null:predict", {"inputs": [1]})
        assert (status, body) == (http_status, {"error": "chaos"}), (code, status, body)
    # Metadata and status stay healthy under Predict faults, as over gRPC.
    assert server.rest("GET", "/v1/models/null/metadata")[0] == 200
    server.control("POST", "/reset")
    server.control("POST", "/faults", {"latency_ms": 300})
    start = time.monotonic()
    assert server.rest("POST", "/v1/models/null:predict", {"inputs": [1]})[0] == 200
    assert time.monotonic() - start >= 0.3
    server.control("POST", "/reset")
    _, stats = server.control("GET", "/stats")
    assert stats["requests"] == {}, stats  # reset clears the REST counts with the gRPC ones
    server.rest("POST", "/v1/models/null:predict", {"inputs": [1]})
    assert server.control("GET", "/stats")[1]["requests"] == {"Predict": 1}


def wait_until(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


# -------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base", default=os.path.expanduser("~/.cache/infer-connect/models"))
    args = parser.parse_args()
    base = os.path.abspath(os.path.expanduser(args.model_base))
    build = subprocess.run([sys.executable, os.path.join(HERE, "build_models.py"), "--base", base],
                           capture_output=True, text=True)
    print(build.stdout, end="")
    if build.returncode != 0:
        sys.exit(f"build_models.py failed:\n{build.stderr[-4000:]}")

    server = Server(base)
    passed = failed = 0
    try:
        for test in TESTS:
            start = time.monotonic()
            try:
                test(server, base)
            except Exception:
                failed += 1
                print(f"FAIL {test.__name__}\n{traceback.format_exc()}", flush=True)
            else:
                passed += 1
                print(f"ok   {test.__name__} ({time.monotonic() - start:.2f}s)", flush=True)
    finally:
        code = server.stop()
    if code == 0:
        passed += 1
        print("ok   clean_shutdown_on_sigterm")
    else:
        failed += 1
        print(f"FAIL clean_shutdown_on_sigterm: exit code {code}")
    if failed:
        print("server log (tail):\n" + "\n".join(server.log[-40:]))
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
