"""Every role's synthesized policy against the calls made with it, and every pipeline step against the API model.

The calls are recorded from the handlers themselves (run against moto with the settings the
synthesized templates give them) or derived from the pipeline definitions, the way SageMaker
Pipelines starts each step. Each is checked with every resource the Service Authorization Reference
requires for its action; a call that is not allowed fails with role, action, resource and call.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime

import aws_events
import boto3
import pytest
from aws_strict import (
    ACCOUNT,
    REGION,
    Assembly,
    Call,
    Permission,
    denied,
    permissions_for,
    recording,
    service_side_calls,
    validate_request,
)
from botocore.awsrequest import AWSResponse
from conftest import (
    ENVIRONMENTS,
    REPO_ROOT,
    function_properties,
    load_lambda,
    settings_environment,
    template_deployer_settings,
    template_pipeline_settings,
)
from sagemaker_fakes import MonitoringSchedules

from common.contracts import ImageBuildSettings, RetrainingSettings

register = load_lambda("register_pipelines")
scripts_module = sys.modules["bundled_scripts"]
deployer_module = load_lambda("deploy_endpoint")
resolver_module = load_lambda("resolve_batch_inputs")
build_module = load_lambda("build_images")
check_module = load_lambda("check_training_data")
retrain_module = load_lambda("retrain_on_drift")
EXECUTION_ID = "a1b2c3d4e5f6"
# Roles that aws-cdk-lib creates for its own helpers, each with the code that uses it.
CDK_OWNED_ROLES = {
    "CustomS3AutoDeleteObjectsCustomResourceProviderRole": "aws-cdk-lib's auto-delete-objects handler (dev buckets)",
    "PipelineRegistrationProviderframeworkonEventServiceRole": "aws-cdk-lib's Provider framework; it invokes the register Lambda",
    "ImagesProviderframework": "aws-cdk-lib's Provider framework (onEvent, isComplete, onTimeout); it invokes the build trigger",
    "ImagesProviderwaiterstatemachineRole": "aws-cdk-lib's Provider framework waiter; it invokes the framework's functions",
}


def _role_statements(assembly: Assembly, role_arn: str) -> list[dict]:
    return assembly.role_statements(*assembly.role_logical_id(role_arn))


def _create_buckets(settings) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (settings.raw_data_bucket, settings.features_bucket, settings.artifacts_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})


def _assert_allowed(statements: list[dict], permissions: list[Permission], role: str) -> None:
    missing = denied(statements, permissions)
    assert not missing, f"role {role} is denied:\n  " + "\n  ".join(missing)


@pytest.fixture
def bundled_scripts(monkeypatch):
    monkeypatch.setattr(scripts_module, "BUNDLED_SCRIPTS", REPO_ROOT / "pipeline_scripts")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_pipeline_definition_role_allows_registration(assemblies, name, aws, bundled_scripts):
    assembly = assemblies[name]
    settings = template_pipeline_settings(assembly)
    _create_buckets(settings)
    statements = _role_statements(assembly, settings.pipeline_definition_role_arn)
    create = {"RequestType": "Create", "RequestId": "r-1", "ResourceProperties": {"Settings": json.dumps(settings.to_dict())}}
    with recording(enforce=statements) as calls:
        register.on_event(create, None)
        register.upsert(settings)
        register.on_event(
            {"RequestType": "Delete", "PhysicalResourceId": f"{settings.training_pipeline_name}|{settings.batch_pipeline_name}"},
            None,
        )
    operations = {c.operation for c in calls}
    assert {
        "CreatePipeline",
        "UpdatePipeline",
        "DeletePipeline",
        "PutObject",
        "ListObjectsV2",
        "StartPipelineExecution",
    } <= operations
    # The one denial the code is built to survive: boto3's Bucket.load catches AccessDenied from
    # ListBuckets (boto3/s3/inject.py, bucket_load), and the SDK then checks the bucket with ListObjectsV2.
    assert {c.operation for c in calls if c.context.get("denied")} == {"ListBuckets"}


def _package(sagemaker, group: str, image: str, model_data: str, baseline_uri: str = "s3://b/baseline") -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        DriftCheckBaselines={
            "ModelDataQuality": {
                kind: {"ContentType": "application/json", "S3Uri": f"{baseline_uri}/{kind.lower()}.json"}
                for kind in ("Statistics", "Constraints")
            }
        },
        InferenceSpecification={
            "Containers": [{"Image": image, "ModelDataUrl": model_data}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


@pytest.fixture
def accepted_updates(aws):
    """moto lacks UpdateEndpoint and monitoring schedules: botocore validates and records the calls, then they are
    answered as AWS would."""
    boto3.setup_default_session(region_name=REGION)
    ok = (AWSResponse(url=None, status_code=200, headers={}, raw=None), {"EndpointArn": "arn"})
    boto3.DEFAULT_SESSION.events.register("before-call.sagemaker.UpdateEndpoint", lambda **kw: ok)
    MonitoringSchedules().install(boto3.DEFAULT_SESSION.events)
    yield
    boto3.DEFAULT_SESSION = None


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_deployer_role_allows_create_update_autoscaling_and_pruning(assemblies, name, aws, monkeypatch, accepted_updates):
    assembly = assemblies[name]
    stack, function = function_properties(assembly, "Approved model package")
    for key, value in settings_environment(template_deployer_settings(assembly)).items():
        monkeypatch.setenv(key, value)
    deployer_module.settings.cache_clear()
    config = deployer_module.settings()
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=config.model_package_group_name)
    settings = template_pipeline_settings(assembly)
    model_data = f"s3://{settings.artifacts_bucket}/{settings.training_pipeline_name}/models/job/output/model.tar.gz"
    baseline_uri = f"s3://{settings.artifacts_bucket}/{settings.training_pipeline_name}/execution/data-quality-baseline"
    first = _package(sagemaker, config.model_package_group_name, settings.inference_image_uri, model_data, baseline_uri)
    second = _package(sagemaker, config.model_package_group_name, settings.inference_image_uri, model_data, baseline_uri)
    with recording() as calls:
        approval = aws_events.model_package_state_change(config.model_package_group_name, "Approved", version=1)
        assert approval["detail"]["ModelPackageArn"] == first
        assert deployer_module.handler(approval, None)["action"] == "created"
        in_service = deployer_module.handler(aws_events.endpoint_state_change(config.endpoint_name, "IN_SERVICE"), None)
        assert in_service["converge"]["action"] == "updated" and in_service["converge"]["model_package_arn"] == second
        # moto keeps the first config (the update is only recorded): the next InService event monitors what serves.
        monitored = deployer_module.handler(aws_events.endpoint_state_change(config.endpoint_name, "IN_SERVICE"), None)
        assert monitored["monitoring"]["action"] == "created"
        assert deployer_module.EndpointDeployer(config, sagemaker, None).monitor.remove("test")["action"] == "removed"
    deployer_module.settings.cache_clear()
    operations = {c.operation for c in calls}
    assert {"CreateEndpoint", "UpdateEndpoint", "RegisterScalableTarget", "PutScalingPolicy", "ListModelPackages"} <= operations
    assert {
        "CreateDataQualityJobDefinition",
        "CreateMonitoringSchedule",
        "DeleteMonitoringSchedule",
        "DescribeModel",
    } <= operations
    assert "DeleteDataQualityJobDefinition" in operations
    role_arn = assembly.resolve(stack, function["Role"])
    _assert_allowed(_role_statements(assembly, role_arn), permissions_for(calls + service_side_calls(calls)), "deployer")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_resolver_role_allows_resolution(assemblies, name, aws):
    assembly = assemblies[name]
    settings = template_pipeline_settings(assembly)
    _create_buckets(settings)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=settings.model_package_group_name)
    _package(sagemaker, settings.model_package_group_name, settings.inference_image_uri, "s3://b/model.tar.gz")
    event = {
        "model_package_group_name": settings.model_package_group_name,
        "timezone": settings.processing_timezone,
        "input_prefix_uri": f"s3://{settings.raw_data_bucket}/{settings.batch_prediction.input_prefix}",
        "output_prefix_uri": f"s3://{settings.artifacts_bucket}/{settings.batch_prediction.output_prefix}",
        "processing_date": "2026-11-23",
        "execution_id": EXECUTION_ID,
    }
    with recording() as calls:
        assert resolver_module.resolve(event, sagemaker, boto3.client("s3", region_name=REGION))["status"] == "no-data"
    stack, function = function_properties(assembly, "Batch pipeline step")
    _assert_allowed(_role_statements(assembly, assembly.resolve(stack, function["Role"])), permissions_for(calls), "resolver")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_training_data_check_role_allows_listing_the_raw_data(assemblies, name, aws):
    assembly = assemblies[name]
    settings = template_pipeline_settings(assembly)
    _create_buckets(settings)
    event = {"input_data_uri": f"s3://{settings.raw_data_bucket}/{settings.raw_data_prefix}", "execution_id": EXECUTION_ID}
    stack, function = function_properties(assembly, "Training pipeline step")
    statements = _role_statements(assembly, assembly.resolve(stack, function["Role"]))
    with recording(enforce=statements) as calls:
        assert check_module.check(event, boto3.client("s3", region_name=REGION))["status"] == "no-data"
    assert [c.operation for c in calls] == ["ListObjectsV2"] and not calls[0].context.get("denied")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_monitoring_job_role_allows_what_a_data_quality_job_does(assemblies, name):
    """A monitoring job reads the captured requests and the package's baseline, writes its report, publishes its
    metrics and logs, as the deployer's job definition tells it to (monitoring.py)."""
    assembly = assemblies[name]
    config = template_deployer_settings(assembly)
    settings = template_pipeline_settings(assembly)
    bucket = settings.artifacts_bucket
    capture = f"{config.data_capture_s3_uri[5:].partition('/')[2]}/AllTraffic/2026/11/23/02/capture-0001.jsonl"
    baseline = f"{settings.training_pipeline_name}/{EXECUTION_ID}/data-quality-baseline"
    reports = config.monitoring_reports_s3_uri
    assert reports and reports.startswith(f"s3://{bucket}/")
    report = f"{reports[5:].partition('/')[2]}/{config.monitoring_schedule_name}/2026/11/23/02/constraint_violations.json"
    calls = [
        Call(
            "s3",
            "ListObjectsV2",
            {"Bucket": bucket, "Prefix": capture.rsplit("/", 1)[0]},
            {"s3:prefix": capture.rsplit("/", 1)[0]},
        ),
        Call("s3", "GetObject", {"Bucket": bucket, "Key": capture}),
        *[Call("s3", "GetObject", {"Bucket": bucket, "Key": f"{baseline}/{f}.json"}) for f in ("statistics", "constraints")],
        Call("s3", "PutObject", {"Bucket": bucket, "Key": report}),
        *[Call("kms", op, {"KeyId": config.kms_key_arn}) for op in ("Decrypt", "GenerateDataKey")],
        Call(
            "cloudwatch",
            "PutMetricData",
            {"Namespace": "aws/sagemaker/Endpoints/data-metrics"},
            {"cloudwatch:namespace": "aws/sagemaker/Endpoints/data-metrics"},
        ),
        *[
            Call("logs", op, {"logGroupName": "/aws/sagemaker/ProcessingJobs", "logStreamName": "job/algo-1-1763863200"})
            for op in ("CreateLogStream", "PutLogEvents")
        ],
    ]
    statements = _role_statements(assembly, config.monitoring_role_arn)
    _assert_allowed(statements, permissions_for(calls), "monitoring job")
    elsewhere = [
        Call("s3", "GetObject", {"Bucket": bucket, "Key": "code/preprocess.py"}),
        Call("s3", "PutObject", {"Bucket": bucket, "Key": f"{baseline}/statistics.json"}),
        Call("cloudwatch", "PutMetricData", {"Namespace": "Custom"}, {"cloudwatch:namespace": "Custom"}),
    ]
    assert len(denied(statements, permissions_for(elsewhere))) == len(elsewhere)


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_retraining_role_allows_listing_and_starting_the_training_pipeline(assemblies, name, aws):
    assembly = assemblies[name]
    stack, function = function_properties(assembly, "Drift alarm")
    settings = RetrainingSettings.from_json(assembly.resolve(stack, function["Environment"]["Variables"]["SETTINGS"]))
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_pipeline(
        PipelineName=settings.training_pipeline_name,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=template_pipeline_settings(assembly).pipeline_execution_role_arn,
        ClientRequestToken="0" * 32,
    )
    statements = _role_statements(assembly, assembly.resolve(stack, function["Role"]))
    event = aws_events.cloudwatch_alarm_state_change(settings.drift_alarm_name, "ALARM")
    with recording(enforce=statements) as calls:
        result = retrain_module.retrain(event, settings, sagemaker, datetime.now(UTC))
    assert result["action"] == "started"
    assert [c.operation for c in calls] == ["ListPipelineExecutions", "StartPipelineExecution"]
    assert not any(c.context.get("denied") for c in calls)


