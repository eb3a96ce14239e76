"""SageMaker Processing script: read the raw CSVs by the dataset block, split them, write what the later steps read.

Runs in the training image (`python3 preprocess.py`) and locally. Inputs: CSV files with a header row under
<base>/processing/input, and the dataset block (dataset.Dataset.to_dict()) at <base>/processing/dataset/dataset.json.
Columns are matched by name, in any order; columns the block does not name are ignored (and named in the report). An
empty field is a missing value: allowed in features, and a row without a target is dropped (and counted). Outputs,
under <base>/processing:

- train/, validation/, test/: <split>.csv (the target first, then the features as features.py encodes them, no header,
  an empty field where a value is missing) and features.json, the feature spec that travels with the model.
- baseline/baseline.csv: the train split's records as the endpoint receives them (the features in the block's order,
  no target, no header): the data-quality baseline the model is monitored against.
- holdout/requests.csv: up to 100 test records drawn at random (from the seed), in the same form: evaluation answers
  them offline, and the deployed endpoint's system test checks that the endpoint gives the same answers.
- test/preprocessing.json: the rows of each split, the rows dropped for a missing target, the columns ignored per
  file; evaluation puts it in its report.

The target: a number for regression; for binary a label the block knows (dataset.Dataset.is_positive), each class
answered as the data spells it most often (the first seen on a tie: True and true are one class); for multiclass one
of the block's classes if it lists them, else any label, the classes then in sorted order. Labels and categories
compare after dataset.canonical_value; a category's levels are those the train split holds.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from utf8_text import NotUtf8, read_utf8

from dataset import Dataset, DatasetError, canonical_value, sorted_labels
from features import BadValue, FeatureSpec, numbers

SPLITS = ("train", "validation", "test")
# A sample of the test split for the deployed endpoint's system test: each line one request's record.
HOLDOUT_ROWS = 100
HOLDOUT_FILE = "requests.csv"
REPORT_FILE = "preprocessing.json"
# The fewest rows per split. Train: LightGBM splits a node only when both sides keep min_data_in_leaf rows,
# and the tuner tries min_data_in_leaf up to 60 (register_pipelines/training_pipeline.py), so with fewer than
# 2 x 60 rows some tuning jobs can only fit a constant. Validation and test: early stopping and the quality gate
# each average over the split, which over fewer than 30 rows says more about the rows drawn than the model.
MIN_ROWS = {"train": 120, "validation": 30, "test": 30}
# Where each row came from, for messages: not columns of the data.
_FILE, _ROW = "\0file", "\0row"


class InputError(Exception):
    """Bad input data: the message names the file, row or column and what was expected."""


def read_dataset(path: Path) -> Dataset:
    if not path.is_file():
        raise InputError(
            f"{path} not found; expected the dataset block as JSON (cdk.json's context.mlops.dataset), which the "
            "training pipeline puts there"
        )
    try:
        return Dataset.from_dict(json.loads(read_utf8(path)))
    except (NotUtf8, json.JSONDecodeError) as error:
        raise InputError(f"{path} is not JSON ({error}); expected the dataset block") from None
    except DatasetError as error:
        raise InputError(f"{path}: {error}") from None


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


def read_raw_csv(path: Path, dataset: Dataset) -> tuple[pd.DataFrame, list[str]]:
    """The target and feature columns of one CSV with a header row, as text, with each row's file and row number;
    and the columns the block does not name, which are ignored."""
    needed = [*dataset.feature_names, dataset.target]
    records = _records(path)
    if not records:
        raise InputError(f"{path}: the file is empty; expected a header row naming {', '.join(needed)}, then rows")
    header = [field.strip() for field in records[0][1]]
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise InputError(f"{path}: the header names column {repeated[0]!r} more than once; name each column once")
    missing = [name for name in needed if name not in header]
    if missing:
        what = "column" + ("s" if len(missing) > 1 else "")
        raise InputError(
            f"{path}: no {what} {', '.join(map(repr, missing))} in the header ({', '.join(header)}); every file names "
            f"the target and each feature of the dataset block in a header row: {', '.join(needed)}"
        )
    rows = records[1:]
    if not rows:
        raise InputError(f"{path}: the file has a header but no rows")
    for row, fields in rows:
        if len(fields) != len(header):
            got = f"{len(fields)} field" + ("s" if len(fields) != 1 else "")
            raise InputError(f"{path}: row {row} has {got}; the header has {len(header)}: {', '.join(header)}")
    frame = pd.DataFrame([fields for _, fields in rows], columns=header, dtype=str)[needed]
    frame[_FILE] = str(path)
    frame[_ROW] = [row for row, _ in rows]
    ignored = [name for name in header if name not in needed and name not in dataset.id_columns]
    return frame, ignored


def _where(raw: pd.DataFrame, index: int, column: str) -> str:
    return f"{raw[_FILE].iloc[index]}: row {raw[_ROW].iloc[index]} column {column!r}"


def _canonical(column: pd.Series) -> pd.Series:
    """Categories and labels as compared (dataset.canonical_value), missing (NaN) where the field is empty."""
    canonical = {value: canonical_value(value) or np.nan for value in column.dropna().unique()}
    return column.map(canonical).astype(object)


def encode_target(raw: pd.DataFrame, dataset: Dataset) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """The target as LightGBM learns it (the value; 0/1; the class index) and the class order."""
    target = dataset.target
    if dataset.problem_type == "regression":
        try:
            return numbers(raw[target], target), None
        except BadValue as error:
            raise InputError(f"{_where(raw, error.index, target)}: expected a finite number, got {error.value!r}") from None
    labels = _canonical(raw[target])
    unwritable = labels.str.contains(r"[,\r\n]", regex=True).to_numpy(dtype=bool)
    if unwritable.any():
        index = int(np.argmax(unwritable))
        raise InputError(
            f"{_where(raw, index, target)}: label {labels.iloc[index]!r} holds a comma or line break; a label is a "
            "field of the CSV answer, so rename it"
        )
    if dataset.problem_type == "binary":
        return _binary(raw, labels, dataset)
    classes = dataset.classes or tuple(sorted_labels(labels))
    codes = labels.map({label: code for code, label in enumerate(classes)})
    unknown = codes.isna().to_numpy()
    if unknown.any():
        index = int(np.argmax(unknown))
        raise InputError(
            f"{_where(raw, index, target)}: label {labels.iloc[index]!r} is not one of the dataset block's classes "
            f"({', '.join(classes)}); add it to dataset.classes or fix the row"
        )
    return codes.to_numpy(dtype=np.float64), classes


def _binary(raw: pd.DataFrame, labels: pd.Series, dataset: Dataset) -> tuple[np.ndarray, tuple[str, ...]]:
    sides = labels.map({label: dataset.is_positive(label) for label in labels.unique()})
    unknown = sides.isna().to_numpy()
    if unknown.any():
        index = int(np.argmax(unknown))
        raise InputError(
            f"{_where(raw, index, dataset.target)}: binary label {labels.iloc[index]!r} is not one the dataset block "
            "knows: with positive_class null the labels are 0/1 or true/false; set dataset.positive_class to the "
            "positive label"
        )
    positive = sides.to_numpy(dtype=bool)
    negatives = labels[~positive]
    others = list(dict.fromkeys(negatives))
    if dataset.positive_class is not None and len(others) > 1:
        index = int(np.flatnonzero((labels == others[1]).to_numpy())[0])
        raise InputError(
            f"{_where(raw, index, dataset.target)}: label {others[1]!r} is a third label besides the positive class "
            f"{dataset.positive_class!r} and {others[0]!r}; a binary dataset has two"
        )
    spelled = [Counter(side).most_common(1)[0][0] if len(side) else None for side in (negatives, labels[positive])]
    if None in spelled:
        only = next(label for label in spelled if label is not None)
        raise _one_class("the data", only, len(labels), dataset)
    return positive.astype(np.float64), (spelled[0], spelled[1])


def _one_class(where: str, label: str, rows: int, dataset: Dataset) -> InputError:
    return InputError(
        f"{where} holds one class only ({label!r}, {rows} rows): a {dataset.problem_type} model learns from rows of at "
        f"least two; check the target column {dataset.target!r}"
    )


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


def split_indices(n_rows: int, validation_fraction: float, test_fraction: float, seed: int, fold=None):
    """Rows of each split, from the seed's permutation. With fold (k, n), the test split is the k-th of n equal parts
    of the permutation (0-based; cross-validation) and validation the first validation_fraction of the rest."""
    order = np.random.default_rng(seed).permutation(n_rows)
    if fold is not None:
        k, folds = fold
        start, end = k * n_rows // folds, (k + 1) * n_rows // folds
        rest = np.concatenate([order[:start], order[end:]])
        n_validation = max(1, round(n_rows * validation_fraction))
        return {"test": order[start:end], "validation": rest[:n_validation], "train": rest[n_validation:]}
    sizes = split_sizes(n_rows, validation_fraction, test_fraction)
    n_test, n_validation = sizes["test"], sizes["validation"]
    return {"test": order[:n_test], "validation": order[n_test : n_test + n_validation], "train": order[n_test + n_validation :]}


def holdout_indices(test_rows: np.ndarray, seed: int) -> np.ndarray:
    """Up to HOLDOUT_ROWS test rows drawn at random, so the sample covers the test split's inputs, not its first rows."""
    rows = np.sort(test_rows)
    return np.random.default_rng(seed).choice(rows, size=min(HOLDOUT_ROWS, len(rows)), replace=False)


