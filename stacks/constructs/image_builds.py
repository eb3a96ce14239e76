"""Image builds on deploy: a CodeBuild project, and a custom resource that builds the tags missing from ECR.

The custom resource (CDK Provider framework with an is-complete poll) starts one build only when an
image's content tag is not in its repository yet, waits for it, and fails the deploy with the build's
log link when it fails. The pipelines' registration depends on it, so pipelines never name an image
that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aws_cdk import Acknowledgment, CustomResource, Duration, Stack, Validations, custom_resources
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as stepfunctions
from constructs import Construct

from lambdas.common.contracts import ImageBuildSettings
from stacks.constructs.platform_function import PlatformFunction
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.bundling import function_code
from stacks.synth.image_sources import build_source_asset, image_tag
from stacks.synth.log_groups import LogGroups
from stacks.synth.nag import acknowledge_iam5, acknowledge_provider_functions, arn_finding, resource_finding

# A build of both images takes minutes; CloudFormation allows a custom resource at most an hour.
BUILD_TIMEOUT = Duration.minutes(50)
# The project's compute type and the Service Quotas quota (AWS CodeBuild) that caps its concurrent builds;
# many new accounts start with it at 0 ("Quotas for AWS CodeBuild", CodeBuild User Guide).
COMPUTE_TYPE = codebuild.ComputeType.MEDIUM
BUILD_QUOTA = "Concurrently running builds for Linux/Medium environment"


@dataclass(frozen=True)
class ImageBuildsProps:
    data_key: kms.IKey
    training_repository: ecr.IRepository
    inference_repository: ecr.IRepository
    # Tags the configuration overrides: the user pushes those images; None builds the content-tagged image.
    training_tag_override: str | None
    inference_tag_override: str | None
    log_groups: LogGroups
    # The environment's VPC, which the build and the trigger run in; None outside any VPC.
    network: VpcPlacement | None = None


class ImageBuilds(Construct):
    """`training_tag` and `inference_tag` are what the pipelines use; `resource` completes once both exist."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ImageBuildsProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.training_tag = props.training_tag_override or image_tag("training")
        self.inference_tag = props.inference_tag_override or image_tag("inference")
        source = build_source_asset(self, "Source")
        build_logs = props.log_groups.create(self, "BuildLogs", "image-builds")
        self.project = codebuild.Project(
            self,
            "Project",
            description="Builds the training and inference images for linux/amd64 and pushes them to ECR",
            source=codebuild.Source.s3(bucket=source.bucket, path=source.s3_object_key),
            build_spec=codebuild.BuildSpec.from_source_filename("containers/buildspec.yml"),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=COMPUTE_TYPE,
                privileged=True,
            ),
            encryption_key=props.data_key,
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=build_logs)),
            timeout=Duration.minutes(45),
            grant_report_group_permissions=False,
            **self._build_network(props.network),
        )
        Validations.of(self.project).acknowledge(
            Acknowledgment(
                id="AwsSolutions-CB3",
                reason="docker build needs privileged mode; the project builds only this repository's Dockerfiles.",
            ),
            Acknowledgment(
                id="HIPAA.Security-CodeBuildProjectSourceRepoUrl",
                reason="The source is an S3 asset of the CDK assets bucket, not a repository URL: no credentials are "
                "in the project.",
            ),
        )
        for repository in (props.training_repository, props.inference_repository):
            repository.grant_pull_push(self.project)
        self.project.add_to_role_policy(
            iam.PolicyStatement(
                # containers/build_images.sh logs in to ECR Public for the base images: get-login-password needs
                # exactly these two (AWS CLI reference, ecr-public get-login-password). Pulling a public image
                # needs no further permission. The bearer token carries this role's own permissions and only
                # for the service that asked for it (IAM User Guide, Service bearer tokens).
                # Not an ECR pull-through cache rule: the Dockerfiles pin their base by digest, and a cache rule
                # does not fetch an uncached image pulled by digest (aws/containers-roadmap#2837), so a new
                # account's first build would fail. README, "Deploy one environment", has the VPC-only route.
                actions=["ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"],
                resources=["*"],
            )
        )
        self._acknowledge_project(source.bucket.bucket_arn, props.network is not None)

        settings = ImageBuildSettings(
            project_name=self.project.project_name,
            build_quota=BUILD_QUOTA,
            registry=f"{stack.account}.dkr.ecr.{stack.region}.{stack.url_suffix}",
            training_repository=props.training_repository.repository_name,
            training_tag=self.training_tag,
            build_training=props.training_tag_override is None,
            inference_repository=props.inference_repository.repository_name,
            inference_tag=self.inference_tag,
            build_inference=props.inference_tag_override is None,
        )
        role = iam.Role(
            self,
            "TriggerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Image build trigger: checks the repositories for tags and starts the CodeBuild project",
        )
        for repository in (props.training_repository, props.inference_repository):
            repository.grant(role, "ecr:DescribeImages")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["codebuild:StartBuild", "codebuild:BatchGetBuilds"], resources=[self.project.project_arn]
            )
        )
        functions = {
            phase: PlatformFunction(
                self,
                name,
                code=function_code("build_images"),
                handler=f"handler.{phase}",
                role=role,
                description=f"Image builds on deploy: {phase.replace('_', ' ')}",
                timeout=Duration.minutes(1),
                name=f"image-builds-{phase.replace('_', '-')}",
                log_groups=props.log_groups,
                network=props.network,
                synchronous_caller="the CDK Provider framework for CloudFormation",
            ).function
            for phase, name in (("on_event", "OnEvent"), ("is_complete", "IsComplete"))
        }
        provider_logs = props.log_groups.create(self, "ProviderLogs", "image-builds-provider")
        waiter_logs = props.log_groups.create(self, "WaiterLogs", "image-builds-waiter", state_machine=True)
        provider = custom_resources.Provider(
            self,
            "Provider",
            on_event_handler=functions["on_event"],
            is_complete_handler=functions["is_complete"],
            query_interval=Duration.seconds(30),
            total_timeout=BUILD_TIMEOUT,
            log_group=provider_logs,
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=custom_resources.LogOptions(
                destination=waiter_logs, include_execution_data=False, level=stepfunctions.LogLevel.ALL
            ),
            **(props.network.function_options() if props.network else {}),
        )
        self._acknowledge_provider(provider, functions.values(), props.network is not None)
        self.resource = CustomResource(
            self,
            "Default",
            service_token=provider.service_token,
            resource_type="Custom::ContainerImages",
            properties={"Settings": stack.to_json_string(settings.to_dict())},
        )

    @staticmethod
    def _build_network(network: VpcPlacement | None) -> dict:
        """CodeBuild's VPC arguments; aws-cdk-lib then gives the project's role CodeBuild's network-interface
        permissions ("Allow CodeBuild to access AWS services in your Amazon VPC", CodeBuild User Guide)."""
        if network is None:
            return {}
        return {"vpc": network.vpc, "subnet_selection": network.subnet_selection, "security_groups": network.security_groups}

    def _acknowledge_project(self, source_bucket_arn: str, in_vpc: bool) -> None:
        policy = self.project.role.node.find_child("DefaultPolicy") if self.project.role else None
        if policy is None:
            raise RuntimeError("the CodeBuild project has no role policy to acknowledge")
        project = Stack.of(self).resolve(self.project.project_name)["Ref"]
        if in_vpc:
            # aws-cdk-lib's statements for a project in a VPC, as the CodeBuild User Guide lists them.
            acknowledge_iam5(
                self.project.node.find_child("PolicyDocument"),
                {
                    "Resource::*": "CodeBuild creates and describes the build's network interfaces in the VPC; those "
                    "EC2 actions are granted on all resources by aws-cdk-lib as the CodeBuild User Guide documents."
                },
            )
            acknowledge_iam5(
                policy,
                {
                    arn_finding(self, "ec2", "network-interface/*"): "CodeBuild names the build's network interfaces "
                    "at run time; ec2:CreateNetworkInterfacePermission is limited to the environment's subnets and to "
                    "CodeBuild by condition."
                },
            )
        acknowledge_iam5(
            policy,
            {
                "Resource::*": "ecr:GetAuthorizationToken, ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken "
                "(the registry logins) support no resource-level permissions.",
                resource_finding(self, source_bucket_arn, "/*"): "The CDK assets bucket holds the build source; "
                "CodeBuild reads it with the asset's grant_read.",
                "Action::s3:GetBucket*": "The asset's grant_read on the CDK assets bucket, for the build source.",
                "Action::s3:GetObject*": "The asset's grant_read on the CDK assets bucket, for the build source.",
                "Action::s3:List*": "The asset's grant_read on the CDK assets bucket, for the build source.",
                "Action::kms:GenerateDataKey*": "CodeBuild encrypts its artifacts and logs with this environment's key.",
                "Action::kms:ReEncrypt*": "CodeBuild encrypts its artifacts and logs with this environment's key.",
                arn_finding(self, "logs", f"log-group:/aws/codebuild/<{project}>:*"): (
                    "CodeBuild's default log group of this one project, which CDK grants alongside the configured one."
                ),
            },
        )

    def _acknowledge_provider(
        self, provider: custom_resources.Provider, functions: Iterable[lambda_.IFunction], in_vpc: bool
    ) -> None:
        waiter = provider.node.find_child("waiter-state-machine")
        Validations.of(waiter).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SF2",
                reason="The CDK Provider framework's waiter offers no X-Ray tracing option; its log group records every state.",
            ),
        )
        framework_functions = [provider.node.find_child(name) for name in ("framework-isComplete", "framework-onTimeout")]
        acknowledge_iam5(
            waiter.node.find_child("Role").node.find_child("DefaultPolicy"),
            {
                resource_finding(self, function.function_arn, ":*"): "The Provider framework's waiter invokes its own "
                "functions' versions and aliases."
                for function in framework_functions
                if isinstance(function, lambda_.Function)
            }
            | {
                "Resource::*": "Step Functions' log delivery actions (logs:CreateLogDelivery and the like) support no "
                "resource-level permissions (Step Functions Developer Guide, logging to CloudWatch Logs)."
            },
        )
        acknowledge_provider_functions(
            provider,
            ("framework-onEvent", "framework-isComplete", "framework-onTimeout"),
            [function.function_arn for function in functions],
            "build trigger",
            in_vpc,
        )
