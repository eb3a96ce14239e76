"""Image builds on deploy: content tags, the build source, and the build trigger against AWS's API shapes."""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from conftest import ACCOUNT, LAMBDA_CONTEXT, NONPRODUCTION_NAMES, REGION, REPO_ROOT, custom_resource_event, load_lambda

from common import aws as common_aws
from common.contracts import ImageBuildSettings, SettingsError
from stacks.synth.image_sources import build_source_files, copied_files, image_tag

build = load_lambda("build_images")
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
SETTINGS = ImageBuildSettings(
    project_name="ImagesProject-abc",
    build_quota="Concurrently running builds for Linux/Medium environment",
    registry=REGISTRY,
    training_repository=NONPRODUCTION_NAMES.training_repository,
    training_tag="sha-0123456789abcdef",
    build_training=True,
    inference_repository=NONPRODUCTION_NAMES.inference_repository,
    inference_tag="sha-fedcba9876543210",
    build_inference=True,
)
BUILD_ID = "ImagesProject-abc:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
LOG_LINK = f"https://console.aws.amazon.com/cloudwatch/home?region={REGION}#logEvent:group=/builds;stream=0b1c2d3e"


def _event(request_type: str = "Create", settings: ImageBuildSettings = SETTINGS, **extra) -> dict:
    return custom_resource_event(request_type, "Custom::ContainerImages", "Images", settings, **extra)


@pytest.fixture
def stubs(monkeypatch):
    """ECR and CodeBuild clients answered by Stubber with the shapes and error messages AWS uses."""
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
    ecr, codebuild = boto3.client("ecr", **keys), boto3.client("codebuild", **keys)
    monkeypatch.setattr(common_aws, "ecr", lambda: ecr)
    monkeypatch.setattr(common_aws, "codebuild", lambda: codebuild)
    with Stubber(ecr) as ecr_stub, Stubber(codebuild) as codebuild_stub:
        yield ecr_stub, codebuild_stub
        ecr_stub.assert_no_pending_responses()
        codebuild_stub.assert_no_pending_responses()


def _image_exists(stub: Stubber, repository: str, tag: str) -> None:
    stub.add_response(
        "describe_images",
        {
            "imageDetails": [
                {
                    "registryId": ACCOUNT,
                    "repositoryName": repository,
                    "imageDigest": "sha256:" + "a" * 64,
                    "imageTags": [tag],
                    "imagePushedAt": datetime(2026, 11, 23),
                }
            ]
        },
        {"repositoryName": repository, "imageIds": [{"imageTag": tag}]},
    )


def _image_missing(stub: Stubber, repository: str, tag: str) -> None:
    stub.add_client_error(
        "describe_images",
        "ImageNotFoundException",
        f"The image with imageId {{imageDigest:'null', imageTag:'{tag}'}} does not exist within the repository with name "
        f"'{repository}' in the registry with id '{ACCOUNT}'",
        expected_params={"repositoryName": repository, "imageIds": [{"imageTag": tag}]},
    )


def _build(status: str, **extra) -> dict:
    return {
        "id": BUILD_ID,
        "arn": f"arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{BUILD_ID}",
        "buildStatus": status,
        "projectName": SETTINGS.project_name,
        **extra,
    }


def _start_build_params(images: str) -> dict:
    return {
        "projectName": SETTINGS.project_name,
        "environmentVariablesOverride": [
            {"name": "IMAGES", "value": images, "type": "PLAINTEXT"},
            {"name": "REGISTRY", "value": REGISTRY, "type": "PLAINTEXT"},
        ],
    }


def test_images_that_exist_start_no_build(stubs):
    ecr, _ = stubs
    _image_exists(ecr, SETTINGS.training_repository, SETTINGS.training_tag)
    _image_exists(ecr, SETTINGS.inference_repository, SETTINGS.inference_tag)
    answer = build.on_event(_event(), LAMBDA_CONTEXT)
    assert answer == {"PhysicalResourceId": "images", "Data": {"BuildId": ""}}
    assert build.is_complete({**_event(), **answer}, LAMBDA_CONTEXT) == {"IsComplete": True}


def test_only_the_missing_tag_is_built(stubs):
    ecr, codebuild = stubs
    _image_exists(ecr, SETTINGS.training_repository, SETTINGS.training_tag)
    _image_missing(ecr, SETTINGS.inference_repository, SETTINGS.inference_tag)
    codebuild.add_response(
        "start_build",
        {"build": _build("IN_PROGRESS")},
        _start_build_params(f"inference={SETTINGS.inference_repository}:{SETTINGS.inference_tag}"),
    )
    assert build.on_event(_event("Update", PhysicalResourceId="images"), LAMBDA_CONTEXT)["Data"] == {"BuildId": BUILD_ID}


def test_a_zero_build_quota_names_the_quota_and_the_way_around_it(stubs):
    """New accounts' CodeBuild quota is often 0; StartBuild then answers as below (AWS's code and message)."""
    ecr, codebuild = stubs
    _image_exists(ecr, SETTINGS.training_repository, SETTINGS.training_tag)
    _image_missing(ecr, SETTINGS.inference_repository, SETTINGS.inference_tag)
    codebuild.add_client_error(
        "start_build",
        "AccountLimitExceededException",
        "Cannot have more than 0 builds in queue for the account",
        http_status_code=400,
        expected_params=_start_build_params(f"inference={SETTINGS.inference_repository}:{SETTINGS.inference_tag}"),
    )
    with pytest.raises(build.BuildQuotaExceeded) as error:
        build.on_event(_event(), LAMBDA_CONTEXT)
    assert str(error.value) == (
        "CodeBuild refused the image build (Cannot have more than 0 builds in queue for the account): request an "
        f"increase of 'Concurrently running builds for Linux/Medium environment' in Service Quotas (AWS CodeBuild, {REGION}), "
        "then deploy again; or build the images yourself: set training.training_image_tag and "
        "training.inference_image_tag in cdk.json and push those tags with containers/build_images.sh "
        "(README, Bring your own images)"
    )


