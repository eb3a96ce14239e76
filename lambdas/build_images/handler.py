"""Builds the images on deploy (CDK Provider framework, with an is-complete poll).

`on_event` asks ECR which tags of the images this deploy builds are missing and, if any are, starts
one CodeBuild build for them; `is_complete` polls the build until it succeeds, or fails the deploy
with the build's status and log link. A deploy whose images exist starts no build.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent
from botocore.exceptions import ClientError

from common import aws
from common.contracts import ImageBuildSettings

logger = Logger(service="build-images")

PHYSICAL_ID = "images"
# BatchGetBuilds buildStatus values that end a build without success (CodeBuild API reference, Build).
FAILED = ("FAILED", "FAULT", "STOPPED", "TIMED_OUT")


class RequestError(ValueError):
    """A malformed invocation; the message names what is wrong."""


class BuildFailed(RuntimeError):
    """The image build ended without success; the message carries its status and log link."""


class BuildQuotaExceeded(RuntimeError):
    """CodeBuild refused to queue the build: the account's concurrent-build quota (0 in many new accounts) is used up."""


def _start_build(codebuild: Any, settings: ImageBuildSettings, missing: list[str]) -> dict:
    """StartBuild, with its AccountLimitExceededException turned into the quota to raise and the way around it.

    CodeBuild queues at most five times the concurrent-build quota of the project's compute type
    (CodeBuild User Guide, "Builds in AWS CodeBuild"), so a quota of 0 refuses every build.
    """
    try:
        return codebuild.start_build(
            projectName=settings.project_name,
            environmentVariablesOverride=[
                {"name": "IMAGES", "value": " ".join(missing), "type": "PLAINTEXT"},
                {"name": "REGISTRY", "value": settings.registry, "type": "PLAINTEXT"},
            ],
        )["build"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "AccountLimitExceededException":
            raise
        region = settings.registry.split(".")[3]
        raise BuildQuotaExceeded(
            f"CodeBuild refused the image build ({error.response['Error'].get('Message', '')}): request an increase of "
            f"'{settings.build_quota}' in Service Quotas (AWS CodeBuild, {region}), then deploy again; or build the "
            "images yourself: set training.training_image_tag and training.inference_image_tag in cdk.json and push "
            "those tags with containers/build_images.sh (README, Bring your own images)"
        ) from error


def missing_images(settings: ImageBuildSettings, ecr: Any) -> list[str]:
    """`name=repository:tag` for each image to build whose tag is not in its repository yet."""
    missing = []
    for name, repository, tag in settings.images():
        try:
            ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ImageNotFoundException":
                raise
            missing.append(f"{name}={repository}:{tag}")
    return missing


def _request(event: Any) -> CloudFormationCustomResourceEvent:
    if not isinstance(event, dict) or event.get("RequestType") not in ("Create", "Update", "Delete"):
        raise RequestError("not a CloudFormation custom resource event: RequestType must be Create, Update or Delete")
    return CloudFormationCustomResourceEvent(event)


@logger.inject_lambda_context
def on_event(event: Any, context: Any) -> dict:
    request = _request(event)
    if request.request_type == "Delete":
        return {"PhysicalResourceId": request.physical_resource_id or PHYSICAL_ID}
    properties = event.get("ResourceProperties")
    settings = ImageBuildSettings.from_json(
        properties.get("Settings") if isinstance(properties, dict) else None, source="ResourceProperties.Settings"
    )
    missing = missing_images(settings, aws.ecr())
    if not missing:
        logger.info("every image exists; nothing to build", extra={"images": settings.images()})
        return {"PhysicalResourceId": PHYSICAL_ID, "Data": {"BuildId": ""}}
    build = _start_build(aws.codebuild(), settings, missing)
    logger.info("image build started", extra={"build_id": build["id"], "images": missing})
    return {"PhysicalResourceId": PHYSICAL_ID, "Data": {"BuildId": build["id"]}}


@logger.inject_lambda_context
def is_complete(event: Any, context: Any) -> dict:
    """The Provider framework passes the request with what on_event returned (Data.BuildId)."""
    request = _request(event)
    build_id = (event.get("Data") or {}).get("BuildId") if request.request_type != "Delete" else ""
    if not build_id:
        return {"IsComplete": True}
    (build,) = aws.codebuild().batch_get_builds(ids=[build_id])["builds"]
    status = build["buildStatus"]
    if status == "SUCCEEDED":
        logger.info("image build succeeded", extra={"build_id": build_id})
        return {"IsComplete": True}
    if status in FAILED:
        link = (build.get("logs") or {}).get("deepLink", "(no log link; see the CodeBuild console)")
        raise BuildFailed(f"image build {build_id} ended {status}; its log: {link}")
    return {"IsComplete": False}
