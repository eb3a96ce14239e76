"""The one IAM role shared by SageMaker jobs, pipeline executions and the pipeline Lambdas."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, ArnFormat, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

# SageMaker Pipelines names the jobs it starts at execution time, so these can only be scoped by type.
PIPELINE_JOB_TYPES = ("processing-job", "training-job", "hyper-parameter-tuning-job", "transform-job", "model")


@dataclass(frozen=True)
class RoleResources:
    """What the role may touch, all owned by this environment."""

    data_access_policy: iam.IManagedPolicy
    pipeline_names: tuple[str, ...]
    model_package_group_name: str


class SageMakerExecutionRole(Construct):
    """Least privilege: the storage stack's data-access policy plus named pipelines and package group."""

    def __init__(self, scope: Construct, construct_id: str, *, resources: RoleResources) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self, "Role",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("sagemaker.amazonaws.com"), iam.ServicePrincipal("lambda.amazonaws.com"),
            ),
            description="Shared by SageMaker jobs, pipeline executions and the pipeline Lambdas",
            managed_policies=[resources.data_access_policy],
        )
        r = resources

        def sagemaker_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        def allow(actions: list[str], resource_arns: list[str], conditions: dict | None = None) -> None:
            self.role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resource_arns, conditions=conditions))

        allow(["ecr:GetAuthorizationToken"], ["*"])
        allow(["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
              [stack.format_arn(service="logs", resource="log-group", resource_name="/aws/sagemaker/*",
                                arn_format=ArnFormat.COLON_RESOURCE_NAME)])
        allow(["cloudwatch:PutMetricData"], ["*"], {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}})
        allow(["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
               "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
               "sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
               "sagemaker:StopHyperParameterTuningJob", "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
               "sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
               "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:AddTags"],
              [sagemaker_arn(kind, "*") for kind in PIPELINE_JOB_TYPES])
        group = r.model_package_group_name
        allow(["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:DescribeModelPackageGroup",
               "sagemaker:AddTags"],
              [sagemaker_arn("model-package-group", group), sagemaker_arn("model-package", f"{group}/*")])
        allow(["sagemaker:ListModelPackages"], ["*"])
        allow(["sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:DescribePipeline",
               "sagemaker:DeletePipeline", "sagemaker:AddTags", "sagemaker:ListTags"],
              [sagemaker_arn("pipeline", name) for name in r.pipeline_names])
        allow(["iam:PassRole"], [self.role.role_arn], {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})
        self._acknowledge_scoped_wildcards(r)

    def _acknowledge_scoped_wildcards(self, r: RoleResources) -> None:
        policy = self.role.node.find_child("DefaultPolicy")
        arn_prefix = "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>"
        reasons = {}
        for kind in PIPELINE_JOB_TYPES:
            reasons[f"Resource::{arn_prefix}:{kind}/*"] = (
                f"SageMaker Pipelines names each {kind} at execution time; scoped to this resource type, account and region.")
        reasons[f"Resource::{arn_prefix}:model-package/{r.model_package_group_name}/*"] = (
            "Versions inside this environment's one model package group, numbered by SageMaker on registration.")
        reasons["Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/*"] = (
            "SageMaker jobs log to log groups under /aws/sagemaker/ that the service names.")
        reasons["Resource::*"] = (
            "Only ecr:GetAuthorizationToken, sagemaker:ListModelPackages and cloudwatch:PutMetricData (limited to the "
            "/aws/sagemaker/ namespaces) use '*': these actions support no resource-level permissions.")
        for finding, reason in reasons.items():
            Validations.of(policy).acknowledge(Acknowledgment(id=f"AwsSolutions-IAM5[{finding}]", reason=reason))

