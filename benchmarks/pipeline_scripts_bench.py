"""Benchmarks of the pipeline scripts: model quality and training time, serving latency, batch throughput, encoding cost.

    python benchmarks/pipeline_scripts_bench.py [--data path/to/abalone.csv]    (make bench DATA=...)

The data is the UCI Abalone CSV with its header row (4,177 rows); --data defaults to ../shared/data/abalone.csv.
Without data the benchmark says how to pass it and exits 0, so the other benchmarks of `make bench` still run. The
scripts run for the abalone dataset block below, whatever cdk.json holds.

Quality: the default split (seed 42), then 5-fold cross-validation (preprocess.py --folds 5, each row tested once).
Serving: one-row CSV requests over 8 keep-alive connections against the real gunicorn server (one worker per CPU).
Batch: 100,000 records through batch_predict.py's scoring function. Encoding: a 6 MB batch payload scored from text
to answers (inference.py: parse, check, encode, predict) against pandas' C parser plus booster.predict alone on the
same payload, best of seven each, taking turns; the target is a ratio of at most 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "pipeline_scripts"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "abalone.csv"
sys.path.insert(0, str(SCRIPTS))
MEASUREMENTS = ("length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight")
ABALONE = {
    "target": "rings",
    "problem_type": "regression",
    "features": [{"name": "sex", "type": "categorical"}, *({"name": name, "type": "numeric"} for name in MEASUREMENTS)],
}
FOLDS = 5
PAYLOAD_BYTES = 6_000_000
ENCODING_TARGET = 1.2


def _local_run(data: Path, config: Path, workdir: Path, *split: str) -> tuple[dict, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "local_run.py"),
            "--data",
            str(data),
            "--config",
            str(config),
            "--workdir",
            str(workdir),
            *split,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout), time.perf_counter() - started


def train_and_evaluate(data: Path, workdir: Path) -> dict:
    """The default split (seed 42) keeps its model for serving; five folds give the cross-validated figure."""
    config = workdir.with_name("cdk.json")
    mlops = {
        "project_name": "abalone-bench",
        "dataset": ABALONE,
        "quality_gate": {"metric": "mse", "threshold": 6.0},
        "environments": {"dev": {"production": False}},
    }
    config.write_text(json.dumps({"context": {"mlops": mlops}}))
    summary, wall = _local_run(data, config, workdir)
    folds = [
        _local_run(data, config, workdir.with_name(f"fold-{k}"), "--folds", str(FOLDS), "--fold", str(k))[0][
            "regression_metrics"
        ]["mse"]["value"]
        for k in range(FOLDS)
    ]
    return {
        "test_mse": round(summary["regression_metrics"]["mse"]["value"], 3),
        "predict_the_mean_mse": round(summary["constant_baseline"]["value"], 3),
        "test_mse_per_fold": [round(v, 3) for v in folds],
        "test_mse_5_fold_mean": round(float(np.mean(folds)), 3),
        "r2": round(summary["regression_metrics"]["r2"]["value"], 3),
        "train_plus_evaluate_seconds": round(summary["seconds"]["train"] + summary["seconds"]["evaluate"], 2),
        "whole_chain_seconds": round(wall, 2),
    }


async def _connection(port: int, body: bytes, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: bench\r\nContent-Type: text/csv\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    for _ in range(count):
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode())
        latencies.append(time.perf_counter() - started)
    writer.close()


def serving(model_dir: Path, row: str, connections: int = 8, per_connection: int = 2500) -> dict:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SM_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port), "SERVE_HOST": "127.0.0.1"}
    server = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "serve.py")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        body = (row + "\n").encode()

        async def load(count: int) -> tuple[list[float], float]:
            latencies: list[float] = []
            started = time.perf_counter()
            await asyncio.gather(*(_connection(port, body, count, latencies) for _ in range(connections)))
            return latencies, time.perf_counter() - started

        asyncio.run(load(200))
        latencies, elapsed = asyncio.run(load(per_connection))
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "connections": connections,
        "workers": os.cpu_count(),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "requests_per_second": round(len(latencies) / elapsed),
    }


def batch(model_dir: Path, rows: list[str], total: int = 100_000) -> dict:
    from batch_predict import score

    from inference import Model

    model = Model(model_dir)
    text = "\n".join(rows[i % len(rows)] for i in range(total)) + "\n"
    started = time.perf_counter()
    output = score(model, text)
    elapsed = time.perf_counter() - started
    assert output.count("\n") == total
    return {"rows": total, "seconds": round(elapsed, 3), "rows_per_second": round(total / elapsed)}


def _best_interleaved(works: dict, repeats: int = 7) -> dict:
    """Each piece of work's best time, the pieces taking turns, so a neighbour's load weighs on all of them alike."""
    best = dict.fromkeys(works, float("inf"))
    for _ in range(repeats):
        for name, work in works.items():
            started = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def encoding(model_dir: Path, rows: list[str]) -> dict:
    """The scripts' scoring of a 6 MB payload against pandas' C parser plus booster.predict on the same payload."""
    import pandas as pd

    from inference import Model

    model = Model(model_dir)
    lines, size = [], 0
    while size < PAYLOAD_BYTES:
        lines.append(rows[len(lines) % len(rows)] + "\n")
        size += len(lines[-1])
    payload = "".join(lines)
    matrix = model.encode(model.read_csv(payload))
    times = _best_interleaved(
        {
            "parser": lambda: pd.read_csv(io.StringIO(payload), header=None),
            "booster": lambda: model.booster.predict(matrix, num_threads=1),
            "scoring": lambda: model.predict_columns(model.read_csv(payload)),
            "answers": lambda: model.format_csv(model.predict_columns(model.read_csv(payload))),
        }
    )
    parser, booster, scoring, answers = times["parser"], times["booster"], times["scoring"], times["answers"]
    reference = parser + booster
    return {
        "payload_bytes": len(payload.encode()),
        "records": len(lines),
        "pandas_read_csv_seconds": round(parser, 3),
        "booster_predict_seconds": round(booster, 3),
        "scripts_scoring_seconds": round(scoring, 3),
        "scripts_scoring_and_csv_answers_seconds": round(answers, 3),
        "ratio": round(scoring / reference, 3),
        "ratio_with_csv_answers": round(answers / reference, 3),
        "target_ratio": ENCODING_TARGET,
    }


def feature_rows(data: Path) -> list[str]:
    """The data's records as requests carry them: the block's features in order, no target."""
    reader = csv.reader(io.StringIO(data.read_text(encoding="utf-8-sig"), newline=""))
    header = [name.strip() for name in next(reader)]
    positions = [header.index(feature["name"]) for feature in ABALONE["features"]]
    return [",".join(row[i] for i in positions) for row in reader if row]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(
            f"pipeline scripts benchmark skipped: no data at {args.data}; "
            "pass the UCI Abalone CSV with make bench DATA=path/to/abalone.csv (or --data)"
        )
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch) / "opt_ml"
        quality = train_and_evaluate(args.data.resolve(), workdir)
        rows = feature_rows(args.data)
        results = {
            "model_quality": quality,
            "serving": serving(workdir / "model", rows[0]),
            "batch_inference": batch(workdir / "model", rows),
            "encoding": encoding(workdir / "model", rows),
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
