"""Defines both SageMaker Pipelines with the SDK and upserts them; deletes them with the stack.

`handler` is the function's one entry point. The CDK Provider framework invokes it with CloudFormation's
custom resource requests (RequestType Create, Update or Delete; `on_event`), with the settings in the
resource's properties; a direct invocation, {} or {"pipelines": ["training"]}, upserts on demand with
the settings in the SETTINGS variable.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent
from botocore.exceptions import ClientError
from sagemaker.workflow.pipeline_context import PipelineSession

from common import aws
from common.contracts import PipelineSettings, SettingsError

from batch_pipeline import build_batch_pipeline
from bundled_scripts import scripts_dir
from training_pipeline import build_training_pipeline

logger = Logger(service="register-pipelines")

NAMES = ("training", "batch-prediction")
SEPARATOR = "|"


class RequestError(ValueError):
    """A malformed invocation; the message names what is wrong and what is accepted."""


def build_pipelines(settings: PipelineSettings, names=NAMES, boto_session=None) -> dict:
    """Pipeline objects by short name, built with a PipelineSession on the artifacts bucket."""
    session = PipelineSession(
        boto_session=boto_session or boto3.Session(region_name=settings.region),
        default_bucket=settings.artifacts_bucket,
        default_bucket_prefix="code",
    )
    builders = {
        "training": lambda: build_training_pipeline(settings, session, scripts_dir()),
        "batch-prediction": lambda: build_batch_pipeline(settings, session),
    }
    return {name: builders[name]() for name in names}


def _exists(client, name: str) -> bool:
    """ResourceNotFound is DescribePipeline's modelled error; SageMaker has also answered ValidationException."""
    try:
        client.describe_pipeline(PipelineName=name)
        return True
    except ClientError as error:
        code, message = error.response["Error"]["Code"], error.response["Error"]["Message"]
        if code == "ResourceNotFound" or (code == "ValidationException" and "not" in message and "find" in message.lower()):
            return False
        raise


def upsert(settings: PipelineSettings, names=NAMES, boto_session=None, undo_on_failure: bool = False) -> dict:
    """Create or update the pipelines; with undo_on_failure, a failure deletes the ones this call created."""
    session = boto_session or boto3.Session(region_name=settings.region)
    client = session.client("sagemaker", config=aws.RETRIES)
    tags = [{"Key": "managed-by", "Value": "register-pipelines"}]
    arns, created = {}, []
    try:
        for name, pipeline in build_pipelines(settings, names, session).items():
            new = undo_on_failure and not _exists(client, pipeline.name)
            response = pipeline.upsert(
                role_arn=settings.pipeline_execution_role_arn, description=f"{name} pipeline, registered on deploy", tags=tags
            )
            if new:
                created.append(pipeline.name)
            arns[name] = response["PipelineArn"]
            logger.info("upserted", extra={"pipeline": pipeline.name, "arn": arns[name]})
    except Exception:
        if undo_on_failure:
            delete(created, client)
        raise
    return arns


def delete(pipeline_names: list[str], client) -> None:
    for name in pipeline_names:
        try:
            client.delete_pipeline(PipelineName=name)
            logger.info("deleted", extra={"pipeline": name})
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFound":
                raise
            logger.info("already deleted", extra={"pipeline": name})


@logger.inject_lambda_context
def on_event(event: Any, context: Any) -> dict:
    """The Provider framework's onEvent handler: raise to fail, return the physical id and data to succeed."""
    if not isinstance(event, dict) or event.get("RequestType") not in ("Create", "Update", "Delete"):
        raise RequestError("not a CloudFormation custom resource event: RequestType must be Create, Update or Delete")
    request = CloudFormationCustomResourceEvent(event)
    if request.request_type == "Delete":
        physical_id = request.physical_resource_id or ""
        names = physical_id.split(SEPARATOR) if SEPARATOR in physical_id else []
        delete(names, aws.sagemaker())
        return {"PhysicalResourceId": physical_id}
    properties = event.get("ResourceProperties")
    settings = PipelineSettings.from_json(
        properties.get("Settings") if isinstance(properties, dict) else None, source="ResourceProperties.Settings"
    )
    arns = upsert(settings, undo_on_failure=request.request_type == "Create")
    if not rolling_back(event, aws.cloudformation()):
        train_on_new_image(event, settings, aws.sagemaker())
    return {
        "PhysicalResourceId": SEPARATOR.join((settings.training_pipeline_name, settings.batch_pipeline_name)),
        "Data": {"TrainingPipelineArn": arns["training"], "BatchPipelineArn": arns["batch-prediction"]},
    }


def rolling_back(event: dict, cloudformation: Any) -> bool:
    """True while CloudFormation rolls an update back: it then sends the previous settings as an Update.

    The request itself does not say so; the stack's status does (UPDATE_ROLLBACK_IN_PROGRESS, "Stack status
    codes", CloudFormation User Guide). The previous image has been trained with already.
    """
    (stack,) = cloudformation.describe_stacks(StackName=event["StackId"])["Stacks"]
    if stack["StackStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS":
        logger.info("rolling back: the previous pipelines are registered again, nothing is trained")
        return True
    return False


def train_on_new_image(event: dict, settings: PipelineSettings, client: Any) -> str | None:
    """Start the training pipeline when the deploy brings a training image it has not trained with.

    The deploy builds a changed image before it registers the pipelines, so an ECR push rule would see the
    push before it knows the new tag. The registration knows both: the previous settings (the request's
    OldResourceProperties) and the new ones. A first deploy trains too; with no data yet, the execution
    ends as a success that says so. RequestId makes a retried request start one execution, not two.
    """
    old = (event.get("OldResourceProperties") or {}).get("Settings")
    try:
        old_image = json.loads(old).get("training_image_uri") if isinstance(old, str) else None
    except (json.JSONDecodeError, AttributeError):
        old_image = None
    if old_image == settings.training_image_uri:
        return None
    arn = client.start_pipeline_execution(
        PipelineName=settings.training_pipeline_name,
        PipelineExecutionDisplayName="new-training-image",
        PipelineExecutionDescription=f"Started by the deploy for {settings.training_image_uri}",
        ClientRequestToken=hashlib.sha256(f"{event.get('RequestId')}|{settings.training_image_uri}".encode()).hexdigest(),
    )["PipelineExecutionArn"]
    logger.info("training started for a new image", extra={"image": settings.training_image_uri, "execution": arn})
    return arn


def requested_names(event: Any) -> tuple[str, ...]:
    if not isinstance(event, dict):
        raise RequestError(f"event must be a JSON object, got {type(event).__name__}")
    unknown_keys = set(event) - {"pipelines"}
    if unknown_keys:
        raise RequestError(f'unknown key(s) {", ".join(sorted(unknown_keys))}; send {{}} or {{"pipelines": [...]}}')
    names = event.get("pipelines", list(NAMES))
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RequestError(f"'pipelines' must be a non-empty list drawn from {', '.join(NAMES)}")
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise RequestError(f"unknown pipeline {unknown[0]!r}; choose from {', '.join(NAMES)}")
    return tuple(dict.fromkeys(names))


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict:
    if isinstance(event, dict) and "RequestType" in event:
        return on_event(event, context)
    names = requested_names(event)
    try:
        settings = PipelineSettings.from_environment()
    except SettingsError as error:
        logger.error(str(error))
        raise
    return {"pipelines": upsert(settings, names)}
