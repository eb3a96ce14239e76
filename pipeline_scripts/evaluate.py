"""SageMaker Processing script: score the trained model on the held-out test set.

Reads <base>/processing/model/model.tar.gz (the training job's artifact) and the test CSVs under
<base>/processing/test (target first, no header), and writes
<base>/processing/evaluation/evaluation.json in the Model Registry's regression-metrics shape, which
the pipeline's condition step reads through a PropertyFile. The labelled held-out sample preprocessing
wrote (<base>/processing/holdout/holdout.csv) is copied next to the report, where the system test of
an environment that serves this model finds it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from inference import Model, ModelError
from train import TrainingError, load_channel


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    errors = predicted - actual
    squared, absolute = errors**2, np.abs(errors)
    total = float(np.sum((actual - actual.mean()) ** 2))
    mse = float(squared.mean())
    return {
        "mse": {"value": mse, "standard_deviation": float(squared.std())},
        "rmse": {"value": mse**0.5},
        "mae": {"value": float(absolute.mean()), "standard_deviation": float(absolute.std())},
        "r2": {"value": 1.0 - float(squared.sum()) / total if total > 0 else 0.0},
    }


def extract_model(archive: Path, destination: Path) -> Path:
    if not archive.is_file():
        raise TrainingError(f"{archive} not found; expected the training job's model.tar.gz")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TrainingError(f"{archive} is not a readable model.tar.gz ({error}); rerun the training step") from None
    return destination


def main(argv=None) -> int:
    base = Path(os.environ.get("SM_BASE_DIR", "/opt/ml"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-archive", type=Path, default=base / "processing" / "model" / "model.tar.gz")
    parser.add_argument("--test-dir", type=Path, default=base / "processing" / "test")
    parser.add_argument("--output-dir", type=Path, default=base / "processing" / "evaluation")
    parser.add_argument("--holdout-file", type=Path, default=base / "processing" / "holdout" / "holdout.csv")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            model = Model(extract_model(args.model_archive, Path(scratch)))
            features, actual = load_channel(args.test_dir, "test")
            if features.shape[1] != len(model.features):
                raise TrainingError(f"test set has {features.shape[1]} feature columns; the model expects {len(model.features)}")
            report = {"regression_metrics": regression_metrics(actual, model.predict(features))}
            if not args.holdout_file.is_file():
                raise TrainingError(f"{args.holdout_file} not found; expected preprocessing's held-out sample")
    except (TrainingError, ModelError) as error:
        print(f"evaluation error: {error}", file=sys.stderr)
        return 1
    args.output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.holdout_file, args.output_dir / args.holdout_file.name)
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
