"""The dataset contract: cdk.json's `dataset` block, validated, and the quality-gate tables that follow from it.

Standard library only: the stacks import it as `pipeline_scripts.dataset`, the pipeline scripts as `dataset`
(it sits beside them in both images, the processing jobs and the register Lambda's bundle).

The block names the target, the problem type and the features in the order requests carry them (CSV
without a header, as data capture records them):

    {"target": "rings", "problem_type": "regression",
     "features": [{"name": "sex", "type": "categorical"}, {"name": "length", "type": "numeric"}],
     "id_columns": [], "positive_class": null, "classes": null}

Labels and categories compare after `canonical_value`: stripped, and a number written one way, so 2 and
2.0 are one class. Binary labels: with `positive_class` null they must be 0/1 or true/false (any case),
1 and true being positive; with `positive_class` set, that label is positive and the one other label in
the data is negative. Multiclass `classes` null means the sorted distinct labels of the training data;
either way preprocessing writes the order into the model's feature spec, which serving answers in.

    python pipeline_scripts/dataset.py --data file.csv [--target column]    (make schema DATA=... TARGET=...)

drafts a block from a CSV with a header row, for review before it goes into cdk.json.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import itertools
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBLEM_TYPES = ("regression", "binary", "multiclass")
FEATURE_TYPES = ("numeric", "categorical")
KEYS = ("target", "problem_type", "features", "id_columns", "positive_class", "classes")
REQUIRED_KEYS = ("target", "problem_type", "features")
FEATURE_KEYS = ("name", "type")
# With positive_class null, the labels a binary dataset may hold (after canonical_value, lower-cased).
NEGATIVE_LABELS = ("0", "false")
POSITIVE_LABELS = ("1", "true")

# SageMaker's model-quality report shapes ("Model quality metrics", SageMaker Developer Guide): the key the
# evaluation report puts its metrics under, each metric an object with a "value".
REPORT_KEYS = {
    "regression": "regression_metrics",
    "binary": "binary_classification_metrics",
    "multiclass": "multiclass_classification_metrics",
}
MIN, MAX = "min", "max"
# The metrics a quality gate may compare, each with the direction in which it is better.
GATE_METRICS = {
    "regression": {"mse": MIN, "rmse": MIN, "mae": MIN, "r2": MAX},
    "binary": {"auc": MAX, "accuracy": MAX, "f1": MAX, "logloss": MIN},
    "multiclass": {"accuracy": MAX, "weighted_f1": MAX, "logloss": MIN},
}
# Metrics that are fractions: a threshold outside [0, 1] could never or would always pass.
_FRACTIONS = ("auc", "accuracy", "f1", "weighted_f1")

# What train.py prints for each channel, `<channel>:<metric>=<value>`, for the training job's metric definitions.
TRAINING_METRICS = {
    "regression": ("rmse", "mse"),
    "binary": ("logloss", "auc", "accuracy"),
    "multiclass": ("logloss", "accuracy"),
}
# The tuner ranks jobs by the validation metric LightGBM's early stopping watched in each of them.
_TUNER_METRICS = {"regression": "rmse", "binary": "logloss", "multiclass": "logloss"}

# SageMaker's DataProcessing filters are JSONPath strings of at most 63 characters (CreateTransformJob API).
MAX_FILTER_LENGTH = 63
# make schema: a numeric target with at most this many distinct integer values is drafted as classes.
DRAFT_MAX_CLASSES = 10
DRAFT_MAX_ROWS = 100_000

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Integers beyond 2**53 are not exact as floats: such codes keep their text, so two of them never merge.
_EXACT_INTEGERS = 2**53


class DatasetError(ValueError):
    """A dataset value is wrong: `key` (e.g. dataset.features[3].type), the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key} = {value!r} is invalid: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


def canonical_value(text: str) -> str:
    """A label or category as compared: stripped, and a number written one way ('2', '2.0' and '2e0' are '2')."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return text
    number = float(text)
    if number.is_integer():
        return str(int(number)) if abs(number) < _EXACT_INTEGERS else text
    return repr(number)


def is_number(text: str) -> bool:
    """A finite number as preprocessing and serving read one (no 'nan' or 'inf', which are not measurements)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@dataclass(frozen=True)
