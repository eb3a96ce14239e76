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

import lambda_runtime
from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from aws_strict import Assembly, strict_validation

from stacks.synth.application import build_app
from stacks.synth.config import load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
# The Lambdas import `common` (bundled beside each handler); so do the tests that run them.
sys.path.insert(0, str(REPO_ROOT / "lambdas"))

from common import aws as common_aws
from common.contracts import SETTINGS_VARIABLE, DeployerSettings, PipelineSettings
from common.names import ResourceNames

# What the suite reads from cdk.json, so that no test depends on the project name or the environments' names:
# renaming the project or adding an environment needs `make snapshots` and nothing else.
_MLOPS = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["mlops"]
PROJECT = _MLOPS["project_name"]
# The environments cdk.json defines: adding one there adds it to every per-environment test.
ENVIRONMENTS = tuple(_MLOPS["environments"])


def _first_environment(production: bool) -> str | None:
    return next((name for name, block in _MLOPS["environments"].items() if block.get("production") is production), None)


# The reference environments: the first non-production and the first production one in cdk.json (None when it has
# none of that kind). Tests that need one of each kind and find one missing build their own context (reference_context).
def _made_up_environment(kind: str) -> str:
    return next(name for name in (f"{kind}{n}" for n in range(len(ENVIRONMENTS) + 1)) if name not in ENVIRONMENTS)


# The reference environments: the first non-production and the first production one in cdk.json, or a made-up name
# for a kind cdk.json lacks. Tests that need one of each kind use reference_context() or reference_synthesized, which
# add such a made-up environment; the `synthesized` app is cdk.json's, as the snapshots record it.
NONPRODUCTION = _first_environment(False) or _made_up_environment("nonproduction")
PRODUCTION = _first_environment(True) or _made_up_environment("production")
# The names every resource of a reference environment gets: tests derive the names they expect from these.
NONPRODUCTION_NAMES = ResourceNames(PROJECT, NONPRODUCTION)
PRODUCTION_NAMES = ResourceNames(PROJECT, PRODUCTION)
# A valid environment name that cdk.json does not define, whichever environments a user adds.
UNKNOWN_ENVIRONMENT = next(name for name in (f"undefined{n}" for n in range(len(ENVIRONMENTS) + 1)) if name not in ENVIRONMENTS)


def make_dry_run(*args: str) -> list[str]:
    """The commands `make -n` would run, without the MAKEFLAGS of a `make test` this suite may run under."""
    import subprocess

    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", *args], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def cdk_context() -> dict:
    """A fresh copy of the context in cdk.json, for tests that change it."""
    return copy.deepcopy(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])


def reference_context() -> dict:
    """cdk_context() with both reference environments: a kind cdk.json lacks is added as `{"production": ...}`."""
    context = cdk_context()
    environments = context["mlops"]["environments"]
    environments.setdefault(NONPRODUCTION, {"production": False})
    environments.setdefault(PRODUCTION, {"production": True})
    return context


# The validated configuration of cdk.json plus any reference environment it lacks: what tests expect values from.
CONFIG = load_config(reference_context()["mlops"])


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


# The environments the per-environment template tests run for (the `environment` fixture): one of each kind, as
# the two kinds differ in their defaults (retention, approval, capacity, ...), and every expected value is read from
# the configuration of the environment under test. The other environments are covered by the whole-template checks.
REFERENCE_ENVIRONMENTS = tuple(name for name in (NONPRODUCTION, PRODUCTION) if name in ENVIRONMENTS)


@pytest.fixture(scope="session")
def reference_synthesized(synthesized, tmp_path_factory) -> SynthesizedApp:
    """An app with both reference environments: cdk.json's when it has both kinds, else one of reference_context()."""
    if NONPRODUCTION in ENVIRONMENTS and PRODUCTION in ENVIRONMENTS:
        return synthesized
    return synthesize(reference_context(), tmp_path_factory.mktemp("cdk.out.reference"))


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
# The context object a handler gets, as the Python runtime builds it: Powertools' inject_lambda_context reads it.
LAMBDA_CONTEXT = lambda_runtime.Context(
    {
        "function_name": "function-under-test",
        "invoked_function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:function-under-test",
        "memory_limit_in_mb": 256,
        "aws_request_id": "6f1b3c1e-8d8a-4c1e-9a55-2f7c0f6f5a10",
        "log_group_name": "/aws/lambda/function-under-test",
    },
    deadline=float(10**9),  # never near: no test runs out of time
)


@pytest.fixture(scope="session")
def assemblies(synthesized) -> dict[str, Assembly]:
    """Each environment's cloud assembly, with intrinsics resolved to concrete values."""
    return {name: Assembly(synthesized.outdir / f"assembly-{name}") for name in ENVIRONMENTS}


def function_properties(assembly: Assembly, description_start: str) -> tuple[str, dict]:
    """The stack and properties of the one Lambda function whose description starts with `description_start`."""
    ((stack, resource),) = [
        (s, r)
        for s, _, r in assembly.resources("AWS::Lambda::Function")
        if str(r["Properties"].get("Description", "")).startswith(description_start)
    ]
    return stack, resource["Properties"]


