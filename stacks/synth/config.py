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
import types
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, replace
from functools import cache
from typing import Annotated, Any

import botocore.session
from botocore.model import StringShape

from lambdas.common.contracts import (
    SAME,
    BatchPredictionConfig,
    EndpointConfig,
    MonitoringConfig,
    NetworkConfig,
    QualityGateConfig,
    Setting,
    TrainingConfig,
)
from pipeline_scripts.dataset import Dataset, DatasetError, QualityGate

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


# A CodeStar connection (GitHub, GitLab, Bitbucket); its ARN kept the old service name when the service was
# renamed to CodeConnections, so both are accepted.
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:connection/[0-9a-f-]{36}$"
)
# EC2 resource ids: the prefix, then 8 or 17 hexadecimal digits (EC2 API Reference, "Resource IDs").
_EC2_ID = "-(?:[0-9a-f]{8}|[0-9a-f]{17})"
# An IAM managed policy by ARN (customer managed, or AWS managed with account 'aws', optionally under a path), or
# by the name of a customer managed policy of the environment's account (IAM quotas: names of 1-128 such characters).
_POLICY_NAME = r"[A-Za-z0-9+=,.@_-]{1,128}"
_BOUNDARY = re.compile(rf"^(arn:aws[a-z-]*:iam::([0-9]{{12}}|aws):policy/([A-Za-z0-9+=,.@_-]+/)*)?{_POLICY_NAME}$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_BRANCH = re.compile(r"^(?![/.-])[A-Za-z0-9._/-]{1,255}(?<![/.])$")


@dataclass(frozen=True)
class StorageConfig:
    """cdk.json `storage`: what is kept, for how long, and where training data arrives."""

    retain_data: Annotated[
        bool, Setting("Keep keys, buckets, repositories, log groups and the package group when the stack goes", production=True)
    ] = False
    noncurrent_version_expiration_days: Annotated[
        int, Setting("Days a replaced object version is kept", minimum=1, maximum=MAX_DAYS, production=90)
    ] = 7
    access_log_expiration_days: Annotated[
        int, Setting("Days S3 server access logs are kept", minimum=1, maximum=MAX_DAYS, production=365)
    ] = 30
    log_retention_days: Annotated[
        int, Setting("Days CloudWatch keeps every log group", choices=LOG_RETENTION_DAYS, production=365)
    ] = 14
    raw_data_prefix: Annotated[str, Setting("Raw-data bucket prefix of training data", form="prefix")] = "incoming/"
    training_trigger_suffix: Annotated[
        str, Setting("Object name that ends an upload of training data and starts training", form="suffix")
    ] = "_SUCCESS"


@dataclass(frozen=True)
class ScheduleConfig:
    """cdk.json `schedules`: when training and batch prediction run by themselves."""

    timezone: Annotated[str, Setting("IANA time zone of the two crons and of batch prediction's day", form="timezone")] = "UTC"
    retraining_enabled: Annotated[bool, Setting("Retrain every night on everything under the raw-data prefix")] = True
    retraining_cron: Annotated[str, Setting("When the nightly retraining runs", form="cron")] = "cron(0 2 * * ? *)"
    batch_prediction_enabled: Annotated[bool, Setting("Score each day's batch input")] = True
    batch_prediction_cron: Annotated[str, Setting("When the daily batch prediction runs", form="cron")] = "cron(0 6 * * ? *)"


@dataclass(frozen=True)
class BudgetConfig:
    """cdk.json `budget`: the environment's monthly cost budget, which alerts on its topic."""

    monthly_usd: Annotated[
        float,
        Setting("Monthly cost (USD) of the resources tagged with the project and environment", above=0, production=1000.0),
    ] = 100.0


@dataclass(frozen=True)
class EnvironmentConfig:
    """cdk.json `environments.<name>`: one deployable stage; every section may be left out for its defaults."""

    name: str
    production: Annotated[bool, Setting("Production defaults, manual approval of models, no system test in delivery")]
    # Each section left out is its defaults for the environment's kind (load_section).
    storage: StorageConfig
    training: TrainingConfig
    batch_prediction: BatchPredictionConfig
    endpoint: EndpointConfig
    schedules: ScheduleConfig
    monitoring: MonitoringConfig
    budget: BudgetConfig
    account: Annotated[str | None, Setting("AWS account to pin the stage to (with region)", form="account")] = None
    region: Annotated[str | None, Setting("AWS region to pin the stage to (with account)", form="region")] = None
    alert_email: Annotated[str | None, Setting("E-mail subscription of the alerts topic", form="email")] = None
    permissions_boundary: Annotated[
        str | None,
        Setting(
            "IAM managed policy (ARN, or name in the account) bounding every role the stage creates", form="permissions_boundary"
        ),
    ] = None
    # Left out, nothing runs in a VPC (README, "VPC-only deployments").
    network: NetworkConfig | None = None

    @property
    def quality_gate(self) -> QualityGateConfig:
        assert self.training.quality_gate is not None, "load_config fills every environment's gate"
        return self.training.quality_gate


@dataclass(frozen=True)
class DeliveryConfig:
    """cdk.json `delivery`: the optional self-mutating pipeline that takes a branch through the environments."""

    account: Annotated[str, Setting("The pipeline's account", form="pipeline_account")]
    region: Annotated[str, Setting("The pipeline's region", form="pipeline_region")]
    connection_arn: Annotated[str, Setting("CodeConnections connection to GitHub, GitLab or Bitbucket", form="connection")]
    repository: Annotated[str, Setting("owner/repository as the connection's provider names it", form="repository")]
    branch: Annotated[str, Setting("The branch the pipeline delivers", form="branch")]
    environments: Annotated[tuple[str, ...], Setting("Environments in deployment order (each with account and region)")]


@dataclass(frozen=True)
class ProjectConfig:
    """cdk.json `mlops`: what every environment shares, and the environments."""

    project_name: Annotated[str, Setting("Prefix of every resource name: `<project>-<environment>-...`", form="name")]
    dataset: Annotated[Dataset, Setting("The dataset contract: target, problem type, features (README, Bring your own dataset)")]
    quality_gate: Annotated[QualityGateConfig, Setting("Every environment's gate unless its training block sets one")]
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

    def has(self, name: str) -> bool:
        return name in self._raw

    def entries(self) -> dict[str, Any]:
        self._used.update(self._raw)
        return dict(self._raw)

    def get(self, name: str) -> Any:
        self._used.add(name)
        if name not in self._raw:
            strangers = [k for k in self._raw if isinstance(k, str) and k not in self._keys]
            typo = difflib.get_close_matches(name, strangers, n=1)
            raise ConfigError(self.key(name), None, "is required" + (f"; is {typo[0]!r} a misspelling of it?" if typo else ""))
        return self._raw[name]

    def optional(self, name: str) -> Any:
        self._used.add(name)
        return self._raw.get(name)

    def done(self) -> None:
        unknown = sorted(set(self._raw) - self._used)
        if unknown:
            meant = difflib.get_close_matches(unknown[0], self._keys, n=1)
            hint = f"did you mean {meant[0]!r}?" if meant else f"expected {', '.join(self._keys)}"
            raise ConfigError(self.key(unknown[0]), self._raw[unknown[0]], f"unknown key; {hint}")


def _keys(config: type, *derived: str) -> tuple[str, ...]:
    """The cdk.json keys of a configuration object: its dataclass fields, less those not read from cdk.json."""
    return tuple(f.name for f in fields(config) if f.name not in derived)


# --- one value, checked by its declaration ---------------------------------------------------------------------

_FORMS: dict[str, tuple[re.Pattern[str], str]] = {
    "name": (_NAME, "must be 2-21 lower-case letters, digits or '-', starting with a letter"),
    "prefix": (_PREFIX, "must be an S3 prefix of lower-case segments ending in '/', e.g. 'incoming/'"),
    "suffix": (re.compile(r"^[A-Za-z0-9._-]+$"), "must be a file name suffix such as '_SUCCESS' or '.manifest'"),
    "tag": (
        re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"),
        "must be a Docker image tag of an image you push, or left out to build it on deploy",
    ),
    "account": (_ACCOUNT, "must be a 12-digit AWS account id, or left out for an environment-agnostic synth"),
    "region": (_REGION, "must be an AWS region such as 'eu-west-1', or left out for an environment-agnostic synth"),
    "pipeline_account": (_ACCOUNT, "must be the 12-digit account id of the account the pipeline runs in"),
    "pipeline_region": (_REGION, "must be the AWS region the pipeline runs in, such as 'eu-west-1'"),
    "email": (_EMAIL, "must be an e-mail address, or left out for no e-mail subscription"),
    "connection": (
        _CONNECTION_ARN,
        "must be the ARN of a CodeStar connection to GitHub, GitLab or Bitbucket "
        "(arn:aws:codeconnections:<region>:<account>:connection/<id>); CodeCommit is closed to new customers",
    ),
    "repository": (_REPOSITORY, "must be 'owner/repository' as the connection's provider names it"),
    "branch": (_BRANCH, "must be a branch name such as 'main'"),
    "vpc_id": (re.compile(f"^vpc{_EC2_ID}$"), "must be a VPC id such as 'vpc-0123456789abcdef0'"),
    "subnet_id": (re.compile(f"^subnet{_EC2_ID}$"), "must be a subnet id such as 'subnet-0123456789abcdef0'"),
    "security_group_id": (re.compile(f"^sg{_EC2_ID}$"), "must be a security group id such as 'sg-0123456789abcdef0'"),
    "permissions_boundary": (
        _BOUNDARY,
        "must be the ARN of an IAM managed policy (arn:aws:iam::<account>:policy/<name>) or the name of one in the "
        "environment's account, or left out for no permissions boundary",
    ),
}


def _unwrap(hint: Any) -> tuple[Any, Setting | None]:
    """(type, its Setting) of an Annotated hint; X | None stays itself."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        return base, next((e for e in extras if isinstance(e, Setting)), None)
    return hint, None


def _optional(hint: Any) -> Any | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return inner
    return None


def _value(key: str, value: Any, hint: Any, setting: Setting | None, production: bool) -> Any:
    """`value` checked against its declared type and Setting; ConfigError names the key and what is allowed."""
    inner = _optional(hint)
    if inner is not None:
        return None if value is None else _value(key, value, inner, setting, production)
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return load_section(hint, value, key, production)
    rule = setting or Setting(doc="")
    if rule.choices:
        # Python counts True as 1 and 14.0 as 14; JSON does not.
        if not any(type(value) is type(option) and value == option for option in rule.choices):
            raise ConfigError(key, value, f"{_not_finite(value)}must be one of {', '.join(map(str, rule.choices))}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "must be true or false")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool) or not _in_range(value, rule):
            raise ConfigError(key, value, f"{_not_finite(value)}must be an integer{_bounds(rule)}")
        return value
    if hint is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not _in_range(value, rule)
        ):
            raise ConfigError(key, value, f"{_not_finite(value)}must be a number{_bounds(rule)}")
        return float(value)
    if typing.get_origin(hint) is tuple:
        counted = f"must be a list of{_bounds(rule).removeprefix(' of')} items" if rule.minimum else ""
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(key, value, counted or "must be a non-empty list of names")
        if not _in_range(len(value), rule):
            raise ConfigError(key, value, counted)
        if len(set(value)) < len(value):
            raise ConfigError(key, value, "lists an item twice")
        for index, item in enumerate(value):
            if rule.form:
                _text(f"{key}[{index}]", item, rule.form)
        return tuple(value)
    if hint is str:
        return _text(key, value, rule.form)
    raise TypeError(f"{key}: configuration of type {hint} has no check; add one to stacks/synth/config.py")


def _in_range(value: float, rule: Setting) -> bool:
    return (
        (rule.minimum is None or value >= rule.minimum)
        and (rule.maximum is None or value <= rule.maximum)
        and (rule.above is None or value > rule.above)
    )


def _bounds(rule: Setting) -> str:
    if rule.above is not None:
        return f" greater than {rule.above:g}"
    parts = [
        f"of at least {rule.minimum:g}" if rule.minimum is not None else "",
        f"at most {rule.maximum:g}" if rule.maximum is not None else "",
    ]
    return " " + " and ".join(p for p in parts if p) if any(parts) else ""


def _text(key: str, value: Any, form: str | None) -> str:
    if form is None:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, value, "must be a non-empty string")
        return value
    if form.startswith("instance_type:"):
        return _instance_type(key, value, form.split(":", 1)[1])
    if form == "cron":
        return _cron(key, value)
    if form == "monitor_cron":
        return _monitor_cron(key, value)
    if form == "timezone":
        return _timezone(key, value)
    pattern, allowed = _FORMS[form]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(key, value, allowed)
    return value


def _instance_type(key: str, value: Any, use: str) -> str:
    allowed = instance_types(use)
    if value not in allowed:
        family = value.rsplit(".", 1)[0] + "." if isinstance(value, str) and "." in value else "ml."
        same_family = [t for t in allowed if t.startswith(family)] or [t for t in allowed if t.startswith("ml.m5.")]
        raise ConfigError(
            key, value, f"is not a SageMaker {use} instance type (SageMaker API model); for example {', '.join(same_family[:6])}"
        )
    return value


def _cron(key: str, value: Any) -> str:
    """An EventBridge Scheduler cron: six fields in range, exactly one of day-of-month and day-of-week is '?'."""
    fields_ = value[5:-1].split(" ") if isinstance(value, str) and value.startswith("cron(") and value.endswith(")") else []
    if len(fields_) != 6 or "?" not in (fields_[2], fields_[4]):
        raise ConfigError(
            key,
            value,
            "must be 'cron(minutes hours day-of-month month day-of-week year)' with '?' in day-of-month "
            "or day-of-week, e.g. 'cron(0 2 * * ? *)'",
        )
    if fields_[2] == fields_[4] == "?":
        raise ConfigError(key, value, "day-of-month and day-of-week are both '?'; give one of them a value or '*'")
    for field, (label, low, high, names, wildcards) in zip(fields_, _CRON_FIELDS, strict=True):
        if not _cron_field_ok(field, low, high, names, label, wildcards):
            raise ConfigError(
                key,
                value,
                f"{label} field {field!r} is out of range; allowed {low}-{high}"
                + (f" or {names[0]}-{names[-1]}" if names else "")
                + f", with {wildcards}",
            )
    return value


def _monitor_cron(key: str, value: Any) -> str:
    match = _MONITOR_CRON.fullmatch(value) if isinstance(value, str) else None
    hour, every = (match["hour"], match["every"]) if match else (None, None)
    if not match or (hour is not None and int(hour) > 23) or (every is not None and not 1 <= int(every) <= 24):
        raise ConfigError(
            key,
            value,
            "Model Monitor accepts only 'cron(0 * ? * * *)' (hourly), 'cron(0 H ? * * *)' (daily at hour H, UTC) "
            "or 'cron(0 H/N ? * * *)' (every N hours from hour H), with H 0-23 and N 1-24",
        )
    return value


def _timezone(key: str, value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(key, value, "must be an IANA time zone such as 'UTC' or 'Europe/Berlin'") from None
    return value


def default(config: type, name: str, production: bool) -> Any:
    """The value a section takes for a key cdk.json leaves out: production's where it differs, else the field's."""
    (field,) = [f for f in fields(config) if f.name == name]
    _, setting = _unwrap(typing.get_type_hints(config, include_extras=True)[name])
    if production and setting is not None and setting.production != SAME:
        return setting.production
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return MISSING


def load_section(config: type, raw: Any, path: str, production: bool, derived: tuple[str, ...] = ()) -> Any:
    """A section of cdk.json as `config`: each key checked by its declaration, each left out taken from its default.

    A nested section left out is the section's own defaults, for this environment's kind.
    """
    r = _Reader({} if raw is None else raw, path, _keys(config, *derived))
    hints = typing.get_type_hints(config, include_extras=True)
    values = {}
    for field in fields(config):
        if field.name in derived:
            continue
        hint, setting = _unwrap(hints[field.name])
        if r.has(field.name):
            values[field.name] = _value(r.key(field.name), r.get(field.name), hint, setting, production)
        elif isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
            values[field.name] = load_section(hint, None, r.key(field.name), production)
        else:
            fallback = default(config, field.name, production)
            if fallback is MISSING:
                r.get(field.name)
            values[field.name] = fallback
    r.done()
    return values


# --- checks across a section's settings -----------------------------------------------------------------------


def _training(values: dict, key: str, production: bool) -> TrainingConfig:
    config = TrainingConfig(**values)
    if config.tuning_max_parallel_jobs > config.tuning_max_jobs:
        raise ConfigError(
            f"{key}.tuning_max_parallel_jobs",
            config.tuning_max_parallel_jobs,
            f"must not exceed tuning_max_jobs ({config.tuning_max_jobs})",
        )
    if production and config.model_approval_status != "PendingManualApproval":
        raise ConfigError(
            f"{key}.model_approval_status",
            config.model_approval_status,
            "a production environment must use PendingManualApproval",
        )
    return config


def _endpoint(values: dict, key: str) -> EndpointConfig:
    config = EndpointConfig(**values)
    if config.min_capacity > config.max_capacity:
        raise ConfigError(f"{key}.min_capacity", config.min_capacity, f"must not exceed max_capacity ({config.max_capacity})")
    if not config.min_capacity <= config.initial_instance_count <= config.max_capacity:
        raise ConfigError(
            f"{key}.initial_instance_count",
            config.initial_instance_count,
            f"must lie between min_capacity ({config.min_capacity}) and max_capacity ({config.max_capacity})",
        )
    return config


def _monitoring(values: dict, key: str, endpoint: EndpointConfig) -> MonitoringConfig:
    config = MonitoringConfig(**values)
    if config.enabled and endpoint.data_capture_percentage == 0:
        raise ConfigError(
            f"{key}.enabled",
            True,
            "monitoring reads the endpoint's captured data; set endpoint.data_capture_percentage above 0 or disable monitoring",
        )
    return config


def _gate(raw: Any, key: str, dataset: Dataset) -> QualityGateConfig:
    """A gate whose metric is one of the dataset's problem type, its threshold in that metric's range."""
    try:
        gate = QualityGate.from_dict(raw, dataset.problem_type, key=key)
    except DatasetError as error:
        raise ConfigError(error.key, error.value, error.allowed) from None
    return QualityGateConfig(metric=gate.metric, threshold=gate.threshold)


def _environment(project_name: str, name: str, raw: Any, dataset: Dataset, project_gate: QualityGateConfig) -> EnvironmentConfig:
    path = f"environments.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            "environments", name, "environment names are 2-21 lower-case letters, digits or '-', starting with a letter"
        )
    if not isinstance(raw, Mapping):
        raise ConfigError(path, raw, "must be an object")
    production = _value(f"{path}.production", _Reader(raw, path).get("production"), bool, None, False)
    # The gate is checked against the dataset, which the section alone does not know.
    training_raw, gate_raw = raw.get("training"), None
    if isinstance(training_raw, Mapping):
        training_raw = dict(training_raw)
        gate_raw = training_raw.pop("quality_gate", None)
    values = load_section(
        EnvironmentConfig, {**raw, "training": training_raw} if "training" in raw else raw, path, production, derived=("name",)
    )
    endpoint = _endpoint(values["endpoint"], f"{path}.endpoint")
    gate = project_gate if gate_raw is None else _gate(gate_raw, f"{path}.training.quality_gate", dataset)
    config = EnvironmentConfig(
        name=name,
        production=production,
        storage=StorageConfig(**values["storage"]),
        training=replace(_training(values["training"], f"{path}.training", production), quality_gate=gate),
        batch_prediction=BatchPredictionConfig(**values["batch_prediction"]),
        endpoint=endpoint,
        schedules=ScheduleConfig(**values["schedules"]),
        monitoring=_monitoring(values["monitoring"], f"{path}.monitoring", endpoint),
        budget=BudgetConfig(**values["budget"]),
        account=values["account"],
        region=values["region"],
        alert_email=values["alert_email"],
        permissions_boundary=values["permissions_boundary"],
        network=None if values["network"] is None else NetworkConfig(**values["network"]),
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
            f"{path}.{'account' if config.account is None else 'region'}",
            None,
            "account and region are given together or not at all",
        )
    return config


def _delivery(raw: Any, environments: tuple[EnvironmentConfig, ...]) -> DeliveryConfig:
    by_name = {e.name: e for e in environments}
    names = raw.get("environments") if isinstance(raw, Mapping) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            "delivery.environments", names, "must be a list of environment names in deployment order, e.g. ['dev', 'prod']"
        )
    for name in names:
        if name not in by_name:
            raise ConfigError(
                "delivery.environments", name, f"is not an environment of mlops.environments ({', '.join(by_name)})"
            )
        if names.count(name) > 1:
            raise ConfigError("delivery.environments", name, "is listed twice; each environment is deployed once")
        if by_name[name].account is None:
            raise ConfigError(
                f"environments.{name}.account", None, "the delivery pipeline deploys only to environments with account and region"
            )
    for index, name in enumerate(names):
        if by_name[name].production and not any(not by_name[n].production for n in names[:index]):
            raise ConfigError(
                "delivery.environments",
                names,
                f"production environment {name!r} must follow a non-production one, whose system test gates it",
            )
    return DeliveryConfig(**load_section(DeliveryConfig, raw, "delivery", False))


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
    r = _Reader(context, "", ("project_name", "dataset", "quality_gate", "environments", "delivery"))
    project_name = _text("project_name", r.get("project_name"), "name")
    try:
        dataset = Dataset.from_dict(r.get("dataset"))
    except DatasetError as error:
        raise ConfigError(error.key, error.value, error.allowed) from None
    project_gate = _gate(r.get("quality_gate"), "quality_gate", dataset)
    raw_envs = _Reader(r.get("environments"), "environments").entries()
    if not raw_envs:
        raise ConfigError("environments", raw_envs, "define at least one environment")
    environments = tuple(_environment(project_name, name, raw, dataset, project_gate) for name, raw in raw_envs.items())
    delivery = r.optional("delivery")
    config = ProjectConfig(
        project_name=project_name,
        dataset=dataset,
        quality_gate=project_gate,
        environments=environments,
        delivery=None if delivery is None else _delivery(delivery, environments),
    )
    r.done()
    return config
