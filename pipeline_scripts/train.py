"""SageMaker training script: LightGBM regression with early stopping on the validation channel.

Follows the training contract: channels under <base>/input/data/<channel> (or SM_CHANNEL_<NAME>),
hyperparameters as command-line arguments and from <base>/input/config/hyperparameters.json (what a
bring-your-own container receives), the model to SM_MODEL_DIR (<base>/model), a failure reason to
<base>/output/failure. The final metrics are printed as `<channel>:<metric>=<value>` lines, which the
training job's metric definitions and the tuner's objective parse.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
from utf8_text import NotUtf8, read_utf8

from inference import ModelError, read_feature_spec

METRIC_LINE = "{channel}:{metric}={value:.6f}"
MODEL_FILE = "model.txt"
FEATURES_FILE = "features.json"


class TrainingError(Exception):
    """Bad training input; the message names the channel or file and what was expected."""


def channel_dir(base: Path, name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", base / "input" / "data" / name))


def load_channel(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """All CSVs of one channel: target first, no header."""
    if not path.is_dir():
        raise TrainingError(f"channel '{name}' not found at {path}; expected CSV files there (or set SM_CHANNEL_{name.upper()})")
    files = sorted(p for p in path.glob("*.csv"))
    if not files:
        raise TrainingError(f"channel '{name}' at {path} holds no .csv files")
    blocks = []
    for file in files:
        try:
            block = np.loadtxt(io.StringIO(read_utf8(file)), delimiter=",", dtype=np.float64, ndmin=2)
        except NotUtf8 as error:
            raise TrainingError(str(error)) from None
        except ValueError as error:
            raise TrainingError(f"{file}: not a numeric CSV with the target first and no header ({error})") from None
        if block.size == 0:
            raise TrainingError(f"{file}: the file is empty")
        blocks.append(block)
    widths = {b.shape[1] for b in blocks}
    if len(widths) != 1:
        raise TrainingError(f"channel '{name}': files have different column counts {sorted(widths)}")
    data = np.vstack(blocks)
    return data[:, 1:], data[:, 0]


def channel_features(path: Path, name: str, width: int) -> list[str]:
    """The features of the channel's spec, read as serving reads the model's copy; they must be its columns."""
    spec = path / FEATURES_FILE
    if not spec.is_file():
        raise TrainingError(
            f"channel '{name}' has no {FEATURES_FILE} ({spec} is missing); preprocessing writes it next to the CSVs, "
            "and serving cannot load a model without it"
        )
    try:
        features = read_feature_spec(spec)[1]
    except ModelError as error:
        raise TrainingError(str(error)) from None
    if len(features) != width:
        raise TrainingError(f"{spec} lists {len(features)} features but channel '{name}' has {width} feature columns")
    return features


def parse_hyperparameters(argv: list[str], hyperparameters_file: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="LightGBM regression under the SageMaker training contract")
    parser.add_argument("--objective", choices=("regression", "poisson", "huber"), default="regression")
    parser.add_argument("--num_leaves", type=int, default=15)
    parser.add_argument("--learning_rate", type=float, default=0.03)
    parser.add_argument("--num_boost_round", type=int, default=3000)
    parser.add_argument("--early_stopping_rounds", type=int, default=100)
    parser.add_argument("--min_data_in_leaf", type=int, default=20)
    parser.add_argument("--feature_fraction", type=float, default=0.9)
    parser.add_argument("--bagging_fraction", type=float, default=0.8)
    parser.add_argument("--bagging_freq", type=int, default=1)
    parser.add_argument("--lambda_l2", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    from_file = []
    if hyperparameters_file.is_file():
        for key, value in json.loads(hyperparameters_file.read_text()).items():
            if not key.startswith("sagemaker_") and not key.startswith("_"):
                from_file += [f"--{key}", str(value).strip('"')]
    if argv[:1] == ["train"]:
        argv = argv[1:]
    return parser.parse_args(from_file + argv)


def train(params: argparse.Namespace, base: Path, model_dir: Path) -> dict:
    train_dir, valid_dir = channel_dir(base, "train"), channel_dir(base, "validation")
    x_train, y_train = load_channel(train_dir, "train")
    x_valid, y_valid = load_channel(valid_dir, "validation")
    if x_train.shape[1] != x_valid.shape[1]:
        raise TrainingError(f"train has {x_train.shape[1]} feature columns but validation has {x_valid.shape[1]}")
    if channel_features(train_dir, "train", x_train.shape[1]) != channel_features(valid_dir, "validation", x_valid.shape[1]):
        raise TrainingError(
            f"{valid_dir / FEATURES_FILE} lists other features than {train_dir / FEATURES_FILE}; "
            "give both channels the output of one preprocessing run"
        )
    lgb_params = {
        "objective": params.objective,
        "metric": "rmse",
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
    train_set = lgb.Dataset(x_train, y_train)
    valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set)
    booster = lgb.train(
        lgb_params,
        train_set,
        num_boost_round=params.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE), num_iteration=booster.best_iteration)
    shutil.copy(train_dir / FEATURES_FILE, model_dir / FEATURES_FILE)
    metrics = {}
    for channel, x, y in (("train", x_train, y_train), ("validation", x_valid, y_valid)):
        mse = float(np.mean((booster.predict(x, num_iteration=booster.best_iteration) - y) ** 2))
        metrics[channel] = {"mse": mse, "rmse": mse**0.5}
    metrics["best_iteration"] = booster.best_iteration
    return metrics


def main(argv=None) -> int:
    base = Path(os.environ.get("SM_BASE_DIR", "/opt/ml"))
    model_dir = Path(os.environ.get("SM_MODEL_DIR", base / "model"))
    params = parse_hyperparameters(sys.argv[1:] if argv is None else argv, base / "input" / "config" / "hyperparameters.json")
    try:
        metrics = train(params, base, model_dir)
    except TrainingError as error:
        message = f"training error: {error}"
        print(message, file=sys.stderr)
        failure = base / "output" / "failure"
        if failure.parent.is_dir() and os.access(failure.parent, os.W_OK):
            failure.write_text(message)
        return 1
    for channel in ("train", "validation"):
        for metric in ("rmse", "mse"):
            print(METRIC_LINE.format(channel=channel, metric=metric, value=metrics[channel][metric]))
    print(f"best_iteration={metrics['best_iteration']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
