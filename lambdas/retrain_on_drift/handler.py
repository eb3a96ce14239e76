"""The drift alarm entering ALARM starts the training pipeline, at most once per quiet period.

Nothing is started while an execution of the training pipeline runs (it trains on the newest data
already), nor within the quiet period after the last drift-started execution (its model needs time to
be approved, deployed and watched before drift says anything new). Drift-started executions carry the
display name prefix "drift-"; the event's id is the idempotency token, so a redelivered event starts
nothing twice.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from common import aws
from common.contracts import RetrainingSettings, SettingsError

logger = Logger(service="retrain-on-drift")

ALARM_EVENT = "CloudWatch Alarm State Change"
DRIFT_PREFIX = "drift-"
# ListPipelineExecutions' statuses of an execution that has not ended (SageMaker API reference).
RUNNING = ("Executing", "Stopping")


class EventError(ValueError):
    """An event this function cannot act on; the message says what was expected."""


@cache
def settings() -> RetrainingSettings:
    return RetrainingSettings.from_environment()


def parse_event(event: Any, config: RetrainingSettings) -> tuple[str, datetime] | None:
    """(event id, time the alarm fired) for the drift alarm entering ALARM; None for another state."""
    if not isinstance(event, dict) or "detail-type" not in event or not isinstance(event.get("detail"), dict):
        raise EventError(f"expected a '{ALARM_EVENT}' event from EventBridge, got {str(event)[:200]}")
    parsed = EventBridgeEvent(event)
    if event.get("source") != "aws.cloudwatch" or parsed.detail_type != ALARM_EVENT:
        raise EventError(f"unsupported event {event.get('source')!r} / {parsed.detail_type!r}; expected '{ALARM_EVENT}'")
    name = parsed.detail.get("alarmName")
    if name != config.drift_alarm_name:
        raise EventError(f"alarm {name!r} is not this environment's drift alarm {config.drift_alarm_name!r}")
    state = parsed.detail.get("state")
    if not isinstance(state, dict) or not isinstance(state.get("value"), str):
        raise EventError(f"event detail.state must be an object with the alarm's value, e.g. 'ALARM', got {state!r}")
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise EventError(f"event id {event.get('id')!r} must be a non-empty string; it makes a redelivered event start nothing")
    if state["value"] != "ALARM":
        return None
    time = event.get("time")
    try:
        fired = datetime.fromisoformat(time) if isinstance(time, str) else None
    except ValueError:
        fired = None
    if fired is None or fired.tzinfo is None:
        raise EventError(f"event time {time!r} is not an ISO 8601 timestamp with a time zone")
    return parsed.get_id, fired


def retrain(event: Any, config: RetrainingSettings, sagemaker: Any, now: datetime) -> dict:
    parsed = parse_event(event, config)
    if parsed is None:
        return {"action": "ignored", "reason": "the drift alarm did not enter ALARM"}
    event_id, fired = parsed
    quiet_since = now - timedelta(hours=config.quiet_period_hours)
    pages = sagemaker.get_paginator("list_pipeline_executions").paginate(
        PipelineName=config.training_pipeline_name, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for execution in page["PipelineExecutionSummaries"]:
            arn = execution["PipelineExecutionArn"]
            if execution.get("PipelineExecutionStatus") in RUNNING:
                return {"action": "skipped", "reason": "a training execution is running", "execution": arn}
            started = execution.get("StartTime")
            drift_started = (execution.get("PipelineExecutionDisplayName") or "").startswith(DRIFT_PREFIX)
            if drift_started and started and started >= quiet_since:
                return {
                    "action": "skipped",
                    "reason": f"drift started a training within the last {config.quiet_period_hours} h",
                    "execution": arn,
                }
    response = sagemaker.start_pipeline_execution(
        PipelineName=config.training_pipeline_name,
        PipelineExecutionDisplayName=f"{DRIFT_PREFIX}{fired.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        PipelineExecutionDescription=f"Started by the drift alarm {config.drift_alarm_name} at {fired.isoformat()}",
        ClientRequestToken=hashlib.sha256(event_id.encode()).hexdigest(),
    )
    return {"action": "started", "execution": response["PipelineExecutionArn"]}


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict:
    try:
        result = retrain(event, settings(), aws.sagemaker(), datetime.now(UTC))
    except (EventError, SettingsError) as error:
        logger.error(str(error), extra={"error_type": type(error).__name__})
        raise
    logger.info("drift alarm handled", extra=result)
    return result
