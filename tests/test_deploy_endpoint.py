"""The endpoint deployer against moto: create, update, no-op, failed endpoint, autoscaling, bad inputs."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import aws_events
import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from conftest import (
    ACCOUNT,
    LAMBDA_CONTEXT,
    NONPRODUCTION,
    NONPRODUCTION_NAMES,
    REGION,
    load_lambda,
    settings_environment,
    template_deployer_settings,
)
from sagemaker_fakes import MonitoringSchedules

from common.contracts import DeployerSettings, SettingsError

deployer_module = load_lambda("deploy_endpoint")
NAMES = NONPRODUCTION_NAMES
GROUP, ENDPOINT = NAMES.model_package_group, NAMES.endpoint


@pytest.fixture(scope="module")
def config(reference_assemblies) -> DeployerSettings:
    """The dev deployer's settings from its template, on a type and fleet that differ from dev's defaults."""
    dev = template_deployer_settings(reference_assemblies[NONPRODUCTION])
    settings = replace(
        dev,
        endpoint=replace(
            dev.endpoint,
            instance_type="ml.m5.large",
            max_capacity=3,
            target_invocations_per_instance=500,
            data_capture_percentage=20,
        ),
    )
    assert (settings.endpoint_name, settings.model_package_group_name) == (ENDPOINT, GROUP)
    return settings


@pytest.fixture
def schedules(aws):
    """moto lacks monitoring schedules: clients of the default session (made after moto resets it) get them here."""
    boto3.setup_default_session(region_name=REGION)
    fake = MonitoringSchedules()
    fake.install(boto3.DEFAULT_SESSION.events)
    yield fake
    boto3.DEFAULT_SESSION = None


@pytest.fixture
def deployer_env(monkeypatch, config):
    """The deployer's environment as the stack writes it, read afresh by the handler."""
    for key, value in settings_environment(config).items():
        monkeypatch.setenv(key, value)
    deployer_module.settings.cache_clear()
    yield
    deployer_module.settings.cache_clear()


@pytest.fixture
def deployment(aws, schedules, deployer_env):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    yield sagemaker
    deployer_module.settings.cache_clear()


def baseline(version: str) -> dict:
    """DriftCheckBaselines as the training pipeline's RegisterModel step writes them."""
    uri = f"s3://artifacts/{NAMES.training_pipeline}/{version}/data-quality-baseline"
    return {
        "ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"{uri}/statistics.json"},
            "Constraints": {"ContentType": "application/json", "S3Uri": f"{uri}/constraints.json"},
        }
    }


