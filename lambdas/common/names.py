"""Resource names and event types: what the stacks create and grant on, and what the functions find and make.

Standard library only: the stacks import it as `lambdas.common.names`, the functions as `common.names`.
"""

from __future__ import annotations

from dataclasses import dataclass

# The endpoint's one production variant.
VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# The tags every resource of an environment carries: what the budget and a cost report select on.
PROJECT_TAG, ENVIRONMENT_TAG = "project", "environment"

# EventBridge detail-types of the events the platform's rules match and its functions read.
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
ENDPOINT_STATE_CHANGE = "SageMaker Endpoint State Change"
PIPELINE_EXECUTION_STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
OBJECT_CREATED = "Object Created"
ECR_IMAGE_ACTION = "ECR Image Action"
ECR_IMAGE_SCAN = "ECR Image Scan"


@dataclass(frozen=True)
class ResourceNames:
    """The fixed names of one environment's resources, all derived from `<project>-<environment>`."""

    project: str
    environment: str

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.environment}"

    @property
    def endpoint(self) -> str:
        return self.prefix

    @property
    def model_package_group(self) -> str:
        return self.prefix

    @property
    def training_pipeline(self) -> str:
        return f"{self.prefix}-training"

    @property
    def batch_pipeline(self) -> str:
        return f"{self.prefix}-batch-prediction"

    @property
    def training_repository(self) -> str:
        return f"{self.prefix}-training"

    @property
    def inference_repository(self) -> str:
        return f"{self.prefix}-inference"

    @property
    def system_test(self) -> str:
        """The state machine; the delivery pipeline in another account names it without a cross-stack reference."""
        return f"{self.prefix}-system-test"

    @property
    def system_test_invoker(self) -> str:
        """The role the delivery pipeline's Step Functions action assumes."""
        return f"{self.prefix}-system-test-invoker"

    @property
    def monitoring_schedule(self) -> str:
        """Fixed per endpoint: the deployer points it at each serving package, the drift alarm watches its metrics."""
        return f"{self.prefix}-data-quality"

    def alarm(self, purpose: str) -> str:
        """Every alarm is named so: the alerts topic and its key let in this environment's alarms only."""
        return f"{self.prefix}-{purpose}"

    @property
    def alarm_pattern(self) -> str:
        return f"{self.prefix}-*"

    @property
    def log_group_prefix(self) -> str:
        return f"/{self.project}/{self.environment}"


@dataclass(frozen=True)
class EndpointResources:
    """What the deployer names after the endpoint at run time, and the patterns its role is granted on."""

    endpoint: str

    def model(self, version: int) -> str:
        return f"{self.endpoint}-v{version}"

    def config_prefix(self, version: int, digest: str) -> str:
        """Every endpoint config of one package version and one set of serving settings starts so."""
        return f"{self.endpoint}-v{version}-{digest}-"

    def version_prefix(self, version: int) -> str:
        return f"{self.endpoint}-v{version}-"

    @property
    def versions(self) -> str:
        """What every model and endpoint config of the endpoint starts with."""
        return f"{self.endpoint}-v"

    def job_definition(self, version: int, digest: str) -> str:
        return f"{self.job_definitions}{version}-{digest}"

    @property
    def job_definitions(self) -> str:
        """What every data-quality job definition of the endpoint starts with."""
        return f"{self.endpoint}-dq-v"

    @property
    def scalable_target(self) -> str:
        """Application Auto Scaling's resource id of the endpoint's variant."""
        return f"endpoint/{self.endpoint}/variant/{VARIANT}"

    @property
    def scaling_alarms(self) -> str:
        """Target tracking names the alarms it creates after the scalable target."""
        return f"TargetTracking-{self.scalable_target.rsplit('/', 1)[0]}/*"
