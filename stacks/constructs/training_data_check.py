"""The training pipeline's first step: a Lambda that looks for raw training data under the execution's input URI."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.platform_function import PlatformFunction
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.bundling import function_code
from stacks.synth.log_groups import LogGroups


@dataclass(frozen=True)
class TrainingDataCheckProps:
    raw_data_bucket: s3.IBucket
    log_groups: LogGroups
    # The environment's VPC, which the function runs in; None outside any VPC.
    network: VpcPlacement | None = None


class TrainingDataCheck(Construct):
    """`function` may list the raw-data bucket and nothing else."""

    def __init__(self, scope: Construct, construct_id: str, *, props: TrainingDataCheckProps) -> None:
        super().__init__(scope, construct_id)
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Training pipeline step: lists the raw-data bucket",
        )
        # ListBucket alone: the step never reads an object, so grant_read's GetObject would be more than it needs.
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[props.raw_data_bucket.bucket_arn]))
        self.function = PlatformFunction(
            self,
            "Function",
            code=function_code("check_training_data"),
            role=role,
            description="Training pipeline step: is there training data under the input URI",
            timeout=Duration.seconds(30),
            name="check-training-data",
            log_groups=props.log_groups,
            network=props.network,
            synchronous_caller="the training pipeline's Lambda step",
        ).function
