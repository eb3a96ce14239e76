"""SageMaker Processing script: score the trained model on the held-out test set.

Reads <base>/processing/model/model.tar.gz (the training job's artifact) and the test split under
<base>/processing/test (preprocess.py's: target first, no header, and its preprocessing.json), and writes
<base>/processing/evaluation/evaluation.json in SageMaker's model-quality shape for the dataset's problem type
(metrics.py: regression_metrics, binary_classification_metrics or multiclass_classification_metrics, each metric
{"value": ...}, a confusion matrix for classification), which the pipeline's quality gate reads through a
PropertyFile (dataset.metric_json_path). Under "preprocessing" the report also holds preprocessing's counts: the
rows of each split, the rows dropped for a missing target and the columns ignored. Next to it, holdout.jsonl holds the
held-out sample preprocessing drew (<base>/processing/holdout/requests.csv) with this package's own
answers: one JSON object a line, {"request": <a text/csv request body>, "answer": <the text/csv body
the server answers it with>}, computed through the server's path (inference.py, as serve.py answers
Content-Type and Accept text/csv). The system test of an environment that serves this package sends
each request to the endpoint and expects the same answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

from inference import Model, ModelError, PayloadError
from metrics import report
from preprocess import REPORT_FILE
from train import TrainingError, check_target, load_channel

SAMPLE_FILE = "holdout.jsonl"


def extract_model(archive: Path, destination: Path) -> Path:
    if not archive.is_file():
        raise TrainingError(f"{archive} not found; expected the training job's model.tar.gz")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TrainingError(f"{archive} is not a readable model.tar.gz ({error}); rerun the training step") from None
    return destination


def offline_answers(model: Model, requests_file: Path) -> list[dict]:
    """Each sampled request with the answer this package gives it, one request at a time as the system test sends them."""
    if not requests_file.is_file():
        raise TrainingError(
            f"{requests_file} not found; expected the held-out sample preprocess.py writes, so run preprocessing first"
        )
    requests = [line for line in requests_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not requests:
        raise TrainingError(f"{requests_file} holds no records; rerun preprocessing")
    answers = []
    for number, request in enumerate(requests, start=1):
        try:
            answer = model.format_csv(model.predict_columns(model.read_csv(request)))
        except PayloadError as error:
            raise TrainingError(f"{requests_file} line {number}: {error}; rerun preprocessing") from None
        answers.append({"request": request, "answer": answer})
    return answers


def main(argv=None) -> int:
    base = Path(os.environ.get("SM_BASE_DIR", "/opt/ml"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-archive", type=Path, default=base / "processing" / "model" / "model.tar.gz")
    parser.add_argument("--test-dir", type=Path, default=base / "processing" / "test")
    parser.add_argument("--output-dir", type=Path, default=base / "processing" / "evaluation")
    parser.add_argument("--holdout-file", type=Path, default=base / "processing" / "holdout" / "requests.csv")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            model = Model(extract_model(args.model_archive, Path(scratch)))
            features, actual = load_channel(args.test_dir, "test")
            if features.shape[1] != len(model.columns):
                raise TrainingError(f"test set has {features.shape[1]} feature columns; the model expects {len(model.columns)}")
            check_target(actual, model.spec, "test")
            quality = report(model.dataset.problem_type, actual, model.predict(features), model.spec.classes)
            counts = args.test_dir / REPORT_FILE
            if counts.is_file():
                quality["preprocessing"] = json.loads(counts.read_text(encoding="utf-8"))
            sample = offline_answers(model, args.holdout_file)
    except (TrainingError, ModelError) as error:
        print(f"evaluation error: {error}", file=sys.stderr)
        return 1
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / SAMPLE_FILE).write_text("".join(json.dumps(pair) + "\n" for pair in sample))
    (args.output_dir / "evaluation.json").write_text(json.dumps(quality, indent=2))
    print(json.dumps(quality))
    return 0


if __name__ == "__main__":
    sys.exit(main())
