"""The batch pipeline's first step: a Lambda that finds the latest approved package and the day's data."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.model_package_group import ModelPackageGroup
from stacks.constructs.platform_function import PlatformFunction
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.bundling import function_code
from stacks.synth.log_groups import LogGroups


@dataclass(frozen=True)
class BatchInputsResolverProps:
    model_package_group: ModelPackageGroup
    raw_data_bucket: s3.IBucket
    log_groups: LogGroups
    # The environment's VPC, which the function runs in; None outside any VPC.
    network: VpcPlacement | None = None


class BatchInputsResolver(Construct):
    """`function` may read the package group and list the raw-data bucket, nothing else; it bundles tz data."""

    def __init__(self, scope: Construct, construct_id: str, *, props: BatchInputsResolverProps) -> None:
        super().__init__(scope, construct_id)
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Batch pipeline step: reads the package group and lists the raw-data bucket",
        )
        props.model_package_group.grant_read_packages(role)
        # ListBucket alone: the step never reads an object, so grant_read's GetObject would be more than it needs.
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[props.raw_data_bucket.bucket_arn]))
        # "Default" keeps the function's and its log group's logical ids as they were before this construct existed.
        self.function = PlatformFunction(
            self,
            "Default",
            code=function_code("resolve_batch_inputs", packages=("tzdata",)),
            role=role,
            description="Batch pipeline step: latest Approved model package and the day's input prefix",
            timeout=Duration.seconds(30),
            name="resolve-batch-inputs",
            log_groups=props.log_groups,
            network=props.network,
            synchronous_caller="the batch pipeline's Lambda step",
        ).function
