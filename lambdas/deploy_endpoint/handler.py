"""Puts an approved model package behind the real-time endpoint, safely and idempotently.

Events it takes:
- "SageMaker Model Package State Change" (EventBridge) for this project's group: Approved deploys,
  any other status is ignored with a log line;
- a direct invocation {"model_package_arn": "...", "endpoint_name": "optional"};
- "SageMaker Endpoint State Change" to IN_SERVICE for the endpoint: registers autoscaling (which
  cannot be registered while the endpoint is still being created) and deletes old versions.

Package -> model -> endpoint config (data capture under KMS) -> create, or update with blue/green
canary traffic shifting and automatic rollback on the stack's CloudWatch alarms.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Mapping

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

VARIANT = "AllTraffic"
KEEP_VERSIONS = 3
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")
PACKAGE_EVENT = "SageMaker Model Package State Change"
ENDPOINT_EVENT = "SageMaker Endpoint State Change"
PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/(?P<group>[A-Za-z0-9-]{1,63})/(?P<version>\d+)$")
# Instances with NVMe instance storage encrypt it in hardware; SageMaker refuses a volume KMS key for them.
INSTANCE_STORE_FAMILIES = frozenset({"m5d", "c5d", "r5d", "g4dn", "g5", "g6", "p3dn", "p4d", "p5", "inf2", "trn1"})
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class DeployError(Exception):
    """A request the deployer cannot carry out; the message names what is wrong and how to fix it."""


class EndpointBusyError(DeployError):
    """The endpoint is changing; retrying later is safe (asynchronous invocations are retried)."""


@dataclass(frozen=True)
class Settings:
    endpoint_name: str
    model_package_group_name: str
    execution_role_arn: str
    instance_type: str
    initial_instance_count: int
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance: int
    data_capture_percentage: int
    data_capture_s3_uri: str
    kms_key_arn: str
    rollback_alarm_names: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "Settings":
        values = {}
        for field in fields(cls):
            raw = environ.get(field.name.upper(), "")
            if not raw:
                raise DeployError(f"environment variable {field.name.upper()} is missing or empty; the orchestration stack sets it, so redeploy it")
            try:
                values[field.name] = int(raw) if field.type == "int" else raw
            except ValueError:
                raise DeployError(f"environment variable {field.name.upper()}={raw!r} is not an integer") from None
        return cls(**values)

    @property
    def alarms(self) -> list[str]:
        return [name for name in self.rollback_alarm_names.split(",") if name]


@lru_cache(maxsize=1)
def settings() -> Settings:
    """Read once per cold start; a missing variable fails every invocation with the same clear message."""
    return Settings.from_environment(os.environ)


@dataclass(frozen=True)
class Deployment:
    model_package_arn: str
    endpoint_name: str


def parse_event(event, config: Settings) -> Deployment | str | None:
    """A Deployment to carry out, an endpoint name whose autoscaling to ensure, or None to ignore."""
    if not isinstance(event, dict):
        raise DeployError(f"event must be a JSON object, got {type(event).__name__}")
    if event.get("source") == "aws.sagemaker" and event.get("detail-type") == PACKAGE_EVENT:
        detail = event.get("detail") or {}
        arn, group, status = detail.get("ModelPackageArn"), detail.get("ModelPackageGroupName"), detail.get("ModelApprovalStatus")
        if not arn or not group or not status:
            raise DeployError("model package event lacks detail.ModelPackageArn, ModelPackageGroupName or ModelApprovalStatus")
        if group != config.model_package_group_name:
            raise DeployError(f"model package group {group!r} is not this deployer's group {config.model_package_group_name!r}")
        if status != "Approved":
            logger.info("ignoring model package that is not approved", extra={"model_package_arn": arn, "status": status})
            return None
        return Deployment(_checked_arn(arn, config), config.endpoint_name)
    if event.get("source") == "aws.sagemaker" and event.get("detail-type") == ENDPOINT_EVENT:
        detail = event.get("detail") or {}
        if detail.get("EndpointName") != config.endpoint_name or detail.get("EndpointStatus") != "IN_SERVICE":
            logger.info("ignoring endpoint event", extra={"endpoint": detail.get("EndpointName"), "status": detail.get("EndpointStatus")})
            return None
        return config.endpoint_name
    if "model_package_arn" in event:
        unknown = set(event) - {"model_package_arn", "endpoint_name"}
        if unknown:
            raise DeployError(f"unknown key(s) {', '.join(sorted(unknown))}; send model_package_arn and optionally endpoint_name")
        endpoint = event.get("endpoint_name") or config.endpoint_name
        if not isinstance(endpoint, str) or not ENDPOINT_NAME.match(endpoint) or len(endpoint) > 40:
            raise DeployError(f"endpoint_name {endpoint!r} must be 1-40 letters, digits or hyphens")
        return Deployment(_checked_arn(event["model_package_arn"], config), endpoint)
    raise DeployError(f"unsupported event; expected a '{PACKAGE_EVENT}' event from EventBridge or "
                      '{"model_package_arn": "...", "endpoint_name": "optional"}')


def _checked_arn(arn, config: Settings) -> str:
    match = PACKAGE_ARN.match(arn) if isinstance(arn, str) else None
    if not match:
        raise DeployError(f"{arn!r} is not a versioned model package ARN (arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)")
    if match["group"] != config.model_package_group_name:
        raise DeployError(f"model package group {match['group']!r} is not this deployer's group {config.model_package_group_name!r}")
    return arn


def resource_names(deployment: Deployment, config: Settings) -> tuple[str, str]:
    """Model and endpoint-config names from the package version and the serving settings, never a clock."""
    version = PACKAGE_ARN.match(deployment.model_package_arn)["version"]
    serving = json.dumps([config.instance_type, config.initial_instance_count, config.data_capture_percentage,
                          config.data_capture_s3_uri, config.kms_key_arn, config.execution_role_arn])
    digest = hashlib.sha256(serving.encode()).hexdigest()[:8]
    model = f"{deployment.endpoint_name}-v{version}"
    return model, f"{model}-{digest}"


class EndpointDeployer:
    def __init__(self, config: Settings, sagemaker, autoscaling) -> None:
        self.config, self.sagemaker, self.autoscaling = config, sagemaker, autoscaling

    def describe_endpoint(self, name: str) -> dict | None:
        try:
            return self.sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ValidationException" and "Could not find" in error.response["Error"]["Message"]:
                return None
            raise

    def deploy(self, deployment: Deployment) -> dict:
        package = self._approved_package(deployment.model_package_arn)
        model_name, config_name = resource_names(deployment, self.config)
        endpoint = self.describe_endpoint(deployment.endpoint_name)
        result = {"endpoint": deployment.endpoint_name, "model_package_arn": deployment.model_package_arn,
                  "model": model_name, "endpoint_config": config_name}
        if endpoint and endpoint["EndpointStatus"] in BUSY:
            raise EndpointBusyError(f"endpoint {deployment.endpoint_name} is {endpoint['EndpointStatus']}; retry once it is InService or Failed")
        if endpoint and endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == config_name:
            logger.info("endpoint already serves this package", extra=result)
            return {**result, "action": "none"}
        self._create_model(model_name, package)
        self._create_endpoint_config(config_name, model_name)
        if endpoint and endpoint["EndpointStatus"] == "Failed":
            logger.info("replacing failed endpoint", extra=result)
            self.sagemaker.delete_endpoint(EndpointName=deployment.endpoint_name)
            self.sagemaker.get_waiter("endpoint_deleted").wait(EndpointName=deployment.endpoint_name,
                                                               WaiterConfig={"Delay": 10, "MaxAttempts": 60})
            endpoint = None
        if endpoint is None:
            self.sagemaker.create_endpoint(EndpointName=deployment.endpoint_name, EndpointConfigName=config_name)
            logger.info("endpoint creation started", extra=result)
            return {**result, "action": "created"}
        self._deregister_scaling_if_instance_type_changes(deployment.endpoint_name, endpoint["EndpointConfigName"])
        self.sagemaker.update_endpoint(
            EndpointName=deployment.endpoint_name, EndpointConfigName=config_name, RetainAllVariantProperties=False,
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                                                    "WaitIntervalInSeconds": 300},
                    "TerminationWaitInSeconds": 300,
                    "MaximumExecutionTimeoutInSeconds": 3600,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in self.config.alarms]},
            },
        )
        logger.info("blue/green update started", extra=result)
        return {**result, "action": "updated"}

    def _approved_package(self, arn: str) -> dict:
        try:
            package = self.sagemaker.describe_model_package(ModelPackageName=arn)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                raise DeployError(f"model package {arn} does not exist; check the ARN in the Model Registry") from None
            raise
        if package.get("ModelApprovalStatus") != "Approved":
            raise DeployError(f"model package {arn} is {package.get('ModelApprovalStatus')}; approve it in the Model Registry first")
        return package

    def _create_model(self, name: str, package: dict) -> None:
        try:
            self.sagemaker.create_model(ModelName=name, ExecutionRoleArn=self.config.execution_role_arn,
                                        Containers=[{"ModelPackageName": package["ModelPackageArn"]}],
                                        EnableNetworkIsolation=True)
        except ClientError as error:
            if "already exists" not in error.response["Error"]["Message"]:
                raise

    def _create_endpoint_config(self, name: str, model_name: str) -> None:
        c = self.config
        request = {
            "EndpointConfigName": name,
            "ProductionVariants": [{"VariantName": VARIANT, "ModelName": model_name, "InstanceType": c.instance_type,
                                    "InitialInstanceCount": c.initial_instance_count}],
        }
        if c.instance_type.split(".")[1] not in INSTANCE_STORE_FAMILIES:
            request["KmsKeyId"] = c.kms_key_arn
        if c.data_capture_percentage > 0:
            request["DataCaptureConfig"] = {
                "EnableCapture": True, "InitialSamplingPercentage": c.data_capture_percentage,
                "DestinationS3Uri": c.data_capture_s3_uri, "KmsKeyId": c.kms_key_arn,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
            }
        try:
            self.sagemaker.create_endpoint_config(**request)
        except ClientError as error:
            if "already exists" not in error.response["Error"]["Message"]:
                raise

    def _deregister_scaling_if_instance_type_changes(self, endpoint: str, current_config: str) -> None:
        """SageMaker refuses an update that changes the instance type of an autoscaled variant."""
        current = self.sagemaker.describe_endpoint_config(EndpointConfigName=current_config)["ProductionVariants"][0]
        if current["InstanceType"] == self.config.instance_type:
            return
        resource = f"endpoint/{endpoint}/variant/{VARIANT}"
        for policy in self.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"]:
            self.autoscaling.delete_scaling_policy(PolicyName=policy["PolicyName"], ServiceNamespace="sagemaker", ResourceId=resource,
                                                   ScalableDimension="sagemaker:variant:DesiredInstanceCount")
        if self.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])["ScalableTargets"]:
            self.autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                                        ScalableDimension="sagemaker:variant:DesiredInstanceCount")

    def ensure_autoscaling(self, endpoint: str) -> dict:
        c = self.config
        resource = f"endpoint/{endpoint}/variant/{VARIANT}"
        self.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                                  ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                                  MinCapacity=c.min_capacity, MaxCapacity=c.max_capacity)
        self.autoscaling.put_scaling_policy(
            PolicyName=f"{endpoint}-invocations-per-instance", ServiceNamespace="sagemaker", ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount", PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(c.target_invocations_per_instance),
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
            },
        )
        return {"endpoint": endpoint, "action": "autoscaling", "min": c.min_capacity, "max": c.max_capacity,
                "deleted": self.delete_old_versions(endpoint)}

    def delete_old_versions(self, endpoint: str) -> list[str]:
        """Endpoint configs (and their models) beyond the newest few, unless an endpoint still uses them."""
        description = self.describe_endpoint(endpoint) or {}
        in_use = {description.get("EndpointConfigName"), (description.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")}
        configs = self.sagemaker.list_endpoint_configs(NameContains=f"{endpoint}-v", SortBy="CreationTime",
                                                       SortOrder="Descending", MaxResults=100)["EndpointConfigs"]
        kept = {model for c in configs[:KEEP_VERSIONS] for model in self._models_of(c["EndpointConfigName"])}
        deleted = []
        for old in configs[KEEP_VERSIONS:]:
            name = old["EndpointConfigName"]
            if name in in_use:
                continue
            models = self._models_of(name)
            self.sagemaker.delete_endpoint_config(EndpointConfigName=name)
            deleted.append(name)
            for model in models:
                if model not in kept:
                    self.sagemaker.delete_model(ModelName=model)
                    deleted.append(model)
        return deleted

    def _models_of(self, config_name: str) -> list[str]:
        return [v["ModelName"] for v in self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]]


def handler(event, context):
    try:
        config = settings()
        request = parse_event(event, config)
        if request is None:
            return {"action": "ignored"}
        deployer = EndpointDeployer(config, boto3.client("sagemaker"), boto3.client("application-autoscaling"))
        if isinstance(request, str):
            return deployer.ensure_autoscaling(request)
        return deployer.deploy(request)
    except DeployError as error:
        logger.error(str(error), extra={"event_type": type(error).__name__})
        raise
