"""Three roles, so no principal holds more than its part of the pipeline's work.

- job role: what SageMaker's containers (processing, training, transform, hosted models) do with data:
  read raw data, write features and artifacts, use the key, pull the images, log.
- pipeline execution role: what SageMaker Pipelines does for an execution: start and watch the jobs,
  create models and register packages in this environment's group, invoke the pipeline's Lambda step,
  read property files; it passes only the job role.
- pipeline definition role: shared by the Lambdas that define pipelines: upsert and delete the named
  pipelines and upload their code; it passes only the pipeline execution role.

A processing container therefore cannot rewrite the pipelines or register an Approved package.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from lambdas.common.contracts import NetworkConfig
from stacks.constructs.model_package_group import ModelPackageGroup
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.arns import sagemaker_arn
from stacks.synth.config import supports_volume_kms
from stacks.synth.nag import acknowledge_iam5, arn_finding, resource_finding

# SageMaker Pipelines names the jobs it starts at execution time, so these can only be scoped by type.
PIPELINE_JOB_TYPES = ("processing-job", "training-job", "hyper-parameter-tuning-job", "transform-job", "model")


def job_conditions(key_arn: str, instance_type: str | None, isolated: bool, network: NetworkConfig | None = None) -> dict:
    """What a job the pipelines start must ask for: no network, and the environment's key for its output and volume.

    IAM tests the request's own members through SageMaker's condition keys (sagemaker:NetworkIsolation,
    sagemaker:OutputKmsKey, sagemaker:VolumeKmsKey; Service Authorization Reference), so a job asked for without
    them is refused. Models have no output or volume key; instance types with NVMe storage take no volume key.
    With a `network`, an isolated job or model must also ask for the environment's subnets and security groups
    (sagemaker:VpcSubnets, sagemaker:VpcSecurityGroupIds); a multivalued key that is absent passes ForAllValues,
    so Null requires it (IAM User Guide, "Single-valued vs. multivalued context keys").
    """
    conditions: dict[str, dict] = {}
    if isolated:
        conditions["Bool"] = {"sagemaker:NetworkIsolation": "true"}
        conditions.update(vpc_conditions(network))
    if instance_type is not None:
        keys = {"sagemaker:OutputKmsKey": key_arn}
        if supports_volume_kms(instance_type):
            keys["sagemaker:VolumeKmsKey"] = key_arn
        conditions["ArnEquals"] = keys
    return conditions


def vpc_conditions(network: NetworkConfig | None) -> dict:
    """A request that must ask for the environment's subnets and security groups, none other (nothing without a VPC)."""
    if network is None:
        return {}
    return {
        "ForAllValues:StringEquals": {
            "sagemaker:VpcSubnets": list(network.subnet_ids),
            "sagemaker:VpcSecurityGroupIds": list(network.security_group_ids),
        },
        "Null": {"sagemaker:VpcSubnets": "false", "sagemaker:VpcSecurityGroupIds": "false"},
    }


@dataclass(frozen=True)
class SageMakerRolesProps:
    data_key: kms.IKey
    processing_instance_type: str
    training_instance_type: str
    transform_instance_type: str
    data_access_policy: iam.IManagedPolicy
    artifacts_read_policy: iam.IManagedPolicy
    code_upload_policy: iam.IManagedPolicy
    pipeline_names: tuple[str, ...]
    model_package_group: ModelPackageGroup
    # The environment's VPC: the jobs and models run in it, and the execution role starts only such.
    network: VpcPlacement | None = None