def package(sagemaker, status: str = "Approved", with_baseline: bool = True) -> str:
    execution = f"execution{len(sagemaker.list_model_packages(ModelPackageGroupName=GROUP)['ModelPackageSummaryList'])}"
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        **({"DriftCheckBaselines": baseline(execution)} if with_baseline else {}),
        InferenceSpecification={
            "Containers": [
                {
                    "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inference:1.0.0",
                    "ModelDataUrl": "s3://artifacts/models/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def approval_event(arn: str, status: str = "Approved", group: str = GROUP) -> dict:
    """Shaped like AWS's documented "SageMaker Model Package State Change" event."""
    return {
        "version": "0",
        "id": "e1",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-23T02:00:00Z",
        "region": REGION,
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": int(arn.rsplit("/", 1)[1]),
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
            "CreationTime": 1763863200000,
        },
    }


@pytest.fixture
def updates(deployment):
    """moto lacks UpdateEndpoint: botocore still validates the call against the API model, then it is recorded."""
    calls = []
    ok = (
        AWSResponse(url=None, status_code=200, headers={}, raw=None),
        {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"},
    )
    events = boto3.DEFAULT_SESSION.events
    events.register("before-parameter-build.sagemaker.UpdateEndpoint", lambda params, **kw: calls.append(dict(params)))
    events.register("before-call.sagemaker.UpdateEndpoint", lambda **kw: ok)
    return calls


def deployer(sagemaker, config: DeployerSettings | None = None) -> deployer_module.EndpointDeployer:
    return deployer_module.EndpointDeployer(
        config or deployer_module.settings(), sagemaker, boto3.client("application-autoscaling", region_name=REGION)
    )


def test_approval_event_creates_model_config_and_endpoint(deployment, config):
    arn = package(deployment)
    result = deployer_module.handler(approval_event(arn), LAMBDA_CONTEXT)
    assert result["action"] == "created" and result["model"] == f"{ENDPOINT}-v1"
    endpoint_config = deployment.describe_endpoint_config(EndpointConfigName=result["endpoint_config"])
    variant = endpoint_config["ProductionVariants"][0]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        f"{ENDPOINT}-v1",
        "ml.m5.large",
        1,
    )
    capture = endpoint_config["DataCaptureConfig"]
    assert (capture["InitialSamplingPercentage"], capture["KmsKeyId"], capture["DestinationS3Uri"]) == (
        20,
        config.kms_key_arn,
        config.data_capture_s3_uri,
    )
    assert [o["CaptureMode"] for o in capture["CaptureOptions"]] == ["Input", "Output"]
    model = deployment.describe_model(ModelName=f"{ENDPOINT}-v1")
    assert model["ExecutionRoleArn"] == config.job_role_arn
    assert deployment.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == result["endpoint_config"]
    stage_tags = [{"Key": "project", "Value": NONPRODUCTION_NAMES.project}, {"Key": "environment", "Value": NONPRODUCTION}]
    assert config.tags == stage_tags, "the stage's tags, as the template writes them"
    for arn in (
        model["ModelArn"],
        endpoint_config["EndpointConfigArn"],
        deployment.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"],
    ):
        assert deployment.list_tags(ResourceArn=arn)["Tags"] == stage_tags, arn


def test_volume_key_only_where_the_stack_gives_one(deployment, config):
    assert (
        deployment.describe_endpoint_config(
            EndpointConfigName=deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)[
                "endpoint_config"
            ]
        )["KmsKeyId"]
        == config.volume_kms_key_arn
    )
    target = deployer(deployment, replace(config, volume_kms_key_arn=None))
    target._create_endpoint_config("nvme-config", f"{ENDPOINT}-v1", 1)
    nvme = deployment.describe_endpoint_config(EndpointConfigName="nvme-config")
    assert "KmsKeyId" not in nvme and nvme["DataCaptureConfig"]["KmsKeyId"] == config.kms_key_arn


def test_same_package_again_is_a_no_op(deployment):
    arn = package(deployment)
    first = deployer_module.handler({"model_package_arn": arn}, LAMBDA_CONTEXT)
    again = deployer_module.handler({"model_package_arn": arn}, LAMBDA_CONTEXT)
    assert (first["action"], again["action"]) == ("created", "none")
    assert again["endpoint_config"] == first["endpoint_config"]


def test_new_package_updates_with_blue_green_and_alarm_rollback(deployment, updates):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    result = deployer_module.handler(approval_event(package(deployment)), LAMBDA_CONTEXT)
    assert result["action"] == "updated" and result["model"] == f"{ENDPOINT}-v2"
    (call,) = updates
    assert call["EndpointName"] == ENDPOINT and call["EndpointConfigName"] == result["endpoint_config"]
    policy = call["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}
    assert call["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": NAMES.alarm("5xx-errors")},
        {"AlarmName": NAMES.alarm("model-latency")},
    ]


def test_failed_endpoint_is_replaced(deployment, monkeypatch):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    real_describe = deployment.describe_endpoint
    states = iter(["Failed"])

    def describe(**kwargs):
        answer = real_describe(**kwargs)
        return {**answer, "EndpointStatus": next(states, answer["EndpointStatus"])}

    target = deployer(deployment)
    monkeypatch.setattr(target.sagemaker, "describe_endpoint", describe)
    result = target.deploy(deployer_module.Deployment(package(deployment), ENDPOINT))
    assert result["action"] == "created"
    assert real_describe(EndpointName=ENDPOINT)["EndpointConfigName"] == result["endpoint_config"]


@pytest.mark.parametrize("status", ["Creating", "Updating", "RollingBack"])
def test_busy_endpoint_defers_without_creating_anything(deployment, monkeypatch, status):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    target = deployer(deployment)
    real_describe = target.sagemaker.describe_endpoint
    monkeypatch.setattr(target.sagemaker, "describe_endpoint", lambda **kw: {**real_describe(**kw), "EndpointStatus": status})
    result = target.deploy(deployer_module.Deployment(package(deployment), ENDPOINT))
    assert (result["action"], result["reason"]) == ("deferred", f"endpoint is {status}")
    assert [m["ModelName"] for m in deployment.list_models()["Models"]] == [f"{ENDPOINT}-v1"]


def test_in_service_event_registers_autoscaling(deployment):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    event = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Endpoint State Change",
        "detail": {"EndpointName": ENDPOINT, "EndpointStatus": "IN_SERVICE"},
    }
    result = deployer_module.handler(event, LAMBDA_CONTEXT)
    assert result["action"] == "autoscaling" and result["converge"]["reason"] == "the latest approved package serves"
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (
        f"endpoint/{ENDPOINT}/variant/AllTraffic",
        1,
        3,
    )
    (policy,) = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 500.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"


