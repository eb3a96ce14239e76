"""The model package group, the SageMaker roles, the SDK layer, the batch resolver and the pipelines' registration."""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from lambdas.common.contracts import PipelineSettings
from lambdas.common.names import ResourceNames
from layers.build_layer import LAMBDA_TARGET
from pipeline_scripts.dataset import Dataset
from stacks.constructs.batch_inputs_resolver import BatchInputsResolver, BatchInputsResolverProps
from stacks.constructs.image_builds import ImageBuilds, ImageBuildsProps
from stacks.constructs.model_package_group import ModelPackageGroup
from stacks.constructs.pipeline_registration import PipelineRegistration, PipelineRegistrationProps
from stacks.constructs.platform_function import ARCHITECTURE, RUNTIME
from stacks.constructs.sagemaker_roles import SageMakerRoles, SageMakerRolesProps
from stacks.constructs.training_data_check import TrainingDataCheck, TrainingDataCheckProps
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.storage import DataStores
from stacks.synth.bundling import layer_code
from stacks.synth.config import EnvironmentConfig


class PipelinesStack(Stack):
    """Registers the training and batch-prediction pipelines whenever their definitions, scripts or settings change."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        dataset: Dataset,
        environment: EnvironmentConfig,
        storage: DataStores,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if environment.storage.retain_data else RemovalPolicy.DESTROY
        self.training_pipeline_name = names.training_pipeline
        self.batch_pipeline_name = names.batch_pipeline
        self.model_package_group_name = names.model_package_group
        network = VpcPlacement(self, "Network", network=environment.network) if environment.network else None

        self.model_package_group = ModelPackageGroup(
            self,
            "ModelPackageGroup",
            name=self.model_package_group_name,
            description=f"LightGBM abalone-age models of {names.prefix}",
            removal_policy=removal,
        )

        self.roles = SageMakerRoles(
            self,
            "Roles",
            props=SageMakerRolesProps(
                data_key=storage.key,
                processing_instance_type=environment.training.processing_instance_type,
                training_instance_type=environment.training.training_instance_type,
                transform_instance_type=environment.batch_prediction.instance_type,
                data_access_policy=storage.data_access_policy,
                artifacts_read_policy=storage.artifacts_read_policy,
                code_upload_policy=storage.code_upload_policy,
                pipeline_names=(self.training_pipeline_name, self.batch_pipeline_name),
                model_package_group=self.model_package_group,
                network=network,
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
        self.resolver = BatchInputsResolver(
            self,
            "ResolveBatchInputs",
            props=BatchInputsResolverProps(
                model_package_group=self.model_package_group,
                raw_data_bucket=storage.raw_data_bucket,
                log_groups=storage.log_groups,
                network=network,
            ),
        )
        self.training_data_check = TrainingDataCheck(
            self,
            "CheckTrainingData",
            props=TrainingDataCheckProps(
                raw_data_bucket=storage.raw_data_bucket,
                log_groups=storage.log_groups,
                network=network,
            ),
        )
        for step_function in (self.resolver.function, self.training_data_check.function):
            step_function.grant_invoke(self.roles.pipeline_execution_role)
            self.roles.acknowledge_invoke(step_function.function_arn)

        # Imported by name (they are named in the Storage stack), so grants and URIs need no cross-stack export.
        self.images = ImageBuilds(
            self,
            "Images",
            props=ImageBuildsProps(
                data_key=storage.key,
                training_repository=ecr.Repository.from_repository_name(
                    self, "TrainingRepository", storage.training_repository_name
                ),
                inference_repository=ecr.Repository.from_repository_name(
                    self, "InferenceRepository", storage.inference_repository_name
                ),
                training_tag_override=environment.training.training_image_tag,
                inference_tag_override=environment.training.inference_image_tag,
                log_groups=storage.log_groups,
                network=network,
            ),
        )
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
            training_image_uri=self.image_uri(storage.training_repository_name, self.images.training_tag),
            inference_image_uri=self.image_uri(storage.inference_repository_name, self.images.inference_tag),
            resolve_batch_inputs_function_arn=self.resolver.function.function_arn,
            check_training_data_function_arn=self.training_data_check.function.function_arn,
            endpoint_instance_type=environment.endpoint.instance_type,
            timezone=environment.schedules.timezone,
            dataset=dataset.to_dict(),
            training=environment.training,
            batch_prediction=environment.batch_prediction,
            data_quality_checks=environment.monitoring.enabled,
            network=environment.network,
        )
        self.registration = PipelineRegistration(
            self,
            "PipelineRegistration",
            props=PipelineRegistrationProps(
                settings=settings,
                definition_role=self.roles.pipeline_definition_role,
                sdk_layer=self.sdk_layer,
                depends_on=(self.model_package_group, self.images.resource),
                log_groups=storage.log_groups,
                network=network,
            ),
        )
        CfnOutput(self, "TrainingPipelineName", value=self.training_pipeline_name)
        CfnOutput(self, "BatchPipelineName", value=self.batch_pipeline_name)
        CfnOutput(self, "RegisterPipelinesFunctionName", value=self.registration.function.function_name)

    def image_uri(self, repository_name: str, tag: str) -> str:
        """Built from this stack's account and region: no cross-stack reference to parse at deploy time."""
        return f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}/{repository_name}:{tag}"