def _image_build_settings(assembly: Assembly) -> ImageBuildSettings:
    ((stack, _, resource),) = assembly.resources("Custom::ContainerImages")
    return ImageBuildSettings.from_json(assembly.resolve(stack, resource["Properties"]["Settings"]), "Settings")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_image_build_trigger_role_allows_checking_tags_and_building(assemblies, name, aws):
    assembly = assemblies[name]
    settings = _image_build_settings(assembly)
    ecr = boto3.client("ecr", region_name=REGION)
    for repository in (settings.training_repository, settings.inference_repository):
        ecr.create_repository(repositoryName=repository)
    boto3.client("codebuild", region_name=REGION).create_project(
        name=settings.project_name,
        source={"type": "S3", "location": "assets/source.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_MEDIUM"},
        serviceRole=f"arn:aws:iam::{ACCOUNT}:role/build",
    )
    stack, function = function_properties(assembly, "Image builds on deploy: on event")
    statements = _role_statements(assembly, assembly.resolve(stack, function["Role"]))
    event = {"RequestType": "Create", "ResourceProperties": {"Settings": json.dumps(settings.to_dict())}}
    with recording(enforce=statements) as calls:
        started = build_module.on_event(event, None)
        build_module.is_complete({**event, **started}, None)
    assert [c.operation for c in calls] == ["DescribeImages", "DescribeImages", "StartBuild", "BatchGetBuilds"]
    assert not [c for c in calls if c.context.get("denied")]


def _docker_push(repository: str) -> list[Call]:
    """What `docker push` to ECR needs ("IAM permissions for pushing an image to an Amazon ECR private repository",
    Amazon ECR User Guide). The repository's KMS key is used through ECR's own grant, not the pusher's."""
    operations = (
        "BatchCheckLayerAvailability",
        "InitiateLayerUpload",
        "UploadLayerPart",
        "CompleteLayerUpload",
        "PutImage",
        "BatchGetImage",
    )
    return [Call("ecr", "GetAuthorizationToken", {})] + [Call("ecr", op, {"repositoryName": repository}) for op in operations]


# containers/build_images.sh logs in to ECR Public (public.ecr.aws) for the base images.
BASE_IMAGE_LOGIN = [Call("ecr-public", "GetAuthorizationToken", {})]


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_build_project_role_allows_reading_the_source_logging_pulling_and_pushing(assemblies, name):
    assembly = assemblies[name]
    settings = _image_build_settings(assembly)
    ((stack, _, project),) = assembly.resources("AWS::CodeBuild::Project")
    properties = project["Properties"]
    bucket, key = assembly.resolve(stack, properties["Source"]["Location"]).split("/", 1)
    log_group = assembly.resolve(stack, properties["LogsConfig"]["CloudWatchLogs"]["GroupName"])
    calls = [
        Call("s3", "GetObject", {"Bucket": bucket, "Key": key}),
        Call("logs", "CreateLogStream", {"logGroupName": log_group, "logStreamName": "build-1"}),
        Call("logs", "PutLogEvents", {"logGroupName": log_group, "logStreamName": "build-1"}),
        *BASE_IMAGE_LOGIN,
        *_docker_push(settings.training_repository),
        *_docker_push(settings.inference_repository),
    ]
    role_arn = assembly.resolve(stack, properties["ServiceRole"])
    permissions = permissions_for(calls + service_side_calls(calls))
    assert {p.action for p in permissions} >= {"ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"}
    _assert_allowed(_role_statements(assembly, role_arn), permissions, "image build project")


# --- pipeline definitions: steps as SageMaker Pipelines starts them ---------------------------------------

STEP_OPERATIONS = {
    "Processing": ("CreateProcessingJob", "ProcessingJobName", "DescribeProcessingJob"),
    "Tuning": ("CreateHyperParameterTuningJob", "HyperParameterTuningJobName", "DescribeHyperParameterTuningJob"),
    "Transform": ("CreateTransformJob", "TransformJobName", "DescribeTransformJob"),
    "Model": ("CreateModel", "ModelName", "DescribeModel"),
    "RegisterModel": ("CreateModelPackage", None, "DescribeModelPackage"),
    # A QualityCheck step runs Model Monitor's analyzer as a processing job; its arguments are that job's request.
    "QualityCheck": ("CreateProcessingJob", "ProcessingJobName", "DescribeProcessingJob"),
}


class Definition:
    """One pipeline definition with its placeholders made concrete, as one execution would see them."""

    def __init__(self, definition: dict, settings) -> None:
        self.settings = settings
        self.parameters = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
        self.steps: dict[str, dict] = {}
        self._flatten(definition["Steps"])

    def _flatten(self, steps: list[dict]) -> None:
        for step in steps:
            self.steps[step["Name"]] = step
            self._flatten(step.get("Arguments", {}).get("IfSteps", []) + step.get("Arguments", {}).get("ElseSteps", []))

    def job_name(self, step: str, limit: int = 63) -> str:
        return f"pipelines-{EXECUTION_ID}-{re.sub('[^A-Za-z0-9]', '', step)}"[:limit]

    def get(self, path: str):
        s = self.settings
        if path.startswith("Parameters."):
            return self.parameters[path.split(".", 1)[1]]
        if path == "Execution.PipelineExecutionId":
            return EXECUTION_ID
        output = re.fullmatch(r"Steps\.([\w-]+)\.ProcessingOutputConfig\.Outputs\['(\w+)'\]\.S3Output\.S3Uri", path)
        if output:
            outputs = self.steps[output[1]]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            return self.concrete(next(o for o in outputs if o["OutputName"] == output[2])["S3Output"]["S3Uri"])
        if re.fullmatch(r"Steps\.[\w-]+\.TrainingJobSummaries\[0\]\.TrainingJobName", path):
            return f"{self.job_name('TuneLightGBM')}-001-0a1b2c3d"
        if re.fullmatch(r"Steps\.[\w-]+\.ModelName", path):
            return self.job_name(path.split(".")[1])
        baseline = re.fullmatch(r"Steps\.([\w-]+)\.(CalculatedBaseline|BaselineUsedForDriftCheck)(Statistics|Constraints)", path)
        if baseline:
            # The analyzer writes statistics.json and constraints.json to the check's output path.
            (output,) = self.steps[baseline[1]]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            return f"{self.concrete(output['S3Output']['S3Uri'])}/{baseline[3].lower()}.json"
        lambda_output = re.fullmatch(r"Steps\.[\w-]+\.OutputParameters\['(\w+)'\]", path)
        if lambda_output:
            return {
                "image_uri": s.inference_image_uri,
                "status": "ready",
                "message": "ready",
                "model_data_url": f"s3://{s.artifacts_bucket}/{s.training_pipeline_name}/models/job/output/model.tar.gz",
                "model_package_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{s.model_package_group_name}/1",
                "input_uri": f"s3://{s.raw_data_bucket}/{s.batch_prediction.input_prefix}2026-11-23/",
                "output_uri": f"s3://{s.artifacts_bucket}/{s.batch_prediction.output_prefix}2026-11-23/",
            }[lambda_output[1]]
        raise AssertionError(f"no concrete value for {path}; teach Definition.get what SageMaker resolves it to")

    def concrete(self, value):
        if isinstance(value, list):
            return [self.concrete(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Get"}:
            return self.get(value["Get"])
        if set(value) == {"Std:Join"}:
            return value["Std:Join"]["On"].join(str(self.concrete(v)) for v in value["Std:Join"]["Values"])
        return {k: self.concrete(v) for k, v in value.items()}

    def requests(self) -> list[tuple[str, str, dict]]:
        """(step, operation, request) for every step that SageMaker turns into an API call."""
        result = []
        for name, step in self.steps.items():
            if step["Type"] not in STEP_OPERATIONS:
                continue
            operation, name_member, _ = STEP_OPERATIONS[step["Type"]]
            request = self.concrete(step["Arguments"])
            if name_member:
                request[name_member] = self.job_name(name, 32 if step["Type"] == "Tuning" else 63)
            result.append((name, operation, request))
        return result


@pytest.fixture(scope="module")
def definitions(pipeline_definitions):
    return {
        name: (settings, {k: Definition(d, settings) for k, d in built.items()})
        for name, (settings, built) in pipeline_definitions.items()
    }


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_pipeline_step_is_a_valid_request(definitions, name):
    """SageMaker validates each step's request when the step starts; botocore's model says what it accepts."""
    _, pipelines = definitions[name]
    problems = {
        f"{pipeline}/{step} {operation}": errors
        for pipeline, definition in pipelines.items()
        for step, operation, request in definition.requests()
        if (errors := validate_request("sagemaker", operation, request))
    }
    assert not problems, json.dumps(problems, indent=1)


def _objects(uri: str) -> str:
    return f"{uri.rstrip('/')}/part-0000"


def _s3_read(uri: str) -> list[Call]:
    bucket, _, key = uri[5:].partition("/")
    return [
        Call("s3", "GetObject", {"Bucket": bucket, "Key": _objects(key) if not key.endswith((".gz", ".json")) else key}),
        Call("s3", "ListObjectsV2", {"Bucket": bucket, "Prefix": key}),
    ]


def _s3_write(uri: str) -> list[Call]:
    bucket, _, key = uri[5:].partition("/")
    return [Call("s3", "PutObject", {"Bucket": bucket, "Key": _objects(key)})]


def _image_pull(image: str) -> list[Call]:
    """Images in this account's repositories are pulled with the job's role; SageMaker's own are not."""
    registry, _, repository = image.partition("/")
    if not registry.startswith(ACCOUNT):
        return []
    name = repository.split(":")[0].split("@")[0]
    return [
        Call("ecr", "GetAuthorizationToken", {}),
        *[Call("ecr", op, {"repositoryName": name}) for op in ("BatchGetImage", "GetDownloadUrlForLayer")],
    ]


def _kms(key: str | None) -> list[Call]:
    return [Call("kms", op, {"KeyId": key}) for op in ("Decrypt", "GenerateDataKey")] if key else []


def job_calls(operation: str, request: dict, definition: Definition) -> list[Call]:
    """What a step's containers do with the job role: read inputs, write outputs, pull images, use the key."""
    calls: list[Call] = []
    if operation == "CreateProcessingJob":
        calls += [c for i in request["ProcessingInputs"] for c in _s3_read(i["S3Input"]["S3Uri"])]
        calls += [c for o in request["ProcessingOutputConfig"]["Outputs"] for c in _s3_write(o["S3Output"]["S3Uri"])]
        calls += _image_pull(request["AppSpecification"]["ImageUri"]) + _kms(request["ProcessingOutputConfig"].get("KmsKeyId"))
    elif operation == "CreateHyperParameterTuningJob":
        job = request["TrainingJobDefinition"]
        calls += [c for ch in job["InputDataConfig"] for c in _s3_read(ch["DataSource"]["S3DataSource"]["S3Uri"])]
        calls += _s3_write(job["OutputDataConfig"]["S3OutputPath"]) + _kms(job["OutputDataConfig"].get("KmsKeyId"))
        calls += _image_pull(job["AlgorithmSpecification"]["TrainingImage"])
    elif operation == "CreateTransformJob":
        calls += _s3_read(request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
        calls += _s3_write(request["TransformOutput"]["S3OutputPath"]) + _kms(request["TransformOutput"].get("KmsKeyId"))
    elif operation == "CreateModel":
        container = request["PrimaryContainer"]
        calls += _image_pull(container["Image"]) + _s3_read(container["ModelDataUrl"])
    elif operation == "CreateModelPackage":
        # The deployer's models run as the job role: they pull this image and read this model data.
        for container in request["InferenceSpecification"]["Containers"]:
            calls += _image_pull(container["Image"]) + _s3_read(container["ModelDataUrl"])
    calls += _kms(definition.settings.kms_key_arn)
    return calls


def execution_calls(step: str, operation: str, request: dict, definition: Definition) -> list[Call]:
    """What SageMaker Pipelines does as the execution role: start, describe and tag the step's resource."""
    raw = definition.steps[step]
    if raw["Type"] == "Lambda":
        return [Call("lambda", "InvokeFunction", {"FunctionName": raw["FunctionArn"]})]
    _, name_member, describe = STEP_OPERATIONS[raw["Type"]]
    calls = [Call("sagemaker", operation, request)]
    if name_member:
        calls.append(Call("sagemaker", describe, {name_member: request[name_member]}))
    for property_file in raw.get("PropertyFiles", []):
        output = next(o for o in request["ProcessingOutputConfig"]["Outputs"] if o["OutputName"] == property_file["OutputName"])
        bucket, _, key = output["S3Output"]["S3Uri"][5:].partition("/")
        calls.append(Call("s3", "GetObject", {"Bucket": bucket, "Key": f"{key}/{property_file['FilePath']}"}))
    return calls


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_pipeline_execution_and_job_roles_allow_every_step(assemblies, definitions, name):
    assembly = assemblies[name]
    settings, pipelines = definitions[name]
    execution, jobs = [], []
    for definition in pipelines.values():
        requests = definition.requests()
        steps = {step for step, _, _ in requests}
        execution += [c for step, operation, request in requests for c in execution_calls(step, operation, request, definition)]
        execution += [
            c
            for step, raw in definition.steps.items()
            if raw["Type"] == "Lambda" and step not in steps
            for c in execution_calls(step, "", {}, definition)
        ]
        jobs += [c for _, operation, request in requests for c in job_calls(operation, request, definition)]
    assert {c.operation for c in execution} >= {
        "CreateProcessingJob",
        "CreateHyperParameterTuningJob",
        "CreateModelPackage",
        "CreateModel",
        "CreateTransformJob",
        "InvokeFunction",
    }
    _assert_allowed(
        _role_statements(assembly, settings.pipeline_execution_role_arn), permissions_for(execution), "pipeline execution"
    )
    _assert_allowed(_role_statements(assembly, settings.job_role_arn), permissions_for(jobs), "job")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_rule_and_schedule_targets_may_start_their_pipelines(assemblies, name):
    assembly = assemblies[name]
    targets = [(stack, t) for stack, _, rule in assembly.resources("AWS::Events::Rule") for t in rule["Properties"]["Targets"]]
    targets += [(stack, s["Properties"]["Target"]) for stack, _, s in assembly.resources("AWS::Scheduler::Schedule")]
    pipeline_targets = [(stack, t) for stack, t in targets if ":pipeline/" in str(assembly.resolve(stack, t["Arn"]))]
    assert len(pipeline_targets) == 4
    for stack, target in pipeline_targets:
        arn = assembly.resolve(stack, target["Arn"])
        statements = _role_statements(assembly, assembly.resolve(stack, target["RoleArn"]))
        _assert_allowed(statements, [Permission("sagemaker:StartPipelineExecution", [arn], why="target")], "pipeline starter")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_role_is_checked_or_owned_by_cdk(assemblies, definitions, name):
    assembly = assemblies[name]
    settings, _ = definitions[name]
    checked = {settings.pipeline_definition_role_arn, settings.pipeline_execution_role_arn, settings.job_role_arn}
    descriptions = (
        "Approved model package",
        "Batch pipeline step",
        "Training pipeline step",
        "Image builds on deploy: on event",
        "Drift alarm",
        "System test",
    )
    for description in descriptions:
        stack, function = function_properties(assembly, description)
        checked.add(assembly.resolve(stack, function["Role"]))
    checked.add(template_deployer_settings(assembly).monitoring_role_arn)
    # The system test's state machine (tests/test_system_test.py checks it may invoke its function).
    for stack, _, machine in assembly.resources("AWS::StepFunctions::StateMachine"):
        if "system-test" in json.dumps(machine["Properties"]):
            checked.add(assembly.resolve(stack, machine["Properties"]["RoleArn"]))
    for stack, _, schedule in assembly.resources("AWS::Scheduler::Schedule"):
        checked.add(assembly.resolve(stack, schedule["Properties"]["Target"]["RoleArn"]))
    for stack, _, project in assembly.resources("AWS::CodeBuild::Project"):
        checked.add(assembly.resolve(stack, project["Properties"]["ServiceRole"]))
    unchecked = []
    for stack, logical_id, _ in assembly.resources("AWS::IAM::Role"):
        arn = assembly.attribute(stack, logical_id, "Arn")
        if arn not in checked and not any(logical_id.startswith(owned) for owned in CDK_OWNED_ROLES):
            unchecked.append(logical_id)
    assert unchecked == [], "roles without an IAM check; add one to tests/test_strict_aws.py"
