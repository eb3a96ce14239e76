"""The checks of a deployed environment, each answering pass, fail, not-applicable or error with one finding.

Resource checks need only the stacks to be deployed. Model checks apply once the Model Registry holds an
approved package: before that they answer not-applicable, which is not a failure.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from common.contracts import SystemTestSettings
from common.registry import latest_approved_package
from common.s3_uris import split_s3_prefix

PASS, FAIL, NOT_APPLICABLE, ERROR = "pass", "fail", "not-applicable", "error"
OK = (PASS, NOT_APPLICABLE)
# Written by pipeline_scripts/evaluate.py: one {"request": <text/csv body>, "answer": <text/csv answer>} a line.
SAMPLE_FILE = "holdout.jsonl"
# The server prints each number with 6 decimals (inference.Model.format_csv): one prediction computed on two hosts can
# differ in its last bits and so print one unit apart in the sixth decimal. Anything further is a different answer.
TOLERANCE = Decimal("0.000001")
# A field printed so is a number; any other field (a label such as `1` or `malignant`) is text.
PRINTED_NUMBER = re.compile(r"-?\d+\.\d{6}")


class SampleError(ValueError):
    """A sample file that is not the training pipeline's; the message names the line."""


@dataclass(frozen=True)
class Clients:
    s3: Any
    ecr: Any
    sagemaker: Any
    scheduler: Any
    runtime: Any = None


def result(check: str, status: str, finding: str, **extra: Any) -> dict:
    return {"check": check, "status": status, "finding": finding, **extra}


def _verdict(check: str, problems: list[str], success: str) -> dict:
    return result(check, FAIL, "; ".join(problems)) if problems else result(check, PASS, success)


def _code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


def _key_id(key: str | None) -> str:
    return (key or "").rsplit("/", 1)[-1]


def buckets_encrypted(s: SystemTestSettings, clients: Clients) -> dict:
    problems = []
    for bucket in s.buckets:
        try:
            rules = clients.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        except ClientError as error:
            if _code(error) not in ("NoSuchBucket", "ServerSideEncryptionConfigurationNotFoundError"):
                raise
            problems.append(f"{bucket}: {_code(error)}")
            continue
        default = rules[0].get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") != "aws:kms" or _key_id(default.get("KMSMasterKeyID")) != _key_id(s.kms_key_arn):
            problems.append(
                f"{bucket} is encrypted with {default.get('SSEAlgorithm')} {default.get('KMSMasterKeyID')}, not the key"
            )
    return _verdict("buckets_encrypted", problems, f"{len(s.buckets)} buckets encrypted with the environment's key")


def repositories_present(s: SystemTestSettings, clients: Clients) -> dict:
    problems = []
    for name in s.repositories:
        try:
            (repository,) = clients.ecr.describe_repositories(repositoryNames=[name])["repositories"]
        except ClientError as error:
            if _code(error) != "RepositoryNotFoundException":
                raise
            problems.append(f"repository {name} does not exist")
            continue
        if (repository.get("encryptionConfiguration") or {}).get("encryptionType") != "KMS":
            problems.append(f"repository {name} is not encrypted with KMS")
    return _verdict("repositories_present", problems, f"{len(s.repositories)} repositories, KMS-encrypted")


def pipelines_registered(s: SystemTestSettings, clients: Clients) -> dict:
    problems = []
    for name in s.pipelines:
        try:
            status = clients.sagemaker.describe_pipeline(PipelineName=name).get("PipelineStatus")
        except ClientError as error:
            # The API reference names ResourceNotFound; a ValidationException "Could not find pipeline" is seen too.
            if _code(error) != "ResourceNotFound" and "Could not find pipeline" not in str(error):
                raise
            problems.append(f"pipeline {name} is not registered")
            continue
        if status != "Active":
            problems.append(f"pipeline {name} is {status}")
    return _verdict("pipelines_registered", problems, f"{len(s.pipelines)} pipelines registered and active")


def package_group_present(s: SystemTestSettings, clients: Clients) -> dict:
    name = s.model_package_group_name
    try:
        status = clients.sagemaker.describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupStatus"]
    except ClientError as error:
        if _code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
        return result("package_group_present", FAIL, f"model package group {name} does not exist")
    if status != "Completed":
        return result("package_group_present", FAIL, f"model package group {name} is {status}")
    return result("package_group_present", PASS, f"model package group {name} exists")


