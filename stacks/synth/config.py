"""Typed, validated configuration read once from the `mlops` block of cdk.json context.

Every value a stack needs arrives here first; a wrong value stops synth with one message that
names the key, the value and what is allowed. Stacks receive these frozen objects and never read
context or the process environment themselves.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

import botocore.session
from botocore.model import StringShape

from lambdas.common.contracts import BatchPredictionConfig, EndpointConfig, MonitoringConfig, TrainingConfig

# Each use of an instance type is an enum of its own in SageMaker's API model: real-time hosting has
# no ml.t3 types, processing has no ml.t2, and so on. botocore ships that model, so it is the oracle.
INSTANCE_TYPE_SHAPES = {
    "hosting": "ProductionVariantInstanceType",
    "transform": "TransformInstanceType",
    "processing": "ProcessingInstanceType",
    "training": "TrainingInstanceType",
}
# The longest endpoint name that leaves room for "-v<version>-<digest>-<count>" within SageMaker's 63 characters.
MAX_ENDPOINT_NAME = 40
MAX_DAYS = 36500
APPROVAL_STATUSES = ("Approved", "PendingManualApproval")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,20}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
# EventBridge Scheduler cron fields: name, range, names in order and the wildcards each takes (documented in
# "Schedule types on EventBridge Scheduler" and the EventBridge "Cron expressions reference").
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_CRON_FIELDS = (
    ("minutes", 0, 59, (), ", - * /"),
    ("hours", 0, 23, (), ", - * /"),
    ("day-of-month", 1, 31, (), ", - * ? / L W"),
    ("month", 1, 12, _MONTHS, ", - * /"),
    ("day-of-week", 1, 7, _DAYS, ", - * ? L #"),
    ("year", 1970, 2199, (), ", - * /"),
)
_CRON_SPECIAL = {
    "day-of-month": re.compile(r"L|LW|([1-9]|[12][0-9]|3[01])W"),
    "day-of-week": re.compile(r"L|[1-7]L|[1-7]#[1-5]"),
}


def _cron_field_ok(field: str, low: int, high: int, names: tuple[str, ...], label: str, wildcards: str) -> bool:
    def number(text: str) -> bool:
        if text.upper() in names:
            return True
        return text.isascii() and text.isdigit() and low <= int(text) <= high

    if field == "?":
        return "?" in wildcards
    special = _CRON_SPECIAL.get(label)
    # "3#1,6#3 is invalid because it is interpreted as two expressions" (Cron expressions reference).
    if "#" in field and "," in field:
        return False
    for item in field.split(","):
        if special and special.fullmatch(item):
            continue
        base, slash, step = item.partition("/")
        if slash and ("/" not in wildcards or not (step.isascii() and step.isdigit() and 0 < int(step) <= high)):
            return False
        start, _, end = base.partition("-")
        if base == "*" or (number(start) and (not end or number(end))):
            continue
        return False
    return True


_PREFIX = re.compile(r"^([a-z0-9][a-z0-9._-]*/)+$")
# The only schedules Model Monitor accepts: hourly, daily at an hour, or every N hours from an hour (UTC), per
# "The cron expression for monitoring schedule" (SageMaker Developer Guide) and the ScheduleConfig API reference.
_MONITOR_CRON = re.compile(r"cron\(0 (?:\*|(?P<hour>[0-9]{1,2})(?:/(?P<every>[0-9]{1,2}))?) \? \* \* \*\)")


@cache
def instance_types(use: str) -> tuple[str, ...]:
    """The instance types SageMaker accepts for `use` (hosting, transform, processing, training)."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.shape_for(INSTANCE_TYPE_SHAPES[use])
    assert isinstance(shape, StringShape), shape
    return tuple(shape.enum)


def supports_volume_kms(instance_type: str) -> bool:
    """False for instance types with NVMe instance storage, which SageMaker refuses a volume KMS key for.

    "You can't request a KmsKeyId when using an instance type with local storage" (CreateEndpointConfig,
    CreateTrainingJob and CreateTransformJob API references). The rule is the SageMaker Python SDK's
    (`sagemaker.utils.instance_supports_kms`); a test holds the two equal over every type in botocore's enums.
    """
    family = instance_type.split(".")[1]
    return "d" not in family and not family.startswith(("g5", "g6", "p5", "trn1"))


def _not_finite(value: Any) -> str:
    """The start of a message for NaN and infinities, which a Python caller can pass where cdk.json cannot."""
    return "not a finite number; " if isinstance(value, float) and not math.isfinite(value) else ""


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        where = f"mlops.{key}" if key else "mlops"
        super().__init__(f"cdk.json context '{where}' = {value!r} is invalid: {allowed}")
        self.key = key


