"""The training pipeline's data check against moto: data, no data (a fresh environment), clear refusals."""

from __future__ import annotations

import boto3
import pytest
from conftest import REGION, load_lambda

checker = load_lambda("check_training_data")
URI = "s3://raw-data/incoming/"


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket="raw-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


def _event(uri: str = URI) -> dict:
    return {"input_data_uri": uri, "execution_id": "a1b2c3d4e5f6"}


def test_csv_files_under_the_prefix_are_ready(s3):
    s3.put_object(Bucket="raw-data", Key="incoming/2026/part-0.csv", Body=b"M,0.4,0.3,0.1,0.5,0.2,0.1,0.1,9\n")
    assert checker.check(_event(), s3) == {"status": "ready", "message": f"training on the data under {URI}"}


@pytest.mark.parametrize(
    "objects",
    [{}, {"incoming/_SUCCESS": b""}, {"incoming/empty.csv": b"", "incoming/notes.md": b"x"}, {"incoming-old/a.csv": b"x"}],
    ids=["nothing", "marker only", "empty csv and other files", "a sibling prefix"],
)
def test_no_data_is_a_success_that_names_the_prefix(s3, objects):
    for key, body in objects.items():
        s3.put_object(Bucket="raw-data", Key=key, Body=body)
    assert checker.check(_event(), s3) == {
        "status": "no-data",
        "message": f"no training data under {URI}; upload .csv files there to train",
    }


def test_malformed_inputs_fail_the_step_with_a_clear_message(s3):
    with pytest.raises(
        checker.InputError,
        match=r"InputDataUri must look like s3://bucket/prefix/ \(ending in '/'\), got 's3://raw-data/incoming'",
    ):
        checker.check(_event("s3://raw-data/incoming"), s3)
    with pytest.raises(checker.InputError, match=r"^event lacks execution_id; the training pipeline's LambdaStep writes them"):
        checker.check({"input_data_uri": URI}, s3)
    with pytest.raises(checker.InputError, match="event must be a JSON object, got str"):
        checker.check("incoming", s3)
