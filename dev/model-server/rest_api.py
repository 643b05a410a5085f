"""TF Serving's REST API (port 8501 in tensorflow_model_server) for server.py.

Serves, on the same servables, version labels, statistics and faults as the gRPC API:

  GET  /v1/models/{name}[/versions/{v}|/labels/{l}]             model status
  GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata    signature_def metadata
  POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict     columnar {"inputs": ...} only

Requests are turned into the gRPC request protos (inputs typed from the signature, as TF
Serving's json_tensor.cc does) and run by the gRPC services' own handlers, so every status,
message and fault is the same; a failure is answered with the HTTP status TF Serving gives
its tensorflow error code (ToHTTPStatusCode in tensorflow_serving/model_servers/http_server.cc)
and the body {"error": "<message>"}. Answers follow TF Serving's JSON: a lone output tensor is
written without its alias, DT_STRING outputs whose alias ends in "_bytes" (and any that are not
UTF-8) as {"b64": ...}, 64-bit integers exactly, and NaN/Infinity bare as RapidJSON writes them.
The row format ("instances"/"predictions"), classify and regress are not served.
"""

import base64
import json
import logging
import re
import select
import socket
import urllib.parse
from http.server import BaseHTTPRequestHandler

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

log = logging.getLogger("model-server")

# ToHTTPStatusCode (tensorflow_serving/model_servers/http_server.cc).
HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# HttpRestApiHandler::kPathRegex, with the metadata suffix spelled out.
PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(?::(predict)|/(metadata))?")
STATUS_NAMES = get_model_status_pb2.ModelVersionStatus.State


class RestContext:
    """What the gRPC handlers ask of their context, for one HTTP request."""

    def __init__(self, connection):
        self.connection = connection

    def is_active(self):
        """False once the client closed the connection (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except (OSError, ValueError):
            return False

    def time_remaining(self):
        return None  # REST requests carry no deadline


def fill_spec(model_spec, name, version, label, signature_name=""):
    model_spec.name = urllib.parse.unquote(name)
    if version is not None:
        model_spec.version.value = int(version)
    elif label is not None:
        model_spec.version_label = urllib.parse.unquote(label)
    if signature_name:
        model_spec.signature_name = signature_name


def string_element(value, alias, rpc_error):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, f"Unable to base64 decode input '{alias}'") from None
    raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT,
                    f"Input '{alias}' of type DT_STRING holds {json.dumps(value)}; expected a string or {{\"b64\": ...}}")


def leaves(value):
    """The elements of nested lists, outermost first."""
    if isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def tensor_from_json(alias, value, spec, rpc_error):
    """A columnar JSON value -> TensorProto of the signature input's dtype."""
    try:
        if spec.dtype == tf.string:
            def convert(v):
                return [convert(x) for x in v] if isinstance(v, list) else string_element(v, alias, rpc_error)
            array = np.array(convert(value), dtype=object)
        elif spec.dtype == tf.bool:
            array = np.array(value, dtype=np.bool_)
            if any(not isinstance(x, bool) for x in np.array(value, dtype=object).ravel()):
                raise ValueError("expected true or false")
        else:
            # As json_tensor.cc: an integer input takes JSON integers only, a float input any number.
            integer = spec.dtype.is_integer
            for element in leaves(value):
                if isinstance(element, bool) or not isinstance(element, int if integer else (int, float)):
                    raise ValueError(f"JSON value {json.dumps(element)} is not of expected type {spec.dtype.name}")
            array = np.array(value, dtype=spec.dtype.as_numpy_dtype)
        if array.dtype == object and spec.dtype != tf.string:
            raise ValueError("ragged list")
        return tf.make_tensor_proto(array, dtype=spec.dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT,
                        f"Failed to process element of input '{alias}' as {spec.dtype.name}: {e}") from None


def json_value(array, alias):
    """ndarray -> JSON-ready nested lists (bytes as strings or {"b64": ...})."""
    if array.dtype == object or array.dtype.kind == "S":
        def convert(v):
            if isinstance(v, list):
                return [convert(x) for x in v]
            if alias.endswith("_bytes"):
                return {"b64": base64.b64encode(v).decode("ascii")}
            try:
                return v.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(v).decode("ascii")}
        return convert(array.tolist())
    if array.dtype.kind == "f":
        # float() of a float32 is that value exactly, written as the shortest double that reads back to it.
        return array.astype(np.float64).tolist()
    return array.tolist()