@dataclass(frozen=True)
class StorageConfig:
    retain_data: bool
    noncurrent_version_expiration_days: int
    access_log_expiration_days: int
    log_retention_days: int
    raw_data_prefix: str
    training_trigger_suffix: str


@dataclass(frozen=True)
class ScheduleConfig:
    timezone: str
    retraining_enabled: bool
    retraining_cron: str
    batch_prediction_enabled: bool
    batch_prediction_cron: str


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    account: str | None
    region: str | None
    production: bool
    alert_email: str | None
    storage: StorageConfig
    training: TrainingConfig
    batch_prediction: BatchPredictionConfig
    endpoint: EndpointConfig
    schedules: ScheduleConfig
    monitoring: MonitoringConfig


@dataclass(frozen=True)
class DeliveryConfig:
    """cdk.json `delivery`: the optional self-mutating pipeline that takes a branch through the environments."""

    account: str
    region: str
    connection_arn: str
    repository: str
    branch: str
    environments: tuple[str, ...]


@dataclass(frozen=True)
class ProjectConfig:
    project_name: str
    environments: tuple[EnvironmentConfig, ...]
    delivery: DeliveryConfig | None = None

    def environment(self, name: str) -> EnvironmentConfig:
        for env in self.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.environments)
        raise ConfigError("environments", name, f"unknown environment; defined: {known}")


class _Reader:
    """Reads one mapping of raw context values, knowing its dotted path for error messages."""

    def __init__(self, raw: Any, path: str, keys: tuple[str, ...] = ()) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, raw, "must be an object")
        self._raw = raw
        self._path = path
        self._keys = keys
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def entries(self) -> dict[str, Any]:
        self._used.update(self._raw)
        return dict(self._raw)

    def _get(self, name: str) -> Any:
        self._used.add(name)
        if name not in self._raw:
            strangers = [k for k in self._raw if isinstance(k, str) and k not in self._keys]
            typo = difflib.get_close_matches(name, strangers, n=1)
            raise ConfigError(self.key(name), None, "is required" + (f"; is {typo[0]!r} a misspelling of it?" if typo else ""))
        return self._raw[name]

    def optional(self, name: str) -> Any:
        self._used.add(name)
        return self._raw.get(name)

    def section(self, name: str, config: type | None = None) -> _Reader:
        """The reader of an object whose keys are the fields of `config` (any keys without one)."""
        return _Reader(self._get(name), self.key(name), _keys(config) if config else ())

    def boolean(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), value, "must be true or false")
        return value

    def integer(self, name: str, minimum: int, maximum: int | None = None) -> int:
        value = self._get(name)
        in_range = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        if not in_range or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise ConfigError(self.key(name), value, f"{_not_finite(value)}must be an integer of at least {minimum}{upper}")
        return value

    def positive_number(self, name: str) -> float:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(self.key(name), value, f"{_not_finite(value)}must be a number greater than 0")
        return float(value)

    def choice(self, name: str, allowed: tuple[Any, ...]) -> Any:
        value = self._get(name)
        # Python counts True as 1 and 14.0 as 14; JSON does not.
        if not any(type(value) is type(option) and value == option for option in allowed):
            raise ConfigError(self.key(name), value, f"{_not_finite(value)}must be one of {', '.join(map(str, allowed))}")
        return value

    def matching(self, name: str, pattern: re.Pattern[str], allowed: str, optional: bool = False) -> Any:
        value = self.optional(name) if optional else self._get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ConfigError(self.key(name), value, allowed)
        return value

    def instance_type(self, name: str, use: str) -> str:
        value = self._get(name)
        allowed = instance_types(use)
        if value not in allowed:
            family = value.rsplit(".", 1)[0] + "." if isinstance(value, str) and "." in value else "ml."
            same_family = [t for t in allowed if t.startswith(family)] or [t for t in allowed if t.startswith("ml.m5.")]
            raise ConfigError(
                self.key(name),
                value,
                f"is not a SageMaker {use} instance type (SageMaker API model); for example {', '.join(same_family[:6])}",
            )
        return value

    def cron(self, name: str) -> str:
        """An EventBridge Scheduler cron: six fields in range, exactly one of day-of-month and day-of-week is '?'."""
        value = self._get(name)
        fields = value[5:-1].split(" ") if isinstance(value, str) and value.startswith("cron(") and value.endswith(")") else []
        if len(fields) != 6 or "?" not in (fields[2], fields[4]):
            raise ConfigError(
                self.key(name),
                value,
                "must be 'cron(minutes hours day-of-month month day-of-week year)' with '?' in day-of-month "
                "or day-of-week, e.g. 'cron(0 2 * * ? *)'",
            )
        if fields[2] == fields[4] == "?":
            raise ConfigError(self.key(name), value, "day-of-month and day-of-week are both '?'; give one of them a value or '*'")
        for field, (label, low, high, names, wildcards) in zip(fields, _CRON_FIELDS, strict=True):
            if not _cron_field_ok(field, low, high, names, label, wildcards):
                raise ConfigError(
                    self.key(name),
                    value,
                    f"{label} field {field!r} is out of range; allowed {low}-{high}"
                    + (f" or {names[0]}-{names[-1]}" if names else "")
                    + f", with {wildcards}",
                )
        return value

    def monitor_cron(self, name: str) -> str:
        value = self._get(name)
        match = _MONITOR_CRON.fullmatch(value) if isinstance(value, str) else None
        hour, every = (match["hour"], match["every"]) if match else (None, None)
        if not match or (hour is not None and int(hour) > 23) or (every is not None and not 1 <= int(every) <= 24):
            raise ConfigError(
                self.key(name),
                value,
                "Model Monitor accepts only 'cron(0 * ? * * *)' (hourly), 'cron(0 H ? * * *)' (daily at hour H, UTC) "
                "or 'cron(0 H/N ? * * *)' (every N hours from hour H), with H 0-23 and N 1-24",
            )
        return value

    def timezone(self, name: str) -> str:
        value = self._get(name)
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(self.key(name), value, "must be an IANA time zone such as 'UTC' or 'Europe/Berlin'") from None
        return value

    def done(self) -> None:
        unknown = sorted(set(self._raw) - self._used)
        if unknown:
            meant = difflib.get_close_matches(unknown[0], self._keys, n=1)
            hint = f"did you mean {meant[0]!r}?" if meant else f"expected {', '.join(self._keys)}"
            raise ConfigError(self.key(unknown[0]), self._raw[unknown[0]], f"unknown key; {hint}")


