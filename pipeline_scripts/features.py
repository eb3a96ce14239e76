"""The feature spec that travels with the model, and the one encoding of records that preprocessing and serving share.

features.json sits beside every split preprocessing writes and, copied by training, beside model.txt:

    {"dataset": <the dataset block, dataset.Dataset.to_dict()>,
     "categories": {"sex": ["F", "I", "M"]},
     "classes": ["0", "1"]}

`categories` holds each categorical feature's levels in code order: the canonical values (dataset.canonical_value)
the train split held. `classes` is the answer's class order: the negative then the positive label for binary, the
classes in order for multiclass, null for regression.

Encoding works column by column (pandas, no loop over rows), into LightGBM's float matrix:
- a numeric feature is its number. An empty field (or JSON null) is missing, NaN, which each tree sends down the side
  its split learned for missing values. Anything else that is not a finite number ('nan', 'inf', 'tall') is refused.
- a categorical feature is the index of its canonical value among the levels (so '2' and '2.0' are one level). A
  missing value and a category the train split never held are both NaN, which LightGBM's categorical splits send to
  the side of the categories outside each split's set (the "other" side): such a record is scored, not refused, and
  data-quality monitoring sees the new value in the captured requests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dataset import Dataset, DatasetError, canonical_value

FEATURES_FILE = "features.json"
SPEC_KEYS = ("dataset", "categories", "classes")


class SpecError(ValueError):
    """A features.json that is not one preprocessing writes; the message says what is wrong."""


class BadValue(ValueError):
    """A value encoding refuses: its position in the frame (from 0), its column and the value as given."""

    def __init__(self, index: int, column: str, value: Any) -> None:
        super().__init__(f"{column} must be a number, got {value!r}")
        self.index, self.column, self.value = index, column, value


def _missing(value: Any) -> bool:
    """None, NaN (pandas' missing) or a blank text."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float | None:
    """A value as a number: NaN if missing, None if it is not a finite number (text 'nan' and JSON true are not)."""
    if _missing(value):
        return math.nan
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _floats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of any shape as floats (NaN where missing), and where a value is not a number."""
    if values.dtype.kind in "fiu":
        result = values.astype(np.float64)
        return result, np.isinf(result)
    values = values.astype(object)
    try:
        # numpy converts each value as float() does, in one C loop; a blank text or a word stops it.
        result = values.astype(np.float64)
        nan = np.isnan(result)
        bad = ~np.isfinite(result)
        bad[nan] = [not _missing(value) for value in values[nan]]
        bad |= np.fromiter((type(value) is bool for value in values.flat), dtype=bool, count=values.size).reshape(values.shape)
    except (TypeError, ValueError):
        converted = [_number(value) for value in values.flat]
        bad = np.fromiter((number is None for number in converted), dtype=bool, count=values.size).reshape(values.shape)
        result = np.array([math.nan if n is None else n for n in converted], dtype=np.float64).reshape(values.shape)
    return result, bad


def numbers(column: Any, name: str) -> np.ndarray:
    """A numeric feature's values (an array or a Series) as floats, NaN where missing; BadValue names the first value
    that is not a number."""
    values = np.asarray(column)
    result, bad = _floats(values)
    if bad.any():
        index = int(np.argmax(bad))
        raise BadValue(index, name, values[index])
    return result


# Fewer values are coded one by one; more through pandas' hash table, one lookup per distinct value.
_FEW = 64


def category_codes(column: Any, levels: Mapping[str, int]) -> np.ndarray:
    """Each value's code among the levels, NaN for a missing value or a level the model does not know."""

    def code(value: Any) -> float:
        return math.nan if _missing(value) else levels.get(canonical_value(str(value)), math.nan)

    values = np.asarray(column, dtype=object)
    if len(values) < _FEW:
        return np.array([code(value) for value in values], dtype=np.float64)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # Code -1 (missing) picks the last entry.
    return np.array([*map(code, uniques), math.nan], dtype=np.float64)[codes]


@dataclass(frozen=True)
class FeatureSpec:
    dataset: Dataset
    categories: Mapping[str, tuple[str, ...]]
    classes: tuple[str, ...] | None

    @classmethod
    def from_dict(cls, raw: Any) -> FeatureSpec:
        if not isinstance(raw, dict) or set(raw) != set(SPEC_KEYS):
            raise SpecError(f"expected an object with exactly {', '.join(SPEC_KEYS)}")
        try:
            dataset = Dataset.from_dict(raw["dataset"], key="dataset")
        except DatasetError as error:
            raise SpecError(str(error)) from None
        categories = raw["categories"]
        if not isinstance(categories, dict) or sorted(categories) != sorted(dataset.categorical_features):
            raise SpecError(f"categories must list the levels of each categorical feature: {list(dataset.categorical_features)}")
        if not all(isinstance(levels, list) and all(isinstance(v, str) for v in levels) for levels in categories.values()):
            raise SpecError("categories must map each categorical feature to a list of its levels (strings)")
        classes = raw["classes"]
        expected = {"regression": "null", "binary": "two labels, negative then positive", "multiclass": "two or more labels"}
        count_ok = {"regression": classes is None, "binary": False, "multiclass": False}
        if isinstance(classes, list) and all(isinstance(c, str) for c in classes) and len(set(classes)) == len(classes):
            count_ok["binary"], count_ok["multiclass"] = len(classes) == 2, len(classes) >= 2
        if not count_ok[dataset.problem_type]:
            raise SpecError(
                f"classes of a {dataset.problem_type} model must be {expected[dataset.problem_type]}, got {classes!r}"
            )
        if dataset.classes is not None and tuple(classes) != dataset.classes:
            raise SpecError(f"classes {classes!r} are not the dataset block's {list(dataset.classes)}")
        return cls(
            dataset,
            {name: tuple(levels) for name, levels in categories.items()},
            None if classes is None else tuple(classes),
        )

    @classmethod
    def read(cls, path: Path) -> FeatureSpec:
        """SpecError names the file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SpecError(f"{path} is not a feature spec ({type(error).__name__}: {error})") from None
        except SpecError as error:
            raise SpecError(f"{path} is not a feature spec: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.to_dict(),
            "categories": {name: list(levels) for name, levels in self.categories.items()},
            "classes": None if self.classes is None else list(self.classes),
        }

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @property
    def prediction_fields(self) -> tuple[str, ...]:
        return self.dataset.prediction_fields(self.classes)

    @property
    def categorical_indexes(self) -> list[int]:
        """Positions of the categorical features among the model's columns, for LightGBM's categorical_feature."""
        names = self.dataset.feature_names
        return [names.index(name) for name in self.dataset.categorical_features]

    @cached_property
    def level_codes(self) -> dict[str, dict[str, int]]:
        return {name: {level: code for code, level in enumerate(levels)} for name, levels in self.categories.items()}

    def encode(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The model's float matrix of one column (an array or a Series) per feature; other columns are not read."""
        features = self.dataset.features
        rows = len(columns[features[0].name])
        matrix = np.empty((rows, len(features)), dtype=np.float64)
        numeric = [position for position, feature in enumerate(features) if feature.type == "numeric"]
        if numeric:
            # All numeric columns at once: one conversion, whatever the number of features.
            block = np.column_stack([np.asarray(columns[features[p].name]) for p in numeric])
            values, bad = _floats(block)
            if bad.any():
                row, column = np.unravel_index(int(np.argmax(bad)), bad.shape)
                raise BadValue(int(row), features[numeric[column]].name, block[row, column])
            matrix[:, numeric] = values
        for position, feature in enumerate(features):
            if feature.type == "categorical":
                matrix[:, position] = category_codes(columns[feature.name], self.level_codes[feature.name])
        return matrix
