"""Retraining on drift: the synthesized rule against AWS's alarm event, and the debounce with SageMaker's real shapes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import aws_events
import boto3
import pytest
from botocore.stub import Stubber
from conftest import ACCOUNT, CONFIG, LAMBDA_CONTEXT, NONPRODUCTION_NAMES, PROJECT, REGION, load_lambda, settings_environment
from moto.events.models import EventPattern

from common.contracts import RetrainingSettings, SettingsError
from common.names import ResourceNames

retrain_module = load_lambda("retrain_on_drift")
NOW = datetime(2026, 11, 23, 2, 5, tzinfo=UTC)
PIPELINE = NONPRODUCTION_NAMES.training_pipeline
ALARM = NONPRODUCTION_NAMES.alarm("data-drift")


def _settings(synthesized, environment) -> tuple[RetrainingSettings, dict]:
    template = synthesized.template(environment, "orchestration")
    (function,) = [
        f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Description"].startswith("Drift alarm")
    ]
    return RetrainingSettings.from_json(function["Environment"]["Variables"]["SETTINGS"]), template


def test_the_rule_takes_the_drift_alarm_entering_alarm_only(synthesized, environment):
    settings, template = _settings(synthesized, environment)
    names = ResourceNames(PROJECT, environment)
    assert settings.training_pipeline_name == names.training_pipeline
    assert settings.quiet_period_hours == CONFIG.environment(environment).monitoring.retraining_quiet_period_hours
    (rule,) = [
        r for r in template.find_resources("AWS::Events::Rule").values() if "drift alarm" in r["Properties"]["Description"]
    ]
    pattern = rule["Properties"]["EventPattern"]
    (alarm_id,) = [
        k
        for k, a in template.find_resources("AWS::CloudWatch::Alarm").items()
        if a["Properties"].get("AlarmName") == settings.drift_alarm_name
    ]
    assert pattern["resources"] == [{"Fn::GetAtt": [alarm_id, "Arn"]}]
    pattern["resources"] = [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{settings.drift_alarm_name}"]
    matcher = EventPattern.load(__import__("json").dumps(pattern))
    assert matcher.matches_event(aws_events.cloudwatch_alarm_state_change(settings.drift_alarm_name, "ALARM"))
    assert not matcher.matches_event(aws_events.cloudwatch_alarm_state_change(settings.drift_alarm_name, "OK", "ALARM"))
    assert not matcher.matches_event(aws_events.cloudwatch_alarm_state_change(names.alarm("5xx-errors"), "ALARM"))


def test_the_drift_alarm_watches_every_captured_column_and_alerts(synthesized, environment):
    _, template = _settings(synthesized, environment)
    (alarm,) = [
        a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("AlarmName", "").endswith("-data-drift")
    ]
    metrics = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
    columns = len(CONFIG.dataset.captured_columns)
    assert [m["MetricName"] for m in metrics] == [f"feature_baseline_drift__c{i}" for i in range(columns)]
    assert {m["Namespace"] for m in metrics} == {"aws/sagemaker/Endpoints/data-metrics"}
    assert all(
        m["Dimensions"]
        == [
            {"Name": "Endpoint", "Value": ResourceNames(PROJECT, environment).endpoint},
            {"Name": "MonitoringSchedule", "Value": ResourceNames(PROJECT, environment).monitoring_schedule},
        ]
        for m in metrics
    )
    threshold = CONFIG.environment(environment).monitoring.drift_threshold
    assert (alarm["Threshold"], alarm["TreatMissingData"]) == (threshold, "notBreaching")
    assert len(alarm["AlarmActions"]) == 1


@pytest.fixture
def stubbed():
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    settings = RetrainingSettings(training_pipeline_name=PIPELINE, drift_alarm_name=ALARM, quiet_period_hours=24)
    with Stubber(client) as stub:
        yield settings, client, stub
        stub.assert_no_pending_responses()


def _execution(status: str, started: datetime, name: str = "nightly") -> dict:
    return {
        "PipelineExecutionArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/{name}{started:%H%M}",
        "StartTime": started,
        "PipelineExecutionStatus": status,
        "PipelineExecutionDisplayName": name,
    }


def _listed(stub: Stubber, *executions: dict) -> None:
    stub.add_response(
        "list_pipeline_executions",
        {"PipelineExecutionSummaries": list(executions)},
        {"PipelineName": PIPELINE, "SortBy": "CreationTime", "SortOrder": "Descending"},
    )


def test_drift_starts_training_once_with_the_event_as_idempotency_token(stubbed):
    settings, client, stub = stubbed
    event = aws_events.cloudwatch_alarm_state_change(ALARM, "ALARM")
    _listed(
        stub,
        _execution("Succeeded", NOW - timedelta(hours=3)),
        _execution("Succeeded", NOW - timedelta(hours=30), "drift-20261121T200500Z"),
    )
    execution_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/0a1b2c3d4e5f"
    stub.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": execution_arn},
        {
            "PipelineName": PIPELINE,
            "PipelineExecutionDisplayName": "drift-20261123T020000Z",
            "PipelineExecutionDescription": f"Started by the drift alarm {ALARM} at 2026-11-23T02:00:00+00:00",
            "ClientRequestToken": hashlib.sha256(event["id"].encode()).hexdigest(),
        },
    )
    assert retrain_module.retrain(event, settings, client, NOW) == {"action": "started", "execution": execution_arn}


@pytest.mark.parametrize(
    "executions, reason",
    [
        ([_execution("Executing", NOW - timedelta(hours=50))], "a training execution is running"),
        ([_execution("Stopping", NOW - timedelta(minutes=5))], "a training execution is running"),
        (
            [
                _execution("Succeeded", NOW - timedelta(hours=2)),
                _execution("Failed", NOW - timedelta(hours=23), "drift-20261122T030500Z"),
            ],
            "drift started a training within the last 24 h",
        ),
    ],
)
def test_no_retraining_while_one_runs_or_within_the_quiet_period(stubbed, executions, reason):
    settings, client, stub = stubbed
    _listed(stub, *executions)
    result = retrain_module.retrain(aws_events.cloudwatch_alarm_state_change(ALARM, "ALARM"), settings, client, NOW)
    assert (result["action"], result["reason"]) == ("skipped", reason)


def test_other_states_are_ignored_and_bad_events_are_named(stubbed):
    settings, client, _ = stubbed
    ok = aws_events.cloudwatch_alarm_state_change(ALARM, "OK", "ALARM")
    assert retrain_module.retrain(ok, settings, client, NOW)["action"] == "ignored"
    with pytest.raises(retrain_module.EventError, match="is not this environment's drift alarm"):
        retrain_module.retrain(aws_events.cloudwatch_alarm_state_change("someone-else", "ALARM"), settings, client, NOW)
    with pytest.raises(retrain_module.EventError, match="expected a 'CloudWatch Alarm State Change' event"):
        retrain_module.retrain({"alarm": ALARM}, settings, client, NOW)
    wrong = aws_events.endpoint_state_change(NONPRODUCTION_NAMES.endpoint, "IN_SERVICE")
    with pytest.raises(retrain_module.EventError, match=r"unsupported event 'aws\.sagemaker'"):
        retrain_module.retrain(wrong, settings, client, NOW)
    bad_time = {**aws_events.cloudwatch_alarm_state_change(ALARM, "ALARM"), "time": "yesterday"}
    with pytest.raises(retrain_module.EventError, match=r"event time 'yesterday' is not an ISO 8601 timestamp with a time zone"):
        retrain_module.retrain(bad_time, settings, client, NOW)


def _alarm_event(**changes) -> dict:
    event = aws_events.cloudwatch_alarm_state_change(ALARM, "ALARM")
    for key, value in changes.items():
        if key == "state":
            event["detail"]["state"] = value
        elif value is None:
            del event[key]
        else:
            event[key] = value
    return event


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (_alarm_event(state="ALARM"), "event detail.state must be an object with the alarm's value, e.g. 'ALARM', got 'ALARM'"),
        (_alarm_event(state=None), "event detail.state must be an object with the alarm's value, e.g. 'ALARM', got None"),
        (_alarm_event(state={"value": ["ALARM"]}), "event detail.state must be an object with the alarm's value"),
        (_alarm_event(id=None), "event id None must be a non-empty string; it makes a redelivered event start nothing"),
        (_alarm_event(id=7), "event id 7 must be a non-empty string"),
        (_alarm_event(source=None), "unsupported event None / 'CloudWatch Alarm State Change'; expected"),
    ],
)
def test_a_malformed_alarm_event_is_named_before_any_call(stubbed, event, message):
    """Each raised AttributeError or KeyError, passed silently, or failed later when hashing the id."""
    settings, client, _ = stubbed
    with pytest.raises(retrain_module.EventError) as error:
        retrain_module.retrain(event, settings, client, NOW)
    assert str(error.value).startswith(message)


def test_the_handler_reads_its_settings_and_names_a_bad_one(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    retrain_module.settings.cache_clear()
    monkeypatch.setenv("SETTINGS", '{"training_pipeline_name": "p", "drift_alarm_name": "a"}')
    with pytest.raises(SettingsError, match="SETTINGS lacks quiet_period_hours"):
        retrain_module.handler(aws_events.cloudwatch_alarm_state_change(ALARM, "ALARM"), LAMBDA_CONTEXT)
    retrain_module.settings.cache_clear()
    settings = RetrainingSettings(training_pipeline_name=PIPELINE, drift_alarm_name=ALARM, quiet_period_hours=1)
    for key, value in settings_environment(settings).items():
        monkeypatch.setenv(key, value)
    assert retrain_module.handler(aws_events.cloudwatch_alarm_state_change(ALARM, "OK"), LAMBDA_CONTEXT)["action"] == "ignored"
    retrain_module.settings.cache_clear()
