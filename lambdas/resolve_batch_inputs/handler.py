"""Batch pipeline's first step: the latest Approved model package and the day's input prefix.

"The day" is today in the schedules' time zone unless the execution's ProcessingDate names one.

Called by the pipeline's LambdaStep at execution time, so a newly approved model is picked up by the
next run without re-registering the pipeline. Answers with status "ready", or, when there is no
approved model or no data, with a status and a message: the execution then succeeds without a
transform (nothing to do is not a failure). A malformed input raises, which fails the step with
the message.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_lambda_powertools import Logger

from common import aws
from common.contracts import BatchInputsRequest, SettingsError
from common.registry import data_quality_baseline, latest_approved_package
from common.s3_uris import InputError, split_s3_prefix

logger = Logger(service="resolve-batch-inputs")

# LambdaStep outputs must all be present, so every answer carries every key.
EMPTY = {
    "model_package_arn": "",
    "image_uri": "",
    "model_data_url": "",
    "input_uri": "",
    "output_uri": "",
    "baseline_statistics_uri": "",
    "baseline_constraints_uri": "",
}
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def resolve(event: Any, sagemaker: Any, s3: Any) -> dict:
    try:
        request = BatchInputsRequest.from_mapping(event, "event")
    except SettingsError as error:
        raise InputError(str(error)) from None
    try:
        zone = ZoneInfo(request.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"timezone {request.timezone!r} is not an IANA time zone such as 'Europe/Berlin'") from None
    raw_date = request.processing_date or datetime.now(zone).date().isoformat()
    try:
        day = date.fromisoformat(raw_date).isoformat() if DAY.fullmatch(raw_date) else None
    except ValueError:
        day = None
    if day is None:
        raise InputError(f"ProcessingDate {raw_date!r} is not a date like 2026-01-31; leave it empty for today")
    bucket, prefix = split_s3_prefix(request.input_prefix_uri, "InputPrefixUri")
    split_s3_prefix(request.output_prefix_uri, "OutputPrefixUri")
    input_uri = f"{request.input_prefix_uri}{day}/"
    output_uri = f"{request.output_prefix_uri}{day}/"
    answer = {**EMPTY, "input_uri": input_uri, "output_uri": output_uri}
    group = request.model_package_group_name
    arn = latest_approved_package(sagemaker, group)
    if arn is None:
        return {
            **answer,
            "status": "no-approved-model",
            "message": f"No Approved model package in group {group}; approve one in the SageMaker Model Registry, then rerun",
        }
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    container = package["InferenceSpecification"]["Containers"][0]
    answer.update(model_package_arn=arn, image_uri=container["Image"], model_data_url=container.get("ModelDataUrl", ""))
    # The day's input is checked against the package's baseline where it has one (the batch pipeline's HasBaseline).
    statistics, constraints = data_quality_baseline(package) or ("", "")
    answer.update(baseline_statistics_uri=statistics, baseline_constraints_uri=constraints)
    if s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}{day}/", MaxKeys=1).get("KeyCount", 0) == 0:
        return {**answer, "status": "no-data", "message": f"No new data under {input_uri}; nothing to predict for {day}"}
    return {**answer, "status": "ready", "message": f"scoring {input_uri} with {answer['model_package_arn']}"}


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict:
    result = resolve(event, aws.sagemaker(), aws.s3())
    # "message" is a reserved LogRecord attribute: logging refuses it as an extra key.
    logger.info(result["message"], extra={k: v for k, v in result.items() if k != "message"})
    return result
