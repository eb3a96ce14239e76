"""The batch pipeline's resolver against moto: latest Approved package, the day's prefix, clear refusals."""

from __future__ import annotations

import boto3
import pytest
from conftest import ACCOUNT, REGION, load_lambda

resolver = load_lambda("resolve_batch_inputs")
GROUP = "mlops-test"
EVENT = {
    "model_package_group_name": GROUP,
    "input_prefix_uri": "s3://raw-data/batch-input/",
    "output_prefix_uri": "s3://artifacts/batch-predictions/",
    "processing_date": "2026-11-23",
    "execution_id": "e-1",
    "timezone": "UTC",
}


@pytest.fixture
def clients(aws):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="raw-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    return sagemaker, s3


def _package(sagemaker, status: str, version: int, baseline: str | None = None) -> str:
    drift = (
        {
            "DriftCheckBaselines": {
                "ModelDataQuality": {
                    kind: {"ContentType": "application/json", "S3Uri": f"{baseline}/{kind.lower()}.json"}
                    for kind in ("Statistics", "Constraints")
                }
            }
        }
        if baseline
        else {}
    )
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        **drift,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inference:{version}",
                    "ModelDataUrl": f"s3://artifacts/models/{version}/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def test_no_approved_package_is_a_clear_refusal(clients):
    sagemaker, _ = clients
    _package(sagemaker, "PendingManualApproval", 1)
    result = resolver.resolve(EVENT, *clients)
    assert result["status"] == "no-approved-model"
    assert (
        result["message"]
        == f"No Approved model package in group {GROUP}; approve one in the SageMaker Model Registry, then rerun"
    )
    assert set(result) == set(resolver.EMPTY) | {"status", "message"}


def test_latest_approved_package_and_dated_prefixes(clients):
    sagemaker, s3 = clients
    _package(sagemaker, "Approved", 1)
    latest = _package(sagemaker, "Approved", 2, baseline="s3://artifacts/training/e2/data-quality-baseline")
    _package(sagemaker, "PendingManualApproval", 3)
    s3.put_object(Bucket="raw-data", Key="batch-input/2026-11-23/part-0.csv", Body=b"M,0.4,0.3,0.1,0.5,0.2,0.1,0.1\n")
    result = resolver.resolve(EVENT, *clients)
    assert result == {
        "status": "ready",
        "message": f"scoring s3://raw-data/batch-input/2026-11-23/ with {latest}",
        "model_package_arn": latest,
        "image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inference:2",
        "model_data_url": "s3://artifacts/models/2/model.tar.gz",
        "input_uri": "s3://raw-data/batch-input/2026-11-23/",
        "output_uri": "s3://artifacts/batch-predictions/2026-11-23/",
        "baseline_statistics_uri": "s3://artifacts/training/e2/data-quality-baseline/statistics.json",
        "baseline_constraints_uri": "s3://artifacts/training/e2/data-quality-baseline/constraints.json",
    }


def test_a_package_without_baseline_resolves_with_empty_baseline_outputs(clients):
    sagemaker, s3 = clients
    _package(sagemaker, "Approved", 1)
    s3.put_object(Bucket="raw-data", Key="batch-input/2026-11-23/part-0.csv", Body=b"M,0.4,0.3,0.1,0.5,0.2,0.1,0.1\n")
    result = resolver.resolve(EVENT, *clients)
    assert result["status"] == "ready"
    assert (result["baseline_statistics_uri"], result["baseline_constraints_uri"]) == ("", "")


def test_no_data_for_the_day(clients):
    _package(clients[0], "Approved", 1)
    result = resolver.resolve(EVENT, *clients)
    assert (result["status"], result["message"]) == (
        "no-data",
        "No new data under s3://raw-data/batch-input/2026-11-23/; nothing to predict for 2026-11-23",
    )


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_default_date_is_today_in_the_schedules_time_zone(clients, zone):
    _package(clients[0], "Approved", 1)
    today = resolver.datetime.now(resolver.ZoneInfo(zone)).date().isoformat()
    result = resolver.resolve({**EVENT, "processing_date": "", "timezone": zone}, *clients)
    assert result["input_uri"] == f"s3://raw-data/batch-input/{today}/"


BAD_EVENTS = [
    ({"processing_date": "23/11/2026"}, "ProcessingDate '23/11/2026' is not a date like 2026-01-31; leave it empty for today"),
    ({"processing_date": "2026-02-30"}, "ProcessingDate '2026-02-30' is not a date like 2026-01-31; leave it empty for today"),
    (
        {"input_prefix_uri": "s3://raw-data"},
        "InputPrefixUri must look like s3://bucket/prefix/ (ending in '/'), got "
        "'s3://raw-data'; set the pipeline parameter to a prefix, not an object or a bucket alone",
    ),
    (
        {"output_prefix_uri": "s3://artifacts/batch-predictions"},
        "OutputPrefixUri must look like s3://bucket/prefix/ (ending in '/'), got 's3://artifacts/batch-predictions'; "
        "set the pipeline parameter to a prefix, not an object or a bucket alone",
    ),
    ({"timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not an IANA time zone such as 'Europe/Berlin'"),
]


@pytest.mark.parametrize(("change", "message"), BAD_EVENTS, ids=[m[:30] for _, m in BAD_EVENTS])
def test_malformed_inputs_fail_the_step_with_a_clear_message(change, message):
    """A prefix without its trailing slash would otherwise read from, or write to, another bucket's keys."""
    with pytest.raises(resolver.InputError) as error:
        resolver.resolve({**EVENT, **change}, None, None)  # refused before any AWS call
    assert str(error.value) == message


def test_missing_inputs_and_wrong_event_type():
    with pytest.raises(resolver.InputError) as error:
        resolver.resolve({"output_prefix_uri": "s3://a/b/"}, None, None)
    assert str(error.value) == (
        "event lacks model_package_group_name, input_prefix_uri, timezone, execution_id; the batch "
        "pipeline's LambdaStep writes them; re-register the pipelines if it differs from this function"
    )
    with pytest.raises(resolver.InputError, match="event must be a JSON object, got list"):
        resolver.resolve([], None, None)
    with pytest.raises(resolver.InputError, match=r"event.timezone = 3 must be a non-empty string"):
        resolver.resolve({**EVENT, "timezone": 3}, None, None)
