"""Puts an approved model package behind the real-time endpoint, safely and idempotently.

Events it takes:
- "SageMaker Model Package State Change" (EventBridge) for this project's group: Approved deploys,
  any other status is ignored with a log line;
- a direct invocation {"model_package_arn": "...", "endpoint_name": "optional"};
- "SageMaker Endpoint State Change" to IN_SERVICE for the endpoint: registers autoscaling (which
  cannot be registered while the endpoint is still being created), deletes old versions, then
  converges: deploys the latest approved package if it is not the one serving.

Package -> model -> endpoint config (data capture under KMS) -> create, or update blue/green with
automatic rollback on the stack's CloudWatch alarms. Once the endpoint is InService and no update is
started, the data-quality schedule follows the serving package's baseline (monitoring.py).

SageMaker itself keeps deployments from racing: it refuses to update an endpoint that is changing and
to create one that exists. A deployer that finds the endpoint busy, or loses such a race, defers: the
endpoint's next IN_SERVICE event deploys whatever is then the latest approved package. No reserved
concurrency is needed, which new accounts (a concurrency quota of 10) could not grant.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from botocore.exceptions import ClientError
from monitoring import DataQualityMonitor

from common import aws
from common.contracts import DeployerSettings, SettingsError
from common.registry import latest_approved_package

logger = Logger(service="deploy-endpoint")

VARIANT = "AllTraffic"
KEEP_VERSIONS = 3
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")
PACKAGE_EVENT = "SageMaker Model Package State Change"
ENDPOINT_EVENT = "SageMaker Endpoint State Change"
# Used with fullmatch: `$` in a match also accepts a trailing newline, and `\d` accepts non-ASCII digits.
PACKAGE_ARN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package/(?P<group>[A-Za-z0-9-]{1,63})/(?P<version>[0-9]+)"
)
# SageMaker's ValidationException messages for names that exist and endpoints that are changing, e.g.
# 'Cannot create already existing model "arn:aws:sagemaker:...:model/name".'
ALREADY_EXISTS = "Cannot create already existing"
IN_PROGRESS = "Cannot update in-progress"
ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


class DeployError(Exception):
    """A request the deployer cannot carry out; the message names what is wrong and how to fix it."""


@cache
def settings() -> DeployerSettings:
    """Read once per cold start; a missing or malformed SETTINGS fails every invocation with the same clear message."""
    return DeployerSettings.from_environment()


@dataclass(frozen=True)
class Deployment:
    model_package_arn: str
    endpoint_name: str


def parse_event(event: Any, config: DeployerSettings) -> Deployment | str | None:
    """A Deployment to carry out, an endpoint name whose autoscaling to ensure, or None to ignore."""
    if not isinstance(event, dict):
        raise DeployError(f"event must be a JSON object, got {type(event).__name__}")
    if "detail-type" in event:
        missing = [key for key in ("source", "detail") if key not in event]
        if missing:
            raise DeployError(f"EventBridge event lacks {', '.join(missing)}")
        return _parse_eventbridge(EventBridgeEvent(event), config)
    if "model_package_arn" in event:
        unknown = set(event) - {"model_package_arn", "endpoint_name"}
        if unknown:
            raise DeployError(f"unknown key(s) {', '.join(sorted(unknown))}; send model_package_arn and optionally endpoint_name")
        endpoint = config.endpoint_name if event.get("endpoint_name") is None else event["endpoint_name"]
        if not isinstance(endpoint, str) or not ENDPOINT_NAME.fullmatch(endpoint) or len(endpoint) > 40:
            raise DeployError(f"endpoint_name {endpoint!r} must be 1-40 letters, digits or hyphens")
        return Deployment(_checked_arn(event["model_package_arn"], config), endpoint)
    raise DeployError(
        f"unsupported event; expected a '{PACKAGE_EVENT}' event from EventBridge or "
        '{"model_package_arn": "...", "endpoint_name": "optional"}'
    )


def _parse_eventbridge(event: EventBridgeEvent, config: DeployerSettings) -> Deployment | str | None:
    detail = event.detail
    if not isinstance(detail, dict):
        raise DeployError(f"event 'detail' must be a JSON object, got {type(detail).__name__}")
    if event.source == "aws.sagemaker" and event.detail_type == PACKAGE_EVENT:
        arn, group, status = detail.get("ModelPackageArn"), detail.get("ModelPackageGroupName"), detail.get("ModelApprovalStatus")
        if not arn or not group or not status:
            raise DeployError("model package event lacks detail.ModelPackageArn, ModelPackageGroupName or ModelApprovalStatus")
        if group != config.model_package_group_name:
            raise DeployError(f"model package group {group!r} is not this deployer's group {config.model_package_group_name!r}")
        if status != "Approved":
            logger.info("ignoring model package that is not approved", extra={"model_package_arn": arn, "status": status})
            return None
        return Deployment(_checked_arn(arn, config), config.endpoint_name)
    if event.source == "aws.sagemaker" and event.detail_type == ENDPOINT_EVENT:
        if detail.get("EndpointName") != config.endpoint_name or detail.get("EndpointStatus") != "IN_SERVICE":
            logger.info(
                "ignoring endpoint event", extra={"endpoint": detail.get("EndpointName"), "status": detail.get("EndpointStatus")}
            )
            return None
        return config.endpoint_name
    raise DeployError(
        f"unsupported event {event.source!r} / {event.detail_type!r}; expected '{PACKAGE_EVENT}' "
        f"or '{ENDPOINT_EVENT}' from aws.sagemaker"
    )


def _checked_arn(arn, config: DeployerSettings) -> str:
    match = PACKAGE_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if not match:
        raise DeployError(
            f"{arn!r} is not a versioned model package ARN (arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)"
        )
    if match["group"] != config.model_package_group_name:
        raise DeployError(
            f"model package group {match['group']!r} is not this deployer's group {config.model_package_group_name!r}"
        )
    return arn


def package_version(arn: str) -> int:
    match = PACKAGE_ARN.fullmatch(arn)
    if not match:
        raise DeployError(f"{arn!r} is not a versioned model package ARN")
    return int(match["version"])


def config_prefix(deployment: Deployment, config: DeployerSettings) -> str:
    """`<endpoint>-v<version>-<digest of the serving settings>-`: every config of this package and these settings."""
    serving = json.dumps(
        [
            config.endpoint.instance_type,
            config.endpoint.data_capture_percentage,
            config.data_capture_s3_uri,
            config.kms_key_arn,
            config.volume_kms_key_arn or "",
            config.job_role_arn,
            # Only with a VPC, so the names of an environment without one stay as they were.
            *([network_digest(config)] if config.network else []),
        ]
    )
    digest = hashlib.sha256(serving.encode()).hexdigest()[:8]
    return f"{deployment.endpoint_name}-v{package_version(deployment.model_package_arn)}-{digest}-"


def network_digest(config: DeployerSettings) -> str:
    """8 hex digits of the VPC settings: a model is created in its VPC and cannot move, so a new VPC is a new model."""
    assert config.network is not None
    return hashlib.sha256(json.dumps(config.network.to_dict(), sort_keys=True).encode()).hexdigest()[:8]


def resource_names(deployment: Deployment, config: DeployerSettings, instance_count: int) -> tuple[str, str]:
    """Model and endpoint-config names from the package version, the serving settings and the fleet size, never a clock."""
    in_vpc = f"-{network_digest(config)}" if config.network else ""
    return (
        f"{deployment.endpoint_name}-v{package_version(deployment.model_package_arn)}{in_vpc}",
        f"{config_prefix(deployment, config)}{instance_count}",
    )


def traffic_routing(instance_count: int) -> dict:
    """Canary of one instance where that is at most half the fleet, as SageMaker requires; else all at once.

    "CanarySize ... Value must be less than or equal to 50% of the variant's total instance count"
    (SageMaker API reference, TrafficRoutingConfig). Both keep blue/green's baking period and alarm rollback.
    """
    if instance_count >= 2:
        return {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 300}
    return {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}


def _error(error: ClientError, code: str, text: str) -> bool:
    return error.response["Error"]["Code"] == code and text in error.response["Error"]["Message"]


class EndpointDeployer:
    def __init__(self, config: DeployerSettings, sagemaker, autoscaling, monitor: DataQualityMonitor | None = None) -> None:
        self.config, self.sagemaker, self.autoscaling = config, sagemaker, autoscaling
        self.monitor = monitor or DataQualityMonitor(config, sagemaker)

    def describe_endpoint(self, name: str) -> dict | None:
        try:
            return self.sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _error(error, "ValidationException", "Could not find endpoint"):
                return None
            raise

    def deploy(self, deployment: Deployment) -> dict:
        package = self._approved_package(deployment.model_package_arn)
        endpoint = self.describe_endpoint(deployment.endpoint_name)
        result = {"endpoint": deployment.endpoint_name, "model_package_arn": deployment.model_package_arn}
        if endpoint and endpoint["EndpointStatus"] in BUSY:
            logger.info("endpoint busy; its next InService event deploys the latest approved package", extra=result)
            return {**result, "action": "deferred", "reason": f"endpoint is {endpoint['EndpointStatus']}"}
        if (
            endpoint
            and endpoint["EndpointStatus"] == "InService"
            and endpoint["EndpointConfigName"].startswith(config_prefix(deployment, self.config))
        ):
            logger.info("endpoint already serves this package", extra=result)
            return {**result, "action": "none", "endpoint_config": endpoint["EndpointConfigName"]}
        count = self._fleet_size(endpoint)
        model_name, config_name = resource_names(deployment, self.config, count)
        result.update(model=model_name, endpoint_config=config_name)
        self._create_model(model_name, package)
        self._create_endpoint_config(config_name, model_name, count)
        if endpoint and endpoint["EndpointStatus"] == "Failed":
            logger.info("replacing failed endpoint", extra=result)
            # The schedule belongs to the endpoint; the replacement's first InService event attaches it again.
            self.monitor.remove("the endpoint is replaced")
            self.sagemaker.delete_endpoint(EndpointName=deployment.endpoint_name)
            self.sagemaker.get_waiter("endpoint_deleted").wait(
                EndpointName=deployment.endpoint_name, WaiterConfig={"Delay": 10, "MaxAttempts": 60}
            )
            endpoint = None
        try:
            if endpoint is None:
                self.sagemaker.create_endpoint(
                    EndpointName=deployment.endpoint_name, EndpointConfigName=config_name, Tags=self.config.tags
                )
                logger.info("endpoint creation started", extra=result)
                return {**result, "action": "created"}
            self._deregister_scaling_if_instance_type_changes(deployment.endpoint_name, endpoint["EndpointConfigName"])
            self.sagemaker.update_endpoint(
                EndpointName=deployment.endpoint_name,
                EndpointConfigName=config_name,
                RetainAllVariantProperties=False,
                DeploymentConfig={
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": traffic_routing(count),
                        "TerminationWaitInSeconds": 300,
                        "MaximumExecutionTimeoutInSeconds": 3600,
                    },
                    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in self.config.rollback_alarm_names]},
                },
            )
        except ClientError as error:
            if not (_error(error, "ValidationException", ALREADY_EXISTS) or _error(error, "ValidationException", IN_PROGRESS)):
                raise
            self._forget_unused_config(deployment.endpoint_name, config_name)
            logger.info("another deployment got there first; the next InService event converges", extra=result)
            return {**result, "action": "deferred", "reason": error.response["Error"]["Message"]}
        logger.info("blue/green update started", extra=result)
        return {**result, "action": "updated"}

    def _fleet_size(self, endpoint: dict | None) -> int:
        """The serving variant's current instance count (autoscaling may have changed it), within min and max."""
        c = self.config
        variants = (endpoint or {}).get("ProductionVariants") or []
        current = variants[0].get("DesiredInstanceCount") or variants[0].get("CurrentInstanceCount") if variants else None
        return min(max(current or c.endpoint.initial_instance_count, c.endpoint.min_capacity), c.endpoint.max_capacity)

    def _forget_unused_config(self, endpoint_name: str, config_name: str) -> None:
        """A config that lost a race is deleted, so convergence does not take it for an attempted deployment."""
        endpoint = self.describe_endpoint(endpoint_name) or {}
        if config_name not in (
            endpoint.get("EndpointConfigName"),
            (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName"),
        ):
            self.sagemaker.delete_endpoint_config(EndpointConfigName=config_name)

    def converge(self, endpoint_name: str) -> dict:
        """Deploy the latest approved package unless it serves or was already tried (a failed or rolled-back update).

        An update that fails leaves the endpoint InService with a FailureReason (DescribeEndpoint API
        reference); retrying it on every InService event would loop, so a tried package is only deployed
        again on a new approval or a direct invocation.
        """
        latest = latest_approved_package(self.sagemaker, self.config.model_package_group_name)
        if latest is None:
            return {"action": "none", "reason": "no approved model package"}
        deployment = Deployment(latest, endpoint_name)
        prefix = config_prefix(deployment, self.config)
        endpoint = self.describe_endpoint(endpoint_name) or {}
        if endpoint.get("EndpointConfigName", "").startswith(prefix):
            return {
                "action": "none",
                "reason": "the latest approved package serves",
                "model_package_arn": deployment.model_package_arn,
            }
        configs = self.sagemaker.list_endpoint_configs(NameContains=prefix, MaxResults=10)["EndpointConfigs"]
        if any(c["EndpointConfigName"].startswith(prefix) for c in configs):
            logger.warning(
                "latest approved package was deployed before and does not serve; not retrying",
                extra={"model_package_arn": deployment.model_package_arn, "failure": endpoint.get("FailureReason")},
            )
            return {
                "action": "none",
                "reason": "the latest approved package was tried and does not serve; "
                "invoke the deployer with its model_package_arn to try again",
                "model_package_arn": deployment.model_package_arn,
            }
        return self.deploy(deployment)

    def _approved_package(self, arn: str) -> dict:
        try:
            package = self.sagemaker.describe_model_package(ModelPackageName=arn)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                raise DeployError(f"model package {arn} does not exist; check the ARN in the Model Registry") from None
            raise
        if package.get("ModelApprovalStatus") != "Approved":
            raise DeployError(
                f"model package {arn} is {package.get('ModelApprovalStatus')}; approve it in the Model Registry first"
            )
        return package

    def _create_model(self, name: str, package: dict) -> None:
        network = self.config.network
        try:
            self.sagemaker.create_model(
                ModelName=name,
                ExecutionRoleArn=self.config.job_role_arn,
                Containers=[{"ModelPackageName": package["ModelPackageArn"]}],
                EnableNetworkIsolation=True,
                Tags=self.config.tags,
                # The endpoint's instances reach S3 and ECR through the environment's VPC (CreateModel, VpcConfig).
                **({"VpcConfig": network.sagemaker_vpc_config()} if network else {}),
            )
        except ClientError as error:
            if not _error(error, "ValidationException", ALREADY_EXISTS):
                raise

    def _create_endpoint_config(self, name: str, model_name: str, instance_count: int) -> None:
        c = self.config
        request: dict[str, Any] = {
            "EndpointConfigName": name,
            "Tags": c.tags,
            "ProductionVariants": [
                {
                    "VariantName": VARIANT,
                    "ModelName": model_name,
                    "InstanceType": c.endpoint.instance_type,
                    "InitialInstanceCount": instance_count,
                }
            ],
        }
        if c.volume_kms_key_arn:
            request["KmsKeyId"] = c.volume_kms_key_arn
        if c.endpoint.data_capture_percentage > 0:
            request["DataCaptureConfig"] = {
                "EnableCapture": True,
                "InitialSamplingPercentage": c.endpoint.data_capture_percentage,
                "DestinationS3Uri": c.data_capture_s3_uri,
                "KmsKeyId": c.kms_key_arn,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
            }
        try:
            self.sagemaker.create_endpoint_config(**request)
        except ClientError as error:
            if not _error(error, "ValidationException", ALREADY_EXISTS):
                raise

    def _deregister_scaling_if_instance_type_changes(self, endpoint: str, current_config: str) -> None:
        """SageMaker refuses an update that changes the instance type of an autoscaled variant."""
        current = self.sagemaker.describe_endpoint_config(EndpointConfigName=current_config)["ProductionVariants"][0]
        if current["InstanceType"] == self.config.endpoint.instance_type:
            return
        resource = f"endpoint/{endpoint}/variant/{VARIANT}"
        for policy in self.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)[
            "ScalingPolicies"
        ]:
            self.autoscaling.delete_scaling_policy(
                PolicyName=policy["PolicyName"],
                ServiceNamespace="sagemaker",
                ResourceId=resource,
                ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            )
        if self.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])["ScalableTargets"]:
            self.autoscaling.deregister_scalable_target(
                ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension="sagemaker:variant:DesiredInstanceCount"
            )

    def in_service(self, endpoint: str) -> dict:
        """Autoscaling, pruning, convergence on the latest approved package, then monitoring of what serves.

        While an update it started runs, the schedule stays on the package that serves; the update's own
        InService event moves it.
        """
        scaling = self.ensure_autoscaling(endpoint)
        deleted = self.delete_old_versions(endpoint)
        converge = self.converge(endpoint)
        result = {**scaling, "deleted": deleted, "converge": converge}
        if converge.get("action") in ("created", "updated"):
            return result
        package = self.serving_package(endpoint)
        if package is None:
            return {**result, "monitoring": self.monitor.remove("no model package serves")}
        return {**result, "monitoring": self.monitor.ensure(package)}

    def serving_package(self, endpoint: str) -> dict | None:
        """The model package behind the endpoint's live config: config -> model -> its container's package."""
        config_name = (self.describe_endpoint(endpoint) or {}).get("EndpointConfigName")
        if not config_name:
            return None
        (model_name,) = self._models_of(config_name)
        model = self.sagemaker.describe_model(ModelName=model_name)
        containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
        arn = containers[0].get("ModelPackageName")
        return self.sagemaker.describe_model_package(ModelPackageName=arn) if arn else None

    def ensure_autoscaling(self, endpoint: str) -> dict:
        c = self.config
        resource = f"endpoint/{endpoint}/variant/{VARIANT}"
        self.autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=c.endpoint.min_capacity,
            MaxCapacity=c.endpoint.max_capacity,
        )
        self.autoscaling.put_scaling_policy(
            PolicyName=f"{endpoint}-invocations-per-instance",
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(c.endpoint.target_invocations_per_instance),
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
            },
        )
        return {"endpoint": endpoint, "action": "autoscaling", "min": c.endpoint.min_capacity, "max": c.endpoint.max_capacity}

    def delete_old_versions(self, endpoint: str) -> list[str]:
        """Endpoint configs beyond the newest few and their models, never one the live or pending config uses."""
        description = self.describe_endpoint(endpoint) or {}
        in_use = {
            description.get("EndpointConfigName"),
            (description.get("PendingDeploymentSummary") or {}).get("EndpointConfigName"),
        }
        configs = [
            c["EndpointConfigName"]
            for c in self.sagemaker.list_endpoint_configs(
                NameContains=f"{endpoint}-v", SortBy="CreationTime", SortOrder="Descending", MaxResults=100
            )["EndpointConfigs"]
        ]
        kept = set(configs[:KEEP_VERSIONS]) | (in_use & set(configs))
        models = {name: self._models_of(name) for name in configs}
        spared = {model for name in kept for model in models[name]}
        deleted: list[str] = []
        for name in configs:
            if name in kept:
                continue
            self.sagemaker.delete_endpoint_config(EndpointConfigName=name)
            deleted.append(name)
            for model in models[name]:
                if model not in spared and model not in deleted:
                    self.sagemaker.delete_model(ModelName=model)
                    deleted.append(model)
        return deleted

    def _models_of(self, config_name: str) -> list[str]:
        return [
            v["ModelName"] for v in self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
        ]


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict:
    try:
        config = settings()
        request = parse_event(event, config)
        if request is None:
            return {"action": "ignored"}
        deployer = EndpointDeployer(config, aws.sagemaker(), aws.autoscaling())
        if isinstance(request, str):
            return deployer.in_service(request)
        return deployer.deploy(request)
    except (DeployError, SettingsError) as error:
        logger.error(str(error), extra={"error_type": type(error).__name__})
        raise