def five_versions(deployment):
    """Five approved packages, each with its model and endpoint config, as five deployments leave them."""
    target = deployer(deployment)
    arns = [package(deployment) for _ in range(5)]
    names = [deployer_module.resource_names(deployer_module.Deployment(arn, ENDPOINT), target.config, 1) for arn in arns]
    for arn, (model, config) in zip(arns, names, strict=True):
        target._create_model(model, target._approved_package(arn))
        target._create_endpoint_config(config, model, 1)
    return target, names


def test_old_versions_are_deleted_unless_in_use(deployment):
    target, names = five_versions(deployment)
    deployment.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=names[0][1])
    deleted = target.delete_old_versions(ENDPOINT)
    assert sorted(deleted) == sorted([names[1][1], names[1][0]])
    remaining = {c["EndpointConfigName"] for c in deployment.list_endpoint_configs()["EndpointConfigs"]}
    assert remaining == {names[i][1] for i in (0, 2, 3, 4)}
    assert {m["ModelName"] for m in deployment.list_models()["Models"]} == {names[i][0] for i in (0, 2, 3, 4)}


def test_pruning_spares_the_models_of_the_live_and_pending_configs(deployment, monkeypatch):
    target, names = five_versions(deployment)
    live = {
        "EndpointName": ENDPOINT,
        "EndpointStatus": "Updating",
        "EndpointConfigName": names[0][1],
        "PendingDeploymentSummary": {"EndpointConfigName": names[1][1]},
    }
    monkeypatch.setattr(target, "describe_endpoint", lambda name: live)
    assert target.delete_old_versions(ENDPOINT) == []


def test_update_keeps_the_autoscaled_fleet_size_and_canaries_one_instance(deployment, updates, monkeypatch):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    target = deployer(boto3.client("sagemaker", region_name=REGION))
    real_describe = target.sagemaker.describe_endpoint

    def scaled(**kwargs):
        answer = real_describe(**kwargs)
        return {
            **answer,
            "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": 3, "DesiredInstanceCount": 3}],
        }

    monkeypatch.setattr(target.sagemaker, "describe_endpoint", scaled)
    result = target.deploy(deployer_module.Deployment(package(deployment), ENDPOINT))
    assert result["action"] == "updated" and result["endpoint_config"].endswith("-3")
    variant = deployment.describe_endpoint_config(EndpointConfigName=result["endpoint_config"])["ProductionVariants"][0]
    assert variant["InitialInstanceCount"] == 3
    (call,) = updates
    assert call["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "WaitIntervalInSeconds": 300,
    }


