"""SageMaker training script: LightGBM for the dataset's problem type, with early stopping on the validation channel.

The channels are preprocess.py's splits: the target first, then the features (an empty field is missing), no header,
and features.json, the spec the model is served with. The spec's dataset block decides the objective: regression
(early stopping on rmse), binary (binary logloss) or multiclass (multiclass logloss over the spec's classes);
categorical features are LightGBM's own (categorical_feature), coded by the spec's levels, NaN for a missing or
unseen category (features.py). Follows the training contract: channels under <base>/input/data/<channel> (or SM_CHANNEL_<NAME>),
hyperparameters as command-line arguments and from <base>/input/config/hyperparameters.json (what a
bring-your-own container receives), the model to SM_MODEL_DIR (<base>/model), a failure reason to
<base>/output/failure. The final metrics, dataset.TRAINING_METRICS of the problem type, are printed as
dataset.metric_line `<channel>:<metric>=<value>` lines, which the training job's metric definitions and the tuner's
objective (dataset.metric_definitions, dataset.tuner_objective) parse.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
from utf8_text import NotUtf8, read_utf8

from dataset import TRAINING_METRICS, metric_line
from features import FEATURES_FILE, FeatureSpec, SpecError
from inference import MODEL_FILE
from metrics import report

# LightGBM's objective and the metric early stopping watches, per problem type.
OBJECTIVES = {
    "regression": ("regression", "rmse"),
    "binary": ("binary", "binary_logloss"),
    "multiclass": ("multiclass", "multi_logloss"),
}


class TrainingError(Exception):
    """Bad training input; the message names the channel or file and what was expected."""


def channel_dir(base: Path, name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", base / "input" / "data" / name))


def read_numeric_csv(file: Path) -> np.ndarray:
    """Rows of numbers, a finite target first, no header, an empty feature field missing (NaN); a bad value is named
    by its row and column (from 1)."""
    try:
        text = read_utf8(file)
    except NotUtf8 as error:
        raise TrainingError(str(error)) from None
    rows: list[list[float]] = []
    for row, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if rows and len(fields) != len(rows[0]):
            raise TrainingError(f"{file}: row {row} has {len(fields)} fields, the rows before it {len(rows[0])}")
        values = []
        for column, field in enumerate(fields, start=1):
            if column > 1 and not field.strip():
                values.append(math.nan)
                continue
            try:
                value = float(field)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise TrainingError(
                    f"{file}: row {row} column {column}: {field!r} is not a finite number; "
                    "expected numbers (a feature may be empty), the target first and no header"
                )
            values.append(value)
        rows.append(values)
    if not rows:
        raise TrainingError(f"{file}: the file is empty")
    return np.array(rows, dtype=np.float64)


def load_channel(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """All CSVs of one channel: target first, no header."""
    if not path.is_dir():
        raise TrainingError(f"channel '{name}' not found at {path}; expected CSV files there (or set SM_CHANNEL_{name.upper()})")
    files = sorted(p for p in path.glob("*.csv"))
    if not files:
        raise TrainingError(f"channel '{name}' at {path} holds no .csv files")
    blocks = [read_numeric_csv(file) for file in files]
    widths = {b.shape[1] for b in blocks}
    if len(widths) != 1:
        raise TrainingError(f"channel '{name}': files have different column counts {sorted(widths)}")
    data = np.vstack(blocks)
    return data[:, 1:], data[:, 0]


def channel_spec(path: Path, name: str, width: int) -> FeatureSpec:
    """The channel's feature spec, read as serving reads the model's copy; its features must be the channel's columns."""
    spec = path / FEATURES_FILE
    if not spec.is_file():
        raise TrainingError(
            f"channel '{name}' has no {FEATURES_FILE} ({spec} is missing); preprocessing writes it next to the CSVs, "
            "and serving cannot load a model without it"
        )
    try:
        features = FeatureSpec.read(spec)
    except SpecError as error:
        raise TrainingError(str(error)) from None
    if len(features.dataset.features) != width:
        raise TrainingError(
            f"{spec} lists {len(features.dataset.features)} features but channel '{name}' has {width} feature columns"
        )
    return features


def check_target(y: np.ndarray, spec: FeatureSpec, name: str) -> None:
    """A classification target is a class index of the spec's classes (preprocessing writes it so)."""
    if spec.classes is None:
        return
    bad = (y != np.round(y)) | (y < 0) | (y >= len(spec.classes))
    if bad.any():
        row = int(np.argmax(bad)) + 1
        raise TrainingError(
            f"channel '{name}' row {row}: target {y[row - 1]!r} is not a class index of the spec's "
            f"{len(spec.classes)} classes (0 to {len(spec.classes) - 1}); rerun preprocessing"
        )


class _HyperparameterParser(argparse.ArgumentParser):
    """A bad hyperparameter ends as a TrainingError, which reaches the failure file like any other, in one line."""

    def error(self, message: str):
        raise TrainingError(f"hyperparameters: {message}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer of at least 1")
    return value


def parse_hyperparameters(argv: list[str], hyperparameters_file: Path) -> argparse.Namespace:
    parser = _HyperparameterParser(description="LightGBM under the SageMaker training contract")
    parser.add_argument("--num_leaves", type=int, default=15)
    parser.add_argument("--learning_rate", type=_finite, default=0.03)
    parser.add_argument("--num_boost_round", type=_at_least_one, default=3000)
    parser.add_argument("--early_stopping_rounds", type=int, default=100)
    parser.add_argument("--min_data_in_leaf", type=int, default=20)
    parser.add_argument("--feature_fraction", type=_finite, default=0.9)
    parser.add_argument("--bagging_fraction", type=_finite, default=0.8)
    parser.add_argument("--bagging_freq", type=int, default=1)
    parser.add_argument("--lambda_l2", type=_finite, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    from_file = []
    if hyperparameters_file.is_file():
        try:
            values = json.loads(read_utf8(hyperparameters_file))
        except (NotUtf8, json.JSONDecodeError) as error:
            raise TrainingError(
                f"{hyperparameters_file} is not JSON ({error}); SageMaker writes the job's hyperparameters there"
            ) from None
        if not isinstance(values, dict):
            raise TrainingError(f"{hyperparameters_file} must hold a JSON object of hyperparameters, got {type(values).__name__}")
        for key, value in values.items():
            if not key.startswith("sagemaker_") and not key.startswith("_"):
                from_file += [f"--{key}", str(value).strip('"')]
    if argv[:1] == ["train"]:
        argv = argv[1:]
    return parser.parse_args(from_file + argv)


# LightGBM's parameter checks read "Check failed: (num_leaves) > (1) at <source file>, line <n> ."
_LIGHTGBM_CHECK = re.compile(r"Check failed: \((?P<name>\w+)\) (?P<op>\S+) \((?P<bound>[^)]*)\)")


def _lightgbm_reason(error: Exception, params: argparse.Namespace) -> str:
    text = str(error).strip()
    check = _LIGHTGBM_CHECK.search(text)
    if check and hasattr(params, check["name"]):
        name = check["name"]
        return (
            f"hyperparameter {name} = {getattr(params, name)} is invalid: LightGBM requires {name} {check['op']} {check['bound']}"
        )
    return f"LightGBM cannot train: {text.split(' at ')[0]}"


@contextlib.contextmanager
def _native_errors_held():
    """LightGBM's C++ code prints '[LightGBM] [Fatal] <reason>' to file descriptor 2 before raising the same reason.

    The reason reaches stderr once, as the training error; anything else written meanwhile is passed on.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            os.write(2, "".join(line for line in lines if line.strip() and not line.startswith("[LightGBM] [Fatal]")).encode())


def train(params: argparse.Namespace, base: Path, model_dir: Path) -> dict:
    train_dir, valid_dir = channel_dir(base, "train"), channel_dir(base, "validation")
    x_train, y_train = load_channel(train_dir, "train")
    x_valid, y_valid = load_channel(valid_dir, "validation")
    if x_train.shape[1] != x_valid.shape[1]:
        raise TrainingError(f"train has {x_train.shape[1]} feature columns but validation has {x_valid.shape[1]}")
    spec = channel_spec(train_dir, "train", x_train.shape[1])
    if spec != channel_spec(valid_dir, "validation", x_valid.shape[1]):
        raise TrainingError(
            f"{valid_dir / FEATURES_FILE} lists other features than {train_dir / FEATURES_FILE}; "
            "give both channels the output of one preprocessing run"
        )
    check_target(y_train, spec, "train")
    check_target(y_valid, spec, "validation")
    # LightGBM splits a node only when both sides keep min_data_in_leaf rows; with fewer, it fits a constant.
    if len(y_train) < 2 * params.min_data_in_leaf:
        rows = f"{len(y_train)} row" + ("s" if len(y_train) != 1 else "")
        raise TrainingError(
            f"channel 'train' has {rows}; LightGBM needs at least 2 x min_data_in_leaf = {2 * params.min_data_in_leaf} "
            "to split, so give it more rows or a smaller --min_data_in_leaf"
        )
    problem_type = spec.dataset.problem_type
    objective, stopping_metric = OBJECTIVES[problem_type]
    lgb_params = {
        "objective": objective,
        "metric": stopping_metric,
        **({"num_class": len(spec.classes)} if problem_type == "multiclass" else {}),
        "verbosity": -1,
        "seed": params.seed,
        "deterministic": True,
        "num_leaves": params.num_leaves,
        "learning_rate": params.learning_rate,
        "min_data_in_leaf": params.min_data_in_leaf,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": params.bagging_freq,
        "lambda_l2": params.lambda_l2,
    }
    try:
        with _native_errors_held():
            columns = {"feature_name": list(spec.dataset.feature_names), "categorical_feature": spec.categorical_indexes}
            train_set = lgb.Dataset(x_train, y_train, **columns)
            valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set, **columns)
            booster = lgb.train(
                lgb_params,
                train_set,
                num_boost_round=params.num_boost_round,
                valid_sets=[valid_set],
                valid_names=["validation"],
                callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
            )
    except lgb.basic.LightGBMError as error:
        raise TrainingError(_lightgbm_reason(error, params)) from None
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE), num_iteration=booster.best_iteration)
    shutil.copy(train_dir / FEATURES_FILE, model_dir / FEATURES_FILE)
    metrics = {"problem_type": problem_type, "best_iteration": booster.best_iteration}
    for channel, x, y in (("train", x_train, y_train), ("validation", x_valid, y_valid)):
        predicted = booster.predict(x, num_iteration=booster.best_iteration)
        (values,) = report(problem_type, y, predicted, spec.classes).values()
        metrics[channel] = {metric: values[metric]["value"] for metric in TRAINING_METRICS[problem_type]}
    return metrics


def main(argv=None) -> int:
    base = Path(os.environ.get("SM_BASE_DIR", "/opt/ml"))
    model_dir = Path(os.environ.get("SM_MODEL_DIR", base / "model"))
    try:
        params = parse_hyperparameters(sys.argv[1:] if argv is None else argv, base / "input" / "config" / "hyperparameters.json")
        metrics = train(params, base, model_dir)
    except TrainingError as error:
        message = f"training error: {error}"
        print(message, file=sys.stderr)
        failure = base / "output" / "failure"
        if failure.parent.is_dir() and os.access(failure.parent, os.W_OK):
            failure.write_text(message)
        return 1
    for channel in ("train", "validation"):
        for metric, value in metrics[channel].items():
            # An undefined metric ("NaN": AUC of a channel holding one class) is left out, as the regex could not read it.
            if value != "NaN":
                print(metric_line(channel, metric, value))
    print(f"best_iteration={metrics['best_iteration']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