def schedules_in_state(s: SystemTestSettings, clients: Clients) -> dict:
    problems = []
    for entry in s.schedules:
        name, _, wanted = entry.rpartition("=")
        try:
            state = clients.scheduler.get_schedule(Name=name)["State"]
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise
            problems.append(f"schedule {name} does not exist")
            continue
        if state != wanted:
            problems.append(f"schedule {name} is {state}, configured {wanted}")
    return _verdict("schedules_in_state", problems, f"{len(s.schedules)} schedules in their configured state")


RESOURCE_CHECKS: dict[str, Callable[[SystemTestSettings, Clients], dict]] = {
    check.__name__: check
    for check in (buckets_encrypted, repositories_present, pipelines_registered, package_group_present, schedules_in_state)
}


# --- model checks ---------------------------------------------------------------------------------------------


def _serving(s: SystemTestSettings, clients: Clients) -> tuple[dict | None, str | None]:
    """(latest approved package, why a model check does not apply)."""
    arn = latest_approved_package(clients.sagemaker, s.model_package_group_name)
    if arn is None:
        return None, f"no approved model package in {s.model_package_group_name} yet"
    return clients.sagemaker.describe_model_package(ModelPackageName=arn), None


def _endpoint(s: SystemTestSettings, clients: Clients) -> dict | None:
    try:
        return clients.sagemaker.describe_endpoint(EndpointName=s.endpoint_name)
    except ClientError as error:
        if _code(error) == "ValidationException" and "Could not find endpoint" in error.response["Error"]["Message"]:
            return None
        raise


def endpoint_serves_latest(s: SystemTestSettings, clients: Clients) -> dict:
    check = "endpoint_serves_latest"
    package, skipped = _serving(s, clients)
    if package is None:
        return result(check, NOT_APPLICABLE, skipped or "")
    version = package["ModelPackageVersion"]
    endpoint = _endpoint(s, clients)
    if endpoint is None:
        return result(
            check, FAIL, f"no endpoint {s.endpoint_name} although version {version} is approved; see the deployer's log"
        )
    if endpoint["EndpointStatus"] != "InService":
        return result(check, FAIL, f"endpoint {s.endpoint_name} is {endpoint['EndpointStatus']}")
    # The deployer names every endpoint config "<endpoint>-v<version>-...".
    if not endpoint["EndpointConfigName"].startswith(f"{s.endpoint_name}-v{version}-"):
        return result(check, FAIL, f"endpoint serves {endpoint['EndpointConfigName']}, not the latest approved version {version}")
    return result(check, PASS, f"endpoint {s.endpoint_name} is InService on version {version}")


def sample_uri(package: dict) -> str | None:
    """The held-out sample and the package's offline answers, beside its evaluation report (training writes both)."""
    report = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics", {}).get("S3Uri")
    return f"{report.rsplit('/', 1)[0]}/{SAMPLE_FILE}" if report else None


