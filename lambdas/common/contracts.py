"""The typed contracts between the stacks and the Lambdas: one settings class per function.

A stack builds a settings object from the validated cdk.json configuration and its own resources,
writes it as one JSON value (the SETTINGS environment variable, or a custom resource property), and
the function reads it back once at cold start. Both sides import this module, so every setting is
named and typed in exactly one place.
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Annotated, Any, Self

SETTINGS_VARIABLE = "SETTINGS"


class SettingsError(ValueError):
    """Missing or malformed settings; the message names the key and who writes it."""


def _check(cls: type[Settings], name: str, value: Any, hint: Any, source: str) -> Any:
    """`value` converted to `hint` (str, int, float, bool, tuple[str, ...], a JSON object or X | None), or SettingsError."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None or value == "" else _check(cls, name, value, inner, source)
    if isinstance(hint, type) and issubclass(hint, Settings):
        if isinstance(value, hint):
            return value
        return hint.from_mapping(value, f"{source}.{name}")
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        expected = "a non-empty list of non-empty strings"
    elif typing.get_origin(hint) is dict:
        # A block another module validates (the dataset, pipeline_scripts/dataset.py): only its shape is checked here.
        if isinstance(value, dict) and value:
            return value
        expected = "a non-empty JSON object"
    elif hint is float:
        # JSON and CloudFormation write 6.0 as 6: a float setting takes either. Python's json reads NaN and Infinity.
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        expected = "a finite number"
    elif hint is bool:
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif hint in (str, int):
        if isinstance(value, hint) and not isinstance(value, bool) and value != "":
            return value
        expected = "a non-empty string" if hint is str else "an integer"
    else:
        raise TypeError(
            f"{cls.__name__}.{name}: settings support str, int, float, bool, tuple[str, ...], dict, Settings and X | None, "
            f"not {hint}"
        )
    raise SettingsError(f"{source}.{name} = {value!r} must be {expected}; {cls.WRITER} writes it{cls.FIX}")