def make_rest_handler(prediction_service, model_service, stats, rpc_error, predict, metadata, status):
    """A BaseHTTPRequestHandler serving TF Serving's REST API over the gRPC handlers' cores.

    `predict`, `metadata` and `status` are the undecorated handler functions (they raise
    `rpc_error`, carrying .code and .message, instead of aborting a gRPC context).
    """

    class RestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, code, body):
            payload = json.dumps(body, allow_nan=True).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _fail(self, error):
            stats.count_error(error.code)
            self._send(HTTP_STATUS.get(error.code, 500), {"error": error.message})

        def _route(self, method):
            path = urllib.parse.urlsplit(self.path).path
            match = PATH.fullmatch(path)
            if match is None or (method == "POST") != (match[4] == "predict"):
                raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {path}")
            return match

        def do_GET(self):
            try:
                name, version, label, _, is_metadata = self._route("GET").groups()
                if is_metadata:
                    stats.count_request("GetModelMetadata")
                    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
                    fill_spec(request.model_spec, name, version, label)
                    response = metadata(prediction_service, request, RestContext(self.connection))
                    signature_def_map = get_model_metadata_pb2.SignatureDefMap()
                    response.metadata["signature_def"].Unpack(signature_def_map)
                    self._send(200, {
                        "model_spec": json_format.MessageToDict(
                            response.model_spec, preserving_proto_field_name=True),
                        "metadata": {"signature_def": json_format.MessageToDict(
                            signature_def_map, preserving_proto_field_name=True)},
                    })
                else:
                    stats.count_request("GetModelStatus")
                    request = get_model_status_pb2.GetModelStatusRequest()
                    fill_spec(request.model_spec, name, version, label)
                    response = status(model_service, request, RestContext(self.connection))
                    self._send(200, {"model_version_status": [
                        {"version": str(s.version), "state": STATUS_NAMES.Name(s.state),
                         "status": {"error_code": "OK", "error_message": s.status.error_message}}
                        for s in response.model_version_status]})
            except rpc_error as e:
                self._fail(e)
            except Exception:  # noqa: BLE001 - answered as the gRPC handlers answer it
                log.exception("REST %s failed", self.path)
                self._fail(rpc_error(grpc.StatusCode.INTERNAL, "request failed; see server log"))

        def do_POST(self):
            try:
                name, version, label, _, _ = self._route("POST").groups()
            except rpc_error as e:
                self._drain()
                self._fail(e)
                return
            stats.count_request("Predict")
            try:
                body = self._read_json()
                request = predict_pb2.PredictRequest()
                fill_spec(request.model_spec, name, version, label, body.get("signature_name", ""))
                if "inputs" not in body:
                    message = ("the dev model server serves the columnar format only: send \"inputs\""
                               if "instances" in body else "Missing 'inputs' or 'instances' key")
                    raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, message)
                inputs = body["inputs"]
                # Typed from the signature the request resolves to (json_tensor.cc does the same).
                servable = prediction_service.registry.resolve(request.model_spec)
                _, signature = servable.signature(request.model_spec.signature_name)
                if not isinstance(inputs, dict):
                    if len(signature.inputs) != 1:
                        raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT,
                                        "\"inputs\" must be an object keyed by input alias: the signature has "
                                        f"{len(signature.inputs)} inputs")
                    inputs = {next(iter(signature.inputs)): inputs}
                for alias, value in inputs.items():
                    spec = signature.inputs.get(alias)
                    if spec is None:  # decode_inputs reports unknown aliases as TF Serving does
                        request.inputs[alias].dtype = 0
                        continue
                    request.inputs[alias].CopyFrom(tensor_from_json(alias, value, spec, rpc_error))
                response = predict(prediction_service, request, RestContext(self.connection))
                outputs = {alias: json_value(tf.make_ndarray(tensor), alias)
                           for alias, tensor in response.outputs.items()}
                self._send(200, {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs})
            except rpc_error as e:
                self._fail(e)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception:  # noqa: BLE001 - answered as the gRPC handlers answer it
                log.exception("REST Predict failed")
                self._fail(rpc_error(grpc.StatusCode.INTERNAL, "Predict failed; see server log"))

        def _read_json(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"null")
            except ValueError as e:
                raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {e}") from None
            if not isinstance(body, dict):
                raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "JSON Value: not an object")
            return body

        def _drain(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)

        def log_message(self, format, *args):  # keep the server log to one line per event
            pass

    return RestHandler