def _keys(config: type, *derived: str) -> tuple[str, ...]:
    """The cdk.json keys of a configuration object: its dataclass fields, less those not read from cdk.json."""
    return tuple(f.name for f in fields(config) if f.name not in derived)


def _storage(r: _Reader) -> StorageConfig:
    config = StorageConfig(
        retain_data=r.boolean("retain_data"),
        noncurrent_version_expiration_days=r.integer("noncurrent_version_expiration_days", 1, MAX_DAYS),
        access_log_expiration_days=r.integer("access_log_expiration_days", 1, MAX_DAYS),
        log_retention_days=r.choice("log_retention_days", LOG_RETENTION_DAYS),
        raw_data_prefix=r.matching(
            "raw_data_prefix", _PREFIX, "must be an S3 prefix of lower-case segments ending in '/', e.g. 'incoming/'"
        ),
        training_trigger_suffix=r.matching(
            "training_trigger_suffix",
            re.compile(r"^[A-Za-z0-9._-]+$"),
            "must be a file name suffix such as '_SUCCESS' or '.manifest'",
        ),
    )
    r.done()
    return config


def _training(r: _Reader, production: bool) -> TrainingConfig:
    tag = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    config = TrainingConfig(
        processing_instance_type=r.instance_type("processing_instance_type", "processing"),
        processing_instance_count=r.integer("processing_instance_count", 1, 10),
        training_instance_type=r.instance_type("training_instance_type", "training"),
        training_instance_count=r.integer("training_instance_count", 1, 10),
        tuning_max_jobs=r.integer("tuning_max_jobs", 1, 100),
        tuning_max_parallel_jobs=r.integer("tuning_max_parallel_jobs", 1, 10),
        mse_threshold=r.positive_number("mse_threshold"),
        model_approval_status=r.choice("model_approval_status", APPROVAL_STATUSES),
        training_image_tag=r.matching(
            "training_image_tag",
            tag,
            "must be a Docker image tag of an image you push, or left out to build it on deploy",
            optional=True,
        ),
        inference_image_tag=r.matching(
            "inference_image_tag",
            tag,
            "must be a Docker image tag of an image you push, or left out to build it on deploy",
            optional=True,
        ),
    )
    if config.tuning_max_parallel_jobs > config.tuning_max_jobs:
        raise ConfigError(
            r.key("tuning_max_parallel_jobs"),
            config.tuning_max_parallel_jobs,
            f"must not exceed tuning_max_jobs ({config.tuning_max_jobs})",
        )
    if production and config.model_approval_status != "PendingManualApproval":
        raise ConfigError(
            r.key("model_approval_status"),
            config.model_approval_status,
            "a production environment must use PendingManualApproval",
        )
    r.done()
    return config