@pytest.mark.parametrize("count", range(1, 21))
def test_traffic_routing_is_valid_for_every_fleet_size(count):
    """CanarySize must be at most half the fleet (TrafficRoutingConfig API reference); one instance goes all at once."""
    routing = deployer_module.traffic_routing(count)
    if routing["Type"] == "CANARY":
        assert routing["CanarySize"]["Type"] == "INSTANCE_COUNT" and routing["CanarySize"]["Value"] <= count / 2
    else:
        assert (routing["Type"], count) == ("ALL_AT_ONCE", 1)


FULLWIDTH_ACCOUNT = chr(0xFF11) * 12
BAD_INPUTS = [
    ("not json object", "event must be a JSON object, got str"),
    (
        {"hello": "world"},
        "unsupported event; expected a 'SageMaker Model Package State Change' event from EventBridge or "
        '{"model_package_arn": "...", "endpoint_name": "optional"}',
    ),
    (
        {"model_package_arn": f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}"},
        f"'arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}' is not a versioned model package ARN "
        "(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)",
    ),
    (
        {"model_package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/other-group/3"},
        f"model package group 'other-group' is not this deployer's group '{GROUP}'",
    ),
    (
        {
            "model_package_arn": f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/3",
            "endpoint_name": "bad name!",
        },
        "endpoint_name 'bad name!' must be 1-40 letters, digits or hyphens",
    ),
    # re.match with `$` accepted a trailing newline; `\d` accepted non-ASCII digits.
    (
        {"model_package_arn": f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/3\n"},
        f"'arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/3\\n' is not a versioned model package ARN "
        "(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)",
    ),
    (
        {"model_package_arn": f"arn:aws:sagemaker:eu-west-1:{FULLWIDTH_ACCOUNT}:model-package/{GROUP}/3"},
        f"'arn:aws:sagemaker:eu-west-1:{FULLWIDTH_ACCOUNT}:model-package/{GROUP}/3' "
        "is not a versioned model package ARN (arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)",
    ),
    (
        {
            "model_package_arn": f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/3",
            "endpoint_name": f"{ENDPOINT}\n",
        },
        f"endpoint_name '{ENDPOINT}\\n' must be 1-40 letters, digits or hyphens",
    ),
    # Only a missing or null endpoint_name means the deployer's own endpoint.
    (
        {
            "model_package_arn": f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/3",
            "endpoint_name": False,
        },
        "endpoint_name False must be 1-40 letters, digits or hyphens",
    ),
    (
        {"model_package_arn": f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/3", "endpoint_name": ""},
        "endpoint_name '' must be 1-40 letters, digits or hyphens",
    ),
    (
        {"model_package_arn": f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/3", "force": True},
        "unknown key(s) force; send model_package_arn and optionally endpoint_name",
    ),
    (
        {"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change", "detail": {}},
        "model package event lacks detail.ModelPackageArn, ModelPackageGroupName or ModelApprovalStatus",
    ),
    ({"detail-type": "SageMaker Model Package State Change", "detail": {}}, "EventBridge event lacks source"),
    (
        {"source": "aws.sagemaker", "detail-type": "SageMaker Endpoint State Change", "detail": "IN_SERVICE"},
        "event 'detail' must be a JSON object, got str",
    ),
    (
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {}},
        "unsupported event 'aws.s3' / 'Object Created'; expected 'SageMaker Model Package State Change' or "
        "'SageMaker Endpoint State Change' from aws.sagemaker",
    ),
]


@pytest.mark.parametrize(("event", "message"), BAD_INPUTS, ids=[m[:40] for _, m in BAD_INPUTS])
def test_malformed_events_are_rejected(deployer_env, event, message):
    """Each is refused while parsing the event, before any AWS call."""
    with pytest.raises(deployer_module.DeployError) as error:
        deployer_module.handler(event, LAMBDA_CONTEXT)
    assert str(error.value) == message


def test_event_from_another_group_is_rejected(deployment):
    event = approval_event(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/other/1", group="other")
    with pytest.raises(deployer_module.DeployError, match="model package group 'other' is not this deployer's group"):
        deployer_module.handler(event, LAMBDA_CONTEXT)


def test_pending_package_event_is_ignored_and_deploys_nothing(deployment):
    arn = package(deployment, "PendingManualApproval")
    assert deployer_module.handler(approval_event(arn, status="PendingManualApproval"), LAMBDA_CONTEXT) == {"action": "ignored"}
    assert deployment.list_endpoints()["Endpoints"] == [] and deployment.list_models()["Models"] == []


def test_direct_invocation_of_an_unapproved_package_is_refused(deployment):
    arn = package(deployment, "PendingManualApproval")
    with pytest.raises(deployer_module.DeployError) as error:
        deployer_module.handler({"model_package_arn": arn}, LAMBDA_CONTEXT)
    assert str(error.value) == f"model package {arn} is PendingManualApproval; approve it in the Model Registry first"


def test_missing_model_package(deployment):
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/42"
    with pytest.raises(deployer_module.DeployError) as error:
        deployer_module.handler({"model_package_arn": arn}, LAMBDA_CONTEXT)
    assert str(error.value) == f"model package {arn} does not exist; check the ARN in the Model Registry"


def test_missing_or_malformed_settings_are_named(deployment, monkeypatch, config):
    monkeypatch.delenv("SETTINGS")
    deployer_module.settings.cache_clear()
    with pytest.raises(
        SettingsError, match=r"^SETTINGS must be a JSON object, got NoneType; the stack writes it, so redeploy the stack$"
    ):
        deployer_module.handler({"model_package_arn": "x"}, LAMBDA_CONTEXT)
    monkeypatch.setenv("SETTINGS", json.dumps({**config.to_dict(), "rollback_alarm_names": []}))
    deployer_module.settings.cache_clear()
    with pytest.raises(
        SettingsError, match=r"^SETTINGS.rollback_alarm_names = \[\] must be a non-empty list of non-empty strings"
    ):
        deployer_module.handler({"model_package_arn": "x"}, LAMBDA_CONTEXT)


def test_resource_names_are_deterministic_and_valid(config):
    long_name = "e" * 40
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/123456"
    names = deployer_module.resource_names(deployer_module.Deployment(arn, long_name), config, 20)
    assert names == deployer_module.resource_names(deployer_module.Deployment(arn, long_name), config, 20)
    assert all(len(n) <= 63 and deployer_module.ENDPOINT_NAME.fullmatch(n) for n in names)
    other = replace(config, endpoint=replace(config.endpoint, instance_type="ml.c5.large"))
    assert deployer_module.resource_names(deployer_module.Deployment(arn, long_name), other, 20)[1] != names[1]


def test_unexpected_aws_errors_propagate(deployment, monkeypatch):
    target = deployer(deployment)

    def broken(**kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeEndpoint")

    monkeypatch.setattr(target.sagemaker, "describe_endpoint", broken)
    with pytest.raises(ClientError, match="Rate exceeded"):
        target.describe_endpoint(ENDPOINT)


# AWS's own error codes and messages on the error paths (moto answers these differently, or not at all).
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"
PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3"


@pytest.fixture
def stubbed(config):
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    return deployer_module.EndpointDeployer(config, client, None), Stubber(client)


def _approved(stub: Stubber) -> None:
    stub.add_response(
        "describe_model_package",
        {
            "ModelPackageName": GROUP,
            "ModelPackageArn": PACKAGE_ARN,
            "CreationTime": datetime(2026, 11, 23),
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": "Approved",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
        },
        {"ModelPackageName": PACKAGE_ARN},
    )


def test_a_retry_reuses_the_model_and_config_that_already_exist(stubbed):
    target, stub = stubbed
    _approved(stub)
    stub.add_client_error("describe_endpoint", "ValidationException", f'Could not find endpoint "{ENDPOINT_ARN}".')
    stub.add_client_error(
        "create_model",
        "ValidationException",
        f'Cannot create already existing model "arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{ENDPOINT}-v3".',
    )
    stub.add_client_error(
        "create_endpoint_config",
        "ValidationException",
        "Cannot create already existing endpoint "
        f'configuration "arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{ENDPOINT}-v3".',
    )
    stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})
    with stub:
        result = target.deploy(deployer_module.Deployment(PACKAGE_ARN, ENDPOINT))
    assert result["action"] == "created"
    stub.assert_no_pending_responses()


def test_an_update_that_loses_a_race_defers_and_forgets_its_config(stubbed):
    target, stub = stubbed
    _approved(stub)
    live = {
        "EndpointName": ENDPOINT,
        "EndpointArn": ENDPOINT_ARN,
        "EndpointConfigName": f"{ENDPOINT}-v2-0a1b2c3d-1",
        "EndpointStatus": "InService",
        "CreationTime": datetime(2026, 11, 23),
        "LastModifiedTime": datetime(2026, 11, 23),
    }
    stub.add_response("describe_endpoint", live)
    stub.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{ENDPOINT}-v3"})
    stub.add_response(
        "create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/x"}
    )
    stub.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": live["EndpointConfigName"],
            "EndpointConfigArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/y",
            "CreationTime": datetime(2026, 11, 23),
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": f"{ENDPOINT}-v2", "InstanceType": "ml.m5.large"}],
        },
    )
    stub.add_client_error("update_endpoint", "ValidationException", f'Cannot update in-progress endpoint "{ENDPOINT_ARN}".')
    stub.add_response("describe_endpoint", {**live, "EndpointStatus": "Updating"})
    stub.add_response("delete_endpoint_config", {})
    with stub:
        result = target.deploy(deployer_module.Deployment(PACKAGE_ARN, ENDPOINT))
    assert result["action"] == "deferred" and result["reason"].startswith("Cannot update in-progress endpoint")
    stub.assert_no_pending_responses()


