"""A Lambda execution environment for one function, as the Python runtime builds it, in a process of its own.

The parent (tests/rehearsal.py) starts `python -I -S` on this file: no site-packages, no current
directory, only the standard library. The driver then lays out sys.path as Lambda does (the task root,
then each layer's `python/`, then the runtime's own boto3 and botocore), imports the handler by its
synthesized Handler string and serves invocations until told to stop. Nothing of the repository is
importable, so a module missing from the bundled asset fails here as it fails on Lambda.

No call leaves the process: botocore's `_make_api_call` sends each request to the parent, which checks it
against the API model and the function's role, answers it from moto and returns the answer (or the error)
here. Messages are JSON lines on two pipes; stdout and stderr stay the function's own.

Standard library only until sys.path is set: the parent imports `encode` and `decode` from here too.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
from datetime import datetime
from typing import Any

RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def encode(value: Any) -> Any:
    """JSON-ready: bytes and readable bodies as base64, datetimes as ISO 8601, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    if hasattr(value, "read"):
        data = value.read()
        return {"__stream__": base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()}
    return value


def decode(value: Any, stream: Any = None) -> Any:
    """The inverse of `encode`; `stream(data)` rebuilds a response body (botocore's StreamingBody)."""
    if isinstance(value, list):
        return [decode(v, stream) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__bytes__"}:
        return base64.b64decode(value["__bytes__"])
    if set(value) == {"__datetime__"}:
        return datetime.fromisoformat(value["__datetime__"])
    if set(value) == {"__stream__"}:
        data = base64.b64decode(value["__stream__"])
        return stream(data) if stream else data
    return {k: decode(v, stream) for k, v in value.items()}


class Channel:
    """JSON lines over a pair of pipes; one request and its answer at a time, whichever thread asks."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._in = os.fdopen(read_fd, "r", encoding="utf-8")
        self._out = os.fdopen(write_fd, "w", encoding="utf-8")
        self._lock = threading.Lock()

    def send(self, message: dict) -> None:
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()

    def receive(self) -> dict:
        line = self._in.readline()
        if not line:
            raise EOFError("the parent closed the channel")
        return json.loads(line)

    def ask(self, message: dict) -> dict:
        with self._lock:
            self.send(message)
            return self.receive()


class Context:
    """The attributes and method of the Python runtime's context object that functions and Powertools read."""

    def __init__(self, fields: dict, deadline: float) -> None:
        self.function_name = fields["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = fields["invoked_function_arn"]
        self.memory_limit_in_mb = fields["memory_limit_in_mb"]
        self.aws_request_id = fields["aws_request_id"]
        self.log_group_name = fields["log_group_name"]
        self.log_stream_name = "2026/12/03/[$LATEST]0123456789abcdef"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _forward_calls(channel: Channel) -> None:
    """Every AWS call of the function goes to the parent; its answer or error comes back as botocore's."""
    import botocore.client
    from botocore.exceptions import ClientError
    from botocore.response import StreamingBody

    def body(data: bytes) -> StreamingBody:
        return StreamingBody(io.BytesIO(data), len(data))

    def make_api_call(client, operation_name, api_params):
        # What botocore does to the parameters before it serializes them: idempotency tokens, S3's defaults.
        context: dict = {}
        operation = client._service_model.operation_model(operation_name)
        api_params = client._emit_api_params(api_params=api_params, operation_model=operation, context=context)
        if context.get("encoding_type_auto_set"):
            # The parent's own client sets and decodes S3's URL encoding of keys.
            api_params.pop("EncodingType", None)
        answer = channel.ask(
            {
                "type": "call",
                "service": client.meta.service_model.service_name,
                "operation": operation_name,
                "region": client.meta.region_name,
                "params": encode(api_params),
            }
        )
        if answer["type"] == "error":
            raise ClientError(decode(answer["response"]), operation_name)
        return decode(answer["response"], body)

    botocore.client.BaseClient._make_api_call = make_api_call


def _load(handler: str):
    module_name, _, function_name = handler.rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    function = getattr(module, function_name, None)
    if function is None:
        raise AttributeError(f"Runtime.HandlerNotFound: {handler}: module {module_name!r} has no {function_name!r}")
    return function


def main() -> None:
    handler, task_root, layers, runtime, read_fd, write_fd = sys.argv[1:7]
    layer_paths = [p for p in layers.split(os.pathsep) if p]
    # Lambda's order: the function's code, the layers (/opt/python), then the runtime's own packages.
    sys.path[:0] = [task_root, *layer_paths, runtime]
    os.chdir(task_root)
    channel = Channel(int(read_fd), int(write_fd))
    _forward_calls(channel)
    try:
        function = _load(handler)
    except Exception as error:  # The runtime reports an import failure on every invocation.
        function, load_error = None, error
    else:
        load_error = None
    while True:
        request = channel.receive()
        if request["type"] == "stop":
            return
        if function is None:
            assert load_error is not None
            channel.send(_failure(load_error))
            continue
        context = Context(request["context"], time.monotonic() + request["context"]["timeout_seconds"])
        try:
            result = function(json.loads(json.dumps(request["event"])), context)
            channel.send({"type": "result", "result": json.loads(json.dumps(result))})
        except Exception as error:
            channel.send(_failure(error))


def _failure(error: BaseException) -> dict:
    """What Lambda answers for an unhandled error: FunctionError Unhandled with errorType and errorMessage."""
    return {
        "type": "failed",
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_exception(error)[-6:],
    }


if __name__ == "__main__":
    main()