def _batch(r: _Reader) -> BatchPredictionConfig:
    config = BatchPredictionConfig(
        instance_type=r.instance_type("instance_type", "transform"),
        instance_count=r.integer("instance_count", 1, 10),
        input_prefix=r.matching("input_prefix", _PREFIX, "must be an S3 prefix of lower-case segments ending in '/'"),
        output_prefix=r.matching("output_prefix", _PREFIX, "must be an S3 prefix of lower-case segments ending in '/'"),
    )
    r.done()
    return config


def _endpoint(r: _Reader) -> EndpointConfig:
    config = EndpointConfig(
        instance_type=r.instance_type("instance_type", "hosting"),
        initial_instance_count=r.integer("initial_instance_count", 1, 10),
        min_capacity=r.integer("min_capacity", 1, 10),
        max_capacity=r.integer("max_capacity", 1, 20),
        target_invocations_per_instance=r.integer("target_invocations_per_instance", 1, 100000),
        data_capture_percentage=r.integer("data_capture_percentage", 0, 100),
        max_latency_ms=r.integer("max_latency_ms", 1, 60000),
    )
    if config.min_capacity > config.max_capacity:
        raise ConfigError(r.key("min_capacity"), config.min_capacity, f"must not exceed max_capacity ({config.max_capacity})")
    if not config.min_capacity <= config.initial_instance_count <= config.max_capacity:
        raise ConfigError(
            r.key("initial_instance_count"),
            config.initial_instance_count,
            f"must lie between min_capacity ({config.min_capacity}) and max_capacity ({config.max_capacity})",
        )
    r.done()
    return config


def _schedules(r: _Reader) -> ScheduleConfig:
    config = ScheduleConfig(
        timezone=r.timezone("timezone"),
        retraining_enabled=r.boolean("retraining_enabled"),
        retraining_cron=r.cron("retraining_cron"),
        batch_prediction_enabled=r.boolean("batch_prediction_enabled"),
        batch_prediction_cron=r.cron("batch_prediction_cron"),
    )
    r.done()
    return config


def _monitoring(r: _Reader, endpoint: EndpointConfig) -> MonitoringConfig:
    config = MonitoringConfig(
        enabled=r.boolean("enabled"),
        schedule_cron=r.monitor_cron("schedule_cron"),
        # A monitoring job is a processing job: its ClusterConfig takes the processing instance types.
        instance_type=r.instance_type("instance_type", "processing"),
        drift_threshold=r.positive_number("drift_threshold"),
        retraining_quiet_period_hours=r.integer("retraining_quiet_period_hours", 1, 24 * 90),
    )
    if config.enabled and endpoint.data_capture_percentage == 0:
        raise ConfigError(
            r.key("enabled"),
            True,
            "monitoring reads the endpoint's captured data; set endpoint.data_capture_percentage above 0 or disable monitoring",
        )
    r.done()
    return config


def _environment(project_name: str, name: str, raw: Any) -> EnvironmentConfig:
    r = _Reader(raw, f"environments.{name}", _keys(EnvironmentConfig, "name"))
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            "environments", name, "environment names are 2-21 lower-case letters, digits or '-', starting with a letter"
        )
    production = r.boolean("production")
    endpoint = _endpoint(r.section("endpoint", EndpointConfig))
    config = EnvironmentConfig(
        name=name,
        account=r.matching(
            "account", _ACCOUNT, "must be a 12-digit AWS account id, or left out for an environment-agnostic synth", optional=True
        ),
        region=r.matching(
            "region",
            _REGION,
            "must be an AWS region such as 'eu-west-1', or left out for an environment-agnostic synth",
            optional=True,
        ),
        production=production,
        alert_email=r.matching(
            "alert_email", _EMAIL, "must be an e-mail address, or left out for no e-mail subscription", optional=True
        ),
        storage=_storage(r.section("storage", StorageConfig)),
        training=_training(r.section("training", TrainingConfig), production),
        batch_prediction=_batch(r.section("batch_prediction", BatchPredictionConfig)),
        endpoint=endpoint,
        schedules=_schedules(r.section("schedules", ScheduleConfig)),
        monitoring=_monitoring(r.section("monitoring", MonitoringConfig), endpoint),
    )
    if len(f"{project_name}-{name}") > MAX_ENDPOINT_NAME:
        raise ConfigError(
            "environments",
            name,
            f"'{project_name}-{name}' names the endpoint and must be at most "
            f"{MAX_ENDPOINT_NAME} characters; shorten the project or environment name",
        )
    if (config.account is None) != (config.region is None):
        raise ConfigError(
            r.key("account" if config.account is None else "region"), None, "account and region are given together or not at all"
        )
    r.done()
    return config