class SageMakerRoles(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: SageMakerRolesProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        def arn(resource: str, name: str) -> str:
            return sagemaker_arn(self, resource, name)

        sagemaker_service = iam.ServicePrincipal("sagemaker.amazonaws.com")
        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=sagemaker_service,
            managed_policies=[props.data_access_policy],
            description="SageMaker processing, training and transform jobs and hosted models",
        )
        self.job_role.add_to_principal_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        if props.network is not None:
            props.network.grant_sagemaker_network_interfaces(self.job_role)
        self.job_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.job_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )

        self.pipeline_execution_role = iam.Role(
            self,
            "PipelineExecutionRole",
            assumed_by=sagemaker_service,
            description="SageMaker Pipelines executions of this environment",
        )
        execution = self.pipeline_execution_role
        execution.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:DescribeHyperParameterTuningJob",
                    "sagemaker:StopHyperParameterTuningJob",
                    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                    "sagemaker:DescribeTransformJob",
                    "sagemaker:StopTransformJob",
                    "sagemaker:DescribeModel",
                    "sagemaker:AddTags",
                ],
                resources=[arn(kind, "*") for kind in PIPELINE_JOB_TYPES],
            )
        )
        for actions, kind, instance_type, isolated in (
            (["sagemaker:CreateProcessingJob"], "processing-job", props.processing_instance_type, True),
            (
                ["sagemaker:CreateTrainingJob", "sagemaker:CreateHyperParameterTuningJob"],
                ("training-job", "hyper-parameter-tuning-job"),
                props.training_instance_type,
                True,
            ),
            (["sagemaker:CreateTransformJob"], "transform-job", props.transform_instance_type, False),
            (["sagemaker:CreateModel"], "model", None, True),
        ):
            execution.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=actions,
                    resources=[arn(k, "*") for k in ((kind,) if isinstance(kind, str) else kind)],
                    conditions=job_conditions(
                        props.data_key.key_arn, instance_type, isolated, props.network.network if props.network else None
                    ),
                )
            )
        props.model_package_group.grant_register(execution)
        self.job_role.grant_pass_role(execution)
        # Property files (the evaluation report the MSE gate reads) are read by the execution itself.
        execution.add_managed_policy(props.artifacts_read_policy)

        self.pipeline_definition_role = iam.Role(
            self,
            "PipelineDefinitionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Shared by the Lambdas that define and upsert this environment's pipelines",
        )
        definition = self.pipeline_definition_role
        definition.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreatePipeline",
                    "sagemaker:UpdatePipeline",
                    "sagemaker:DescribePipeline",
                    "sagemaker:DeletePipeline",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                resources=[arn("pipeline", name) for name in props.pipeline_names],
            )
        )
        # On a new training image the registration starts the training pipeline (its first name) with it.
        definition.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:StartPipelineExecution"], resources=[arn("pipeline", props.pipeline_names[0])]
            )
        )
        # The registration tells a rollback from an update by its stack's status.
        definition.add_to_principal_policy(
            iam.PolicyStatement(actions=["cloudformation:DescribeStacks"], resources=[stack.stack_id])
        )
        execution.grant_pass_role(definition)
        # The SDK checks its default bucket by listing code/ there, then uploads the pipeline scripts under it.
        definition.add_managed_policy(props.code_upload_policy)

        self._acknowledge()

    def acknowledge_invoke(self, function_arn: str) -> None:
        """The execution role invokes a pipeline's Lambda step through `function.grant_invoke`."""
        acknowledge_iam5(
            self.pipeline_execution_role.node.find_child("DefaultPolicy"),
            {
                resource_finding(self, function_arn, ":*"): "function.grant_invoke covers the function's versions and aliases.",
            },
        )

    def _acknowledge(self) -> None:
        reasons = {
            self.job_role: {
                arn_finding(self, "logs", "log-group:/aws/sagemaker/*"): "SageMaker jobs log to log groups under /aws/sagemaker/ "
                "that the service names.",
                "Resource::*": "ecr:GetAuthorizationToken and cloudwatch:PutMetricData (limited to the /aws/sagemaker/ "
                "namespaces) support no resource-level permissions.",
            },
            self.pipeline_execution_role: {
                **{
                    arn_finding(self, "sagemaker", f"{kind}/*"): f"SageMaker Pipelines names each {kind} at execution time; "
                    "scoped to this resource type, account and region."
                    for kind in PIPELINE_JOB_TYPES
                },
            },
        }
        for role, findings in reasons.items():
            acknowledge_iam5(role.node.find_child("DefaultPolicy"), findings)
