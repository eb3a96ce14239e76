"""The optional delivery pipeline: a branch's commits through the environments, gated by tests and an approval.

CDK Pipelines, self-mutating: source (a CodeStar connection to GitHub, GitLab or Bitbucket) -> the
README's `make test` and `make synth` -> the environments in the configured order. After each
non-production environment its system test runs (the environment's state machine, started through a
role of that environment); before each production environment a person approves.
"""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import Acknowledgment, Environment, Stack, Validations, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from lambdas.common.names import ResourceNames
from stacks.stage import MlopsStage
from stacks.synth.config import DeliveryConfig, EnvironmentConfig
from stacks.synth.nag import STAGE_WIDE, acknowledge_compliance, acknowledge_iam5, arn_finding, resource_finding

# The README's two commands on a fresh machine: each sets itself up, then tests or synthesizes.
SYNTH_COMMANDS = ("make test", "make synth")


@jsii.implements(pipelines.ICodePipelineActionFactory)
class SystemTestStep(pipelines.Step):
    """Runs an environment's system test and passes or fails with it.

    CodePipeline's Step Functions invoke action starts the execution and follows it to its end (CodePipeline
    User Guide, "AWS Step Functions invoke action reference"); the action assumes the environment's invoker
    role, so the pipeline needs no other access to that account.
    """

    def __init__(self, environment: EnvironmentConfig, names: ResourceNames) -> None:
        super().__init__(f"SystemTest-{environment.name}")
        self._environment, self._names = environment, names

    def produce_action(
        self,
        stage: codepipeline.IStage,
        *,
        action_name: str,
        run_order: int,
        scope: Construct,
        **_: object,
    ) -> pipelines.CodePipelineActionFactoryResult:
        account, region = self._environment.account, self._environment.region
        partition = Stack.of(scope).partition
        machine = sfn.StateMachine.from_state_machine_arn(
            scope,
            f"{self.id}Machine",
            f"arn:{partition}:states:{region}:{account}:stateMachine:{self._names.system_test}",
        )
        role = iam.Role.from_role_arn(
            scope,
            f"{self.id}Invoker",
            f"arn:{partition}:iam::{account}:role/{self._names.system_test_invoker}",
            mutable=False,
        )
        stage.add_action(
            actions.StepFunctionInvokeAction(
                action_name=action_name,
                state_machine=machine,
                role=role,
                run_order=run_order,
                execution_name_prefix="delivery",
            )
        )
        return pipelines.CodePipelineActionFactoryResult(run_orders_consumed=1)


@dataclass(frozen=True)
class DeliveryProps:
    project_name: str
    delivery: DeliveryConfig
    environments: tuple[EnvironmentConfig, ...]
    stages: dict[str, MlopsStage]


