"""The typed configuration: cdk.json loads, and each bad value stops synth with one exact message.

The checks mutate a context of their own (`mlops()`), so they hold whatever a user's cdk.json describes.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from conftest import ENVIRONMENTS, REPO_ROOT, UNKNOWN_ENVIRONMENT, cdk_context

from stacks.synth.config import ConfigError, load_config, refuse_unrepresentable_numbers

BASE: dict[str, Any] = {
    "project_name": "demo",
    "dataset": {
        "target": "y",
        "problem_type": "regression",
        "features": [{"name": "colour", "type": "categorical"}, {"name": "size", "type": "numeric"}],
    },
    "quality_gate": {"metric": "mse", "threshold": 6.0},
    "environments": {"dev": {"production": False}, "prod": {"production": True}},
}


def mlops() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def test_cdk_json_loads():
    config = load_config(cdk_context()["mlops"])
    assert [e.name for e in config.environments] == list(ENVIRONMENTS)
    assert all(e.training.model_approval_status == "PendingManualApproval" for e in config.environments if e.production)


def test_an_environment_left_to_its_defaults_gets_those_of_its_kind():
    config = load_config(mlops())
    dev, prod = config.environment("dev"), config.environment("prod")
    assert (dev.storage.retain_data, prod.storage.retain_data) == (False, True)
    assert (dev.training.model_approval_status, prod.training.model_approval_status) == ("Approved", "PendingManualApproval")
    assert (dev.training.tuning_max_jobs, prod.training.tuning_max_jobs) == (4, 20)
    assert (dev.endpoint.instance_type, prod.endpoint.instance_type) == ("ml.t2.medium", "ml.m5.large")
    assert (dev.storage.log_retention_days, prod.storage.log_retention_days) == (14, 365)
    assert dev.schedules == prod.schedules and dev.batch_prediction == prod.batch_prediction
    assert dev.account is None and dev.region is None and dev.alert_email is None


def test_a_value_given_replaces_its_default_and_nothing_else():
    context = mlops()
    context["environments"]["prod"]["endpoint"] = {"max_capacity": 9}
    prod = load_config(context).environment("prod")
    assert (prod.endpoint.max_capacity, prod.endpoint.min_capacity, prod.endpoint.instance_type) == (9, 2, "ml.m5.large")


def test_each_environment_takes_the_project_gate_unless_it_has_its_own():
    context = mlops()
    context["environments"]["prod"]["training"] = {"quality_gate": {"metric": "rmse", "threshold": 2}}
    config = load_config(context)
    assert config.environment("dev").quality_gate.to_dict() == {"metric": "mse", "threshold": 6.0}
    assert config.environment("prod").quality_gate.to_dict() == {"metric": "rmse", "threshold": 2.0}


def test_unknown_environment_names_the_known_ones():
    with pytest.raises(ConfigError) as error:
        load_config(cdk_context()["mlops"]).environment(UNKNOWN_ENVIRONMENT)
    assert str(error.value) == (
        f"cdk.json context 'mlops.environments' = {UNKNOWN_ENVIRONMENT!r} is invalid: unknown environment; "
        f"defined: {', '.join(ENVIRONMENTS)}"
    )


MONITOR_CRON_RULE = (
    "Model Monitor accepts only 'cron(0 * ? * * *)' (hourly), 'cron(0 H ? * * *)' (daily at hour H, UTC) "
    "or 'cron(0 H/N ? * * *)' (every N hours from hour H), with H 0-23 and N 1-24"
)
BAD_VALUES = [
    (
        "region",
        "mars-1",
        "cdk.json context 'mlops.environments.dev.region' = 'mars-1' is invalid: "
        "must be an AWS region such as 'eu-west-1', or left out for an environment-agnostic synth",
    ),
    (
        "account",
        "12345",
        "cdk.json context 'mlops.environments.dev.account' = '12345' is invalid: "
        "must be a 12-digit AWS account id, or left out for an environment-agnostic synth",
    ),
    (
        "account",
        "\uff11" * 12,
        f"cdk.json context 'mlops.environments.dev.account' = {chr(0xFF11) * 12!r} "
        "is invalid: must be a 12-digit AWS account id, or left out for an environment-agnostic synth",
    ),
    (
        "schedules.retraining_cron",
        "0 2 * * *",
        "cdk.json context 'mlops.environments.dev.schedules.retraining_cron' = "
        "'0 2 * * *' is invalid: must be 'cron(minutes hours day-of-month month day-of-week year)' with '?' in "
        "day-of-month or day-of-week, e.g. 'cron(0 2 * * ? *)'",
    ),
    (
        "schedules.batch_prediction_cron",
        "cron(0 6 * * * *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        "batch_prediction_cron' = 'cron(0 6 * * * *)' is invalid: must be 'cron(minutes hours day-of-month month "
        "day-of-week year)' with '?' in day-of-month or day-of-week, e.g. 'cron(0 2 * * ? *)'",
    ),
    (
        "schedules.timezone",
        "Mars/Olympus",
        "cdk.json context 'mlops.environments.dev.schedules.timezone' = "
        "'Mars/Olympus' is invalid: must be an IANA time zone such as 'UTC' or 'Europe/Berlin'",
    ),
    (
        "training.training_instance_count",
        -1,
        "cdk.json context 'mlops.environments.dev.training."
        "training_instance_count' = -1 is invalid: must be an integer of at least 1 and at most 10",
    ),
    (
        "training.processing_instance_type",
        "ml.z9.large",
        "cdk.json context 'mlops.environments.dev.training."
        "processing_instance_type' = 'ml.z9.large' is invalid: is not a SageMaker processing instance type (SageMaker API "
        "model); for example ml.m5.large, ml.m5.xlarge, ml.m5.2xlarge, ml.m5.4xlarge, ml.m5.12xlarge, ml.m5.24xlarge",
    ),
    (
        "endpoint.instance_type",
        "ml.t3.medium",
        "cdk.json context 'mlops.environments.dev.endpoint.instance_type' = "
        "'ml.t3.medium' is invalid: is not a SageMaker hosting instance type (SageMaker API model); for example "
        "ml.m5.large, ml.m5.xlarge, ml.m5.2xlarge, ml.m5.4xlarge, ml.m5.12xlarge, ml.m5.24xlarge",
    ),
    (
        "batch_prediction.instance_type",
        "ml.t2.medium",
        "cdk.json context 'mlops.environments.dev.batch_prediction."
        "instance_type' = 'ml.t2.medium' is invalid: is not a SageMaker transform instance type (SageMaker API model); "
        "for example ml.m5.large, ml.m5.xlarge, ml.m5.2xlarge, ml.m5.4xlarge, ml.m5.12xlarge, ml.m5.24xlarge",
    ),
    (
        "schedules.retraining_cron",
        "cron(0 25 * * ? *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        "retraining_cron' = 'cron(0 25 * * ? *)' is invalid: hours field '25' is out of range; allowed 0-23, with , - * /",
    ),
    (
        "schedules.retraining_cron",
        "cron(0 2 * 13 ? *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        "retraining_cron' = 'cron(0 2 * 13 ? *)' is invalid: month field '13' is out of range; allowed 1-12 or JAN-DEC, "
        "with , - * /",
    ),
    # Each field's message lists the wildcards EventBridge documents for it: '?' only in the two day fields.
    (
        "schedules.retraining_cron",
        "cron(? 2 * * ? *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        "retraining_cron' = 'cron(? 2 * * ? *)' is invalid: minutes field '?' is out of range; allowed 0-59, with , - * /",
    ),
    (
        "schedules.retraining_cron",
        "cron(0 2 40W * ? *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        "retraining_cron' = 'cron(0 2 40W * ? *)' is invalid: day-of-month field '40W' is out of range; allowed 1-31, "
        "with , - * ? / L W",
    ),
    (
        "schedules.batch_prediction_cron",
        "cron(0 6 ? * 9L *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        "batch_prediction_cron' = 'cron(0 6 ? * 9L *)' is invalid: day-of-week field '9L' is out of range; allowed 1-7 or "
        "SUN-SAT, with , - * ? L #",
    ),
    (
        "schedules.batch_prediction_cron",
        "cron(0 6 ? * 2/2 *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        "batch_prediction_cron' = 'cron(0 6 ? * 2/2 *)' is invalid: day-of-week field '2/2' is out of range; allowed 1-7 or "
        "SUN-SAT, with , - * ? L #",
    ),
    (
        "schedules.batch_prediction_cron",
        "cron(0 6 ? * 3#1,6#3 *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        "batch_prediction_cron' = 'cron(0 6 ? * 3#1,6#3 *)' is invalid: day-of-week field '3#1,6#3' is out of range; allowed "
        "1-7 or SUN-SAT, with , - * ? L #",
    ),
    (
        "schedules.retraining_cron",
        f"cron(0 {chr(0xFF12)} * * ? *)",
        "cdk.json context 'mlops.environments.dev.schedules."
        f"retraining_cron' = 'cron(0 {chr(0xFF12)} * * ? *)' is invalid: hours field '{chr(0xFF12)}' is out of range; "
        "allowed 0-23, with , - * /",
    ),
    (
        "schedules.retraining_cron",
        "cron(0 2 ? * ? *)",
        "cdk.json context 'mlops.environments.dev.schedules.retraining_cron' = 'cron(0 2 ? * ? *)' is invalid: "
        "day-of-month and day-of-week are both '?'; give one of them a value or '*'",
    ),
    (
        "storage.access_log_expiration_days",
        10**9,
        "cdk.json context 'mlops.environments.dev.storage."
        "access_log_expiration_days' = 1000000000 is invalid: must be an integer of at least 1 and at most 36500",
    ),
    (
        "training.training_image_tag",
        "1.0.0\n",
        "cdk.json context 'mlops.environments.dev.training.training_image_tag' = "
        "'1.0.0\\n' is invalid: must be a Docker image tag of an image you push, or left out to build it on deploy",
    ),
    (
        "alert_email",
        "ops@example.com\n",
        "cdk.json context 'mlops.environments.dev.alert_email' = "
        "'ops@example.com\\n' is invalid: must be an e-mail address, or left out for no e-mail subscription",
    ),
    (
        "training.quality_gate",
        {"metric": "mse", "threshold": True},
        "cdk.json context 'mlops.environments.dev.training.quality_gate.threshold' = True is invalid: must be a finite number",
    ),
    (
        "training.quality_gate",
        {"metric": "auc", "threshold": 0.8},
        "cdk.json context 'mlops.environments.dev.training.quality_gate.metric' = 'auc' is invalid: "
        "a regression dataset is gated on one of mse, rmse, mae, r2",
    ),
    (
        "training.quality_gate",
        {"metric": "mse", "threshold": 6, "direction": "min"},
        "cdk.json context 'mlops.environments.dev.training.quality_gate.direction' = 'min' is invalid: "
        "unknown key; expected metric, threshold",
    ),
    (
        "training",
        [],
        "cdk.json context 'mlops.environments.dev.training' = [] is invalid: must be an object",
    ),
    (
        "endpoint.data_capture_percentage",
        101,
        "cdk.json context 'mlops.environments.dev.endpoint."
        "data_capture_percentage' = 101 is invalid: must be an integer of at least 0 and at most 100",
    ),
    (
        "alert_email",
        "ops-at-example.com",
        "cdk.json context 'mlops.environments.dev.alert_email' = "
        "'ops-at-example.com' is invalid: must be an e-mail address, or left out for no e-mail subscription",
    ),
    (
        "storage.log_retention_days",
        10,
        "cdk.json context 'mlops.environments.dev.storage.log_retention_days' = 10 "
        "is invalid: must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, "
        "2192, 2557, 2922, 3288, 3653",
    ),
    (
        "storage.retain_data",
        "yes",
        "cdk.json context 'mlops.environments.dev.storage.retain_data' = 'yes' is invalid: must be true or false",
    ),
    (
        "training.quality_gate",
        {"metric": "mse", "threshold": -1},
        "cdk.json context 'mlops.environments.dev.training.quality_gate.threshold' = -1 is invalid: mse is never negative",
    ),
    (
        "storage.retian_data",
        True,
        "cdk.json context 'mlops.environments.dev.storage.retian_data' = True is invalid: "
        "unknown key; did you mean 'retain_data'?",
    ),
    (
        "endpoint.min_capacity",
        5,
        "cdk.json context 'mlops.environments.dev.endpoint.min_capacity' = 5 is invalid: must not exceed max_capacity (2)",
    ),
    (
        "training.tuning_max_parallel_jobs",
        5,
        "cdk.json context 'mlops.environments.dev.training."
        "tuning_max_parallel_jobs' = 5 is invalid: must not exceed tuning_max_jobs (4)",
    ),
    (
        "monitoring.schedule_cron",
        "cron(0 2 * * ? *)",
        "cdk.json context 'mlops.environments.dev.monitoring.schedule_cron' = 'cron(0 2 * * ? *)' is invalid: "
        + MONITOR_CRON_RULE,
    ),
    (
        "monitoring.schedule_cron",
        "cron(30 * ? * * *)",
        "cdk.json context 'mlops.environments.dev.monitoring.schedule_cron' = 'cron(30 * ? * * *)' is invalid: "
        + MONITOR_CRON_RULE,
    ),
    (
        "monitoring.schedule_cron",
        "cron(0 24 ? * * *)",
        "cdk.json context 'mlops.environments.dev.monitoring.schedule_cron' = 'cron(0 24 ? * * *)' is invalid: "
        + MONITOR_CRON_RULE,
    ),
    (
        "monitoring.schedule_cron",
        "cron(0 0/25 ? * * *)",
        "cdk.json context 'mlops.environments.dev.monitoring.schedule_cron' = 'cron(0 0/25 ? * * *)' is invalid: "
        + MONITOR_CRON_RULE,
    ),
    (
        "monitoring.schedule_cron",
        "NOW",
        "cdk.json context 'mlops.environments.dev.monitoring.schedule_cron' = 'NOW' is invalid: " + MONITOR_CRON_RULE,
    ),
    (
        "monitoring.schedule_cron",
        "rate(1 hour)",
        "cdk.json context 'mlops.environments.dev.monitoring.schedule_cron' = 'rate(1 hour)' is invalid: " + MONITOR_CRON_RULE,
    ),
    (
        "monitoring.instance_type",
        "ml.t2.medium",
        "cdk.json context 'mlops.environments.dev.monitoring.instance_type' = 'ml.t2.medium' is invalid: is not a SageMaker "
        "processing instance type (SageMaker API model); for example ml.m5.large, ml.m5.xlarge, ml.m5.2xlarge, ml.m5.4xlarge, "
        "ml.m5.12xlarge, ml.m5.24xlarge",
    ),
    (
        "monitoring.drift_threshold",
        0,
        "cdk.json context 'mlops.environments.dev.monitoring.drift_threshold' = 0 is invalid: must be a number greater than 0",
    ),
    (
        "monitoring.retraining_quiet_period_hours",
        0,
        "cdk.json context 'mlops.environments.dev.monitoring.retraining_quiet_period_hours' = 0 is invalid: "
        "must be an integer of at least 1 and at most 2160",
    ),
    (
        "endpoint.data_capture_percentage",
        0,
        "cdk.json context 'mlops.environments.dev.monitoring.enabled' = True is invalid: monitoring reads the endpoint's "
        "captured data; set endpoint.data_capture_percentage above 0 or disable monitoring",
    ),
    # What a Python caller of load_config can pass and cdk.json cannot: NaN, infinities, True for 1, 14.0 for 14.
    (
        "training.quality_gate",
        {"metric": "mse", "threshold": float("nan")},
        "cdk.json context 'mlops.environments.dev.training.quality_gate.threshold' = nan is invalid: must be a finite number",
    ),
    (
        "monitoring.drift_threshold",
        float("inf"),
        "cdk.json context 'mlops.environments.dev.monitoring.drift_threshold' = inf is invalid: "
        "not a finite number; must be a number greater than 0",
    ),
    (
        "endpoint.max_latency_ms",
        float("-inf"),
        "cdk.json context 'mlops.environments.dev.endpoint.max_latency_ms' = -inf is invalid: "
        "not a finite number; must be an integer of at least 1 and at most 60000",
    ),
    (
        "storage.log_retention_days",
        True,
        "cdk.json context 'mlops.environments.dev.storage.log_retention_days' = True is invalid: must be one of 1, 3, 5, 7, "
        "14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
    ),
    (
        "storage.log_retention_days",
        14.0,
        "cdk.json context 'mlops.environments.dev.storage.log_retention_days' = 14.0 is invalid: must be one of 1, 3, 5, 7, "
        "14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
    ),
]


@pytest.mark.parametrize("cron", ["cron(0 * ? * * *)", "cron(0 12 ? * * *)", "cron(0 17/12 ? * * *)", "cron(0 0/2 ? * * *)"])
def test_every_model_monitor_schedule_form_is_accepted(cron):
    context = mlops()
    _set(context["environments"]["dev"], "monitoring.schedule_cron", cron)
    assert load_config(context).environment("dev").monitoring.schedule_cron == cron


@pytest.mark.parametrize(
    "cron",
    ["cron(0 2 L * ? *)", "cron(0 2 15W * ? *)", "cron(0 18 ? * MON-FRI *)", "cron(0 2 ? * 6L *)", "cron(0 2 ? * 3#2 *)"],
)
def test_documented_eventbridge_cron_forms_are_accepted(cron):
    context = mlops()
    _set(context["environments"]["dev"], "schedules.retraining_cron", cron)
    assert load_config(context).environment("dev").schedules.retraining_cron == cron


def test_monitoring_can_be_disabled_without_data_capture():
    context = mlops()
    _set(context["environments"]["dev"], "monitoring.enabled", False)
    _set(context["environments"]["dev"], "endpoint.data_capture_percentage", 0)
    assert load_config(context).environment("dev").monitoring.enabled is False


def _set(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


@pytest.mark.parametrize(("key", "value", "message"), BAD_VALUES, ids=[f"{b[0]}={b[1]!r}"[:60] for b in BAD_VALUES])
def test_bad_value_gives_exact_message(key, value, message):
    context = mlops()
    _set(context["environments"]["dev"], key, value)
    if key == "account":
        context["environments"]["dev"]["region"] = "eu-west-1"
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == message


def test_production_cannot_auto_approve_models():
    context = mlops()
    _set(context["environments"]["prod"], "training.model_approval_status", "Approved")
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == (
        "cdk.json context 'mlops.environments.prod.training.model_approval_status' = 'Approved' is invalid: "
        "a production environment must use PendingManualApproval"
    )


def test_account_without_region_is_rejected():
    context = mlops()
    context["environments"]["dev"]["account"] = "123456789012"
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == (
        "cdk.json context 'mlops.environments.dev.region' = None is invalid: account and region are given together or not at all"
    )


@pytest.mark.parametrize(
    ("where", "typo", "message"),
    [
        (
            "environments.dev",
            "alert_emial",
            "'mlops.environments.dev.alert_emial' = 'x' is invalid: unknown key; did you mean 'alert_email'?",
        ),
        (
            "environments.dev.training",
            "trainng_instance_type",
            "'mlops.environments.dev.training.trainng_instance_type' = 'x' is invalid: "
            "unknown key; did you mean 'training_instance_type'?",
        ),
        (
            "environments.dev.endpoint",
            "max_capactiy",
            "'mlops.environments.dev.endpoint.max_capactiy' = 'x' is invalid: unknown key; did you mean 'max_capacity'?",
        ),
        ("", "delivry", "'mlops.delivry' = 'x' is invalid: unknown key; did you mean 'delivery'?"),
    ],
)
def test_a_misspelled_key_is_named_next_to_the_key_it_probably_meant(where, typo, message):
    """A misspelled setting would otherwise leave its default in place without a word."""
    context = mlops()
    _set(context, f"{where}.{typo}" if where else typo, "x")
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == "cdk.json context " + message


def test_an_unknown_key_like_no_known_one_lists_the_keys_of_its_section():
    context = mlops()
    _set(context["environments"]["dev"], "batch_prediction.schedule", "daily")
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == (
        "cdk.json context 'mlops.environments.dev.batch_prediction.schedule' = 'daily' is invalid: unknown key; "
        "expected instance_type, instance_count, input_prefix, output_prefix"
    )


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (("environments", "prod", "production"), "'mlops.environments.prod.production' = None is invalid: is required"),
        (("quality_gate",), "'mlops.quality_gate' = None is invalid: is required"),
        (("dataset",), "'mlops.dataset' = None is invalid: is required"),
        (("environments",), "'mlops.environments' = None is invalid: is required"),
    ],
)
def test_a_missing_required_setting_is_named(remove, message):
    context = mlops()
    *parents, leaf = remove
    tree = context
    for part in parents:
        tree = tree[part]
    del tree[leaf]
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == "cdk.json context " + message


def test_a_required_key_whose_misspelling_is_present_says_so():
    context = mlops()
    context["environments"]["prod"]["prodution"] = context["environments"]["prod"].pop("production")
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == (
        "cdk.json context 'mlops.environments.prod.production' = None is invalid: "
        "is required; is 'prodution' a misspelling of it?"
    )


def test_the_project_gate_must_fit_the_dataset():
    context = mlops()
    context["quality_gate"] = {"metric": "auc", "threshold": 0.9}
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == (
        "cdk.json context 'mlops.quality_gate.metric' = 'auc' is invalid: "
        "a regression dataset is gated on one of mse, rmse, mae, r2"
    )


def test_a_dataset_error_names_its_key_under_mlops():
    context = mlops()
    context["dataset"]["features"][1]["type"] = "text"
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == (
        "cdk.json context 'mlops.dataset.features[1].type' = 'text' is invalid: must be one of numeric, categorical"
    )


@pytest.mark.parametrize(
    ("key", "written"),
    [
        ("quality_gate.threshold", "1e999"),
        ("environments.dev.endpoint.max_latency_ms", "-" + "9" * 400),
        ("environments.prod.monitoring.drift_threshold", "NaN"),
    ],
)
def test_a_number_cdk_json_cannot_carry_is_named_instead_of_taking_the_default(key, written):
    """The CLI turns 1e999 into null and the app's context drops it: app.py reads cdk.json itself to name it."""
    context = mlops()
    _set(context, key, "<number>")
    with pytest.raises(ConfigError) as error:
        refuse_unrepresentable_numbers(json.dumps({"context": {"mlops": context}}).replace('"<number>"', written))
    assert str(error.value) == (
        f"cdk.json context 'mlops.{key}' = {written} is invalid: "
        "not a finite number; write a number a double can hold (at most about 1.8e308)"
    )
    refuse_unrepresentable_numbers((REPO_ROOT / "cdk.json").read_text())