def test_another_validation_error_is_not_mistaken_for_a_duplicate(stubbed):
    target, stub = stubbed
    stub.add_client_error("create_model", "ValidationException", "Could not access model data at s3://artifacts/model.tar.gz.")
    with stub, pytest.raises(ClientError, match="Could not access model data"):
        target._create_model(f"{ENDPOINT}-v3", {"ModelPackageArn": PACKAGE_ARN})


def test_a_rolled_back_package_is_not_retried_on_every_in_service_event(deployment):
    arn = package(deployment)
    first = deployer_module.handler({"model_package_arn": arn}, LAMBDA_CONTEXT)
    target = deployer(deployment)
    deployment.update_endpoint = None  # nothing below may update the endpoint
    newer = package(deployment)
    model, config = deployer_module.resource_names(deployer_module.Deployment(newer, ENDPOINT), target.config, 1)
    target._create_model(model, target._approved_package(newer))
    target._create_endpoint_config(config, model, 1)  # tried before: the update rolled back
    result = target.converge(ENDPOINT)
    assert result["action"] == "none" and "was tried" in result["reason"]
    assert deployment.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == first["endpoint_config"]


# --- the data-quality schedule (monitoring.py) ------------------------------------------------------------------


def in_service() -> dict:
    return aws_events.endpoint_state_change(ENDPOINT, "IN_SERVICE")


def test_in_service_attaches_the_schedule_to_the_serving_packages_baseline(deployment, schedules, config):
    arn = package(deployment)
    deployer_module.handler({"model_package_arn": arn}, LAMBDA_CONTEXT)
    monitoring = deployer_module.handler(in_service(), LAMBDA_CONTEXT)["monitoring"]
    assert (monitoring["action"], monitoring["model_package_arn"]) == ("created", arn)
    schedule = schedules.schedules[config.monitoring_schedule_name]["MonitoringScheduleConfig"]
    assert schedule == {
        "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
        "MonitoringJobDefinitionName": monitoring["definition"],
        "MonitoringType": "DataQuality",
    }
    definition = deployment.describe_data_quality_job_definition(JobDefinitionName=monitoring["definition"])
    expected = baseline("execution0")["ModelDataQuality"]
    assert definition["DataQualityBaselineConfig"] == {
        "ConstraintsResource": {"S3Uri": expected["Constraints"]["S3Uri"]},
        "StatisticsResource": {"S3Uri": expected["Statistics"]["S3Uri"]},
    }
    assert definition["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == ENDPOINT
    output = definition["DataQualityJobOutputConfig"]
    assert (output["MonitoringOutputs"][0]["S3Output"]["S3Uri"], output["KmsKeyId"]) == (
        config.monitoring_reports_s3_uri,
        config.kms_key_arn,
    )
    assert definition["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert (definition["RoleArn"], definition["DataQualityAppSpecification"]["ImageUri"]) == (
        config.monitoring_role_arn,
        config.monitor_image_uri,
    )
    assert definition["JobResources"]["ClusterConfig"]["InstanceType"] == config.monitoring.instance_type
    again = deployer_module.handler(in_service(), LAMBDA_CONTEXT)["monitoring"]
    assert (again["action"], again["deleted"]) == ("none", [])


def test_a_new_serving_package_moves_the_schedule_and_deletes_the_old_definition(deployment, schedules, config):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    first = deployer_module.handler(in_service(), LAMBDA_CONTEXT)["monitoring"]["definition"]
    newer = deployment.describe_model_package(ModelPackageName=package(deployment))
    moved = deployer(deployment).monitor.ensure(newer)
    assert (moved["action"], moved["deleted"]) == ("updated", [first])
    schedule = schedules.schedules[config.monitoring_schedule_name]["MonitoringScheduleConfig"]
    assert schedule["MonitoringJobDefinitionName"] == moved["definition"] != first
    assert moved["definition"].startswith(f"{ENDPOINT}-dq-v2-") and len(moved["definition"]) <= 63


def test_a_package_without_baseline_or_disabled_monitoring_removes_the_schedule(deployment, schedules, config):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    definition = deployer_module.handler(in_service(), LAMBDA_CONTEXT)["monitoring"]["definition"]
    bare = deployment.describe_model_package(
        ModelPackageName=package(deployment, status="PendingManualApproval", with_baseline=False)
    )
    removed = deployer(deployment).monitor.ensure(bare)
    assert (removed["action"], removed["deleted"]) == ("removed", [definition])
    assert "no data-quality baseline" in removed["reason"] and schedules.schedules == {}
    deployer_module.handler(in_service(), LAMBDA_CONTEXT)
    disabled = replace(config, monitoring=replace(config.monitoring, enabled=False))
    result = deployer(deployment, disabled).in_service(ENDPOINT)["monitoring"]
    assert (result["action"], result["reason"]) == ("removed", "monitoring is disabled for this environment")
    assert schedules.schedules == {} and deployment.list_data_quality_job_definitions()["JobDefinitionSummaries"] == []


def test_replacing_a_failed_endpoint_removes_its_schedule_first(deployment, schedules, monkeypatch):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    deployer_module.handler(in_service(), LAMBDA_CONTEXT)
    target = deployer(deployment)
    real_describe = target.sagemaker.describe_endpoint
    monkeypatch.setattr(target.sagemaker, "describe_endpoint", lambda **kw: {**real_describe(**kw), "EndpointStatus": "Failed"})
    monkeypatch.setattr(target.sagemaker, "get_waiter", lambda name: type("Done", (), {"wait": lambda self, **kw: None})())
    target.deploy(deployer_module.Deployment(package(deployment), ENDPOINT))
    assert [operation for operation, _ in schedules.calls][-2:] == ["DeleteMonitoringSchedule", "DescribeMonitoringSchedule"]
    assert schedules.schedules == {}


def test_a_pending_schedule_is_waited_for_and_then_named_in_a_timeout(deployment, schedules, config):
    deployer_module.handler({"model_package_arn": package(deployment)}, LAMBDA_CONTEXT)
    deployer_module.handler(in_service(), LAMBDA_CONTEXT)
    schedule = schedules.schedules[config.monitoring_schedule_name]
    schedule["MonitoringScheduleStatus"] = "Pending"
    waits: list[float] = []

    def settle(seconds: float) -> None:
        waits.append(seconds)
        schedule["MonitoringScheduleStatus"] = "Scheduled"

    monitor = deployer_module.DataQualityMonitor(config, deployment, sleep=settle)
    assert monitor.ensure(deployment.describe_model_package(ModelPackageName=package(deployment)))["action"] == "updated"
    assert waits == [5]
    schedule["MonitoringScheduleStatus"] = "Pending"
    stuck = deployer_module.DataQualityMonitor(config, deployment, sleep=lambda seconds: None)
    with pytest.raises(TimeoutError, match=f"{NAMES.monitoring_schedule} stayed Pending for 120 s; invoke again"):
        stuck.remove("test")


def test_enabled_monitoring_without_its_role_is_a_settings_error(config):
    with pytest.raises(SettingsError, match="monitoring is enabled but monitoring_role_arn is missing; the stack writes it"):
        replace(config, monitoring_role_arn=None)
    disabled = replace(config, monitoring=replace(config.monitoring, enabled=False), monitoring_role_arn=None)
    assert disabled.monitoring_role_arn is None


def test_with_a_network_the_model_and_the_monitoring_jobs_run_in_its_subnets(deployment, schedules, config, monkeypatch):
    """CreateModel's VpcConfig and the job definition's NetworkConfig.VpcConfig, as the handler sends them; the
    names change with the network, since a model cannot move to another VPC."""
    from common.contracts import NetworkConfig

    network = NetworkConfig(
        vpc_id="vpc-0123456789abcdef0", subnet_ids=("subnet-0123456789abcdef0",), security_group_ids=("sg-0123456789abcdef0",)
    )
    for key, value in settings_environment(replace(config, network=network)).items():
        monkeypatch.setenv(key, value)
    deployer_module.settings.cache_clear()
    sent: dict[str, dict] = {}
    for operation in ("CreateModel", "CreateDataQualityJobDefinition"):
        boto3.DEFAULT_SESSION.events.register(
            f"before-parameter-build.sagemaker.{operation}",
            lambda params, operation=operation, **kw: sent.update({operation: params}),
        )
    arn = package(deployment)
    result = deployer_module.handler({"model_package_arn": arn}, LAMBDA_CONTEXT)
    monitoring = deployer_module.handler(in_service(), LAMBDA_CONTEXT)["monitoring"]
    vpc = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}
    assert sent["CreateModel"]["VpcConfig"] == vpc and sent["CreateModel"]["EnableNetworkIsolation"] is True
    assert sent["CreateDataQualityJobDefinition"]["NetworkConfig"] == {
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": vpc,
    }
    outside = deployer_module.resource_names(deployer_module.Deployment(arn, GROUP), config, 1)
    assert result["model"] != outside[0] and result["model"].startswith(f"{outside[0]}-")
    assert not result["endpoint_config"].startswith(deployer_module.config_prefix(deployer_module.Deployment(arn, GROUP), config))
    assert monitoring["definition"] != deployer_module.DataQualityMonitor(config, deployment).definition_name(1)
