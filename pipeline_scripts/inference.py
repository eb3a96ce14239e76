"""The one prediction path shared by the endpoint (serve.py), batch transform, batch_predict.py and evaluation.

A request record is the dataset's features in the block's order (dataset.Dataset.captured_columns), as CSV lines
without a header (a first line naming the columns is skipped) or as JSON; features.py encodes it with the spec saved
with the model. An empty field or JSON null is a missing value; a category the model never saw is scored as unknown.

Answers, one per record, in the order of dataset.Dataset.prediction_fields:
- regression: the value. CSV `9.871234`; JSON {"predictions": [9.871234]}.
- binary: the positive class's probability and the label (positive when the probability is at least 0.5).
  CSV `0.912345,1`; JSON {"predictions": [{"probability": 0.912345, "label": "1"}]}.
- multiclass: each class's probability in class order, then the most probable label.
  CSV `0.010000,0.970000,0.020000,versicolor`; JSON {"predictions": [{"probability_setosa": 0.01, ..., "label": "versicolor"}]}.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features import FEATURES_FILE, BadValue, FeatureSpec, SpecError

MODEL_FILE = "model.txt"
# A binary answer's label is the positive class from this probability on.
THRESHOLD = 0.5
# A CSV body of fewer lines is parsed by the csv module, a longer one by pandas' C parser.
SMALL_BODY_LINES = 64


class PayloadError(ValueError):
    """A request the model cannot score; the message names the record (from 1) or field and what was expected."""


class ModelError(Exception):
    """A model artifact that cannot be loaded; the message names the file and what is wrong with it."""


def read_csv(text: str, columns: Sequence[str], text_columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Headerless CSV records of exactly these columns, as one array per column; a first line naming them is skipped.

    A long body goes through pandas' C parser: `text_columns` keep their text as written (categories, ids), the others
    are read as numbers where they all are. A short one goes through the csv module, every column as text.
    """
    width = len(columns)
    body = text.lstrip("\r\n")
    first, _, rest = body.partition("\n")
    if first.strip().replace(" ", "").lower() == ",".join(columns).replace(" ", "").lower():
        body = rest
    if not body.strip():
        raise PayloadError(f"no records; expected one or more rows of {','.join(columns)}")
    names = list(columns)
    if body.count("\n") < SMALL_BODY_LINES:
        # A request of a few records: the csv module costs less than starting pandas' parser.
        return _small_csv(body, columns)
    try:
        frame = pd.read_csv(
            io.StringIO(body),
            header=None,
            dtype={i: str for i, name in enumerate(names) if name in text_columns},
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, ValueError):
        frame = None
    # The C parser pads a short row with missing values, which are allowed; a short row is found by counting
    # separators (quoted fields may hold commas: then each record is counted with the csv module).
    if frame is None or frame.shape[1] != width or ('"' in body or body.count(",") != len(frame) * (width - 1)):
        _records(body, columns)
        if frame is None or frame.shape[1] != width:
            raise PayloadError(f"cannot read the body as CSV of {width} fields ({','.join(columns)})")
    return {name: frame[position].to_numpy() for position, name in enumerate(names)}


def _records(body: str, columns: Sequence[str]) -> list[list[str]]:
    """Every non-blank CSV record, each of exactly the columns' count; PayloadError names the first that is not."""
    records = []
    try:
        for fields in csv.reader(io.StringIO(body, newline="")):
            if fields:
                records.append(fields)
                if len(fields) != len(columns):
                    raise PayloadError(
                        f"record {len(records)}: expected {len(columns)} fields ({','.join(columns)}), got {len(fields)}"
                    )
    except csv.Error as error:
        raise PayloadError(f"record {len(records) + 1} is not CSV ({error})") from None
    return records


