"""Template assertions for the layer, the pipeline Lambdas, the package group and the registration."""

from __future__ import annotations

import json

from conftest import CONFIG, NONPRODUCTION, PRODUCTION, PROJECT, template_pipeline_settings

from common.contracts import ImageBuildSettings
from common.names import ResourceNames
from stacks.synth.image_sources import build_source_files, image_tag


def _functions(template) -> dict:
    return template.find_resources("AWS::Lambda::Function")


def _register_function(template) -> dict:
    return next(f for f in _functions(template).values() if f["Properties"].get("Layers"))


def _own_functions(template) -> dict:
    """The project's functions, not the Provider framework's."""
    return {k: f for k, f in _functions(template).items() if "Providerframework" not in k}


def test_layer_targets_the_functions_runtime_and_architecture(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {
            "CompatibleRuntimes": ["python3.14"],
            "CompatibleArchitectures": ["arm64"],
        },
    )
    for function in _own_functions(template).values():
        assert (function["Properties"]["Runtime"], function["Properties"]["Architectures"]) == ("python3.14", ["arm64"])


def test_the_register_lambda_gets_its_settings_as_one_json_variable(synthesized, assemblies, environment):
    variables = _register_function(synthesized.template(environment, "pipelines"))["Properties"]["Environment"]["Variables"]
    assert set(variables) == {"SETTINGS", "SAGEMAKER_SUPPRESS_V2_WARNING"}
    settings = template_pipeline_settings(assemblies[environment])
    names = ResourceNames(PROJECT, environment)
    assert settings.training_pipeline_name == names.training_pipeline
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert settings.training_image_uri == f"{registry}/{names.training_repository}:{image_tag('training')}"
    assert settings.inference_image_uri == f"{registry}/{names.inference_repository}:{image_tag('inference')}"
    assert settings.training.model_approval_status == CONFIG.environment(environment).training.model_approval_status


