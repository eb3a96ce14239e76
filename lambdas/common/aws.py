"""One boto3 client per service for the life of the execution environment, with standard-mode retries.

Standard mode retries throttling and transient errors with backoff (boto3 guide, "Retries"), which
SageMaker's control-plane quotas make worth having on every call.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=RETRIES)
