"""Where things live in the artifacts bucket: the one layout the stacks grant on and the code writes and reads.

A training execution writes under `<training pipeline>/<execution id>/`; the endpoint's captured requests and
monitoring reports live under prefixes of their own, named after the endpoint. Standard library only.
"""

from __future__ import annotations

# The SageMaker SDK uploads the pipelines' scripts under this prefix (its default_bucket_prefix).
CODE = "code"
DATA_CAPTURE = "data-capture"
MONITORING = "monitoring"
# Under a training execution's prefix.
EVALUATION = "evaluation"
DATA_QUALITY_BASELINE = "data-quality-baseline"
MODELS = "models"
# Beside the evaluation report: the held-out sample with the package's own answers (pipeline_scripts/evaluate.py).
SAMPLE_FILE = "holdout.jsonl"
REPORT_FILE = "evaluation.json"
# Beside a day's batch predictions: the check of its input against the package's baseline.
BATCH_INPUT_CHECK = "data-quality"


DATASET_FILE = "dataset.json"


def dataset_file(training_pipeline: str, digest: str) -> str:
    """cdk.json's dataset block as the training pipeline's preprocessing reads it, beside the scripts."""
    return f"{CODE}/{training_pipeline}/dataset/{digest}/{DATASET_FILE}"


def execution_prefix(training_pipeline: str, execution_id: str) -> str:
    return f"{training_pipeline}/{execution_id}"


def models(training_pipeline: str) -> str:
    return f"{training_pipeline}/{MODELS}"


def data_capture(endpoint: str) -> str:
    return f"{DATA_CAPTURE}/{endpoint}"


def monitoring_reports(endpoint: str) -> str:
    return f"{MONITORING}/{endpoint}"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


# Key patterns the stacks grant on, for objects written under any execution.
BASELINES = f"*/{DATA_QUALITY_BASELINE}/"
SAMPLES = f"*/{EVALUATION}/{SAMPLE_FILE}"
