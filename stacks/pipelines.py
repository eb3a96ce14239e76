"""The SDK layer, the pipeline Lambdas and roles, the model package group and the registration on every deploy."""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import (
    Acknowledgment,
    CfnOutput,
    CustomResource,
    Duration,
    RemovalPolicy,
    Resource,
    Stack,
    Validations,
    custom_resources,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.interfaces import aws_sagemaker as sagemaker_refs
from constructs import Construct

from lambdas.common.contracts import SETTINGS_VARIABLE, PipelineSettings
from layers.build_layer import LAMBDA_TARGET, build_key
from stacks.bundling import LAMBDAS, PIPELINE_SCRIPTS, content_hash, function_code, layer_code
from stacks.config import EnvironmentConfig
from stacks.nag import acknowledge_iam5, arn_finding, resource_finding
from stacks.platform_function import ARCHITECTURE, RUNTIME, PlatformFunction, retention
from stacks.sagemaker_roles import SageMakerRoles, SageMakerRolesProps
from stacks.storage import StorageStack

# CloudFormation waits this long for the registration's answer before failing the deploy, instead of an hour.
REGISTRATION_TIMEOUT = Duration.minutes(10)


@jsii.implements(sagemaker.IPipeline)
class RegisteredPipeline(Resource):
    """A pipeline that the registration custom resource upserts, usable as a schedule or rule target."""

    def __init__(self, scope: Construct, construct_id: str, *, pipeline_name: str) -> None:
        super().__init__(scope, construct_id)
        self._name = pipeline_name
        self._arn = Stack.of(self).format_arn(service="sagemaker", resource="pipeline", resource_name=pipeline_name)

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


class PipelinesStack(Stack):
    """Registers the training and batch-prediction pipelines whenever their definitions, scripts or settings change."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project_name: str,
        environment: EnvironmentConfig,
        storage: StorageStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = f"{project_name}-{environment.name}"
        removal = RemovalPolicy.RETAIN if environment.storage.retain_data else RemovalPolicy.DESTROY
        self.training_pipeline_name = f"{prefix}-training"
        self.batch_pipeline_name = f"{prefix}-batch-prediction"
        self.model_package_group_name = prefix

        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.model_package_group_name,
            model_package_group_description=f"LightGBM abalone-age models of {prefix}",
        )
        self.model_package_group.apply_removal_policy(removal)

        self.roles = SageMakerRoles(
            self,
            "Roles",
            props=SageMakerRolesProps(
                data_access_policy=storage.data_access_policy,
                artifacts_read_policy=storage.artifacts_read_policy,
                code_upload_policy=storage.code_upload_policy,
                pipeline_names=(self.training_pipeline_name, self.batch_pipeline_name),
                model_package_group_name=self.model_package_group_name,
            ),
        )

        self.sdk_layer = lambda_.LayerVersion(
            self,
            "SageMakerSdkLayer",
            code=layer_code(LAMBDA_TARGET),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            removal_policy=RemovalPolicy.DESTROY,
            description="SageMaker Python SDK 2.x, trimmed for defining pipelines",
        )
        log_settings: dict[str, Any] = {"log_retention_days": environment.storage.log_retention_days, "removal_policy": removal}

        resolver_role = iam.Role(
            self,
            "ResolveBatchInputsRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Batch pipeline step: reads the package group and lists the raw-data bucket",
        )
        resolver_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[
                    self.format_arn(
                        service="sagemaker", resource="model-package", resource_name=f"{self.model_package_group_name}/*"
                    )
                ],
            )
        )
        # ListModelPackages supports no resource-level permissions; ListBucket alone needs no grant_read's GetObject.
        resolver_role.add_to_principal_policy(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"]))
        resolver_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[storage.raw_data_bucket.bucket_arn])
        )
        acknowledge_iam5(
            resolver_role.node.find_child("DefaultPolicy"),
            {
                arn_finding("sagemaker", f"model-package/{self.model_package_group_name}/*"): "Versions of this "
                "environment's one model package group, numbered by SageMaker.",
                "Resource::*": "sagemaker:ListModelPackages supports no resource-level permissions.",
            },
        )
        self.resolve_batch_inputs = PlatformFunction(
            self,
            "ResolveBatchInputs",
            code=function_code("resolve_batch_inputs", packages=("tzdata",)),
            role=resolver_role,
            description="Batch pipeline step: latest Approved model package and the day's input prefix",
            timeout=Duration.seconds(30),
            **log_settings,
        ).function
        self.resolve_batch_inputs.grant_invoke(self.roles.pipeline_execution_role)
        self.roles.acknowledge_invoke(self.resolve_batch_inputs.function_arn)

        settings = PipelineSettings(
            region=self.region,
            pipeline_definition_role_arn=self.roles.pipeline_definition_role.role_arn,
            pipeline_execution_role_arn=self.roles.pipeline_execution_role.role_arn,
            job_role_arn=self.roles.job_role.role_arn,
            kms_key_arn=storage.key.key_arn,
            raw_data_bucket=storage.raw_data_bucket.bucket_name,
            features_bucket=storage.features_bucket.bucket_name,
            artifacts_bucket=storage.artifacts_bucket.bucket_name,
            raw_data_prefix=environment.storage.raw_data_prefix,
            training_pipeline_name=self.training_pipeline_name,
            batch_pipeline_name=self.batch_pipeline_name,
            model_package_group_name=self.model_package_group_name,
            training_image_uri=self.image_uri(storage.training_repository_name, environment.training.training_image_tag),
            inference_image_uri=self.image_uri(storage.inference_repository_name, environment.training.inference_image_tag),
            resolve_batch_inputs_function_arn=self.resolve_batch_inputs.function_arn,
            endpoint_instance_type=environment.endpoint.instance_type,
            processing_timezone=environment.schedules.timezone,
            training=environment.training,
            batch_prediction=environment.batch_prediction,
        )
        settings_json = self.to_json_string(settings.to_dict())
        self.register_pipelines = PlatformFunction(
            self,
            "RegisterPipelines",
            code=function_code("register_pipelines", with_pipeline_scripts=True),
            role=self.roles.pipeline_definition_role,
            layers=[self.sdk_layer],
            memory_size=1024,
            timeout=Duration.minutes(5),
            description="Defines the SageMaker Pipelines with the SDK and upserts them",
            environment={SETTINGS_VARIABLE: settings_json, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
            **log_settings,
        ).function

        provider = custom_resources.Provider(
            self,
            "RegistrationProvider",
            on_event_handler=self.register_pipelines,
            log_group=logs.LogGroup(
                self,
                "RegistrationProviderLogs",
                retention=retention(environment.storage.log_retention_days),
                removal_policy=removal,
            ),
        )
        self._acknowledge_provider(provider)
        registration = CustomResource(
            self,
            "PipelineRegistration",
            service_token=provider.service_token,
            resource_type="Custom::SageMakerPipelines",
            service_timeout=REGISTRATION_TIMEOUT,
            properties={
                "DefinitionHash": content_hash(LAMBDAS / "register_pipelines", PIPELINE_SCRIPTS),
                "LayerHash": build_key(LAMBDA_TARGET),
                "Settings": settings_json,
            },
        )
        registration.node.add_dependency(self.model_package_group)
        CfnOutput(self, "TrainingPipelineName", value=self.training_pipeline_name)
        CfnOutput(self, "BatchPipelineName", value=self.batch_pipeline_name)
        CfnOutput(self, "RegisterPipelinesFunctionName", value=self.register_pipelines.function_name)

    def _acknowledge_provider(self, provider: custom_resources.Provider) -> None:
        framework = provider.node.find_child("framework-onEvent")
        Validations.of(framework).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                reason="The CDK Provider framework's own function logs with the AWS-managed basic execution policy.",
            ),
            Acknowledgment(id="AwsSolutions-L1", reason="The CDK Provider framework chooses its own Node.js runtime."),
        )
        acknowledge_iam5(
            framework.node.find_child("ServiceRole").node.find_child("DefaultPolicy"),
            {
                resource_finding(
                    self, self.register_pipelines.function_arn, ":*"
                ): "The Provider framework invokes the registration function's versions and aliases.",
            },
        )

    def image_uri(self, repository_name: str, tag: str) -> str:
        """Built from this stack's account and region: no cross-stack reference to parse at deploy time."""
        return f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}/{repository_name}:{tag}"
