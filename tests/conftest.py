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

from aws_strict import strict_validation  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from stacks.app import build_app  # noqa: E402
from stacks.config import load_config  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
# The environments cdk.json defines: adding one there adds it to every per-environment test.
ENVIRONMENTS = tuple(json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["mlops"]["environments"])


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


@pytest.fixture(scope="session", autouse=True)
def strict_aws_requests():
    """Every botocore request in the suite is checked for enums, lengths, ranges and patterns, as AWS checks them."""
    with strict_validation():
        yield


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> SynthesizedApp:
    return synthesize(cdk_context(), tmp_path_factory.mktemp("cdk.out"))


# The shipped environments, whose expected values the template tests spell out.
REFERENCE_ENVIRONMENTS = ("dev", "prod")


@pytest.fixture(scope="session", params=REFERENCE_ENVIRONMENTS)
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


def pipeline_settings(**overrides) -> dict:
    """The settings object the pipelines stack gives the register Lambda, with test values."""
    settings = {
        "region": REGION, "pipeline_definition_role_arn": f"arn:aws:iam::{ACCOUNT}:role/definition",
        "pipeline_execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/execution", "job_role_arn": f"arn:aws:iam::{ACCOUNT}:role/job",
        "kms_key_arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "raw_data_bucket": "raw-data", "features_bucket": "features", "artifacts_bucket": "artifacts",
        "raw_data_prefix": "incoming/", "batch_input_prefix": "batch-input/", "batch_output_prefix": "batch-predictions/",
        "training_pipeline_name": "mlops-test-training", "batch_pipeline_name": "mlops-test-batch-prediction",
        "model_package_group_name": "mlops-test",
        "training_image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-test-training:1.0.0",
        "inference_image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-test-inference:1.0.0",
        "resolve_batch_inputs_function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:resolve-batch-inputs",
        "processing_instance_type": "ml.m5.xlarge", "processing_instance_count": 1,
        "training_instance_type": "ml.m5.2xlarge", "training_instance_count": 1,
        "tuning_max_jobs": 6, "tuning_max_parallel_jobs": 3, "mse_threshold": 5.5,
        "model_approval_status": "PendingManualApproval", "endpoint_instance_type": "ml.m5.large",
        "transform_instance_type": "ml.c5.xlarge", "transform_instance_count": 2, "processing_timezone": "Europe/Berlin",
    }
    settings.update(overrides)
    return settings


def pipeline_environment(**overrides) -> dict[str, str]:
    """The register Lambda's environment: its settings as one JSON variable."""
    return {"AWS_REGION": REGION, "SETTINGS": json.dumps(pipeline_settings(**overrides)), "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}


@pytest.fixture
def aws(monkeypatch):
    """moto in place of AWS, with fake credentials and no real endpoint reachable."""
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield
