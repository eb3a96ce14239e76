"""The endpoint deployer against moto: create, update, no-op, failed endpoint, autoscaling, bad inputs."""

from __future__ import annotations

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, load_lambda

deployer_module = load_lambda("deploy_endpoint")
GROUP = "abalone-mlops-dev"
ENV = {
    "ENDPOINT_NAME": "abalone-mlops-dev", "MODEL_PACKAGE_GROUP_NAME": GROUP,
    "EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/execution", "INSTANCE_TYPE": "ml.m5.large",
    "INITIAL_INSTANCE_COUNT": "1", "MIN_CAPACITY": "1", "MAX_CAPACITY": "3", "TARGET_INVOCATIONS_PER_INSTANCE": "500",
    "DATA_CAPTURE_PERCENTAGE": "20", "DATA_CAPTURE_S3_URI": "s3://artifacts/data-capture/abalone-mlops-dev",
    "KMS_KEY_ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "ROLLBACK_ALARM_NAMES": "abalone-mlops-dev-5xx-errors,abalone-mlops-dev-model-latency",
}


@pytest.fixture
def deployment(aws, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    deployer_module.settings.cache_clear()
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    yield sagemaker
    deployer_module.settings.cache_clear()


def package(sagemaker, status: str = "Approved") -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inference:1.0.0",
                                                "ModelDataUrl": "s3://artifacts/models/model.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]


def approval_event(arn: str, status: str = "Approved", group: str = GROUP) -> dict:
    """Shaped like AWS's documented "SageMaker Model Package State Change" event."""
    return {"version": "0", "id": "e1", "detail-type": "SageMaker Model Package State Change", "source": "aws.sagemaker",
            "account": ACCOUNT, "time": "2026-11-23T02:00:00Z", "region": REGION, "resources": [arn],
            "detail": {"ModelPackageGroupName": group, "ModelPackageVersion": int(arn.rsplit("/", 1)[1]),
                       "ModelPackageArn": arn, "ModelApprovalStatus": status, "CreationTime": 1763863200000}}


@pytest.fixture
def updates(deployment):
    """moto lacks UpdateEndpoint: botocore still validates the call against the API model, then it is recorded."""
    calls = []
    ok = (AWSResponse(url=None, status_code=200, headers={}, raw=None),
          {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/abalone-mlops-dev"})
    boto3.setup_default_session(region_name=REGION)
    events = boto3.DEFAULT_SESSION.events
    events.register("before-parameter-build.sagemaker.UpdateEndpoint", lambda params, **kw: calls.append(dict(params)))
    events.register("before-call.sagemaker.UpdateEndpoint", lambda **kw: ok)
    yield calls
    boto3.DEFAULT_SESSION = None


def deployer(sagemaker) -> "deployer_module.EndpointDeployer":
    return deployer_module.EndpointDeployer(deployer_module.settings(), sagemaker, boto3.client("application-autoscaling", region_name=REGION))


def test_approval_event_creates_model_config_and_endpoint(deployment):
    arn = package(deployment)
    result = deployer_module.handler(approval_event(arn), None)
    assert result["action"] == "created" and result["model"] == "abalone-mlops-dev-v1"
    config = deployment.describe_endpoint_config(EndpointConfigName=result["endpoint_config"])
    variant = config["ProductionVariants"][0]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == ("abalone-mlops-dev-v1", "ml.m5.large", 1)
    capture = config["DataCaptureConfig"]
    assert (capture["InitialSamplingPercentage"], capture["KmsKeyId"], capture["DestinationS3Uri"]) == (
        20, ENV["KMS_KEY_ARN"], ENV["DATA_CAPTURE_S3_URI"])
    assert [o["CaptureMode"] for o in capture["CaptureOptions"]] == ["Input", "Output"]
    model = deployment.describe_model(ModelName="abalone-mlops-dev-v1")
    assert model["ExecutionRoleArn"] == ENV["EXECUTION_ROLE_ARN"]
    assert deployment.describe_endpoint(EndpointName="abalone-mlops-dev")["EndpointConfigName"] == result["endpoint_config"]


def test_volume_key_only_where_sagemaker_accepts_one(deployment, monkeypatch):
    assert deployment.describe_endpoint_config(EndpointConfigName=deployer_module.handler(
        {"model_package_arn": package(deployment)}, None)["endpoint_config"])["KmsKeyId"] == ENV["KMS_KEY_ARN"]
    monkeypatch.setenv("INSTANCE_TYPE", "ml.g4dn.xlarge")
    deployer_module.settings.cache_clear()
    target = deployer(deployment)
    target._create_endpoint_config("nvme-config", "abalone-mlops-dev-v1")
    config = deployment.describe_endpoint_config(EndpointConfigName="nvme-config")
    assert "KmsKeyId" not in config and config["DataCaptureConfig"]["KmsKeyId"] == ENV["KMS_KEY_ARN"]


def test_same_package_again_is_a_no_op(deployment):
    arn = package(deployment)
    first = deployer_module.handler({"model_package_arn": arn}, None)
    again = deployer_module.handler({"model_package_arn": arn}, None)
    assert (first["action"], again["action"]) == ("created", "none")
    assert again["endpoint_config"] == first["endpoint_config"]


def test_new_package_updates_with_blue_green_and_alarm_rollback(deployment, updates):
    deployer_module.handler({"model_package_arn": package(deployment)}, None)
    result = deployer_module.handler(approval_event(package(deployment)), None)
    assert result["action"] == "updated" and result["model"] == "abalone-mlops-dev-v2"
    (call,) = updates
    assert call["EndpointName"] == "abalone-mlops-dev" and call["EndpointConfigName"] == result["endpoint_config"]
    policy = call["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert call["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": "abalone-mlops-dev-5xx-errors"}, {"AlarmName": "abalone-mlops-dev-model-latency"}]


def test_failed_endpoint_is_replaced(deployment, monkeypatch):
    deployer_module.handler({"model_package_arn": package(deployment)}, None)
    real_describe = deployment.describe_endpoint
    states = iter(["Failed"])

    def describe(**kwargs):
        answer = real_describe(**kwargs)
        return {**answer, "EndpointStatus": next(states, answer["EndpointStatus"])}

    target = deployer(deployment)
    monkeypatch.setattr(target.sagemaker, "describe_endpoint", describe)
    result = target.deploy(deployer_module.Deployment(package(deployment), "abalone-mlops-dev"))
    assert result["action"] == "created"
    assert real_describe(EndpointName="abalone-mlops-dev")["EndpointConfigName"] == result["endpoint_config"]


@pytest.mark.parametrize("status", ["Creating", "Updating", "RollingBack"])
def test_busy_endpoint_is_a_retryable_error(deployment, monkeypatch, status):
    deployer_module.handler({"model_package_arn": package(deployment)}, None)
    target = deployer(deployment)
    real_describe = target.sagemaker.describe_endpoint
    monkeypatch.setattr(target.sagemaker, "describe_endpoint", lambda **kw: {**real_describe(**kw), "EndpointStatus": status})
    with pytest.raises(deployer_module.EndpointBusyError) as error:
        target.deploy(deployer_module.Deployment(package(deployment), "abalone-mlops-dev"))
    assert str(error.value) == f"endpoint abalone-mlops-dev is {status}; retry once it is InService or Failed"


def test_in_service_event_registers_autoscaling(deployment):
    deployer_module.handler({"model_package_arn": package(deployment)}, None)
    event = {"source": "aws.sagemaker", "detail-type": "SageMaker Endpoint State Change",
             "detail": {"EndpointName": "abalone-mlops-dev", "EndpointStatus": "IN_SERVICE"}}
    result = deployer_module.handler(event, None)
    assert result["action"] == "autoscaling"
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == ("endpoint/abalone-mlops-dev/variant/AllTraffic", 1, 3)
    (policy,) = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 500.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"


def test_old_versions_are_deleted_unless_in_use(deployment, updates):
    target = deployer(deployment)
    arns = [package(deployment) for _ in range(5)]
    for arn in arns:
        model, config = deployer_module.resource_names(deployer_module.Deployment(arn, "abalone-mlops-dev"), target.config)
        target._create_model(model, target._approved_package(arn))
        target._create_endpoint_config(config, model)
    deployment.create_endpoint(EndpointName="abalone-mlops-dev", EndpointConfigName=deployer_module.resource_names(
        deployer_module.Deployment(arns[0], "abalone-mlops-dev"), target.config)[1])
    deleted = target.delete_old_versions("abalone-mlops-dev")
    assert sorted(deleted) == sorted([f"abalone-mlops-dev-v2-{deleted[0].rsplit('-', 1)[1]}", "abalone-mlops-dev-v2"])
    remaining = {c["EndpointConfigName"].split("-")[-2] for c in deployment.list_endpoint_configs()["EndpointConfigs"]}
    assert remaining == {"v1", "v3", "v4", "v5"}


BAD_INPUTS = [
    ("not json object", "event must be a JSON object, got str"),
    ({"hello": "world"}, "unsupported event; expected a 'SageMaker Model Package State Change' event from EventBridge or "
                         '{"model_package_arn": "...", "endpoint_name": "optional"}'),
    ({"model_package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/abalone-mlops-dev"},
     "'arn:aws:sagemaker:eu-west-1:123456789012:model-package/abalone-mlops-dev' is not a versioned model package ARN "
     "(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)"),
    ({"model_package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/other-group/3"},
     "model package group 'other-group' is not this deployer's group 'abalone-mlops-dev'"),
    ({"model_package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/abalone-mlops-dev/3", "endpoint_name": "bad name!"},
     "endpoint_name 'bad name!' must be 1-40 letters, digits or hyphens"),
    ({"model_package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/abalone-mlops-dev/3", "force": True},
     "unknown key(s) force; send model_package_arn and optionally endpoint_name"),
    ({"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change", "detail": {}},
     "model package event lacks detail.ModelPackageArn, ModelPackageGroupName or ModelApprovalStatus"),
]


@pytest.mark.parametrize(("event", "message"), BAD_INPUTS, ids=[m[:40] for _, m in BAD_INPUTS])
def test_malformed_events_are_rejected(deployment, event, message):
    with pytest.raises(deployer_module.DeployError) as error:
        deployer_module.handler(event, None)
    assert str(error.value) == message


def test_event_from_another_group_is_rejected(deployment):
    event = approval_event(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/other/1", group="other")
    with pytest.raises(deployer_module.DeployError, match="model package group 'other' is not this deployer's group"):
        deployer_module.handler(event, None)


def test_pending_package_event_is_ignored_and_deploys_nothing(deployment):
    arn = package(deployment, "PendingManualApproval")
    assert deployer_module.handler(approval_event(arn, status="PendingManualApproval"), None) == {"action": "ignored"}
    assert deployment.list_endpoints()["Endpoints"] == [] and deployment.list_models()["Models"] == []


def test_direct_invocation_of_an_unapproved_package_is_refused(deployment):
    arn = package(deployment, "PendingManualApproval")
    with pytest.raises(deployer_module.DeployError) as error:
        deployer_module.handler({"model_package_arn": arn}, None)
    assert str(error.value) == f"model package {arn} is PendingManualApproval; approve it in the Model Registry first"


def test_missing_model_package(deployment):
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/42"
    with pytest.raises(deployer_module.DeployError) as error:
        deployer_module.handler({"model_package_arn": arn}, None)
    assert str(error.value) == f"model package {arn} does not exist; check the ARN in the Model Registry"


def test_missing_environment_variable(deployment, monkeypatch):
    monkeypatch.delenv("ROLLBACK_ALARM_NAMES")
    deployer_module.settings.cache_clear()
    with pytest.raises(deployer_module.DeployError) as error:
        deployer_module.handler({"model_package_arn": "x"}, None)
    assert str(error.value) == "environment variable ROLLBACK_ALARM_NAMES is missing or empty; the orchestration stack sets it, so redeploy it"


def test_resource_names_are_deterministic_and_valid():
    config = deployer_module.Settings.from_environment(ENV)
    long_name = "e" * 40
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/123456"
    names = deployer_module.resource_names(deployer_module.Deployment(arn, long_name), config)
    assert names == deployer_module.resource_names(deployer_module.Deployment(arn, long_name), config)
    assert all(len(n) <= 63 and deployer_module.ENDPOINT_NAME.match(n) for n in names)
    other = deployer_module.Settings.from_environment({**ENV, "INSTANCE_TYPE": "ml.c5.large"})
    assert deployer_module.resource_names(deployer_module.Deployment(arn, long_name), other)[1] != names[1]


def test_unexpected_aws_errors_propagate(deployment, monkeypatch):
    target = deployer(deployment)

    def broken(**kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeEndpoint")

    monkeypatch.setattr(target.sagemaker, "describe_endpoint", broken)
    with pytest.raises(ClientError, match="Rate exceeded"):
        target.describe_endpoint("abalone-mlops-dev")
