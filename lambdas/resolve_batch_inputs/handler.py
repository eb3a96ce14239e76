"""Batch pipeline's first step: the latest Approved model package and the day's input prefix.

"The day" is today in the schedules' time zone unless the execution's ProcessingDate names one.

Called by the pipeline's LambdaStep at execution time, so a newly approved model is picked up by the
next run without re-registering the pipeline. Answers with status "ready", or with a status and a
message that the pipeline's Fail step shows, when there is no approved model or no data.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

REQUIRED = ("model_package_group_name", "input_prefix_uri", "output_prefix_uri")
# LambdaStep outputs must all be present, so every answer carries every key.
EMPTY = {"model_package_arn": "", "image_uri": "", "model_data_url": "", "input_uri": "", "output_uri": ""}


def _split_s3(uri: str, name: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:] or not uri.endswith("/"):
        raise ValueError(f"{name} must look like s3://bucket/prefix/, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def resolve(event: dict, sagemaker, s3) -> dict:
    missing = [k for k in REQUIRED if not event.get(k)]
    if missing:
        raise ValueError(f"missing input(s) {', '.join(missing)}; the batch pipeline's LambdaStep passes them")
    zone = ZoneInfo(event.get("timezone") or "UTC")
    raw_date = event.get("processing_date") or datetime.now(zone).date().isoformat()
    try:
        day = date.fromisoformat(raw_date).isoformat()
    except ValueError:
        return {**EMPTY, "status": "bad-date", "message": f"ProcessingDate {raw_date!r} is not a date like 2026-01-31"}
    input_uri = f"{event['input_prefix_uri']}{day}/"
    output_uri = f"{event['output_prefix_uri']}{day}/"
    answer = {**EMPTY, "input_uri": input_uri, "output_uri": output_uri}
    group = event["model_package_group_name"]
    packages = sagemaker.list_model_packages(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved", SortBy="CreationTime", SortOrder="Descending", MaxResults=1,
    )["ModelPackageSummaryList"]
    if not packages:
        return {**answer, "status": "no-approved-model",
                "message": f"No Approved model package in group {group}; approve one in the SageMaker Model Registry, then rerun"}
    arn = packages[0]["ModelPackageArn"]
    container = sagemaker.describe_model_package(ModelPackageName=arn)["InferenceSpecification"]["Containers"][0]
    answer.update(model_package_arn=arn, image_uri=container["Image"], model_data_url=container.get("ModelDataUrl", ""))
    bucket, prefix = _split_s3(input_uri, "input_prefix_uri")
    _split_s3(output_uri, "output_prefix_uri")
    if s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0) == 0:
        return {**answer, "status": "no-data", "message": f"No new data under {input_uri}; nothing to predict for {day}"}
    return {**answer, "status": "ready", "message": f"scoring {input_uri} with {answer['model_package_arn']}"}


def handler(event, context):
    result = resolve(event, boto3.client("sagemaker"), boto3.client("s3"))
    logger.info(json.dumps({"action": "resolve", **result}))
    return result
