"""Example events shaped as AWS documents them for EventBridge, with the fields the rules match on."""

from __future__ import annotations

from conftest import ACCOUNT, REGION


def envelope(source: str, detail_type: str, detail: dict, resources: list[str] | None = None) -> dict:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-11-23T02:00:00Z",
        "region": REGION,
        "resources": resources or [],
        "detail": detail,
    }


def s3_object_created(bucket: str, key: str) -> dict:
    return envelope(
        "aws.s3",
        "Object Created",
        {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "192.0.2.1",
            "reason": "PutObject",
        },
        [f"arn:aws:s3:::{bucket}"],
    )


def ecr_image_action(repository: str, tag: str, action: str = "PUSH", result: str = "SUCCESS") -> dict:
    return envelope(
        "aws.ecr",
        "ECR Image Action",
        {
            "result": result,
            "repository-name": repository,
            "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234",
            "action-type": action,
            "image-tag": tag,
        },
    )


def model_package_state_change(group: str, status: str, version: int = 3) -> dict:
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"
    return envelope(
        "aws.sagemaker",
        "SageMaker Model Package State Change",
        {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": version,
            "ModelPackageArn": arn,
            "CreationTime": 1763863200000,
            "ModelApprovalStatus": status,
            "InferenceSpecification": {
                "Containers": [{"Image": "inference:1.0.0", "ModelDataUrl": "s3://artifacts/model.tar.gz"}]
            },
        },
        [arn],
    )


def pipeline_execution_status_change(pipeline_name: str, status: str) -> dict:
    pipeline_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{pipeline_name}"
    return envelope(
        "aws.sagemaker",
        "SageMaker Model Building Pipeline Execution Status Change",
        {
            "pipelineExecutionDisplayName": "execution-1700000000000",
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": "Executing",
            "executionStartTime": "2026-11-23T02:00:00Z",
            "executionEndTime": "2026-11-23T02:30:00Z",
            "pipelineExecutionDescription": "",
            "pipelineArn": pipeline_arn,
            "pipelineExecutionArn": f"{pipeline_arn}/execution/abcdef123456",
        },
        [pipeline_arn],
    )


def endpoint_state_change(endpoint: str, status: str) -> dict:
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{endpoint}"
    return envelope(
        "aws.sagemaker",
        "SageMaker Endpoint State Change",
        {
            "EndpointName": endpoint,
            "EndpointArn": arn,
            "EndpointConfigName": f"{endpoint}-v3-0a1b2c3d",
            "EndpointStatus": status,
            "CreationTime": 1763863200000,
            "LastModifiedTime": 1763863500000,
        },
        [arn],
    )


def ecr_image_scan(repository: str, counts: dict[str, int], status: str = "COMPLETE") -> dict:
    """Amazon ECR User Guide, "Amazon ECR events and EventBridge": event for a completed image scan (basic scanning)."""
    return envelope(
        "aws.ecr",
        "ECR Image Scan",
        {
            "scan-status": status,
            "repository-name": repository,
            "finding-severity-counts": counts,
            "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234",
            "image-tags": [],
        },
        [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}"],
    )


def cloudwatch_alarm_state_change(alarm_name: str, state: str, previous: str = "OK") -> dict:
    """A metric-math alarm's "CloudWatch Alarm State Change" (CloudWatch User Guide, "Alarm events and EventBridge")."""
    arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}"
    return envelope(
        "aws.cloudwatch",
        "CloudWatch Alarm State Change",
        {
            "alarmName": alarm_name,
            "state": {
                "value": state,
                "reason": "Threshold Crossed: 1 datapoint [0.34 (23/11/26 02:00:00)] was greater than or equal to the "
                "threshold (0.1).",
                "timestamp": "2026-11-23T02:00:00.000+0000",
            },
            "previousState": {"value": previous, "reason": "", "timestamp": "2026-11-22T02:00:00.000+0000"},
            "configuration": {
                "metrics": [
                    {"id": "expr_1", "expression": "MAX([c0, c1, c2, c3, c4, c5, c6, c7])", "label": "drift", "returnData": True}
                ],
                "description": "drift",
            },
        },
        [arn],
    )