class DeliveryStack(Stack):
    """`pipeline` deploys `delivery.environments` in order; it updates itself first when its definition changed."""

    def __init__(self, scope: Construct, construct_id: str, *, props: DeliveryProps) -> None:
        d = props.delivery
        super().__init__(scope, construct_id, env=Environment(account=d.account, region=d.region))
        source = pipelines.CodePipelineSource.connection(d.repository, d.branch, connection_arn=d.connection_arn)
        by_name = {e.name: e for e in props.environments}
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=f"{props.project_name}-delivery",
            synth=pipelines.ShellStep("Synth", input=source, commands=list(SYNTH_COMMANDS), primary_output_directory="cdk.out"),
            # Environments in other accounts read the pipeline's artifacts through a KMS key.
            cross_account_keys=any(by_name[name].account != d.account for name in d.environments),
            enable_key_rotation=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.MEDIUM
                )
            ),
        )
        for name in d.environments:
            environment = by_name[name]
            pre: list[pipelines.Step] = []
            post: list[pipelines.Step] = []
            if environment.production:
                pre.append(
                    pipelines.ManualApprovalStep(
                        f"Approve-{name}",
                        comment=f"Deploy to {name}? Look at the evaluation report of the package to approve in {name}'s "
                        "Model Registry and at the system test of the environment before it.",
                    )
                )
            else:
                post.append(SystemTestStep(environment, ResourceNames(props.project_name, name)))
            self.pipeline.add_stage(props.stages[name], pre=pre, post=post)
        self.pipeline.build_pipeline()
        self._use_connection(d.connection_arn)
        self._acknowledge()

    def _use_connection(self, connection_arn: str) -> None:
        """The source action may use the connection with the action of its ARN's own service.

        aws-cdk-lib grants codestar-connections:UseConnection, but connections made since 2024 are
        arn:aws:codeconnections:..., and "the service prefix needs to match that of the resource" (Developer
        Tools console User Guide, "Identity and access management for AWS CodeConnections").
        """
        service = connection_arn.split(":")[2]
        if service == "codestar-connections":
            return
        (role,) = [
            c
            for c in self.pipeline.pipeline.node.find_all()
            if isinstance(c, iam.Role) and "/Source/" in c.node.path and c.node.id == "CodePipelineActionRole"
        ]
        role.add_to_principal_policy(iam.PolicyStatement(actions=[f"{service}:UseConnection"], resources=[connection_arn]))

    def _acknowledge(self) -> None:
        """CDK Pipelines' own roles and artifact bucket, whose policies aws-cdk-lib writes."""
        pipeline = self.pipeline

        def project(p: codebuild.IProject) -> str:
            return self.resolve(p.project_name)["Ref"]

        grant = "Part of aws-cdk-lib's grants to CDK Pipelines' roles on the pipeline's artifact bucket and key."
        findings = {
            f"Action::{action}": grant
            for action in (
                "s3:GetBucket*",
                "s3:GetObject*",
                "s3:List*",
                "s3:Abort*",
                "s3:DeleteObject*",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*",
            )
        }
        findings[resource_finding(self, pipeline.pipeline.artifact_bucket.bucket_arn, "/*")] = (
            "CDK Pipelines' roles read and write the pipeline's own artifacts, keyed per execution."
        )
        for built in (pipeline.synth_project, pipeline.self_mutation_project):
            findings[arn_finding(self, "logs", f"log-group:/aws/codebuild/<{project(built)}>:*")] = (
                "CodeBuild's log streams of this one project, named per build."
            )
            findings[arn_finding(self, "codebuild", f"report-group/<{project(built)}>-*")] = (
                "CodeBuild's report groups of this one project, named per report."
            )
        findings[arn_finding(self, "logs", "log-group:/aws/codebuild/*")] = (
            "CDK Pipelines' asset publishing projects, created and named by aws-cdk-lib."
        )
        findings[arn_finding(self, "codebuild", "report-group/*")] = (
            "CDK Pipelines' asset publishing projects' report groups, named by aws-cdk-lib."
        )
        findings[f"Resource::arn:*:iam::{self.account}:role/*"] = (
            "Self-mutation and asset publishing assume the CDK bootstrap roles, limited by aws-cdk-lib to the "
            "roles tagged as bootstrap roles."
        )
        findings["Resource::*"] = (
            "aws-cdk-lib writes these CDK Pipelines statements on '*' and offers no way to narrow them: self-mutation's "
            "cloudformation:DescribeStacks and s3:ListBucket, and asset publishing's codebuild:StartBuild, StopBuild "
            "and BatchGetBuilds. Keep the pipeline in an account of its own, as the README's bootstrap does."
        )
        acknowledge_iam5(pipeline, findings)
        acknowledge_compliance(self, "IAMNoInlinePolicy", STAGE_WIDE["IAMNoInlinePolicy"])
        acknowledge_compliance(
            pipeline,
            "CodeBuildProjectSourceRepoUrl",
            "CDK Pipelines' projects take their source from the pipeline's own artifacts, not from a repository URL; the "
            "connection, not the projects, holds the access to the repository.",
        )
        artifacts = pipeline.pipeline.artifact_bucket
        for rule in ("S3BucketLoggingEnabled", "S3BucketReplicationEnabled", "S3BucketVersioningEnabled"):
            acknowledge_compliance(
                artifacts,
                rule,
                "CDK Pipelines' artifact bucket holds only what each pipeline execution builds anew from the branch, "
                "encrypted with a rotated KMS key and written only by the pipeline's roles; the branch is the record.",
            )
        Validations.of(pipeline).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="CDK Pipelines' artifact bucket holds only the pipeline's own build artifacts, encrypted with a rotated "
                "KMS key and written only by the pipeline's roles; access logs would need a second bucket in that account.",
            )
        )