def _named(files: list) -> str:
    return ", ".join(map(str, files[:3])) + (f" and {len(files) - 3} more files" if len(files) > 3 else "")


def features_frame(raw: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The features as the endpoint receives them: numbers checked and parsed, categories canonical; NaN if missing."""
    frame = pd.DataFrame(index=raw.index)
    for feature in dataset.features:
        if feature.type == "categorical":
            frame[feature.name] = _canonical(raw[feature.name])
            continue
        try:
            frame[feature.name] = numbers(raw[feature.name], feature.name)
        except BadValue as error:
            raise InputError(
                f"{_where(raw, error.index, feature.name)}: expected a finite number or an empty field (missing), "
                f"got {error.value!r}"
            ) from None
    return frame


def _write_records(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, header=False, index=False, na_rep="")


def run(input_dir: Path, output_dir: Path, dataset: Dataset, fractions: tuple[float, float], seed: int, fold=None) -> dict:
    validation_fraction, test_fraction = fractions
    files = sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() in (".csv", ".txt"))
    if not files:
        raise InputError(f"{input_dir}: no .csv files found; expected the raw data there")
    tables = [read_raw_csv(path, dataset) for path in files]
    raw = pd.concat([frame for frame, _ in tables], ignore_index=True)
    ignored = {str(path): columns for path, (_, columns) in zip(files, tables, strict=True) if columns}
    labelled = raw[dataset.target].str.strip().ne("").to_numpy()
    raw = raw[labelled].reset_index(drop=True)
    features = features_frame(raw, dataset)
    target, classes = encode_target(raw, dataset)
    needed = minimum_rows(validation_fraction, test_fraction)
    if len(raw) < needed:
        raise InputError(
            f"{_named(files)}: {len(raw)} rows with a target are too few to split into train, validation and test; at "
            f"least {needed} are needed at these fractions ({MIN_ROWS['train']} to train on, {MIN_ROWS['validation']} "
            "each to validate and test)"
        )
    splits = {
        name: np.sort(rows) for name, rows in split_indices(len(raw), validation_fraction, test_fraction, seed, fold).items()
    }
    if classes is not None:
        held = Counter(target[splits["train"]].astype(int).tolist())
        if len(held) < 2:
            ((code, count),) = held.items()
            raise _one_class("the train split", classes[code], count, dataset)
    train_rows = features.iloc[splits["train"]]
    categories = {name: tuple(sorted_labels(train_rows[name].dropna())) for name in dataset.categorical_features}
    spec = FeatureSpec(dataset, categories, classes)
    table = pd.DataFrame(spec.encode(features), columns=list(dataset.feature_names))
    table.insert(0, dataset.target, target)
    for split, rows in splits.items():
        _write_records(table.iloc[rows], output_dir / split / f"{split}.csv")
        spec.write(output_dir / split / "features.json")
    _write_records(train_rows, output_dir / "baseline" / "baseline.csv")
    _write_records(features.iloc[holdout_indices(splits["test"], seed)], output_dir / "holdout" / HOLDOUT_FILE)
    report = {
        "rows": {split: len(rows) for split, rows in splits.items()},
        "rows_without_target_dropped": int((~labelled).sum()),
        "ignored_columns": ignored,
    }
    (output_dir / "test" / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


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
    parser.add_argument("--dataset", type=Path, default=base / "processing" / "dataset" / "dataset.json")
    parser.add_argument("--validation-fraction", type=_fraction, default=0.15)
    parser.add_argument("--test-fraction", type=_fraction, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--folds", type=int, help="cross-validation: the test split is one of this many parts")
    parser.add_argument("--fold", type=int, help="which part (0-based) is the test split, with --folds")
    args = parser.parse_args(argv)
    if args.validation_fraction + args.test_fraction >= 1:
        parser.error("--validation-fraction plus --test-fraction must stay below 1")
    if (args.folds is None) != (args.fold is None) or (args.folds is not None and not 0 <= args.fold < args.folds):
        parser.error("--folds N and --fold K go together, with 0 <= K < N")
    fold = None if args.folds is None else (args.fold, args.folds)
    fractions = (args.validation_fraction, 1 / args.folds if fold else args.test_fraction)
    try:
        dataset = read_dataset(args.dataset)
        report = run(args.input_dir, args.output_dir, dataset, fractions, args.seed, fold)
    except InputError as error:
        print(f"preprocess error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
