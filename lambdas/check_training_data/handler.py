"""Training pipeline's first step: is there raw training data under the execution's InputDataUri?

Answers status "ready", or "no-data" with a message naming the prefix; the pipeline then ends as a
success without training (a fresh environment, or a schedule that finds nothing, is not a failure).
A malformed input raises, which fails the step with the message.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from common import aws
from common.contracts import SettingsError, TrainingDataRequest
from common.s3_uris import InputError, split_s3_prefix

logger = Logger(service="check-training-data")

# What pipeline_scripts/preprocess.py reads.
DATA_SUFFIXES = (".csv", ".txt")


def check(event: Any, s3: Any) -> dict:
    try:
        request = TrainingDataRequest.from_mapping(event, "event")
    except SettingsError as error:
        raise InputError(str(error)) from None
    bucket, prefix = split_s3_prefix(request.input_data_uri, "InputDataUri")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].lower().endswith(DATA_SUFFIXES) and item["Size"] > 0:
                return {"status": "ready", "message": f"training on the data under {request.input_data_uri}"}
    return {
        "status": "no-data",
        "message": f"no training data under {request.input_data_uri}; upload .csv files there to train",
    }


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict:
    result = check(event, aws.s3())
    # "message" is a reserved LogRecord attribute: logging refuses it as an extra key.
    logger.info(result["message"], extra={"status": result["status"]})
    return result