def _columns(rows: list[list], columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Rows of values (one per column) as one object array per column."""
    arrays = {}
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        arrays[name] = np.empty(len(rows), dtype=object)
        arrays[name][:] = values
    return arrays


def _small_csv(body: str, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The same columns as pandas' parser gives, every one text (features.py reads text and numbers alike)."""
    records = _records(body, columns)
    if not records:
        raise PayloadError(f"no records; expected one or more rows of {','.join(columns)}")
    return _columns(records, columns)


def parse_json(text: str) -> list:
    """{"instances": [...]}, a list of records, or one record (an object or a list of values)."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise PayloadError(f"body is not valid JSON: {error.msg} at position {error.pos}") from None
    if isinstance(payload, dict):
        payload = payload.get("instances", [payload])
    if not isinstance(payload, list):
        raise PayloadError('expected {"instances": [...]}, a list of records or one record object')
    if payload and not isinstance(payload[0], (list, dict)):
        payload = [payload]
    return payload


def records_columns(records: list, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """JSON records, each a list of values in column order or an object by column name (null is missing)."""
    if not records:
        raise PayloadError(f"no records; expected one or more rows of {','.join(columns)}")
    rows = []
    for number, record in enumerate(records, start=1):
        if isinstance(record, dict):
            missing = [c for c in columns if c not in record]
            if missing:
                raise PayloadError(f"record {number}: missing field(s) {', '.join(missing)}")
            rows.append([record[c] for c in columns])
        elif isinstance(record, list) and len(record) == len(columns):
            rows.append(record)
        else:
            got = len(record) if isinstance(record, list) else type(record).__name__
            raise PayloadError(f"record {number}: expected {len(columns)} fields ({','.join(columns)}), got {got}")
    return _columns(rows, columns)


class Model:
    """A LightGBM booster plus the feature spec it was trained with, loaded once."""

    def __init__(self, model_dir: Path) -> None:
        model_dir = Path(model_dir)
        for name in (MODEL_FILE, FEATURES_FILE):
            if not (model_dir / name).is_file():
                raise ModelError(f"{model_dir / name} is missing; expected the training job's model artifact in {model_dir}")
        try:
            self.booster = lgb.Booster(model_file=str(model_dir / MODEL_FILE))
        except lgb.basic.LightGBMError as error:
            raise ModelError(
                f"{model_dir / MODEL_FILE} is not a LightGBM model ({error}); retrain or restore the artifact"
            ) from None
        try:
            self.spec = FeatureSpec.read(model_dir / FEATURES_FILE)
        except SpecError as error:
            raise ModelError(str(error)) from None
        self.dataset = self.spec.dataset
        self.columns = self.dataset.captured_columns
        if self.booster.num_feature() != len(self.columns):
            raise ModelError(
                f"{model_dir / MODEL_FILE} expects {self.booster.num_feature()} features "
                f"but {FEATURES_FILE} lists {len(self.columns)}"
            )
        outputs = len(self.spec.classes) if self.dataset.problem_type == "multiclass" else 1
        if self.booster.num_model_per_iteration() != outputs:
            raise ModelError(
                f"{model_dir / MODEL_FILE} answers {self.booster.num_model_per_iteration()} value(s) per record "
                f"but {FEATURES_FILE} describes a {self.dataset.problem_type} model of {outputs}"
            )
        self.fields = self.spec.prediction_fields

    def read_csv(self, text: str) -> dict[str, np.ndarray]:
        return read_csv(text, self.columns, self.dataset.categorical_features)

    def read_records(self, records: list) -> dict[str, np.ndarray]:
        return records_columns(records, self.columns)

    def encode(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        try:
            return self.spec.encode(columns)
        except BadValue as error:
            raise PayloadError(f"record {error.index + 1}: {error}") from None

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The booster's answer for an encoded matrix: values, positive-class probabilities, or one row of class
        probabilities per record."""
        return self.booster.predict(matrix, num_threads=1)

    def predict_columns(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        return self.predict(self.encode(columns))

    def labels(self, predictions: np.ndarray) -> np.ndarray:
        """The predicted label of each record (classification only)."""
        classes = np.array(self.spec.classes, dtype=object)
        if self.dataset.problem_type == "binary":
            return classes[(predictions >= THRESHOLD).astype(int)]
        return classes[np.argmax(predictions, axis=1)]

    def format_csv(self, predictions: np.ndarray) -> str:
        """One CSV line per record: the prediction fields, numbers with six decimals."""
        if self.dataset.problem_type == "regression":
            return "".join(f"{value:.6f}\n" for value in predictions.tolist())
        labels = self.labels(predictions).tolist()
        if self.dataset.problem_type == "binary":
            return "".join(f"{p:.6f},{label}\n" for p, label in zip(predictions.tolist(), labels, strict=True))
        line = ",".join(["{:.6f}"] * predictions.shape[1]) + ",{}\n"
        return "".join(line.format(*row, label) for row, label in zip(predictions.tolist(), labels, strict=True))

    def format_json(self, predictions: np.ndarray) -> str:
        if self.dataset.problem_type == "regression":
            return json.dumps({"predictions": [round(value, 6) for value in predictions.tolist()]})
        labels = self.labels(predictions).tolist()
        rows = predictions.reshape(len(predictions), -1).tolist()
        answers = [
            {**{field: round(p, 6) for field, p in zip(self.fields[:-1], row, strict=True)}, "label": label}
            for row, label in zip(rows, labels, strict=True)
        ]
        return json.dumps({"predictions": answers})