def test_app_exits_with_the_message_and_no_traceback():
    """app.py turns a bad value into one line on stderr and a non-zero exit, before any synth work."""
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": '{"mlops": {"project_name": "X"}}'},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Configuration error: cdk.json context 'mlops.project_name' = 'X' is invalid: "
        "must be 2-21 lower-case letters, digits or '-', starting with a letter"
    )


def test_volume_key_rule_agrees_with_the_sagemaker_sdk_for_every_instance_type():
    """The rule the deployer's settings use is the SDK's own; botocore's enums list every type SageMaker takes."""
    from sagemaker.utils import instance_supports_kms

    from stacks.synth.config import INSTANCE_TYPE_SHAPES, instance_types, supports_volume_kms

    every = {t for use in INSTANCE_TYPE_SHAPES for t in instance_types(use) if t.count(".") == 2}
    assert len(every) > 300
    assert [t for t in sorted(every) if supports_volume_kms(t) != instance_supports_kms(t)] == []


def test_environment_names_must_leave_room_for_the_endpoint_name():
    context = mlops()
    context["project_name"] = "a-rather-long-project"
    context["environments"]["a-long-environment-xy"] = context["environments"].pop("dev")
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert str(error.value) == (
        "cdk.json context 'mlops.environments' = 'a-long-environment-xy' is invalid: "
        "'a-rather-long-project-a-long-environment-xy' names the endpoint and must be at most 40 "
        "characters; shorten the project or environment name"
    )


