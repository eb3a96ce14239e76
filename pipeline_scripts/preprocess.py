"""SageMaker Processing script: validate raw abalone CSVs, one-hot encode `sex`, split, write CSVs.

Runs in SageMaker's scikit-learn container (Python 3.9, pandas 1.x) as well as locally, so it keeps
to APIs that both know. Inputs under <base>/processing/input; outputs (target first, no header, the
layout the training script expects) to <base>/processing/{train,validation,test}, each with
features.json describing the columns so training, evaluation and inference agree on them. The train
split's raw records without the target, as the endpoint receives and captures them, go to
<base>/processing/baseline/baseline.csv: the data-quality baseline the model is monitored against.
Up to 100 test rows drawn at random (from the seed), as request records in the same form, go to
<base>/processing/holdout/requests.csv: evaluation answers them offline and puts both next to its
report, and the deployed endpoint's system test checks that the endpoint gives the same answers.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from raw_columns import CAPTURED_COLUMNS, CATEGORIES, CATEGORY, MEASUREMENTS, RAW_COLUMNS, TARGET
from utf8_text import NotUtf8, read_utf8

FEATURES = MEASUREMENTS + tuple(f"{CATEGORY}_{c}" for c in CATEGORIES)
SPLITS = ("train", "validation", "test")
# A sample of the test split for the deployed endpoint's system test: each line one request's record, as
# the endpoint receives it (raw columns without the target, no header).
HOLDOUT_ROWS = 100
HOLDOUT_FILE = "requests.csv"
# The fewest rows per split. Train: LightGBM splits a node only when both sides keep min_data_in_leaf rows,
# and the tuner tries min_data_in_leaf up to 60 (register_pipelines/training_pipeline.py), so with fewer than
# 2 x 60 rows some tuning jobs can only fit a constant. Validation and test: early stopping and the MSE gate
# each average squared errors, which over fewer than 30 rows say more about the rows drawn than the model.
MIN_ROWS = {"train": 120, "validation": 30, "test": 30}


class InputError(Exception):
    """Bad input data: the message names the file, row or column and what was expected."""


def feature_spec() -> dict:
    return {
        "target": TARGET,
        "features": list(FEATURES),
        "raw_columns": list(CAPTURED_COLUMNS),
        "categories": {CATEGORY: list(CATEGORIES)},
    }


def _records(path: Path) -> list[tuple[int, list[str]]]:
    """(row number in the file, fields) of each non-blank CSV record."""
    try:
        text = read_utf8(path)
    except NotUtf8 as error:
        raise InputError(str(error)) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    records, row = [], 1
    try:
        for fields in reader:
            if any(field.strip() for field in fields):
                records.append((row, fields))
            row = reader.line_num + 1
    except csv.Error as error:
        raise InputError(f"{path}: row {row} is not CSV ({error})") from None
    return records


def read_raw_csv(path: Path, columns=RAW_COLUMNS) -> pd.DataFrame:
    """Read one CSV with or without a header row and check its columns, types and categories."""
    records = _records(path)
    if not records:
        raise InputError(f"{path}: the file is empty; expected rows of {', '.join(columns)}")
    if records[0][1][0].strip().lower() == columns[0]:
        header = [field.strip().lower() for field in records[0][1]]
        if header != list(columns):
            raise InputError(f"{path}: header is {','.join(header)}; expected {','.join(columns)}")
        records = records[1:]
        if not records:
            raise InputError(f"{path}: the file has a header but no rows")
    for row, fields in records:
        if len(fields) != len(columns):
            got = f"{len(fields)} field" + ("s" if len(fields) != 1 else "")
            raise InputError(f"{path}: row {row} has {got}; expected {len(columns)}: {', '.join(columns)}")
    rows = [row for row, _ in records]
    frame = pd.DataFrame([fields for _, fields in records], columns=list(columns), dtype=str)
    categories = frame[CATEGORY].str.strip().str.upper()
    unknown = ~categories.isin(CATEGORIES)
    if unknown.any():
        index = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(
            f"{path}: row {rows[index]} column '{CATEGORY}': {frame[CATEGORY].iloc[index]!r} "
            f"is not one of {', '.join(CATEGORIES)}"
        )
    result = pd.DataFrame({CATEGORY: categories})
    for column in columns[1:]:
        values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype="float64"))
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{path}: row {rows[index]} column '{column}': expected a finite number, got {frame[column].iloc[index]!r}"
            )
        result[column] = values.astype("float64")
    return result


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """Feature columns in FEATURES order, with `sex` one-hot encoded over all known categories."""
    encoded = frame[list(MEASUREMENTS)].copy()
    for category in CATEGORIES:
        encoded[f"{CATEGORY}_{category}"] = (frame[CATEGORY] == category).astype("float64")
    return encoded


def split_sizes(n_rows: int, validation_fraction: float, test_fraction: float) -> dict:
    n_test = max(1, round(n_rows * test_fraction))
    n_validation = max(1, round(n_rows * validation_fraction))
    return {"test": n_test, "validation": n_validation, "train": n_rows - n_test - n_validation}


def minimum_rows(validation_fraction: float, test_fraction: float) -> int:
    """The fewest rows whose split gives every split its minimum (MIN_ROWS) at these fractions."""
    n_rows = sum(MIN_ROWS.values())
    while any(split_sizes(n_rows, validation_fraction, test_fraction)[s] < MIN_ROWS[s] for s in SPLITS):
        n_rows += 1
    return n_rows


def split_indices(n_rows: int, validation_fraction: float, test_fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(n_rows)
    sizes = split_sizes(n_rows, validation_fraction, test_fraction)
    n_test, n_validation = sizes["test"], sizes["validation"]
    return {"test": order[:n_test], "validation": order[n_test : n_test + n_validation], "train": order[n_test + n_validation :]}


def holdout_indices(test_rows: np.ndarray, seed: int) -> np.ndarray:
    """Up to HOLDOUT_ROWS test rows drawn at random, so the sample covers the test split's inputs, not its first rows."""
    rows = np.sort(test_rows)
    return np.random.default_rng(seed).choice(rows, size=min(HOLDOUT_ROWS, len(rows)), replace=False)


