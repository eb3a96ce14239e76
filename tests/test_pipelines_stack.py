"""Template assertions for the layer, the pipeline Lambdas, the package group and the registration."""

from __future__ import annotations

import dataclasses
import json

from aws_cdk.assertions import Match

from conftest import load_lambda

load_lambda("register_pipelines")
from settings import PipelineSettings  # noqa: E402  (the register Lambda's own view of its environment)


def _functions(template) -> dict:
    return template.find_resources("AWS::Lambda::Function")


def _register_function(template) -> dict:
    return next(f for f in _functions(template).values() if f["Properties"].get("Layers"))


def test_layer_targets_the_functions_runtime_and_architecture(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    template.has_resource_properties("AWS::Lambda::LayerVersion", {
        "CompatibleRuntimes": ["python3.14"], "CompatibleArchitectures": ["arm64"],
    })
    for function in _functions(template).values():
        assert (function["Properties"]["Runtime"], function["Properties"]["Architectures"]) == ("python3.14", ["arm64"])


def test_every_variable_the_register_lambda_reads_is_set_by_the_stack(synthesized, environment):
    variables = _register_function(synthesized.template(environment, "pipelines"))["Properties"]["Environment"]["Variables"]
    expected = {f.name.upper() for f in dataclasses.fields(PipelineSettings) if f.name not in ("region", "scripts_dir")}
    assert set(variables) == expected | {"SAGEMAKER_SUPPRESS_V2_WARNING"}
    assert variables["TRAINING_PIPELINE_NAME"] == f"abalone-mlops-{environment}-training"
    assert variables["MODEL_APPROVAL_STATUS"] == {"dev": "Approved", "prod": "PendingManualApproval"}[environment]
    assert variables["TUNING_MAX_JOBS"] == {"dev": "4", "prod": "20"}[environment]


def test_image_uris_point_at_this_environments_repositories(synthesized, environment):
    variables = _register_function(synthesized.template(environment, "pipelines"))["Properties"]["Environment"]["Variables"]
    joined = json.dumps(variables["TRAINING_IMAGE_URI"])
    assert f"/abalone-mlops-{environment}-training:1.0.0" in joined and '"Ref": "AWS::AccountId"' in joined


def test_functions_run_as_the_shared_role_and_log_to_their_own_group(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    roles = template.find_resources("AWS::IAM::Role")
    assert len(roles) == 1
    role_id = next(iter(roles))
    for function in _functions(template).values():
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}
        assert function["Properties"]["LoggingConfig"]["LogFormat"] == "JSON"
    retention = {"dev": 14, "prod": 365}[environment]
    groups = template.find_resources("AWS::Logs::LogGroup")
    assert len(groups) == 2 and all(g["Properties"]["RetentionInDays"] == retention for g in groups.values())


def test_shared_role_trusts_sagemaker_and_lambda_and_uses_no_aws_managed_policy(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    role = next(iter(template.find_resources("AWS::IAM::Role").values()))["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    principals = set(statement["Principal"]["Service"])
    assert principals == {"sagemaker.amazonaws.com", "lambda.amazonaws.com"}
    assert len(role["ManagedPolicyArns"]) == 1 and "arn:aws:iam::aws:policy" not in json.dumps(role["ManagedPolicyArns"])
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([{
        "Action": "iam:PassRole", "Effect": "Allow", "Resource": Match.any_value(),
        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    }])}})


def test_role_may_manage_only_this_environments_pipelines(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    statements = [s for p in template.find_resources("AWS::IAM::Policy").values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    pipeline = next(s for s in statements if "sagemaker:CreatePipeline" in s["Action"])
    resources = json.dumps(pipeline["Resource"])
    assert f":pipeline/abalone-mlops-{environment}-training" in resources
    assert f":pipeline/abalone-mlops-{environment}-batch-prediction" in resources and "pipeline/*" not in resources


def test_model_package_group_follows_the_retention_policy(synthesized):
    for environment, policy in (("dev", "Delete"), ("prod", "Retain")):
        groups = synthesized.template(environment, "pipelines").find_resources("AWS::SageMaker::ModelPackageGroup")
        (group,) = groups.values()
        assert group["Properties"]["ModelPackageGroupName"] == f"abalone-mlops-{environment}"
        assert group["DeletionPolicy"] == policy


def test_registration_runs_the_register_lambda_when_code_layer_or_settings_change(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    (registration,) = template.find_resources("Custom::SageMakerPipelines").values()
    register_id = next(k for k, f in _functions(template).items() if f["Properties"].get("Layers"))
    properties = registration["Properties"]
    assert properties["ServiceToken"] == {"Fn::GetAtt": [register_id, "Arn"]}
    assert len(properties["DefinitionHash"]) == 64 and len(properties["LayerHash"]) == 64
    variables = _functions(template)[register_id]["Properties"]["Environment"]["Variables"]
    assert properties["Settings"] == {k: v for k, v in variables.items() if k != "SAGEMAKER_SUPPRESS_V2_WARNING"}
    group_id = next(iter(template.find_resources("AWS::SageMaker::ModelPackageGroup")))
    assert group_id in registration["DependsOn"]


def test_lambda_asset_holds_the_handler_and_the_pipeline_scripts(synthesized):
    template = synthesized.template("dev", "pipelines")
    function = _register_function(template)
    asset = synthesized.outdir / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    names = {p.relative_to(asset).as_posix() for p in asset.rglob("*.py")}
    assert {"handler.py", "settings.py", "training_pipeline.py", "batch_pipeline.py",
            "pipeline_scripts/preprocess.py", "pipeline_scripts/evaluate.py", "pipeline_scripts/inference.py"} <= names
    assert not [p for p in asset.rglob("__pycache__")]