VPC = "vpc-0123456789abcdef0"
SUBNETS = ["subnet-0123456789abcdef0", "subnet-89abcdef"]
GROUPS = ["sg-0123456789abcdef0"]


def test_network_and_boundary_are_left_out_by_default_and_read_when_given():
    assert all(e.network is None and e.permissions_boundary is None for e in load_config(mlops()).environments)
    context = mlops()
    context["environments"]["dev"]["network"] = {"vpc_id": VPC, "subnet_ids": SUBNETS, "security_group_ids": GROUPS}
    context["environments"]["dev"]["permissions_boundary"] = "arn:aws:iam::aws:policy/PowerUserAccess"
    context["environments"]["prod"]["permissions_boundary"] = "team-boundary"
    config = load_config(context)
    dev, prod = config.environment("dev"), config.environment("prod")
    assert dev.network is not None and (dev.network.vpc_id, dev.network.subnet_ids, dev.network.security_group_ids) == (
        VPC,
        tuple(SUBNETS),
        tuple(GROUPS),
    )
    assert (dev.permissions_boundary, prod.permissions_boundary, prod.network) == (
        "arn:aws:iam::aws:policy/PowerUserAccess",
        "team-boundary",
        None,
    )


def _network(**changes: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"vpc_id": VPC, "subnet_ids": SUBNETS, "security_group_ids": GROUPS}
    block.update(changes)
    return {key: value for key, value in block.items() if value is not None}


