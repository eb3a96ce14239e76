#!/usr/bin/env python3
"""Model server under SageMaker's hosting contract: GET /ping, POST /invocations on port 8080.

`serve` (this file, as SageMaker runs it in the inference image) starts gunicorn with one worker per
CPU; each worker loads the model once from /opt/ml/model (SM_MODEL_DIR). Batch transform jobs use the
same server. Requests and answers are inference.py's; bad payloads get 400, unsupported content types 415, and the
server keeps serving.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inference import Model, ModelError, PayloadError, parse_json

MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", 100 * 1024 * 1024))
CSV, JSON = "text/csv", "application/json"
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    503: "Service Unavailable",
}
log = logging.getLogger("serve")


class ModelServer:
    """A WSGI application; the model is loaded on construction, once per worker process."""

    def __init__(self, model_dir: Path) -> None:
        self.model: Model | None = None
        self.load_error = ""
        try:
            self.model = Model(model_dir)
        except (ModelError, OSError) as error:
            self.load_error = str(error)
            log.error("model not loaded: %s", error)

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/ping":
            if method != "GET":
                return self._reply(start_response, 405, "only GET is allowed on /ping\n")
            if self.model is None:
                return self._reply(start_response, 503, f"model not loaded: {self.load_error}\n")
            return self._reply(start_response, 200, "")
        if path == "/invocations":
            if method != "POST":
                return self._reply(start_response, 405, "only POST is allowed on /invocations\n")
            return self._invoke(environ, start_response)
        return self._reply(start_response, 404, f"no such path {path}; use GET /ping or POST /invocations\n")

    def _invoke(self, environ, start_response):
        if self.model is None:
            return self._reply(start_response, 503, f"model not loaded: {self.load_error}\n")
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type not in (CSV, JSON):
            return self._reply(
                start_response, 415, f"unsupported content type {content_type or '(none)'!r}; send {CSV} or {JSON}\n"
            )
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._reply(start_response, 400, "invalid Content-Length\n")
        if length > MAX_BODY_BYTES:
            return self._reply(start_response, 413, f"body of {length} bytes exceeds {MAX_BODY_BYTES}\n")
        accept = environ.get("HTTP_ACCEPT", "")
        offered = [a.split(";")[0].strip().lower() for a in accept.split(",") if a.strip()]
        if offered and not any(a in (CSV, JSON, "*/*", "text/*", "application/*") for a in offered):
            return self._reply(start_response, 406, f"cannot answer as {accept!r}; accept {CSV} or {JSON}\n")
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            text = body.decode("utf-8")
            frame = self.model.read_csv(text) if content_type == CSV else self.model.read_records(parse_json(text))
            predictions = self.model.predict_columns(frame)
        except UnicodeDecodeError:
            return self._reply(start_response, 400, "body is not UTF-8 text\n")
        except PayloadError as error:
            return self._reply(start_response, 400, f"{error}\n")
        except RecursionError:
            # A 5xx would count towards the endpoint's rollback alarm; a body nested too deep is the caller's fault.
            return self._reply(start_response, 400, "JSON body is nested too deeply; send a list of records\n")
        wants_json = JSON in accept or (content_type == JSON and CSV not in accept)
        if wants_json:
            return self._reply(start_response, 200, self.model.format_json(predictions), JSON)
        return self._reply(start_response, 200, self.model.format_csv(predictions), CSV)

    @staticmethod
    def _reply(start_response, status: int, body: str, content_type: str = "text/plain"):
        data = body.encode("utf-8")
        start_response(f"{status} {REASONS[status]}", [("Content-Type", content_type), ("Content-Length", str(len(data)))])
        return [data]


def model_dir() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR", Path(os.environ.get("SM_BASE_DIR", "/opt/ml")) / "model"))


def main() -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            port = os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")
            self.cfg.set("bind", f"{os.environ.get('SERVE_HOST', '0.0.0.0')}:{port}")
            self.cfg.set("workers", int(os.environ.get("MODEL_SERVER_WORKERS", os.cpu_count() or 1)))
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", int(os.environ.get("MODEL_SERVER_THREADS", 4)))
            self.cfg.set("timeout", int(os.environ.get("MODEL_SERVER_TIMEOUT", 60)))
            self.cfg.set("keepalive", 75)
            self.cfg.set("accesslog", None)

        def load(self):
            return ModelServer(model_dir())

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    Server().run()


if __name__ == "__main__":
    main()