class Feature:
    name: str
    type: str


@dataclass(frozen=True)
class TunerObjective:
    """The tuner's objective: the metric as train.py prints it on the validation channel, and the regex reading it."""

    metric_name: str
    objective_type: str
    regex: str


def metric_line(channel: str, metric: str, value: float) -> str:
    return f"{channel}:{metric}={value:.6f}"


def metric_regex(channel: str, metric: str) -> str:
    return f"{channel}:{metric}=([0-9.]+)"


def metric_definitions(problem_type: str) -> list[dict[str, str]]:
    """Every metric train.py prints, as a training job's MetricDefinitions."""
    return [
        {"Name": f"{channel}:{metric}", "Regex": metric_regex(channel, metric)}
        for channel in ("train", "validation")
        for metric in TRAINING_METRICS[_problem_type(problem_type)]
    ]


def tuner_objective(problem_type: str) -> TunerObjective:
    metric = _TUNER_METRICS[_problem_type(problem_type)]
    direction = "Maximize" if GATE_METRICS[problem_type].get(metric) == MAX else "Minimize"
    return TunerObjective(f"validation:{metric}", direction, metric_regex("validation", metric))


def report_key(problem_type: str) -> str:
    return REPORT_KEYS[_problem_type(problem_type)]


def metric_json_path(problem_type: str, metric: str) -> str:
    """Where evaluation.json holds a metric's value, for the pipeline's JsonGet."""
    if metric not in GATE_METRICS[_problem_type(problem_type)]:
        raise DatasetError("metric", metric, f"{problem_type} metrics are {', '.join(GATE_METRICS[problem_type])}")
    return f"{REPORT_KEYS[problem_type]}.{metric}.value"


def _problem_type(problem_type: str) -> str:
    if problem_type not in PROBLEM_TYPES:
        raise DatasetError("problem_type", problem_type, f"must be one of {', '.join(PROBLEM_TYPES)}")
    return problem_type


@dataclass(frozen=True)
class QualityGate:
    """A model registers only if its test metric is on the right side of the threshold (<= for min, >= for max)."""

    problem_type: str
    metric: str
    threshold: float

    @classmethod
    def from_dict(cls, raw: Any, problem_type: str, key: str = "training.quality_gate") -> QualityGate:
        r = _Reader(raw, key, ("metric", "threshold"))
        metrics = GATE_METRICS[_problem_type(problem_type)]
        metric = r.required("metric")
        if metric not in metrics:
            raise DatasetError(r.key("metric"), metric, f"a {problem_type} dataset is gated on one of {', '.join(metrics)}")
        threshold = r.required("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise DatasetError(r.key("threshold"), threshold, "must be a finite number")
        if metric in _FRACTIONS and not 0 <= threshold <= 1:
            raise DatasetError(r.key("threshold"), threshold, f"{metric} lies between 0 and 1")
        if metrics[metric] == MIN and threshold < 0:
            raise DatasetError(r.key("threshold"), threshold, f"{metric} is never negative")
        r.done()
        return cls(problem_type, metric, float(threshold))

    @property
    def direction(self) -> str:
        return GATE_METRICS[self.problem_type][self.metric]

    @property
    def json_path(self) -> str:
        return metric_json_path(self.problem_type, self.metric)

    def passed(self, value: float) -> bool:
        return value <= self.threshold if self.direction == MIN else value >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "threshold": self.threshold}