BAD_GUARDRAILS = [
    ("network", _network(vpc_id="vpc-123"), "network.vpc_id' = 'vpc-123' is invalid: must be a VPC id such as"),
    ("network", _network(vpc_id="subnet-0123456789abcdef0"), "network.vpc_id' = 'subnet-0123456789abcdef0' is invalid"),
    ("network", _network(subnet_ids=[]), "network.subnet_ids' = [] is invalid: must be a list of at least 1 and at most 16"),
    ("network", _network(subnet_ids=["subnet-0123456789abcdeg0"]), "network.subnet_ids[0]' = 'subnet-0123456789abcdeg0'"),
    ("network", _network(subnet_ids=[SUBNETS[0], SUBNETS[0]]), "network.subnet_ids' = ['subnet-0123456789abcdef0', "),
    ("network", _network(security_group_ids=[]), "network.security_group_ids' = [] is invalid: must be a list of at least 1"),
    ("network", _network(security_group_ids=None), "network.security_group_ids' = None is invalid: is required"),
    ("network", _network(security_group_ids=[f"sg-0000000{n}" for n in range(6)]), "at least 1 and at most 5 items"),
    (
        "network",
        _network(security_group_ids=["sg-1", GROUPS[0]]),
        "security_group_ids[0]' = 'sg-1' is invalid: must be a security",
    ),
    (
        "network",
        _network(vpc_ids=VPC),
        "network.vpc_ids' = 'vpc-0123456789abcdef0' is invalid: unknown key; did you mean 'vpc_id'?",
    ),
    ("network", VPC, "network' = 'vpc-0123456789abcdef0' is invalid: must be an object"),
    (
        "permissions_boundary",
        "arn:aws:iam::12:policy/b",
        "permissions_boundary' = 'arn:aws:iam::12:policy/b' is invalid: must be",
    ),
    ("permissions_boundary", "arn:aws:iam::123456789012:role/b", "is invalid: must be the ARN of an IAM managed policy"),
    ("permissions_boundary", "my boundary", "'my boundary' is invalid: must be the ARN of an IAM managed policy"),
    ("permissions_boundary", "", "permissions_boundary' = '' is invalid"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_GUARDRAILS, ids=[f"{b[0]}-{n}" for n, b in enumerate(BAD_GUARDRAILS)])
def test_a_wrong_network_or_boundary_is_named_with_what_is_allowed(key, value, message):
    context = mlops()
    context["environments"]["dev"][key] = value
    with pytest.raises(ConfigError) as error:
        load_config(context)
    assert f"'mlops.environments.dev.{key}" in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)
