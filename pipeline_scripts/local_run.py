"""Run preprocess -> train -> evaluate -> batch inference locally, in a SageMaker-shaped directory tree.

Each script runs as its own process with SM_BASE_DIR pointing at a temporary /opt/ml, exactly as the
pipeline's jobs run them. Prints the evaluation report, a predict-the-mean baseline and timings.

    python pipeline_scripts/local_run.py --data ../shared/data/abalone.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from raw_columns import RAW_COLUMNS

SCRIPTS = Path(__file__).resolve().parent


class StepFailed(Exception):
    """A step's script exited non-zero; it has already printed its own error."""


def _run(script: str, base: Path, *args: str) -> float:
    """One step; its errors reach stderr, its stdout (evaluate's report, train's metric lines) only the summary."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        env={"SM_BASE_DIR": str(base), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise StepFailed(f"{script} exited with {result.returncode}; its error is printed above")
    return time.perf_counter() - started


def _strip_target(source: Path, target: Path) -> int:
    """The raw data without `rings`: what new data for batch prediction looks like. Returns its record count."""
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with source.open() as inp, target.open("w", newline="") as out:
        writer = csv.writer(out)
        for row in csv.reader(inp):
            if row:
                writer.writerow(row[:-1])
                rows += row[0].strip().lower() != RAW_COLUMNS[0]
    return rows


def run(data: Path, base: Path, hyperparameters: list[str], split_seed: int = 42) -> dict:
    processing = base / "processing"
    (processing / "input").mkdir(parents=True)
    shutil.copy(data, processing / "input" / data.name)
    timings = {"preprocess": _run("preprocess.py", base, "--seed", str(split_seed))}

    for channel in ("train", "validation"):
        shutil.copytree(processing / channel, base / "input" / "data" / channel)
    timings["train"] = _run("train.py", base, "train", *hyperparameters)

    (processing / "model").mkdir()
    with tarfile.open(processing / "model" / "model.tar.gz", "w:gz") as tar:
        for item in sorted((base / "model").iterdir()):
            tar.add(item, arcname=item.name)
    timings["evaluate"] = _run("evaluate.py", base)
    report = json.loads((processing / "evaluation" / "evaluation.json").read_text())

    rows = _strip_target(data, base / "transform" / "input" / "new-data.csv")
    timings["batch_inference"] = _run(
        "batch_predict.py",
        base,
        "--input-dir",
        str(base / "transform" / "input"),
        "--output-dir",
        str(base / "transform" / "output"),
    )
    predictions = np.loadtxt(base / "transform" / "output" / "new-data.csv.out", ndmin=1)

    train_target = np.loadtxt(processing / "train" / "train.csv", delimiter=",", ndmin=2)[:, 0]
    test_target = np.loadtxt(processing / "test" / "test.csv", delimiter=",", ndmin=2)[:, 0]
    baseline_mse = float(np.mean((test_target - train_target.mean()) ** 2))
    return {
        "regression_metrics": report["regression_metrics"],
        "baseline_mse": baseline_mse,
        "batch_predictions": int(predictions.size),
        "batch_input_rows": rows,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="raw abalone CSV (with or without header)")
    parser.add_argument("--workdir", type=Path, help="keep the SageMaker-shaped tree here instead of a temporary one")
    parser.add_argument("--split-seed", type=int, default=42, help="seed of the train/validation/test split")
    parser.add_argument("hyperparameters", nargs="*", help="passed to train.py, e.g. --num_leaves 15")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file; pass the raw abalone CSV")
    if args.workdir and args.workdir.exists():
        parser.error(f"--workdir {args.workdir} already exists; pass a new directory so no earlier run is overwritten")
    try:
        if args.workdir:
            args.workdir.mkdir(parents=True)
            summary = run(args.data.resolve(), args.workdir.resolve(), args.hyperparameters, args.split_seed)
        else:
            with tempfile.TemporaryDirectory() as scratch:
                summary = run(args.data.resolve(), Path(scratch), args.hyperparameters, args.split_seed)
    except StepFailed as error:
        print(f"local run failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
