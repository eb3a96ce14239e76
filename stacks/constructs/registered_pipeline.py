"""A pipeline that the registration custom resource upserts, as a resource other constructs can target."""

from __future__ import annotations

import jsii
from aws_cdk import Resource
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.interfaces import aws_sagemaker as sagemaker_refs
from constructs import Construct

from stacks.synth.arns import sagemaker_arn


@jsii.implements(sagemaker.IPipeline)
class RegisteredPipeline(Resource):
    """A pipeline that the registration custom resource upserts, usable as a schedule or rule target."""

    def __init__(self, scope: Construct, construct_id: str, *, pipeline_name: str) -> None:
        super().__init__(scope, construct_id)
        self._name = pipeline_name
        self._arn = sagemaker_arn(self, "pipeline", pipeline_name)

    @property
    def pipeline_name(self) -> str:
        return self._name

    @property
    def pipeline_arn(self) -> str:
        return self._arn

    @property
    def pipeline_ref(self) -> sagemaker_refs.PipelineReference:
        return sagemaker_refs.PipelineReference(pipeline_name=self._name)

    def grant_start_pipeline_execution(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:StartPipelineExecution"], resource_arns=[self._arn]
        )