def test_other_start_build_errors_propagate_unchanged(stubs):
    ecr, codebuild = stubs
    _image_exists(ecr, SETTINGS.training_repository, SETTINGS.training_tag)
    _image_missing(ecr, SETTINGS.inference_repository, SETTINGS.inference_tag)
    message = f"Project cannot be found: arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{SETTINGS.project_name}"
    codebuild.add_client_error("start_build", "ResourceNotFoundException", message, http_status_code=400)
    with pytest.raises(ClientError) as error:
        build.on_event(_event(), LAMBDA_CONTEXT)
    assert (error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]) == (
        "ResourceNotFoundException",
        message,
    )


def test_an_overridden_tag_is_the_users_to_push_and_never_built(stubs):
    ecr, _ = stubs
    settings = ImageBuildSettings.from_mapping({**SETTINGS.to_dict(), "build_training": False, "training_tag": "1.0.0"}, "x")
    _image_exists(ecr, SETTINGS.inference_repository, SETTINGS.inference_tag)
    assert build.on_event(_event(settings=settings), LAMBDA_CONTEXT)["Data"] == {"BuildId": ""}


@pytest.mark.parametrize(("status", "complete"), [("IN_PROGRESS", False), ("SUCCEEDED", True)])
def test_the_poll_waits_for_the_build(stubs, status, complete):
    _, codebuild = stubs
    codebuild.add_response("batch_get_builds", {"builds": [_build(status)]}, {"ids": [BUILD_ID]})
    assert build.is_complete(_event(Data={"BuildId": BUILD_ID}, PhysicalResourceId="images"), LAMBDA_CONTEXT) == {
        "IsComplete": complete
    }


@pytest.mark.parametrize("status", ["FAILED", "FAULT", "STOPPED", "TIMED_OUT"])
def test_a_failed_build_fails_the_deploy_with_its_log_link(stubs, status):
    _, codebuild = stubs
    codebuild.add_response("batch_get_builds", {"builds": [_build(status, logs={"deepLink": LOG_LINK})]}, {"ids": [BUILD_ID]})
    with pytest.raises(build.BuildFailed) as error:
        build.is_complete(_event(Data={"BuildId": BUILD_ID}), LAMBDA_CONTEXT)
    assert str(error.value) == f"image build {BUILD_ID} ended {status}; its log: {LOG_LINK}"


def test_a_missing_repository_is_an_error_not_a_build(stubs):
    ecr, _ = stubs
    ecr.add_client_error(
        "describe_images",
        "RepositoryNotFoundException",
        f"The repository with name '{SETTINGS.training_repository}' does not exist in the registry with id '{ACCOUNT}'",
    )
    with pytest.raises(ClientError, match="RepositoryNotFoundException"):
        build.on_event(_event(), LAMBDA_CONTEXT)


def test_delete_builds_nothing_and_bad_events_are_named(stubs):
    assert build.on_event(_event("Delete", PhysicalResourceId="images"), LAMBDA_CONTEXT) == {"PhysicalResourceId": "images"}
    assert build.is_complete(_event("Delete", PhysicalResourceId="images"), LAMBDA_CONTEXT) == {"IsComplete": True}
    with pytest.raises(build.RequestError, match="RequestType must be Create, Update or Delete"):
        build.on_event({"RequestType": "Upsert"}, LAMBDA_CONTEXT)
    with pytest.raises(SettingsError, match=r"^ResourceProperties\.Settings\.build_training = 'yes' must be true or false"):
        build.on_event(
            _event(ResourceProperties={"Settings": json.dumps({**SETTINGS.to_dict(), "build_training": "yes"})}), LAMBDA_CONTEXT
        )


@pytest.fixture
def checkout(tmp_path):
    """The files image tags are computed from, in a scratch copy of the repository."""
    for relative in (".dockerignore", "containers", "pipeline_scripts"):
        source = REPO_ROOT / relative
        if source.is_dir():
            shutil.copytree(source, tmp_path / relative, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / relative)
    return tmp_path


@pytest.mark.parametrize(
    ("changed", "affected"),
    [
        ("pipeline_scripts/train.py", {"training"}),
        ("pipeline_scripts/serve.py", {"training", "inference"}),
        ("containers/inference/Dockerfile", {"inference"}),
        ("containers/constraints.txt", {"training", "inference"}),
        ("containers/buildspec.yml", set()),
    ],
)
def test_a_change_moves_exactly_the_tags_of_the_images_built_from_it(checkout, changed, affected):
    before = {name: image_tag(name, checkout) for name in ("training", "inference")}
    with (checkout / changed).open("a") as file:
        file.write("\n# changed\n")
    after = {name: image_tag(name, checkout) for name in ("training", "inference")}
    assert {name for name in before if before[name] != after[name]} == affected
    assert all(tag.startswith("sha-") and len(tag) == 20 for tag in after.values())


def test_the_build_source_holds_what_the_dockerfiles_copy_and_the_buildspec():
    files = set(build_source_files())
    assert {"containers/buildspec.yml", "containers/build_images.sh", ".dockerignore"} <= files
    for name in ("training", "inference"):
        assert f"containers/{name}/Dockerfile" in files and set(copied_files(name)) <= files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