@dataclass(frozen=True)
class Settings:
    """Base of every settings class: types checked on construction, JSON both ways."""

    WRITER: typing.ClassVar[str] = "the stack"
    FIX: typing.ClassVar[str] = ", so redeploy the stack"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in fields(self):
            hint = hints[field.name]
            value = _check(type(self), field.name, getattr(self, field.name), hint, type(self).__name__)
            object.__setattr__(self, field.name, value)

    @classmethod
    def from_json(cls, text: Any, source: str = SETTINGS_VARIABLE) -> Self:
        try:
            values = json.loads(text) if isinstance(text, str) else text
        except json.JSONDecodeError as error:
            raise SettingsError(f"{source} is not valid JSON ({error}); {cls.WRITER} writes it{cls.FIX}") from None
        if not isinstance(text, str):
            raise SettingsError(f"{source} must be a JSON object, got {type(text).__name__}; {cls.WRITER} writes it{cls.FIX}")
        return cls.from_mapping(values, source)

    @classmethod
    def from_mapping(cls, values: Any, source: str) -> Self:
        if not isinstance(values, dict):
            raise SettingsError(f"{source} must be a JSON object, got {type(values).__name__}; {cls.WRITER} writes it{cls.FIX}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(map(str, set(values) - set(known)))
        if unknown:
            raise SettingsError(
                f"{source} has unknown key(s) {', '.join(unknown)}; expected {', '.join(known)} from {cls.WRITER}{cls.FIX}"
            )
        missing = [name for name, f in known.items() if name not in values and f.default is MISSING]
        if missing:
            raise SettingsError(f"{source} lacks {', '.join(missing)}; {cls.WRITER} writes them{cls.FIX}")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _check(cls, name, value, hints[name], source) for name, value in values.items()})

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Self:
        return cls.from_json(environ.get(SETTINGS_VARIABLE), SETTINGS_VARIABLE)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; None (an optional setting left out) is omitted."""
        return _json_ready(asdict(self))


def _json_ready(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _json_ready(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v
        for k, v in values.items()
        if v is not None
    }


# --- cdk.json sections -------------------------------------------------------------------------------------------
#
# Each setting is declared once, next to its field: its type, its default (and production's, where it differs) and
# a Setting with its bounds and its meaning. stacks/synth/config.py reads them to validate cdk.json, fill in what an
# environment leaves out and write the README's table of settings. The sections a Lambda needs live here, because
# their values reach the functions inside their settings.

SAME = "<same as other environments>"


@dataclass(frozen=True)
class Setting:
    """What a setting means, the values it takes and, where production differs, production's default.

    `form` names a check of stacks/synth/config.py beyond the type and bounds: an instance type for a use
    (`instance_type:<hosting|transform|processing|training>`), a `cron`, a `monitor_cron`, a `timezone`, an S3
    `prefix`, a file name `suffix`, an image `tag`, a `vpc_id`, `subnet_id` or `security_group_id`, a
    `permissions_boundary`. A list's form checks each item, and its minimum and maximum bound its length.
    """

    doc: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    choices: tuple[Any, ...] = ()
    form: str | None = None
    production: Any = SAME


@dataclass(frozen=True)
class QualityGateConfig(Settings):
    """A package registers only if its test metric is on the right side of `threshold` (the metric's direction).

    stacks/synth/config.py checks the metric against the dataset's problem type (pipeline_scripts/dataset.py).
    """

    metric: Annotated[
        str,
        Setting("Test metric the gate compares: mse, rmse, mae, r2; auc, accuracy, f1, logloss; accuracy, weighted_f1, logloss"),
    ]
    threshold: Annotated[float, Setting("At most this for a metric that is better lower, at least for one better higher")]


@dataclass(frozen=True)
class TrainingConfig(Settings):
    """cdk.json `training`: jobs, tuning and the model gate of the training pipeline."""

    processing_instance_type: Annotated[
        str, Setting("Preprocessing, evaluation and data-quality jobs", form="instance_type:processing")
    ] = "ml.m5.xlarge"
    processing_instance_count: Annotated[int, Setting("Instances of the preprocessing job", minimum=1, maximum=10)] = 1
    training_instance_type: Annotated[str, Setting("Each tuning job's training", form="instance_type:training")] = "ml.m5.xlarge"
    training_instance_count: Annotated[int, Setting("Instances of each training job", minimum=1, maximum=10)] = 1
    tuning_max_jobs: Annotated[int, Setting("Training jobs the tuner runs in all", minimum=1, maximum=100, production=20)] = 4
    tuning_max_parallel_jobs: Annotated[
        int, Setting("Training jobs the tuner runs at once (at most tuning_max_jobs)", minimum=1, maximum=10, production=4)
    ] = 2
    model_approval_status: Annotated[
        str,
        Setting(
            "Status a gated package registers with; production must be PendingManualApproval",
            choices=("Approved", "PendingManualApproval"),
            production="PendingManualApproval",
        ),
    ] = "Approved"
    quality_gate: Annotated[QualityGateConfig | None, Setting("The gate of this environment; left out, mlops.quality_gate")] = (
        None
    )
    training_image_tag: Annotated[
        str | None, Setting("An image tag you push instead of the one the deploy builds", form="tag")
    ] = None
    inference_image_tag: Annotated[
        str | None, Setting("An image tag you push instead of the one the deploy builds", form="tag")
    ] = None


@dataclass(frozen=True)
class BatchPredictionConfig(Settings):
    """cdk.json `batch_prediction`: the transform fleet and where the daily data comes from and goes."""

    instance_type: Annotated[str, Setting("Batch transform instances", form="instance_type:transform")] = "ml.m5.xlarge"
    instance_count: Annotated[int, Setting("Batch transform instances", minimum=1, maximum=10)] = 1
    input_prefix: Annotated[str, Setting("Raw-data bucket prefix of the days' inputs (`<prefix><date>/`)", form="prefix")] = (
        "batch-input/"
    )
    output_prefix: Annotated[
        str, Setting("Artifacts bucket prefix of the days' predictions (`<prefix><date>/`)", form="prefix")
    ] = "batch-predictions/"


@dataclass(frozen=True)
class EndpointConfig(Settings):
    """cdk.json `endpoint`: how every version of the real-time endpoint is served and scaled."""

    instance_type: Annotated[
        str,
        Setting("Endpoint instances (real-time hosting has no ml.t3)", form="instance_type:hosting", production="ml.m5.large"),
    ] = "ml.t2.medium"
    initial_instance_count: Annotated[
        int, Setting("Instances of a new endpoint (between min and max capacity)", minimum=1, maximum=10, production=2)
    ] = 1
    min_capacity: Annotated[int, Setting("Fewest instances autoscaling keeps", minimum=1, maximum=10, production=2)] = 1
    max_capacity: Annotated[int, Setting("Most instances autoscaling adds", minimum=1, maximum=20, production=6)] = 2
    target_invocations_per_instance: Annotated[
        int, Setting("Invocations per instance and minute autoscaling aims at", minimum=1, maximum=100000)
    ] = 1000
    data_capture_percentage: Annotated[
        int, Setting("Share of requests captured for monitoring", minimum=0, maximum=100, production=20)
    ] = 100
    max_latency_ms: Annotated[
        int, Setting("p99 model latency that rolls an update back, and the system test's p95 limit", minimum=1, maximum=60000)
    ] = 200


@dataclass(frozen=True)
class MonitoringConfig(Settings):
    """cdk.json `monitoring`: Model Monitor's data-quality schedule on the endpoint and retraining on drift."""

    enabled: Annotated[bool, Setting("Model Monitor's baselines, schedule and batch checks (closed to new customers)")] = True
    schedule_cron: Annotated[str, Setting("When the data-quality job runs (UTC)", form="monitor_cron")] = "cron(0 * ? * * *)"
    instance_type: Annotated[str, Setting("The data-quality jobs", form="instance_type:processing")] = "ml.m5.large"
    drift_threshold: Annotated[float, Setting("A feature's distance from the baseline that alarms", above=0)] = 0.1
    retraining_quiet_period_hours: Annotated[
        int, Setting("Hours after a drift-started training before drift retrains again", minimum=1, maximum=2160, production=72)
    ] = 24


# Both SageMaker's VpcConfig (CreateTrainingJob, CreateProcessingJob, CreateModel and the monitoring job definitions)
# and Lambda's take at most 16 subnets and 5 security groups (API references: VpcConfig).
MAX_SUBNETS = 16
MAX_SECURITY_GROUPS = 5


@dataclass(frozen=True)
class NetworkConfig(Settings):
    """cdk.json `network`: an existing VPC every function, build and SageMaker job of the environment runs in.

    Given by id, so synth looks nothing up and stays offline. Left out, everything runs as without a VPC.
    """

    vpc_id: Annotated[str, Setting("The VPC of the subnets and security groups", form="vpc_id")]
    subnet_ids: Annotated[
        tuple[str, ...],
        Setting(
            "Private subnets the functions, the image build and the jobs run in", minimum=1, maximum=MAX_SUBNETS, form="subnet_id"
        ),
    ]
    security_group_ids: Annotated[
        tuple[str, ...],
        Setting(
            "Security groups of their network interfaces (egress to the VPC endpoints)",
            minimum=1,
            maximum=MAX_SECURITY_GROUPS,
            form="security_group_id",
        ),
    ]

    def sagemaker_vpc_config(self) -> dict[str, list[str]]:
        """The VpcConfig of SageMaker's CreateModel, CreateTrainingJob and monitoring NetworkConfig."""
        return {"SecurityGroupIds": list(self.security_group_ids), "Subnets": list(self.subnet_ids)}


@dataclass(frozen=True)
class MonitoringScheduleConfig(Settings):
    """What the deployer needs of `monitoring` to keep the endpoint's data-quality schedule."""

    enabled: bool
    schedule_cron: str
    instance_type: str


@dataclass(frozen=True)
class PipelineSettings(Settings):
    """register_pipelines: everything both pipeline definitions need."""

    region: str
    pipeline_definition_role_arn: str
    pipeline_execution_role_arn: str
    job_role_arn: str
    kms_key_arn: str
    raw_data_bucket: str
    features_bucket: str
    artifacts_bucket: str
    raw_data_prefix: str
    training_pipeline_name: str
    batch_pipeline_name: str
    model_package_group_name: str
    training_image_uri: str
    inference_image_uri: str
    resolve_batch_inputs_function_arn: str
    check_training_data_function_arn: str
    endpoint_instance_type: str
    timezone: str
    # cdk.json's `dataset` block, read with pipeline_scripts/dataset.py, which the function bundles.
    dataset: dict[str, Any]
    training: TrainingConfig
    batch_prediction: BatchPredictionConfig
    # Model Monitor's analyzer baselines the training data and checks batch input; off with monitoring, for
    # accounts that cannot use Model Monitor (closed to new customers).
    data_quality_checks: bool = True
    # Every job and model of both pipelines runs in these subnets; left out, outside any VPC.
    network: NetworkConfig | None = None


@dataclass(frozen=True)
class DeployerSettings(Settings):
    """deploy_endpoint: the endpoint it owns and how every version of it is served."""

    endpoint_name: str
    model_package_group_name: str
    job_role_arn: str
    data_capture_s3_uri: str
    kms_key_arn: str
    rollback_alarm_names: tuple[str, ...]
    endpoint: EndpointConfig
    monitoring: MonitoringScheduleConfig
    # The schedule's name is fixed per endpoint: the drift alarm watches the metrics it publishes under that name.
    monitoring_schedule_name: str
    # The stage's tags, on everything the deployer creates, so that cost reports and the budget see it.
    resource_tags: dict[str, Any]
    # What the schedule's jobs run with; left out when monitoring is disabled.
    monitoring_role_arn: str | None = None
    monitor_image_uri: str | None = None
    monitoring_reports_s3_uri: str | None = None
    # Left out for instance types with NVMe instance storage, which SageMaker refuses a volume key for.
    volume_kms_key_arn: str | None = None
    monitoring_volume_kms_key_arn: str | None = None
    # The models and monitoring jobs run in these subnets; left out, outside any VPC.
    network: NetworkConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        needed = ("monitoring_role_arn", "monitor_image_uri", "monitoring_reports_s3_uri")
        missing = [name for name in needed if getattr(self, name) is None]
        if self.monitoring.enabled and missing:
            raise SettingsError(
                f"DeployerSettings: monitoring is enabled but {', '.join(missing)} is missing; {self.WRITER} writes it{self.FIX}"
            )

    @property
    def tags(self) -> list[dict[str, str]]:
        """`resource_tags` as SageMaker's Create* requests take them."""
        return [{"Key": key, "Value": str(value)} for key, value in self.resource_tags.items()]


@dataclass(frozen=True)
class RetrainingSettings(Settings):
    """retrain_on_drift: the pipeline the drift alarm retrains with, and how often it may."""

    training_pipeline_name: str
    drift_alarm_name: str
    quiet_period_hours: int


@dataclass(frozen=True)
class SystemTestSettings(Settings):
    """system_test: what a deployed environment must have, and how fast its endpoint must answer.

    The same object is a stack output, so `make validate` checks a deployed environment with it. The model's
    quality is not here: the training pipeline gates it (training.quality_gate) before a package is registered.
    """

    environment: str
    kms_key_arn: str
    buckets: tuple[str, ...]
    repositories: tuple[str, ...]
    pipelines: tuple[str, ...]
    model_package_group_name: str
    # "<schedule name>=ENABLED" or "=DISABLED": each schedule in the state its configuration gives it.
    schedules: tuple[str, ...]
    endpoint_name: str
    data_capture_s3_uri: str
    max_latency_ms: int
    alerts_topic_arn: str


@dataclass(frozen=True)
class ImageBuildSettings(Settings):
    """build_images: the CodeBuild project and, per image, its repository, tag and whether the deploy builds it.

    An image whose tag the configuration overrides is the user's to push; it is never built.
    """

    project_name: str
    # The Service Quotas name of the quota that caps the project's concurrent builds, for the error that names it.
    build_quota: str
    registry: str
    training_repository: str
    training_tag: str
    build_training: bool
    inference_repository: str
    inference_tag: str
    build_inference: bool

    def images(self) -> list[tuple[str, str, str]]:
        """(name, repository, tag) of each image the deploy builds."""
        wanted = (
            ("training", self.training_repository, self.training_tag, self.build_training),
            ("inference", self.inference_repository, self.inference_tag, self.build_inference),
        )
        return [(name, repository, tag) for name, repository, tag, build in wanted if build]


@dataclass(frozen=True)
class TrainingDataRequest(Settings):
    """check_training_data: the inputs the training pipeline's LambdaStep sends at execution time."""

    WRITER = "the training pipeline's LambdaStep"
    FIX = "; re-register the pipelines if it differs from this function"

    input_data_uri: str
    execution_id: str


@dataclass(frozen=True)
class BatchInputsRequest(Settings):
    """resolve_batch_inputs: the inputs the batch pipeline's LambdaStep sends at execution time.

    Execution-time parameters may arrive empty: processing_date "" means today in `timezone`.
    """

    WRITER = "the batch pipeline's LambdaStep"
    FIX = "; re-register the pipelines if it differs from this function"

    model_package_group_name: str
    input_prefix_uri: str
    output_prefix_uri: str
    timezone: str
    execution_id: str
    processing_date: str | None = None
