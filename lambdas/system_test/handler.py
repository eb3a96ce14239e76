"""The system test's Lambda: one check per invocation, then the report of all of them.

The state machine invokes {"check": "<name>"} once per check, in parallel branches, and finally
{"results": [...]} with every branch's output. The report goes to the environment's topic and is
returned as {"environment", "passed", "checks", "summary"}. An AWS error inside a check is that
check's "error" finding; it does not stop the others.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import checks
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from common import aws
from common.contracts import SettingsError, SystemTestSettings

logger = Logger(service="system-test")

MODEL_CHECKS = ("endpoint_serves_latest", "endpoint_reproduces_offline_predictions", "data_capture_lands")


class EventError(ValueError):
    """An invocation this function cannot run; the message says what it takes."""


@cache
def settings() -> SystemTestSettings:
    return SystemTestSettings.from_environment()


def clients() -> checks.Clients:
    return checks.Clients(aws.s3(), aws.ecr(), aws.sagemaker(), aws.scheduler(), aws.sagemaker_runtime())


def run_check(event: dict, config: SystemTestSettings, using: checks.Clients) -> dict:
    name = event.get("check")
    known = (*checks.RESOURCE_CHECKS, *MODEL_CHECKS)
    if not isinstance(name, str) or name not in known:
        raise EventError(f"unknown check {name!r}; send {{'check': one of {', '.join(known)}}} or {{'results': [...]}}")
    try:
        if name in checks.RESOURCE_CHECKS:
            return checks.RESOURCE_CHECKS[name](config, using)
        if name == "endpoint_serves_latest":
            return checks.endpoint_serves_latest(config, using)
        if name == "endpoint_reproduces_offline_predictions":
            return checks.endpoint_reproduces_offline_predictions(config, using)
        return checks.data_capture_lands(config, using, event.get("since", ""))
    except ClientError as error:
        return checks.result(name, checks.ERROR, f"{error.response['Error']['Code']}: {error.response['Error']['Message']}")


def flatten(results: Any) -> list[dict]:
    """Branch outputs in order: a check's result, a branch's {"results": [...]}, or a caught error's result."""
    if not isinstance(results, list):
        raise EventError(f"results must be the list of the parallel branches' outputs, got {type(results).__name__}")
    flat: list[dict] = []
    for item in results:
        items = item.get("results") if isinstance(item, dict) and "results" in item else [item]
        for entry in items or []:
            fields = ("check", "status", "finding")
            if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) for key in fields):
                raise EventError(f"{entry!r} is not a check result with check, status and finding (strings)")
            flat.append({key: entry[key] for key in fields})
    if not flat:
        raise EventError("results hold no check result; the report needs the parallel branches' outputs")
    return flat


def report(results: Any, config: SystemTestSettings, sns: Any) -> dict:
    flat = flatten(results)
    passed = all(r["status"] in checks.OK for r in flat)
    verdict = "passed" if passed else "FAILED"
    failed = [r["check"] for r in flat if r["status"] not in checks.OK]
    summary = f"{config.environment} system test {verdict}" + (f": {', '.join(failed)}" if failed else "")
    lines = [summary, ""] + [f"{r['status'].upper():15} {r['check']}: {r['finding']}" for r in flat]
    sns.publish(
        TopicArn=config.alerts_topic_arn, Subject=f"{config.environment} system test {verdict}"[:100], Message="\n".join(lines)
    )
    return {"environment": config.environment, "passed": passed, "summary": summary, "checks": flat}


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict:
    try:
        config = settings()
        if not isinstance(event, dict):
            raise EventError(f"event must be a JSON object, got {type(event).__name__}")
        answer = report(event["results"], config, aws.sns()) if "results" in event else run_check(event, config, clients())
    except (EventError, SettingsError, ValueError) as error:
        logger.error(str(error), extra={"error_type": type(error).__name__})
        raise
    logger.info("system test step", extra=answer)
    return answer
