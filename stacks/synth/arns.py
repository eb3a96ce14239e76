"""ARNs of resources the platform names itself (pipelines, jobs, models), in the partition, region and account of
`scope`'s stack."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import IConstruct


def sagemaker_arn(scope: IConstruct, resource: str, name: str) -> str:
    """`arn:<partition>:sagemaker:<region>:<account>:<resource>/<name>`; `name` may end in a wildcard."""
    return Stack.of(scope).format_arn(service="sagemaker", resource=resource, resource_name=name)