# A CodeStar connection (GitHub, GitLab, Bitbucket); its ARN kept the old service name when the service was
# renamed to CodeConnections, so both are accepted.
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:connection/[0-9a-f-]{36}$"
)
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_BRANCH = re.compile(r"^(?![/.-])[A-Za-z0-9._/-]{1,255}(?<![/.])$")


def _delivery(r: _Reader, environments: tuple[EnvironmentConfig, ...]) -> DeliveryConfig:
    by_name = {e.name: e for e in environments}
    names = r.optional("environments")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            r.key("environments"), names, "must be a list of environment names in deployment order, e.g. ['dev', 'prod']"
        )
    for name in names:
        if name not in by_name:
            raise ConfigError(r.key("environments"), name, f"is not an environment of mlops.environments ({', '.join(by_name)})")
        if names.count(name) > 1:
            raise ConfigError(r.key("environments"), name, "is listed twice; each environment is deployed once")
        if by_name[name].account is None:
            raise ConfigError(
                f"environments.{name}.account", None, "the delivery pipeline deploys only to environments with account and region"
            )
    for index, name in enumerate(names):
        if by_name[name].production and not any(not by_name[n].production for n in names[:index]):
            raise ConfigError(
                r.key("environments"),
                names,
                f"production environment {name!r} must follow a non-production one, whose system test gates it",
            )
    config = DeliveryConfig(
        account=r.matching("account", _ACCOUNT, "must be the 12-digit account id of the pipeline's account"),
        region=r.matching("region", _REGION, "must be the AWS region of the pipeline, such as 'eu-west-1'"),
        connection_arn=r.matching(
            "connection_arn",
            _CONNECTION_ARN,
            "must be the ARN of a CodeStar connection to GitHub, GitLab or Bitbucket "
            "(arn:aws:codeconnections:<region>:<account>:connection/<id>); CodeCommit is closed to new customers",
        ),
        repository=r.matching("repository", _REPOSITORY, "must be 'owner/repository' as the connection's provider names it"),
        branch=r.matching("branch", _BRANCH, "must be a branch name such as 'main'"),
        environments=tuple(names),
    )
    r.done()
    return config


class _Unrepresentable(str):
    """A number of cdk.json beyond a double's range, kept as written for the message."""

    def __repr__(self) -> str:
        return str(self)


def _float(text: str) -> float | _Unrepresentable:
    value = float(text)
    return value if math.isfinite(value) else _Unrepresentable(text)


def _int(text: str) -> int | _Unrepresentable:
    value = int(text)
    try:
        float(value)
    except OverflowError:
        return _Unrepresentable(text)
    return value


def refuse_unrepresentable_numbers(cdk_json: str) -> None:
    """Name a number of cdk.json's `mlops` block that the CDK CLI cannot hand to the app.

    The CLI reads 1e999 as Infinity, writes it into the app's context as null (JSON has no Infinity), and the
    app's context drops null values, so load_config would only see the key missing.
    """
    document = json.loads(cdk_json, parse_float=_float, parse_int=_int, parse_constant=_Unrepresentable)
    pending: list[tuple[str, Any]] = [("", (document.get("context") or {}).get("mlops"))]
    while pending:
        key, value = pending.pop(0)
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        pending += [(f"{key}.{name}" if key else str(name), child) for name, child in children]
        if isinstance(value, _Unrepresentable):
            raise ConfigError(key, value, "not a finite number; write a number a double can hold (at most about 1.8e308)")


def load_config(context: Any) -> ProjectConfig:
    """Validate the raw `mlops` context block and return the typed project configuration."""
    if context is None:
        raise ConfigError("", None, "the 'mlops' block is missing from cdk.json context")
    r = _Reader(context, "", _keys(ProjectConfig))
    project_name = r.matching("project_name", _NAME, "must be 2-21 lower-case letters, digits or '-', starting with a letter")
    raw_envs = r.section("environments").entries()
    if not raw_envs:
        raise ConfigError("environments", raw_envs, "define at least one environment")
    environments = tuple(_environment(project_name, name, raw) for name, raw in raw_envs.items())
    delivery = r.optional("delivery")
    config = ProjectConfig(
        project_name=project_name,
        environments=environments,
        delivery=None if delivery is None else _delivery(_Reader(delivery, "delivery", _keys(DeliveryConfig)), environments),
    )
    r.done()
    return config