def _named(files: list) -> str:
    return ", ".join(map(str, files[:3])) + (f" and {len(files) - 3} more files" if len(files) > 3 else "")


def run(input_dir: Path, output_dir: Path, validation_fraction: float, test_fraction: float, seed: int) -> dict:
    files = sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() in (".csv", ".txt"))
    if not files:
        raise InputError(f"{input_dir}: no .csv files found; expected the raw abalone data there")
    raw = pd.concat([read_raw_csv(p) for p in files], ignore_index=True)
    needed = minimum_rows(validation_fraction, test_fraction)
    if len(raw) < needed:
        raise InputError(
            f"{_named(files)}: {len(raw)} rows are too few to split into train, validation and test; at least {needed} "
            f"are needed at these fractions ({MIN_ROWS['train']} to train on, {MIN_ROWS['validation']} each to validate "
            "and test)"
        )
    table = pd.concat([raw[[TARGET]], encode(raw)], axis=1)
    counts = {}
    splits = split_indices(len(table), validation_fraction, test_fraction, seed)
    for split, rows in splits.items():
        target_dir = output_dir / split
        target_dir.mkdir(parents=True, exist_ok=True)
        table.iloc[np.sort(rows)].to_csv(target_dir / f"{split}.csv", header=False, index=False)
        (target_dir / "features.json").write_text(json.dumps(feature_spec(), indent=2))
        counts[split] = len(rows)
    baseline_dir = output_dir / "baseline"
    baseline_dir.mkdir(parents=True, exist_ok=True)
    baseline = raw.iloc[np.sort(splits["train"])][list(CAPTURED_COLUMNS)]
    baseline.to_csv(baseline_dir / "baseline.csv", header=False, index=False)
    holdout_dir = output_dir / "holdout"
    holdout_dir.mkdir(parents=True, exist_ok=True)
    holdout = raw.iloc[holdout_indices(splits["test"], seed)][list(CAPTURED_COLUMNS)]
    holdout.to_csv(holdout_dir / HOLDOUT_FILE, header=False, index=False)
    return counts


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def main(argv=None) -> int:
    base = Path(os.environ.get("SM_BASE_DIR", "/opt/ml"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=base / "processing" / "input")
    parser.add_argument("--output-dir", type=Path, default=base / "processing")
    parser.add_argument("--validation-fraction", type=_fraction, default=0.15)
    parser.add_argument("--test-fraction", type=_fraction, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.validation_fraction + args.test_fraction >= 1:
        parser.error("--validation-fraction plus --test-fraction must stay below 1")
    try:
        counts = run(args.input_dir, args.output_dir, args.validation_fraction, args.test_fraction, args.seed)
    except InputError as error:
        print(f"preprocess error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"rows": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
