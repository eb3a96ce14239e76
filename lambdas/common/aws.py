"""One boto3 client per service for the life of the execution environment, with standard-mode retries.

Standard mode retries throttling and transient errors with backoff (boto3 guide, "Retries"), which
SageMaker's control-plane quotas make worth having on every call.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def sagemaker() -> SageMakerClient:
    return boto3.client("sagemaker", config=RETRIES)


@cache
def s3() -> S3Client:
    return boto3.client("s3", config=RETRIES)


@cache
def autoscaling() -> ApplicationAutoScalingClient:
    return boto3.client("application-autoscaling", config=RETRIES)


@cache
def ecr() -> ECRClient:
    return boto3.client("ecr", config=RETRIES)


@cache
def codebuild() -> CodeBuildClient:
    return boto3.client("codebuild", config=RETRIES)


# Services whose type stubs the project does not pin: plain clients.
@cache
def sagemaker_runtime() -> Any:
    return boto3.client("sagemaker-runtime", config=RETRIES)


@cache
def scheduler() -> Any:
    return boto3.client("scheduler", config=RETRIES)


@cache
def sns() -> Any:
    return boto3.client("sns", config=RETRIES)


@cache
def cloudformation() -> Any:
    return boto3.client("cloudformation", config=RETRIES)


def forget_clients() -> None:
    """Drop the cached clients (tests that swap the AWS backend between cases)."""
    for factory in (sagemaker, s3, autoscaling, ecr, codebuild, sagemaker_runtime, scheduler, sns, cloudformation):
        factory.cache_clear()
