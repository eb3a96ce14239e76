"""Run preprocess -> train -> evaluate -> batch inference locally, in a SageMaker-shaped directory tree.

Each script runs as its own process with SM_BASE_DIR pointing at a temporary /opt/ml, exactly as the pipeline's jobs
run them, for the dataset cdk.json describes (context.mlops.dataset) and gated as the environment's training
pipeline gates (its training.quality_gate, else context.mlops.quality_gate), both read by synth's own loader. Prints
one JSON summary: the evaluation report, a constant predictor's score, the quality gate's verdict, the batch output's
size and layout, and timings.

    python pipeline_scripts/local_run.py --data path/to/file.csv    (make local-run DATA=...)
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dataset import Dataset, QualityGate

SCRIPTS = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS.parent
CDK_JSON = REPO_ROOT / "cdk.json"


class StepFailed(Exception):
    """A step's script exited non-zero (it has already printed its own error), or the run cannot start."""


def project_settings(cdk_json: Path, environment: str) -> tuple[Dataset, QualityGate]:
    """The dataset block and the environment's quality gate, as synth reads them (stacks/synth/config.py)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from stacks.synth.config import ConfigError, load_config

    try:
        config = load_config(json.loads(cdk_json.read_text(encoding="utf-8"))["context"].get("mlops"))
        gate = config.environment(environment).quality_gate
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError) as error:
        raise StepFailed(f"{cdk_json}: cannot read context.mlops ({type(error).__name__}: {error})") from None
    except ConfigError as error:
        raise StepFailed(f"{cdk_json}: {error}") from None
    return config.dataset, QualityGate.from_dict(gate.to_dict(), config.dataset.problem_type)


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


def batch_input(source: Path, target: Path, dataset: Dataset) -> int:
    """The data's records as batch input (the id columns, then the features; no header): new data for batch
    prediction looks so. Returns the record count."""
    rows = [row for row in csv.reader(io.StringIO(source.read_text(encoding="utf-8-sig"), newline="")) if any(row)]
    header = [name.strip() for name in rows[0]] if rows else []
    missing = [name for name in dataset.batch_input_columns if name not in header]
    if missing:
        raise StepFailed(f"{source}: no column {', '.join(map(repr, missing))} for the batch input; name it in the header")
    positions = [header.index(name) for name in dataset.batch_input_columns]
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows([row[i] for i in positions] for row in rows[1:])
    return len(rows) - 1


def constant_baseline(processing: Path, problem_type: str) -> dict[str, Any]:
    """What predicting one constant from the train split scores on the test split: the mean, or the commonest class."""
    train_target = np.loadtxt(processing / "train" / "train.csv", delimiter=",", ndmin=2, usecols=0)
    test_target = np.loadtxt(processing / "test" / "test.csv", delimiter=",", ndmin=2, usecols=0)
    if problem_type == "regression":
        return {"metric": "mse", "value": float(np.mean((test_target - train_target.mean()) ** 2))}
    commonest = np.bincount(train_target.astype(int).ravel()).argmax()
    return {"metric": "accuracy", "value": float(np.mean(test_target == commonest))}


def run(data: Path, base: Path, dataset: Dataset, gate: QualityGate, hyperparameters: list[str], split: list[str]) -> dict:
    processing = base / "processing"
    (processing / "input").mkdir(parents=True)
    shutil.copy(data, processing / "input" / data.name)
    (processing / "dataset").mkdir()
    (processing / "dataset" / "dataset.json").write_text(json.dumps(dataset.to_dict(), indent=2))
    timings = {"preprocess": _run("preprocess.py", base, *split)}

    for channel in ("train", "validation"):
        shutil.copytree(processing / channel, base / "input" / "data" / channel)
    timings["train"] = _run("train.py", base, "train", *hyperparameters)

    (processing / "model").mkdir()
    with tarfile.open(processing / "model" / "model.tar.gz", "w:gz") as tar:
        for item in sorted((base / "model").iterdir()):
            tar.add(item, arcname=item.name)
    timings["evaluate"] = _run("evaluate.py", base)
    report = json.loads((processing / "evaluation" / "evaluation.json").read_text())

    rows = batch_input(data, base / "transform" / "input" / "new-data.csv", dataset)
    timings["batch_inference"] = _run(
        "batch_predict.py",
        base,
        "--input-dir",
        str(base / "transform" / "input"),
        "--output-dir",
        str(base / "transform" / "output"),
    )
    lines = (base / "transform" / "output" / "new-data.csv.out").read_text().splitlines()
    classes = json.loads((base / "model" / "features.json").read_text())["classes"]
    metrics = report[dataset.report_key]
    value = metrics[gate.metric]["value"]
    return {
        dataset.report_key: metrics,
        "preprocessing": report.get("preprocessing"),
        "quality_gate": {
            "metric": gate.metric,
            "value": value,
            "threshold": gate.threshold,
            "passed": value != "NaN" and gate.passed(value),
        },
        "constant_baseline": constant_baseline(processing, dataset.problem_type),
        "batch_input_rows": rows,
        "batch_predictions": len(lines),
        "batch_output_columns": list(dataset.batch_output_columns(classes)),
        "batch_output_first_row": lines[0] if lines else None,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a CSV with a header row naming the dataset's columns")
    parser.add_argument("--workdir", type=Path, help="keep the SageMaker-shaped tree here instead of a temporary one")
    parser.add_argument("--config", type=Path, default=CDK_JSON, help="the cdk.json whose dataset and gate to use")
    parser.add_argument("--environment", default="dev", help="whose training.quality_gate gates the run")
    parser.add_argument("--split-seed", type=int, default=42, help="seed of the train/validation/test split")
    parser.add_argument("--folds", type=int, help="cross-validation: the test split is --fold of this many parts")
    parser.add_argument("--fold", type=int, help="which part (0-based) is the test split, with --folds")
    parser.add_argument("hyperparameters", nargs="*", help="passed to train.py, e.g. --num_leaves 15")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file; pass a CSV with a header row")
    if args.workdir and args.workdir.exists():
        parser.error(f"--workdir {args.workdir} already exists; pass a new directory so no earlier run is overwritten")
    split = ["--seed", str(args.split_seed)]
    if args.folds is not None or args.fold is not None:
        split += ["--folds", str(args.folds), "--fold", str(args.fold)]
    try:
        dataset, gate = project_settings(args.config, args.environment)
        if args.workdir:
            args.workdir.mkdir(parents=True)
            summary = run(args.data.resolve(), args.workdir.resolve(), dataset, gate, args.hyperparameters, split)
        else:
            with tempfile.TemporaryDirectory() as scratch:
                summary = run(args.data.resolve(), Path(scratch), dataset, gate, args.hyperparameters, split)
    except StepFailed as error:
        print(f"local run failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
