"""The one prediction path shared by the endpoint (serve.py), batch transform and evaluation.

Requests carry raw abalone records (sex, then the seven measurements; no `rings`), as CSV lines or
JSON; the feature spec saved with the model (features.json) says how to encode them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np

MODEL_FILE = "model.txt"
FEATURES_FILE = "features.json"


class PayloadError(ValueError):
    """A request the model cannot score; the message names the row or field and what was expected."""


class ModelError(Exception):
    """A model artifact that cannot be loaded; the message names the file and what is wrong with it."""


def read_feature_spec(path: Path) -> tuple[list[str], list[str], str, list[str]]:
    """(raw columns, features, category column, categories) of a features.json as preprocess.feature_spec() writes it.

    Training reads each channel's spec with this too, so a model it saves is one serving can load.
    """
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        raw_columns = [str(c) for c in spec["raw_columns"]]
        features = [str(f) for f in spec["features"]]
        ((category_column, categories),) = spec["categories"].items()
        raw_columns.index(category_column)
        return raw_columns, features, category_column, [str(c) for c in categories]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as error:
        raise ModelError(
            f"{path} is not a feature spec ({type(error).__name__}: {error}); expected "
            '{"raw_columns": [...], "features": [...], "categories": {"<one raw column>": [...]}}'
        ) from None


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
        self._read_spec(model_dir / FEATURES_FILE)
        if self.booster.num_feature() != len(self.features):
            raise ModelError(
                f"{model_dir / MODEL_FILE} expects {self.booster.num_feature()} features "
                f"but {FEATURES_FILE} lists {len(self.features)}"
            )

    def _read_spec(self, path: Path) -> None:
        self.raw_columns, self.features, self.category_column, self.categories = read_feature_spec(path)
        self._category_index = self.raw_columns.index(self.category_column)
        self._numeric = [c for c in self.raw_columns if c != self.category_column]
        self._category_slot = {c: len(self._numeric) + i for i, c in enumerate(self.categories)}

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predictions for an encoded feature matrix (columns in `self.features` order)."""
        return self.booster.predict(features, num_threads=1)

    def encode(self, records: list) -> np.ndarray:
        """Encode raw records (sequences in raw-column order, or mappings by column name)."""
        if not records:
            raise PayloadError(f"no records; expected one or more rows of {','.join(self.raw_columns)}")
        matrix = np.zeros((len(records), len(self.features)), dtype=np.float64)
        width, category_index = len(self.raw_columns), self._category_index
        for row, record in enumerate(records, start=1):
            if isinstance(record, dict):
                missing = [c for c in self.raw_columns if c not in record]
                if missing:
                    raise PayloadError(f"record {row}: missing field(s) {', '.join(missing)}")
                record = [record[c] for c in self.raw_columns]
            elif not isinstance(record, (list, tuple)) or len(record) != width:
                got = len(record) if isinstance(record, (list, tuple)) else type(record).__name__
                raise PayloadError(f"record {row}: expected {width} fields ({','.join(self.raw_columns)}), got {got}")
            category = str(record[category_index]).strip().upper()
            slot = self._category_slot.get(category)
            if slot is None:
                raise PayloadError(
                    f"record {row}: {self.category_column} {record[category_index]!r} is not one of {', '.join(self.categories)}"
                )
            matrix[row - 1, slot] = 1.0
            numeric = record[:category_index] + record[category_index + 1 :]
            for column, value in enumerate(numeric):
                if isinstance(value, bool):
                    # float(True) is 1.0, but a JSON true is not a measurement.
                    raise PayloadError(f"record {row}: {self._numeric[column]} must be a number, got {value!r}")
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise PayloadError(f"record {row}: {self._numeric[column]} must be a number, got {value!r}") from None
                if not math.isfinite(number):
                    raise PayloadError(f"record {row}: {self._numeric[column]} must be finite, got {value!r}")
                matrix[row - 1, column] = number
        return matrix

    def predict_records(self, records: list) -> np.ndarray:
        return self.predict(self.encode(records))


def parse_csv(text: str, header: str) -> list[list[str]]:
    """CSV lines to records, skipping blank lines and a header line equal to `header`."""
    records = []
    for line in text.splitlines():
        line = line.strip()
        if line and line.replace(" ", "").lower() != header:
            records.append(line.split(","))
    return records


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


def format_csv(predictions: np.ndarray) -> str:
    return "".join(f"{p:.6f}\n" for p in predictions)


def format_json(predictions: np.ndarray) -> str:
    return json.dumps({"predictions": [round(float(p), 6) for p in predictions]})