def test_each_function_has_its_own_least_privilege_role_and_log_group(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    roles = {k.rstrip("0123456789ABCDEF"): r["Properties"] for k, r in template.find_resources("AWS::IAM::Role").items()}
    trust = {
        name: {
            p
            for st in r["AssumeRolePolicyDocument"]["Statement"]
            for p in ([st["Principal"]["Service"]] if isinstance(st["Principal"]["Service"], str) else st["Principal"]["Service"])
        }
        for name, r in roles.items()
    }
    assert trust["RolesJobRole"] == trust["RolesPipelineExecutionRole"] == {"sagemaker.amazonaws.com"}
    lambdas = ("RolesPipelineDefinitionRole", "ResolveBatchInputsRole", "CheckTrainingDataRole", "ImagesTriggerRole")
    assert all(trust[name] == {"lambda.amazonaws.com"} for name in lambdas)
    assert trust["ImagesProjectRole"] == {"codebuild.amazonaws.com"}
    assert "arn:aws:iam::aws:policy" not in json.dumps({k: v for k, v in roles.items() if "Providerframework" not in k})
    functions = _own_functions(template)
    assert len({json.dumps(f["Properties"]["Role"]) for f in functions.values()}) == 4
    for function in functions.values():
        assert function["Properties"]["LoggingConfig"]["LogFormat"] == "JSON"
    retention = CONFIG.environment(environment).storage.log_retention_days
    groups = template.find_resources("AWS::Logs::LogGroup")
    assert len(groups) == 9 and all(g["Properties"]["RetentionInDays"] == retention for g in groups.values())


def test_only_the_pipeline_execution_role_may_register_models(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    policies = template.find_resources("AWS::IAM::Policy")
    holders = [
        json.dumps(p["Properties"]["Roles"])
        for p in policies.values()
        if "sagemaker:CreateModelPackage" in json.dumps(p["Properties"]["PolicyDocument"])
    ]
    assert len(holders) == 1 and "PipelineExecutionRole" in holders[0]
    pipelines = [
        json.dumps(p["Properties"]["Roles"])
        for p in policies.values()
        if "sagemaker:CreatePipeline" in json.dumps(p["Properties"]["PolicyDocument"])
    ]
    assert len(pipelines) == 1 and "PipelineDefinitionRole" in pipelines[0]


def test_role_may_manage_only_this_environments_pipelines(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    statements = [
        s for p in template.find_resources("AWS::IAM::Policy").values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    pipeline = next(s for s in statements if "sagemaker:CreatePipeline" in s["Action"])
    resources = json.dumps(pipeline["Resource"])
    names = ResourceNames(PROJECT, environment)
    assert f":pipeline/{names.training_pipeline}" in resources
    assert f":pipeline/{names.batch_pipeline}" in resources and "pipeline/*" not in resources


def test_model_package_group_follows_the_retention_policy(reference_synthesized):
    for environment in (NONPRODUCTION, PRODUCTION):
        policy = "Retain" if CONFIG.environment(environment).storage.retain_data else "Delete"
        groups = reference_synthesized.template(environment, "pipelines").find_resources("AWS::SageMaker::ModelPackageGroup")
        (group,) = groups.values()
        assert group["Properties"]["ModelPackageGroupName"] == ResourceNames(PROJECT, environment).model_package_group
        assert group["DeletionPolicy"] == policy


def test_registration_runs_through_the_provider_framework_with_a_service_timeout(synthesized, environment):
    template = synthesized.template(environment, "pipelines")
    (registration,) = template.find_resources("Custom::SageMakerPipelines").values()
    properties = registration["Properties"]
    framework = next(k for k in _functions(template) if k.startswith("RegistrationProviderframeworkonEvent"))
    assert properties["ServiceToken"] == {"Fn::GetAtt": [framework, "Arn"]}
    assert properties["ServiceTimeout"] == "600"
    assert len(properties["DefinitionHash"]) == 64 and len(properties["LayerHash"]) == 64
    register = _register_function(template)["Properties"]
    assert properties["Settings"] == register["Environment"]["Variables"]["SETTINGS"]
    group_id = next(iter(template.find_resources("AWS::SageMaker::ModelPackageGroup")))
    assert group_id in registration["DependsOn"]


def test_the_resolver_bundles_time_zone_data(reference_synthesized):
    template = reference_synthesized.template(NONPRODUCTION, "pipelines")
    function = next(f for f in _own_functions(template).values() if not f["Properties"].get("Layers"))
    asset = reference_synthesized.outdir / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    assert (asset / "handler.py").is_file() and (asset / "tzdata" / "zoneinfo" / "Europe" / "Berlin").is_file()


def test_lambda_asset_holds_the_handler_and_the_pipeline_scripts(reference_synthesized):
    template = reference_synthesized.template(NONPRODUCTION, "pipelines")
    function = _register_function(template)
    asset = reference_synthesized.outdir / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    names = {p.relative_to(asset).as_posix() for p in asset.rglob("*.py")}
    assert {
        "handler.py",
        "bundled_scripts.py",
        "training_pipeline.py",
        "batch_pipeline.py",
        "common/contracts.py",
        "common/aws.py",
        "aws_lambda_powertools/logging/logger.py",
        "typing_extensions.py",
        "jmespath/parser.py",
        "pipeline_scripts/preprocess.py",
        "pipeline_scripts/evaluate.py",
        "pipeline_scripts/inference.py",
    } <= names
    assert not [p for p in asset.rglob("__pycache__")]


def test_images_are_built_privileged_encrypted_and_before_the_pipelines_are_registered(synthesized, assemblies, environment):
    template = synthesized.template(environment, "pipelines")
    (project,) = template.find_resources("AWS::CodeBuild::Project").values()
    properties = project["Properties"]
    assert properties["Environment"]["PrivilegedMode"] is True and properties["Environment"]["Type"] == "LINUX_CONTAINER"
    # The quota the build trigger names when CodeBuild refuses a build is the one of this project's compute type.
    ((stack, _, images),) = assemblies[environment].resources("Custom::ContainerImages")
    settings = ImageBuildSettings.from_json(assemblies[environment].resolve(stack, images["Properties"]["Settings"]), "x")
    size = {"BUILD_GENERAL1_SMALL": "Small", "BUILD_GENERAL1_MEDIUM": "Medium", "BUILD_GENERAL1_LARGE": "Large"}
    compute = size[properties["Environment"]["ComputeType"]]
    assert settings.build_quota == f"Concurrently running builds for Linux/{compute} environment"
    assert properties["EncryptionKey"] and properties["Source"]["Type"] == "S3"
    assert properties["Source"]["BuildSpec"] == "containers/buildspec.yml"
    groups = template.find_resources("AWS::Logs::LogGroup")
    log_group = properties["LogsConfig"]["CloudWatchLogs"]["GroupName"]["Ref"]
    assert groups[log_group]["Properties"]["RetentionInDays"] == CONFIG.environment(environment).storage.log_retention_days
    (images_id,) = template.find_resources("Custom::ContainerImages")
    (registration,) = template.find_resources("Custom::SageMakerPipelines").values()
    assert images_id in registration["DependsOn"]


def test_the_build_source_asset_is_exactly_the_build_files(reference_synthesized):
    template = reference_synthesized.template(NONPRODUCTION, "pipelines")
    (project,) = template.find_resources("AWS::CodeBuild::Project").values()
    key = json.dumps(project["Properties"]["Source"]["Location"]).split("/")[-1].split('"')[0]
    (asset,) = reference_synthesized.outdir.rglob(f"asset.{key.removesuffix('.zip')}")
    assert sorted(p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()) == list(build_source_files())
