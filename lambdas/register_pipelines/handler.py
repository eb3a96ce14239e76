"""Defines both SageMaker Pipelines with the SDK and upserts them; deletes them with the stack.

Invoked by CloudFormation (the stack's custom resource, on every deploy whose definitions, scripts
or settings changed) or directly: {} or {"pipelines": ["training"]} upserts on demand.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import boto3  # noqa: E402
from sagemaker.workflow.pipeline_context import PipelineSession  # noqa: E402

from batch_pipeline import build_batch_pipeline  # noqa: E402
from settings import PipelineSettings, SettingsError  # noqa: E402
from training_pipeline import build_training_pipeline  # noqa: E402

logger = logging.getLogger()
logger.setLevel(logging.INFO)

BUILDERS = {"training": build_training_pipeline, "batch-prediction": build_batch_pipeline}


class RequestError(ValueError):
    """A malformed invocation; the message names what is wrong and what is accepted."""


def build_pipelines(settings: PipelineSettings, names=tuple(BUILDERS), boto_session=None) -> dict:
    """Pipeline objects by short name, built with a PipelineSession on the artifacts bucket."""
    session = PipelineSession(boto_session=boto_session or boto3.Session(region_name=settings.region),
                              default_bucket=settings.artifacts_bucket)
    return {name: BUILDERS[name](settings, session) for name in names}


def upsert(settings: PipelineSettings, names=tuple(BUILDERS), boto_session=None) -> dict:
    tags = [{"Key": "managed-by", "Value": "register-pipelines"}]
    arns = {}
    for name, pipeline in build_pipelines(settings, names, boto_session).items():
        response = pipeline.upsert(role_arn=settings.role_arn, description=f"{name} pipeline, registered on deploy", tags=tags)
        arns[name] = response["PipelineArn"]
        logger.info(json.dumps({"action": "upsert", "pipeline": pipeline.name, "arn": arns[name]}))
    return arns


def delete(pipeline_names: list[str], client) -> None:
    for name in pipeline_names:
        try:
            client.delete_pipeline(PipelineName=name)
            logger.info(json.dumps({"action": "delete", "pipeline": name}))
        except client.exceptions.ResourceNotFound:
            logger.info(json.dumps({"action": "delete", "pipeline": name, "result": "already gone"}))


def requested_names(event) -> tuple[str, ...]:
    if not isinstance(event, dict):
        raise RequestError(f"event must be a JSON object, got {type(event).__name__}")
    unknown_keys = set(event) - {"pipelines"}
    if unknown_keys:
        raise RequestError(f"unknown key(s) {', '.join(sorted(unknown_keys))}; send {{}} or {{\"pipelines\": [...]}}")
    names = event.get("pipelines", list(BUILDERS))
    if not isinstance(names, list) or not names:
        raise RequestError(f"'pipelines' must be a non-empty list drawn from {', '.join(BUILDERS)}")
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise RequestError(f"unknown pipeline {unknown[0]!r}; choose from {', '.join(BUILDERS)}")
    return tuple(names)


def _respond(event, context, status: str, reason: str = "", physical_id: str | None = None, data=None) -> None:
    body = json.dumps({
        "Status": status, "Reason": reason[:3000] or f"see CloudWatch log stream {context.log_stream_name}",
        "PhysicalResourceId": physical_id or event.get("PhysicalResourceId") or "no-pipelines-registered",
        "StackId": event["StackId"], "RequestId": event["RequestId"], "LogicalResourceId": event["LogicalResourceId"],
        "Data": data or {},
    }).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the pre-signed CloudFormation URL
        logger.info(json.dumps({"action": "cfn-response", "status": status, "http": response.status}))


def _custom_resource(event, context) -> None:
    """Create/Update upsert both pipelines; Delete removes the pipelines named in the physical id."""
    try:
        if event["RequestType"] == "Delete":
            physical_id = event.get("PhysicalResourceId", "")
            names = [n for n in physical_id.split("|") if n] if "|" in physical_id else []
            delete(names, boto3.client("sagemaker"))
            _respond(event, context, "SUCCESS", "pipelines deleted", physical_id)
            return
        settings = PipelineSettings.from_environment()
        arns = upsert(settings)
        physical_id = f"{settings.training_pipeline_name}|{settings.batch_pipeline_name}"
        data = {"TrainingPipelineArn": arns["training"], "BatchPipelineArn": arns["batch-prediction"]}
        _respond(event, context, "SUCCESS", "pipelines upserted", physical_id, data)
    except Exception as error:  # noqa: BLE001 - CloudFormation must always get an answer, or the stack hangs
        logger.exception("custom resource %s failed", event.get("RequestType"))
        _respond(event, context, "FAILED", f"{type(error).__name__}: {error}")


def handler(event, context):
    if isinstance(event, dict) and "ResponseURL" in event and "RequestType" in event:
        return _custom_resource(event, context)
    names = requested_names(event)
    try:
        settings = PipelineSettings.from_environment()
    except SettingsError as error:
        logger.error(str(error))
        raise
    return {"pipelines": upsert(settings, names)}