class _Reader:
    """One JSON object of the block, knowing its key for messages, refusing keys it was not asked for."""

    def __init__(self, raw: Any, key: str, keys: tuple[str, ...]) -> None:
        if not isinstance(raw, Mapping):
            raise DatasetError(key, raw, f"must be an object with {', '.join(keys)}")
        self._raw, self._key, self._keys = raw, key, keys

    def key(self, name: str) -> str:
        return f"{self._key}.{name}"

    def required(self, name: str) -> Any:
        if name not in self._raw:
            strangers = [k for k in self._raw if isinstance(k, str) and k not in self._keys]
            typo = difflib.get_close_matches(name, strangers, n=1)
            raise DatasetError(self.key(name), None, "is required" + (f"; is {typo[0]!r} a misspelling of it?" if typo else ""))
        return self._raw[name]

    def optional(self, name: str) -> Any:
        return self._raw.get(name)

    def done(self) -> None:
        unknown = [k for k in self._raw if k not in self._keys]
        if unknown:
            meant = difflib.get_close_matches(str(unknown[0]), self._keys, n=1)
            hint = f"did you mean {meant[0]!r}?" if meant else f"expected {', '.join(self._keys)}"
            raise DatasetError(self.key(str(unknown[0])), self._raw[unknown[0]], f"unknown key; {hint}")


def _name(value: Any, key: str, what: str = "a column name") -> str:
    """A column name or label: it is a CSV field of requests and answers, so one line without commas."""
    if not isinstance(value, str) or not value:
        raise DatasetError(key, value, f"must be {what}: a non-empty string")
    if "," in value or "\n" in value or "\r" in value:
        raise DatasetError(key, value, f"must be {what} without commas or line breaks (it is a CSV field)")
    if value != value.strip():
        raise DatasetError(key, value, f"must be {what} without leading or trailing spaces")
    return value


