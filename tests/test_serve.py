"""serve.py as a real HTTP server on 127.0.0.1, exercised over HTTP, bad payloads included."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from abalone_data import abalone_rows
from conftest import REPO_ROOT
from test_pipeline_scripts import preprocess, train

SCRIPTS = REPO_ROOT / "pipeline_scripts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, model_dir: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "SM_MODEL_DIR": str(model_dir),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SERVE_HOST": "127.0.0.1",
            "MODEL_SERVER_WORKERS": "2",
        }
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "serve.py")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/ping")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start: {self.process.stderr.read().decode()[-2000:]}")

    def request(self, method: str, path: str, body: bytes | str = b"", headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), response.read().decode()
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("opt_ml")
    assert preprocess(base).returncode == 0
    assert train(base).returncode == 0
    return base / "model"


@pytest.fixture(scope="module")
def server(model_dir):
    running = Server(model_dir)
    yield running
    running.stop()


def _csv(rows) -> str:
    return "".join(",".join(map(str, r)) + "\n" for r in rows)


ROWS = [r[:-1] for r in abalone_rows(5, seed=21)]


def test_ping_is_healthy_with_a_model(server):
    assert server.request("GET", "/ping")[0] == 200


def test_csv_one_row_and_many_rows(server):
    status, content_type, body = server.request("POST", "/invocations", _csv(ROWS[:1]), {"Content-Type": "text/csv"})
    assert (status, content_type) == (200, "text/csv") and len(body.splitlines()) == 1
    status, _, body = server.request(
        "POST",
        "/invocations",
        "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight\n" + _csv(ROWS),
        {"Content-Type": "text/csv"},
    )
    assert status == 200 and len(body.splitlines()) == 5


def test_json_records_and_lists_give_the_same_predictions_as_csv(server):
    names = ["sex", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight"]
    _, _, csv_body = server.request("POST", "/invocations", _csv(ROWS), {"Content-Type": "text/csv"})
    status, content_type, body = server.request(
        "POST",
        "/invocations",
        json.dumps({"instances": [dict(zip(names, r, strict=True)) for r in ROWS]}),
        {"Content-Type": "application/json"},
    )
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["predictions"] == pytest.approx([float(v) for v in csv_body.split()], abs=1e-6)
    status, _, body = server.request("POST", "/invocations", json.dumps(ROWS[0]), {"Content-Type": "application/json"})
    assert status == 200 and len(json.loads(body)["predictions"]) == 1


def test_server_predictions_match_the_batch_path(server, model_dir, tmp_path):
    sys.path.insert(0, str(SCRIPTS))
    from inference import Model

    _, _, body = server.request("POST", "/invocations", _csv(ROWS), {"Content-Type": "text/csv"})
    model = Model(model_dir)
    expected = model.predict_columns(model.read_records([list(map(str, r)) for r in ROWS]))
    assert np.allclose([float(v) for v in body.split()], expected, atol=1e-6)


BAD_REQUESTS = [
    ("POST", "/invocations", "M,0.4,0.3\n", "text/csv", 400, "record 1: expected 8 fields"),
    ("POST", "/invocations", "M,0.4,0.3,0.1,0.5,0.2,0.1,0.1\nF,0.4\n", "text/csv", 400, "record 2: expected 8 fields"),
    ("POST", "/invocations", "M,0.4,0.3,0.1,0.5,0.2,0.1,0.1,9\n", "text/csv", 400, "record 1: expected 8 fields"),
    ("POST", "/invocations", "M,0.4,0.3,x,0.5,0.2,0.1,0.1\n", "text/csv", 400, "record 1: height must be a number, got 'x'"),
    ("POST", "/invocations", "M,0.4,0.3,nan,0.5,0.2,0.1,0.1\n", "text/csv", 400, "record 1: height must be a number, got 'nan'"),
    ("POST", "/invocations", 'M,0.4,0.3,0.1,0.5,0.2,0.1,"0,1"\n', "text/csv", 400, "shell_weight must be a number, got '0,1'"),
    ("POST", "/invocations", "", "text/csv", 400, "no records"),
    ("POST", "/invocations", "{not json", "application/json", 400, "body is not valid JSON"),
    ("POST", "/invocations", '{"instances": [{"sex": "M"}]}', "application/json", 400, "record 1: missing field(s) length"),
    ("POST", "/invocations", '"text"', "application/json", 400, 'expected {"instances"'),
    ("POST", "/invocations", "<xml/>", "application/xml", 415, "unsupported content type 'application/xml'"),
    ("GET", "/invocations", "", "text/csv", 405, "only POST"),
    ("GET", "/metrics", "", "text/csv", 404, "no such path /metrics"),
    ("POST", "/invocations", "[" * 50000 + "]" * 50000, "application/json", 400, "nested too deeply"),
    ("POST", "/invocations", "true", "application/json", 400, 'expected {"instances"'),
    (
        "POST",
        "/invocations",
        '[["M", true, 0.3, 0.1, 0.5, 0.2, 0.1, 0.1]]',
        "application/json",
        400,
        "length must be a number, got True",
    ),
    (
        "POST",
        "/invocations",
        '[["M", 0.4, "inf", 0.1, 0.5, 0.2, 0.1, 0.1]]',
        "application/json",
        400,
        "diameter must be a number",
    ),
    ("POST", "/invocations", '[["M", 0.4, 0.3]]', "application/json", 400, "record 1: expected 8 fields"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "message"),
    BAD_REQUESTS,
    ids=[f"{b[4]}-{b[5][:25]}" for b in BAD_REQUESTS],
)
def test_bad_requests_get_a_clear_error_and_the_server_keeps_serving(server, method, path, body, content_type, status, message):
    got_status, _, got_body = server.request(method, path, body, {"Content-Type": content_type})
    assert got_status == status and message in got_body
    assert server.request("POST", "/invocations", _csv(ROWS[:1]), {"Content-Type": "text/csv"})[0] == 200


def test_ping_fails_and_invocations_refuse_without_a_model(tmp_path):
    empty = Server(tmp_path)
    try:
        status, _, body = empty.request("GET", "/ping")
        assert status == 503 and "model.txt is missing" in body
        assert empty.request("POST", "/invocations", _csv(ROWS), {"Content-Type": "text/csv"})[0] == 503
    finally:
        empty.stop()


def test_an_unknown_accept_type_is_refused_with_406(server):
    status, _, body = server.request(
        "POST", "/invocations", _csv(ROWS[:1]), {"Content-Type": "text/csv", "Accept": "application/xml"}
    )
    assert status == 406 and "accept text/csv or application/json" in body
    status, _, _ = server.request("POST", "/invocations", _csv(ROWS[:1]), {"Content-Type": "text/csv", "Accept": "*/*"})
    assert status == 200


def test_missing_values_and_unseen_categories_are_scored_not_refused(server):
    """An empty field or null is missing; a category training never saw is scored as unknown, like a missing one."""
    unseen = server.request("POST", "/invocations", "Q,0.4,0.3,0.1,0.5,0.2,0.1,0.1\n", {"Content-Type": "text/csv"})
    missing = server.request("POST", "/invocations", ",0.4,0.3,0.1,0.5,0.2,0.1,0.1\n", {"Content-Type": "text/csv"})
    assert unseen[0] == missing[0] == 200 and unseen[2] == missing[2]
    body = json.dumps([[None, 0.4, 0.3, 0.1, 0.5, 0.2, 0.1, 0.1], ["M", 0.4, None, 0.1, 0.5, 0.2, 0.1, 0.1]])
    status, _, answer = server.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    assert status == 200 and json.loads(answer)["predictions"][0] == pytest.approx(float(missing[2]), abs=1e-6)
    status, _, answer = server.request("POST", "/invocations", "M,0.4,0.3,,0.5,0.2,0.1,\n", {"Content-Type": "text/csv"})
    assert status == 200 and re.fullmatch(r"\d+\.\d{6}\n", answer)
