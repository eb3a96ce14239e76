"""Shared fixtures: the app from cdk.json is synthesized once per test session."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from stacks.app import build_app  # noqa: E402
from stacks.config import load_config  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "prod")


def cdk_context() -> dict:
    """A fresh copy of the context in cdk.json, for tests that change it."""
    return copy.deepcopy(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])


@dataclass
class SynthesizedApp:
    app: App
    outdir: Path
    stages: dict

    def stack(self, environment: str, name: str) -> Stack:
        return getattr(self.stages[environment], name)

    def template(self, environment: str, name: str) -> Template:
        return Template.from_stack(self.stack(environment, name))

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("assembly-*/*.template.json"))


def synthesize(context: dict, outdir: Path) -> SynthesizedApp:
    app = App(context=context, outdir=str(outdir))
    stages = build_app(app, load_config(context["mlops"]))
    app.synth()
    return SynthesizedApp(app=app, outdir=outdir, stages=stages)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> SynthesizedApp:
    return synthesize(cdk_context(), tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def environment(request) -> str:
    return request.param


def load_lambda(name: str):
    """Import lambdas/<name>/handler.py under a unique module name, with its folder importable."""
    directory = REPO_ROOT / "lambdas" / name
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    spec = importlib.util.spec_from_file_location(f"{name}_handler", directory / "handler.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


REGION = "eu-west-1"
ACCOUNT = "123456789012"


def pipeline_environment(**overrides: str) -> dict[str, str]:
    """The environment variables the pipelines stack gives the register Lambda, with test values."""
    env = {
        "AWS_REGION": REGION, "ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/execution",
        "KMS_KEY_ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "RAW_DATA_BUCKET": "raw-data", "FEATURES_BUCKET": "features", "ARTIFACTS_BUCKET": "artifacts",
        "RAW_DATA_PREFIX": "incoming/", "BATCH_INPUT_PREFIX": "batch-input/", "BATCH_OUTPUT_PREFIX": "batch-predictions/",
        "TRAINING_PIPELINE_NAME": "mlops-test-training", "BATCH_PIPELINE_NAME": "mlops-test-batch-prediction",
        "MODEL_PACKAGE_GROUP_NAME": "mlops-test",
        "TRAINING_IMAGE_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-test-training:1.0.0",
        "INFERENCE_IMAGE_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-test-inference:1.0.0",
        "RESOLVE_BATCH_INPUTS_FUNCTION_ARN": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:resolve-batch-inputs",
        "PROCESSING_INSTANCE_TYPE": "ml.m5.xlarge", "PROCESSING_INSTANCE_COUNT": "1",
        "TRAINING_INSTANCE_TYPE": "ml.m5.2xlarge", "TRAINING_INSTANCE_COUNT": "1",
        "TUNING_MAX_JOBS": "6", "TUNING_MAX_PARALLEL_JOBS": "3", "MSE_THRESHOLD": "5.5",
        "MODEL_APPROVAL_STATUS": "PendingManualApproval", "ENDPOINT_INSTANCE_TYPE": "ml.m5.large",
        "TRANSFORM_INSTANCE_TYPE": "ml.c5.xlarge", "TRANSFORM_INSTANCE_COUNT": "2", "PROCESSING_TIMEZONE": "Europe/Berlin",
        "PIPELINE_SCRIPTS_DIR": str(REPO_ROOT / "pipeline_scripts"), "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
    env.update(overrides)
    return env


@pytest.fixture
def aws(monkeypatch):
    """moto in place of AWS, with fake credentials and no real endpoint reachable."""
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield
