"""Every role's synthesized policy against the calls made with it, and every pipeline step against the API model.

The roles of the Lambda functions are evaluated by the rehearsal (tests/test_rehearsal.py) for every call
the functions make when their callers invoke them. Here: the deployer's longer lifecycle, recorded against
moto; the calls of the jobs, derived from the pipeline definitions the way SageMaker Pipelines starts each
step; the build project; and the targets that start pipelines. Each call is checked with every resource the
Service Authorization Reference requires for its action; a call that is not allowed fails with role, action,
resource and call.
"""

from __future__ import annotations

import fnmatch
import json
import sys

import aws_events
import boto3
import pytest
from aws_strict import (
    ACCOUNT,
    REGION,
    Assembly,
    Call,
    Permission,
    authorization_reference,
    denied,
    permissions_for,
    recording,
    service_side_calls,
    validate_request,
)
from botocore.awsrequest import AWSResponse
from conftest import (
    ENVIRONMENTS,
    LAMBDA_CONTEXT,
    REPO_ROOT,
    approved_package,
    function_properties,
    load_lambda,
    settings_environment,
    template_deployer_settings,
    template_pipeline_settings,
)
from pipeline_steps import EXECUTION_ID, STEP_OPERATIONS, Definition
from sagemaker_fakes import MonitoringSchedules

from common.contracts import ImageBuildSettings

register = load_lambda("register_pipelines")
scripts_module = sys.modules["bundled_scripts"]
deployer_module = load_lambda("deploy_endpoint")
resolver_module = load_lambda("resolve_batch_inputs")
build_module = load_lambda("build_images")
check_module = load_lambda("check_training_data")
retrain_module = load_lambda("retrain_on_drift")
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
    first, second = approved_package(sagemaker, settings), approved_package(sagemaker, settings)
    with recording() as calls:
        approval = aws_events.model_package_state_change(config.model_package_group_name, "Approved", version=1)
        assert approval["detail"]["ModelPackageArn"] == first
        assert deployer_module.handler(approval, LAMBDA_CONTEXT)["action"] == "created"
        in_service = deployer_module.handler(aws_events.endpoint_state_change(config.endpoint_name, "IN_SERVICE"), LAMBDA_CONTEXT)
        assert in_service["converge"]["action"] == "updated" and in_service["converge"]["model_package_arn"] == second
        # moto keeps the first config (the update is only recorded): the next InService event monitors what serves.
        monitored = deployer_module.handler(aws_events.endpoint_state_change(config.endpoint_name, "IN_SERVICE"), LAMBDA_CONTEXT)
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


def _image_build_settings(assembly: Assembly) -> ImageBuildSettings:
    ((stack, _, resource),) = assembly.resources("Custom::ContainerImages")
    return ImageBuildSettings.from_json(assembly.resolve(stack, resource["Properties"]["Settings"]), "Settings")


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


def _scopable(action: str) -> bool:
    """True when the Service Authorization Reference names a resource type the action can be scoped to.

    A List action whose resource types are all optional is evaluated against '*' when its request names none
    (ListModelPackages takes a group name, which is no model-package ARN), as `required_resources` evaluates it.
    """
    prefix, name = action.split(":")
    privileges = authorization_reference()[prefix]["privileges"]
    matching = [p for n, p in privileges.items() if fnmatch.fnmatchcase(n.lower(), name.lower())]
    assert matching, f"{action} is not in the Service Authorization Reference"
    return any(
        r and (spec["required"] or p["access_level"] != "List") for p in matching for r, spec in p["resource_types"].items()
    )


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_actions_on_every_resource_have_nothing_to_scope_them_to(assemblies, name):
    """A grant on '*' is either of actions the reference gives no resource type, or confined by condition keys."""
    assembly = assemblies[name]
    loose = []
    for stack, logical_id, _ in assembly.resources("AWS::IAM::Role"):
        if any(logical_id.startswith(owned) for owned in CDK_OWNED_ROLES):
            continue
        for statement in assembly.role_statements(stack, logical_id):
            if statement["Effect"] != "Allow" or "*" not in (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            ):
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if not statement.get("Condition"):
                loose += [f"{logical_id}: {a}" for a in actions if _scopable(a)]
    assert loose == [], "actions granted on '*' that a resource type could scope"
