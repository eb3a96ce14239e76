"""The endpoint's data-quality schedule: Model Monitor against the baseline of the package that serves.

One schedule per endpoint, with a fixed name (the drift alarm watches the metrics published under it). A job
definition cannot be changed, so each package (and each change of the monitoring settings) gets its own,
named after the package version and a digest of the settings; the schedule is pointed at the serving
package's definition, and the definitions of packages no longer serving are deleted.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from common.contracts import DeployerSettings
from common.registry import data_quality_baseline

logger = Logger(service="deploy-endpoint")

# A monitoring job must end before the next one starts; an hourly schedule leaves it the hour.
MAX_RUNTIME_SECONDS = 3600
VOLUME_SIZE_GB = 20
# Model Monitor's analyzer reads the captured requests here and writes its reports from here
# (the SageMaker Python SDK's DefaultModelMonitor uses the same container paths).
CAPTURE_PATH = "/opt/ml/processing/input/endpoint"
REPORTS_PATH = "/opt/ml/processing/output"
SCHEDULE_SETTLE_SECONDS = 120


def _code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


class DataQualityMonitor:
    def __init__(self, config: DeployerSettings, sagemaker, sleep=time.sleep) -> None:
        self.config, self.sagemaker, self._sleep = config, sagemaker, sleep

    @property
    def schedule_name(self) -> str:
        return self.config.monitoring_schedule_name

    def definition_prefix(self) -> str:
        return f"{self.config.endpoint_name}-dq-v"

    def definition_name(self, version: int) -> str:
        """`<endpoint>-dq-v<version>-<digest of the monitoring settings>`, within SageMaker's 63 characters."""
        c = self.config
        settings = json.dumps(
            [
                c.monitoring.instance_type,
                c.monitoring_role_arn,
                c.monitor_image_uri,
                c.monitoring_reports_s3_uri,
                c.kms_key_arn,
                c.monitoring_volume_kms_key_arn or "",
                # Only with a VPC, so the names of an environment without one stay as they were.
                *([c.network.to_dict()] if c.network else []),
            ]
        )
        return f"{self.definition_prefix()}{version}-{hashlib.sha256(settings.encode()).hexdigest()[:8]}"

    def describe_schedule(self) -> dict | None:
        try:
            return self.sagemaker.describe_monitoring_schedule(MonitoringScheduleName=self.schedule_name)
        except ClientError as error:
            if _code(error) == "ResourceNotFound":
                return None
            raise

    def ensure(self, package: dict) -> dict:
        """Attach the schedule to `package`'s baseline, or remove it where there is nothing to monitor against."""
        result: dict[str, Any] = {"schedule": self.schedule_name, "model_package_arn": package["ModelPackageArn"]}
        if not self.config.monitoring.enabled:
            return {**result, **self.remove("monitoring is disabled for this environment")}
        baseline = data_quality_baseline(package)
        if baseline is None:
            logger.warning("the serving package has no data-quality baseline; nothing to monitor against", extra=result)
            return {**result, **self.remove("the serving package has no data-quality baseline; retrain to register one")}
        statistics, constraints = baseline
        definition = self.definition_name(package["ModelPackageVersion"])
        self._create_definition(definition, statistics, constraints)
        schedule = self._settled(self.describe_schedule())
        action = self._create_or_update_schedule(schedule, definition)
        deleted = self._delete_definitions(keep=definition)
        logger.info("data-quality monitoring attached", extra={**result, "definition": definition, "action": action})
        return {**result, "action": action, "definition": definition, "deleted": deleted}

    def remove(self, reason: str) -> dict:
        """Delete the schedule and every job definition of this endpoint."""
        schedule = self._settled(self.describe_schedule())
        if schedule is not None:
            self.sagemaker.delete_monitoring_schedule(MonitoringScheduleName=self.schedule_name)
            self._wait_until_gone()
        deleted = self._delete_definitions(keep=None)
        action = "removed" if schedule is not None or deleted else "none"
        return {"action": action, "reason": reason, "deleted": deleted}

    def _create_definition(self, name: str, statistics: str, constraints: str) -> None:
        c = self.config
        cluster: dict[str, Any] = {
            "InstanceCount": 1,
            "InstanceType": c.monitoring.instance_type,
            "VolumeSizeInGB": VOLUME_SIZE_GB,
        }
        if c.monitoring_volume_kms_key_arn:
            cluster["VolumeKmsKeyId"] = c.monitoring_volume_kms_key_arn
        try:
            self.sagemaker.create_data_quality_job_definition(
                JobDefinitionName=name,
                DataQualityBaselineConfig={
                    "ConstraintsResource": {"S3Uri": constraints},
                    "StatisticsResource": {"S3Uri": statistics},
                },
                DataQualityAppSpecification={
                    "ImageUri": c.monitor_image_uri,
                    "Environment": {"publish_cloudwatch_metrics": "Enabled"},
                },
                DataQualityJobInput={
                    "EndpointInput": {
                        "EndpointName": c.endpoint_name,
                        "LocalPath": CAPTURE_PATH,
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                DataQualityJobOutputConfig={
                    "MonitoringOutputs": [
                        {
                            "S3Output": {
                                "S3Uri": c.monitoring_reports_s3_uri,
                                "LocalPath": REPORTS_PATH,
                                "S3UploadMode": "EndOfJob",
                            }
                        }
                    ],
                    "KmsKeyId": c.kms_key_arn,
                },
                JobResources={"ClusterConfig": cluster},
                NetworkConfig=self._network(),
                RoleArn=c.monitoring_role_arn,
                StoppingCondition={"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
                Tags=c.tags,
            )
        except ClientError as error:
            # The name carries the package version and a digest of every setting: one that exists is this one.
            if _code(error) != "ResourceInUse":
                raise

    def _network(self) -> dict[str, Any]:
        """Isolated, and in the environment's subnets when it has a VPC (MonitoringNetworkConfig, VpcConfig)."""
        network: dict[str, Any] = {"EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True}
        if self.config.network:
            network["VpcConfig"] = self.config.network.sagemaker_vpc_config()
        return network

    def _create_or_update_schedule(self, schedule: dict | None, definition: str) -> str:
        config = {
            "ScheduleConfig": {"ScheduleExpression": self.config.monitoring.schedule_cron},
            "MonitoringJobDefinitionName": definition,
            "MonitoringType": "DataQuality",
        }
        if schedule is None:
            self.sagemaker.create_monitoring_schedule(
                MonitoringScheduleName=self.schedule_name, MonitoringScheduleConfig=config, Tags=self.config.tags
            )
            return "created"
        current = schedule.get("MonitoringScheduleConfig") or {}
        if (
            current.get("MonitoringJobDefinitionName") == definition
            and (current.get("ScheduleConfig") or {}).get("ScheduleExpression") == self.config.monitoring.schedule_cron
        ):
            return "none"
        self.sagemaker.update_monitoring_schedule(MonitoringScheduleName=self.schedule_name, MonitoringScheduleConfig=config)
        return "updated"

    def _delete_definitions(self, keep: str | None) -> list[str]:
        """This endpoint's job definitions other than `keep`; one a schedule still holds is left for the next run."""
        deleted = []
        paginator = self.sagemaker.get_paginator("list_data_quality_job_definitions")
        for page in paginator.paginate(NameContains=self.definition_prefix()):
            for summary in page["JobDefinitionSummaries"]:
                name = summary["MonitoringJobDefinitionName"]
                if name == keep or not name.startswith(self.definition_prefix()):
                    continue
                try:
                    self.sagemaker.delete_data_quality_job_definition(JobDefinitionName=name)
                except ClientError as error:
                    if _code(error) not in ("ResourceInUse", "ResourceNotFound"):
                        raise
                    logger.info("job definition not deleted yet", extra={"definition": name, "error": _code(error)})
                    continue
                deleted.append(name)
        return deleted

    def _settled(self, schedule: dict | None) -> dict | None:
        """The schedule once it is no longer Pending (SageMaker refuses to change a schedule it is still changing)."""
        return self._wait(schedule, lambda s: s is None or s.get("MonitoringScheduleStatus") != "Pending", "stayed Pending for")

    def _wait_until_gone(self) -> None:
        self._wait(self.describe_schedule(), lambda s: s is None, "was not deleted within")

    def _wait(self, schedule: dict | None, done: Callable[[dict | None], bool], still: str) -> dict | None:
        waited = 0
        while not done(schedule):
            if waited >= SCHEDULE_SETTLE_SECONDS:
                raise TimeoutError(f"monitoring schedule {self.schedule_name} {still} {waited} s; invoke again")
            self._sleep(5)
            waited += 5
            schedule = self.describe_schedule()
        return schedule