def _label(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DatasetError(key, value, "must be a label as the data writes it: a string or an integer")
    return canonical_value(_name(str(value), key, "a label"))


@dataclass(frozen=True)
class Dataset:
    target: str
    problem_type: str
    features: tuple[Feature, ...]
    id_columns: tuple[str, ...] = ()
    positive_class: str | None = None
    classes: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, raw: Any, key: str = "dataset") -> Dataset:
        r = _Reader(raw, key, KEYS)
        target = _name(r.required("target"), r.key("target"))
        problem_type = r.required("problem_type")
        if problem_type not in PROBLEM_TYPES:
            raise DatasetError(r.key("problem_type"), problem_type, f"must be one of {', '.join(PROBLEM_TYPES)}")
        raw_features = r.required("features")
        if not isinstance(raw_features, list) or not raw_features:
            raise DatasetError(r.key("features"), raw_features, 'must be a non-empty list of {"name": ..., "type": ...}')
        features = tuple(_feature(item, f"{key}.features[{i}]") for i, item in enumerate(raw_features))
        raw_ids = r.optional("id_columns")
        if raw_ids is None:
            raw_ids = []
        if not isinstance(raw_ids, list):
            raise DatasetError(r.key("id_columns"), raw_ids, "must be a list of column names")
        id_columns = tuple(_name(name, f"{key}.id_columns[{i}]") for i, name in enumerate(raw_ids))
        _unique_names(key, target, features, id_columns)
        positive_class = r.optional("positive_class")
        if positive_class is not None:
            if problem_type != "binary":
                raise DatasetError(r.key("positive_class"), positive_class, "applies to binary datasets only; set it to null")
            positive_class = _label(positive_class, r.key("positive_class"))
        classes = _classes(r.optional("classes"), r.key("classes"), problem_type)
        r.done()
        if problem_type == "multiclass" and id_columns and classes is None:
            raise DatasetError(
                r.key("classes"),
                None,
                "a multiclass dataset with id_columns lists its classes: batch transform's OutputFilter picks the "
                "id columns and the prediction fields by position, so their count must be known before training",
            )
        dataset = cls(target, problem_type, features, id_columns, positive_class, classes)
        if id_columns:
            dataset.batch_data_processing(key)
        return dataset

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "problem_type": self.problem_type,
            "features": [{"name": f.name, "type": f.type} for f in self.features],
            "id_columns": list(self.id_columns),
            "positive_class": self.positive_class,
            "classes": None if self.classes is None else list(self.classes),
        }

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.type == "categorical")

    @property
    def captured_columns(self) -> tuple[str, ...]:
        """A request's record as the endpoint receives it, data capture records it and the data-quality baseline
        describes it: the features in order, no target, no id columns (Model Monitor names them _c0, _c1, ...)."""
        return self.feature_names

    @property
    def batch_input_columns(self) -> tuple[str, ...]:
        """A batch input record (headerless CSV): the id columns, then the features."""
        return self.id_columns + self.feature_names

    def prediction_fields(self, classes: Sequence[str] | None = None) -> tuple[str, ...]:
        """The fields of one CSV answer: value; probability (of the positive class), label; or each class's
        probability in class order, then label. `classes` is the model's, for a multiclass block without them."""
        if self.problem_type == "regression":
            return ("value",)
        if self.problem_type == "binary":
            return ("probability", "label")
        order = self.classes if classes is None else tuple(classes)
        if order is None:
            raise DatasetError("classes", None, "a multiclass answer has one probability per class; pass the model's classes")
        return (*(f"probability_{c}" for c in order), "label")

    def is_positive(self, label: str) -> bool | None:
        """Whether a binary label (after canonical_value) is the positive class; None for a label the block does not
        know. With positive_class set, every other label is negative: preprocessing checks the data holds only one."""
        if self.positive_class is not None:
            return label == self.positive_class
        spelled = label.lower()
        return True if spelled in POSITIVE_LABELS else False if spelled in NEGATIVE_LABELS else None

    def batch_output_columns(self, classes: Sequence[str] | None = None) -> tuple[str, ...]:
        """A batch output record: the id columns passed through, then the prediction fields."""
        return self.id_columns + self.prediction_fields(classes)

    def batch_data_processing(self, key: str = "dataset") -> dict[str, str]:
        """SageMaker batch transform's DataProcessing for the same layout as batch_predict.py writes.

        The model gets the features ($[ids:]); with JoinSource Input a CSV output row is the input row followed
        by the answer ("Associate Prediction Results with Input Records", SageMaker Developer Guide), of which
        OutputFilter keeps the id columns and the answer, by index.
        """
        ids = len(self.id_columns)
        if not ids:
            return {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$"}
        answer_start = ids + len(self.features)
        indexes = [*range(ids), *range(answer_start, answer_start + len(self.prediction_fields()))]
        output_filter = f"$[{','.join(map(str, indexes))}]"
        if len(output_filter) > MAX_FILTER_LENGTH:
            raise DatasetError(
                f"{key}.id_columns",
                list(self.id_columns),
                f"batch transform's OutputFilter for these columns would be {len(output_filter)} characters, over "
                f"SageMaker's {MAX_FILTER_LENGTH}; use fewer id columns (or classes)",
            )
        return {"InputFilter": f"$[{ids}:]", "JoinSource": "Input", "OutputFilter": output_filter}

    @property
    def report_key(self) -> str:
        return REPORT_KEYS[self.problem_type]

    @property
    def tuner_objective(self) -> TunerObjective:
        return tuner_objective(self.problem_type)

    @property
    def metric_definitions(self) -> list[dict[str, str]]:
        return metric_definitions(self.problem_type)


def _feature(raw: Any, key: str) -> Feature:
    r = _Reader(raw, key, FEATURE_KEYS)
    name = _name(r.required("name"), r.key("name"))
    kind = r.required("type")
    if kind not in FEATURE_TYPES:
        raise DatasetError(r.key("type"), kind, f"must be one of {', '.join(FEATURE_TYPES)}")
    r.done()
    return Feature(name, kind)


def _unique_names(key: str, target: str, features: tuple[Feature, ...], id_columns: tuple[str, ...]) -> None:
    seen: dict[str, str] = {}
    for name, where in (
        *((f.name, f"{key}.features[{i}].name") for i, f in enumerate(features)),
        *((n, f"{key}.id_columns[{i}]") for i, n in enumerate(id_columns)),
    ):
        if name in seen:
            raise DatasetError(where, name, f"duplicates {seen[name]}; every column has one role")
        seen[name] = where
    if target in seen:
        raise DatasetError(f"{key}.target", target, f"is also {seen[target]}; the target is neither a feature nor an id column")


def _classes(raw: Any, key: str, problem_type: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if problem_type != "multiclass":
        raise DatasetError(key, raw, "applies to multiclass datasets only; set it to null")
    if not isinstance(raw, list) or len(raw) < 2:
        raise DatasetError(key, raw, "must list at least two labels, or be null for the training data's own")
    classes: list[str] = []
    for i, value in enumerate(raw):
        label = _label(value, f"{key}[{i}]")
        if label in classes:
            raise DatasetError(f"{key}[{i}]", value, f"duplicates {key}[{classes.index(label)}]")
        classes.append(label)
    return tuple(classes)


def _number_sort_key(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order (2 before 10), then words in text order."""
    return (0, float(label), "") if is_number(label) else (1, 0.0, label)


def sorted_labels(labels: Iterable[str]) -> list[str]:
    return sorted(set(labels), key=_number_sort_key)


def draft(header: Sequence[str], rows: Iterable[Sequence[str]], target: str | None = None) -> Dataset:
    """A Dataset for a CSV with this header: a column whose every value is a number is numeric, any other
    categorical; an `id` or `*_id` column whose values are all distinct is an id column. The target (the last
    column unless named) decides the problem type: two labels binary, a few integers or any text multiclass,
    other numbers regression. A first draft for review, not a decision."""
    names = [name.strip() for name in header]
    if target is None:
        target = names[-1] if names else ""
    if target not in names:
        raise DatasetError("target", target, f"is not a column of the header ({', '.join(names)})")
    columns: list[list[str]] = [[] for _ in names]
    for row in rows:
        for values, field in zip(columns, row, strict=False):
            values.append(field.strip())
    by_name = dict(zip(names, columns, strict=True))
    labels = [canonical_value(v) for v in by_name[target] if v]
    if not labels:
        raise DatasetError("target", target, "has no values in the data; name the column to predict")
    features, id_columns = [], []
    for name, values in by_name.items():
        if name == target:
            continue
        present = [v for v in values if v]
        if (name.lower() == "id" or name.lower().endswith("_id")) and len(set(present)) == len(values):
            id_columns.append(name)
        else:
            features.append({"name": name, "type": "numeric" if all(is_number(v) for v in present) else "categorical"})
    block: dict[str, Any] = {"target": target, "features": features, "id_columns": id_columns}
    block.update(_draft_problem(labels, bool(id_columns)))
    return Dataset.from_dict(block)


def _draft_problem(labels: list[str], has_ids: bool) -> dict[str, Any]:
    counts = Counter(labels)
    numeric = all(is_number(label) for label in counts)
    if len(counts) == 2:
        if {label.lower() for label in counts} in ({"0", "1"}, {"false", "true"}):
            return {"problem_type": "binary", "positive_class": None}
        # The rarer label is usually the one to find; the user reviews this.
        positive = min(sorted_labels(counts), key=lambda label: (counts[label], label))
        return {"problem_type": "binary", "positive_class": positive}
    integral = numeric and all(float(label).is_integer() for label in counts)
    if not numeric or (integral and len(counts) <= DRAFT_MAX_CLASSES):
        return {"problem_type": "multiclass", "classes": sorted_labels(counts) if has_ids else None}
    return {"problem_type": "regression"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draft cdk.json's dataset block from a CSV with a header row.")
    parser.add_argument("--data", type=Path, required=True, help="a CSV file whose first row names its columns")
    parser.add_argument("--target", help="the column to predict (default: the last one)")
    args = parser.parse_args(argv)
    try:
        text = args.data.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        print(f"schema error: {args.data}: cannot read it as UTF-8 text ({error})", file=sys.stderr)
        return 1
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((row for row in reader if any(field.strip() for field in row)), None)
    if header is None:
        print(f"schema error: {args.data} is empty; expected a header row and data rows", file=sys.stderr)
        return 1
    rows = itertools.islice((row for row in reader if any(field.strip() for field in row)), DRAFT_MAX_ROWS)
    try:
        dataset = draft(header, rows, args.target)
    except DatasetError as error:
        print(f"schema error: {args.data}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(dataset.to_dict(), indent=2))
    print(
        f"Review the types and the problem type ({dataset.problem_type}, from {dataset.target!r}), then put this object "
        "in cdk.json as context.mlops.dataset and set each environment's training.quality_gate to one of "
        f"{', '.join(GATE_METRICS[dataset.problem_type])}.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
