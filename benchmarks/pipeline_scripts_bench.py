"""Benchmarks of the pipeline scripts: model quality and training time, serving latency, batch throughput.

    python benchmarks/pipeline_scripts_bench.py [--data path/to/abalone.csv]    (make bench DATA=...)

The data is the UCI Abalone CSV (4,177 rows, with or without header); --data defaults to
../shared/data/abalone.csv. Without data the benchmark says how to pass it and exits 0, so the other
benchmarks of `make bench` still run.

Serving: one-row CSV requests over 8 keep-alive connections against the real gunicorn server
(one worker per CPU). Batch: 100,000 raw rows through the shared prediction function.
"""

from __future__ import annotations

import argparse
import asyncio
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


def _local_run(data: Path, workdir: Path, split_seed: int) -> tuple[dict, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "local_run.py"),
            "--data",
            str(data),
            "--workdir",
            str(workdir),
            "--split-seed",
            str(split_seed),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout), time.perf_counter() - started


def train_and_evaluate(data: Path, workdir: Path) -> dict:
    """The default split (seed 42) keeps its model for serving; five more splits show the spread."""
    summary, wall = _local_run(data, workdir, 42)
    other_splits = [
        _local_run(data, workdir.with_name(f"split-{seed}"), seed)[0]["regression_metrics"]["mse"]["value"] for seed in range(5)
    ]
    return {
        "test_mse": round(summary["regression_metrics"]["mse"]["value"], 3),
        "baseline_mse": round(summary["baseline_mse"], 3),
        "test_mse_split_seeds_0_to_4": [round(v, 3) for v in other_splits],
        "test_mse_mean_of_seeds_0_to_4": round(float(np.mean(other_splits)), 3),
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
    from inference import Model, format_csv, parse_csv

    model = Model(model_dir)
    text = "\n".join(rows[i % len(rows)] for i in range(total)) + "\n"
    started = time.perf_counter()
    output = format_csv(model.predict_records(parse_csv(text, ",".join(model.raw_columns))))
    elapsed = time.perf_counter() - started
    assert output.count("\n") == total
    return {"rows": total, "seconds": round(elapsed, 3), "rows_per_second": round(total / elapsed)}


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
        lines = [line for line in args.data.read_text().splitlines() if line.strip()]
        records = lines[1:] if lines[0].lower().startswith("sex,") else lines
        raw_rows = [",".join(line.split(",")[:-1]) for line in records]
        results = {
            "model_quality": quality,
            "serving": serving(workdir / "model", raw_rows[0]),
            "batch_inference": batch(workdir / "model", raw_rows),
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