def function_asset(synthesized: SynthesizedApp, assembly: Assembly, description_start: str) -> Path:
    """The bundled code directory of that function, exactly as it is uploaded."""
    _, function = function_properties(assembly, description_start)
    (asset,) = synthesized.outdir.rglob(f"asset.{function['Code']['S3Key'].removesuffix('.zip')}")
    return asset


REGISTER_FUNCTION = "Defines the SageMaker Pipelines"


def template_pipeline_settings(assembly: Assembly) -> PipelineSettings:
    """What the registration custom resource gives register_pipelines, read from the synthesized template."""
    ((stack, _, resource),) = assembly.resources("Custom::SageMakerPipelines")
    return PipelineSettings.from_json(assembly.resolve(stack, resource["Properties"]["Settings"]), "Settings")


def template_deployer_settings(assembly: Assembly) -> DeployerSettings:
    """What the stack gives deploy_endpoint in its SETTINGS variable, read from the synthesized template."""
    stack, function = function_properties(assembly, "Approved model package")
    return DeployerSettings.from_json(assembly.resolve(stack, function["Environment"]["Variables"][SETTINGS_VARIABLE]))


@pytest.fixture(scope="session")
def reference_assemblies(reference_synthesized) -> dict[str, Assembly]:
    """Both reference environments' cloud assemblies (cdk.json's when it has both kinds)."""
    return {name: Assembly(reference_synthesized.outdir / f"assembly-{name}") for name in (NONPRODUCTION, PRODUCTION)}


@pytest.fixture(scope="session")
def pipeline_settings(reference_assemblies) -> PipelineSettings:
    """The reference non-production environment's registration settings, as its template gives them."""
    return template_pipeline_settings(reference_assemblies[NONPRODUCTION])


@pytest.fixture(scope="session")
def pipeline_definitions(synthesized, assemblies) -> dict[str, tuple[PipelineSettings, dict[str, dict]]]:
    """Each environment's settings and both pipeline definitions (as SageMaker receives them), built once against moto.

    The scripts come from the synthesized asset: the SDK hashes and packs every file of the directory,
    so a checkout's __pycache__ would change the definitions.
    """
    import boto3
    from moto import mock_aws

    register = load_lambda("register_pipelines")
    scripts = sys.modules["bundled_scripts"]
    built = {}
    with mock_aws():
        original = scripts.BUNDLED_SCRIPTS
        try:
            session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
            for name, assembly in assemblies.items():
                scripts.BUNDLED_SCRIPTS = function_asset(synthesized, assembly, REGISTER_FUNCTION) / "pipeline_scripts"
                settings = template_pipeline_settings(assembly)
                for bucket in (settings.raw_data_bucket, settings.features_bucket, settings.artifacts_bucket):
                    session.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
                pipelines = register.build_pipelines(settings, boto_session=session)
                built[name] = (settings, {k: json.loads(p.definition()) for k, p in pipelines.items()})
        finally:
            scripts.BUNDLED_SCRIPTS = original
    return built


def approved_package(sagemaker, settings: PipelineSettings) -> str:
    """A package as the training pipeline registers it (its model, image and data-quality baseline), Approved."""
    run = f"s3://{settings.artifacts_bucket}/{settings.training_pipeline_name}"
    return sagemaker.create_model_package(
        ModelPackageGroupName=settings.model_package_group_name,
        ModelApprovalStatus="Approved",
        DriftCheckBaselines={
            "ModelDataQuality": {
                kind: {"ContentType": "application/json", "S3Uri": f"{run}/execution/data-quality-baseline/{kind.lower()}.json"}
                for kind in ("Statistics", "Constraints")
            }
        },
        InferenceSpecification={
            "Containers": [{"Image": settings.inference_image_uri, "ModelDataUrl": f"{run}/models/job/output/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def custom_resource_event(request_type: str, resource_type: str, logical_id: str, settings, **extra) -> dict:
    """Shaped like the Provider framework's onEvent request: CloudFormation's custom resource request plus
    ServiceToken, with the settings in the `Settings` property as the stack writes them."""
    return {
        "RequestType": request_type,
        "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:provider",
        "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/x",
        "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{NONPRODUCTION}-Pipelines/1",
        "RequestId": "r-1",
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceProperties": {"Settings": json.dumps(settings.to_dict())},
        **extra,
    }


def settings_environment(settings) -> dict[str, str]:
    """A function's environment for `settings`, as the stack writes it."""
    return {"AWS_REGION": REGION, SETTINGS_VARIABLE: json.dumps(settings.to_dict()), "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}


@pytest.fixture
def aws(monkeypatch):
    """moto in place of AWS, with fake credentials and no real endpoint reachable."""
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    common_aws.forget_clients()
    with mock_aws():
        yield
    common_aws.forget_clients()