def read_sample(text: str, uri: str) -> list[tuple[str, str]]:
    """(request, offline answer) of each line of the sample file; SampleError names the first line that is neither."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        request, answer = (entry.get("request"), entry.get("answer")) if isinstance(entry, dict) else (None, None)
        if not (isinstance(request, str) and request.strip() and isinstance(answer, str)):
            raise SampleError(
                f'{uri} line {number} is not {{"request": "<CSV record>", "answer": "<CSV answer>"}}; retrain to rewrite it'
            )
        pairs.append((request, answer))
    if not pairs:
        raise SampleError(f"{uri} holds no records; retrain to rewrite it")
    return pairs


def _number(field: str) -> Decimal | None:
    return Decimal(field) if PRINTED_NUMBER.fullmatch(field.strip()) else None


def answers_match(expected: str, answered: str) -> bool:
    """Field by field: numbers as the server prints them within TOLERANCE of each other (compared as the decimals
    printed), anything else, a label included, exactly: label `1` is not label `1.0`."""
    want, got = expected.strip().split(","), answered.strip().split(",")
    if len(want) != len(got):
        return False
    for w, g in zip(want, got, strict=True):
        a, b = _number(w), _number(g)
        same = abs(a - b) <= TOLERANCE if a is not None and b is not None else w.strip() == g.strip()
        if not same:
            return False
    return True


def endpoint_reproduces_offline_predictions(
    s: SystemTestSettings, clients: Clients, clock: Callable[[], float] = time.perf_counter
) -> dict:
    """The held-out sample, one record a request as a client sends it: each answer the package's offline answer, and
    p95 latency within the limit. The model's quality is the training pipeline's gate, not this test's."""
    check = "endpoint_reproduces_offline_predictions"
    package, skipped = _serving(s, clients)
    if package is None:
        return result(check, NOT_APPLICABLE, skipped or "", requests=0)
    endpoint = _endpoint(s, clients)
    if endpoint is None or endpoint["EndpointStatus"] != "InService":
        return result(check, FAIL, f"endpoint {s.endpoint_name} is not InService", requests=0)
    uri = sample_uri(package)
    if uri is None:
        return result(check, NOT_APPLICABLE, f"{package['ModelPackageArn']} has no evaluation report", requests=0)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    # Listed first: a GetObject of a missing key answers AccessDenied instead of NoSuchKey unless S3's implied
    # s3:ListBucket check passes (Amazon S3 API Reference, GetObject, "Permissions"), and the role may list
    # this key's prefix, not the bucket.
    listed = clients.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    if not any(item["Key"] == key for item in listed):
        return result(
            check, NOT_APPLICABLE, f"no held-out sample at {uri} (a package trained before training wrote one)", requests=0
        )
    text = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    try:
        pairs = read_sample(text, uri)
    except SampleError as error:
        return result(check, FAIL, str(error), requests=0)
    sent_at = datetime.now(UTC).isoformat()
    latencies, mismatches = [], []
    for number, (request, expected) in enumerate(pairs, start=1):
        started = clock()
        answer = clients.runtime.invoke_endpoint(
            EndpointName=s.endpoint_name, ContentType="text/csv", Accept="text/csv", Body=request.encode()
        )["Body"].read()
        latencies.append((clock() - started) * 1000)
        answered = answer.decode(errors="replace")
        if not answers_match(expected, answered):
            mismatches.append(f"record {number} {request!r}: offline {expected.strip()!r}, endpoint {answered.strip()!r}")
    p95 = sorted(latencies)[max(0, math.ceil(0.95 * len(latencies)) - 1)]
    latency = f"p95 latency {p95:.0f} ms (limit {s.max_latency_ms} ms) over {len(pairs)} requests"
    if mismatches:
        answers = f"{len(mismatches)} of {len(pairs)} answers differ from the offline answers by more than {TOLERANCE}: "
        answers += mismatches[0] + (f" and {len(mismatches) - 1} more" if len(mismatches) > 1 else "")
    else:
        answers = f"all {len(pairs)} answers match the offline answers (numbers within {TOLERANCE})"
    status = PASS if not mismatches and p95 <= s.max_latency_ms else FAIL
    return result(check, status, f"{answers}; {latency}", requests=len(pairs), sent_at=sent_at)


def data_capture_lands(s: SystemTestSettings, clients: Clients, since: str) -> dict:
    """Captured requests written under the endpoint's capture prefix since the sample's requests were sent."""
    check = "data_capture_lands"
    try:
        start = datetime.fromisoformat(since)
    except (TypeError, ValueError):
        raise ValueError(f"since {since!r} is not an ISO 8601 time") from None
    bucket, prefix = split_s3_prefix(f"{s.data_capture_s3_uri.rstrip('/')}/", "data capture URI")
    pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    captured = [o["Key"] for page in pages for o in page.get("Contents", []) if o["LastModified"] >= start]
    if not captured:
        return result(check, FAIL, f"nothing captured under {s.data_capture_s3_uri} since {since}")
    return result(check, PASS, f"{len(captured)} capture files under {s.data_capture_s3_uri} since {since}")


def run_all_resource_checks(s: SystemTestSettings, clients: Clients) -> list[dict]:
    """Every resource check, none stopping another: an AWS error becomes that check's error."""
    results = []
    for name, check in RESOURCE_CHECKS.items():
        try:
            results.append(check(s, clients))
        except ClientError as error:
            results.append(result(name, ERROR, f"{_code(error)}: {error.response['Error'].get('Message', '')}"))
    return results
