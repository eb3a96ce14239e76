"""The SDK layer, the pipeline Lambdas, the model package group and the registration on every deploy."""

from __future__ import annotations

import jsii
from aws_cdk import CfnOutput, CustomResource, Duration, RemovalPolicy, Resource, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from layers.build_layer import LAMBDA_TARGET, build_key
from stacks.bundling import content_hash, function_code, layer_code, LAMBDAS, PIPELINE_SCRIPTS
from stacks.config import EnvironmentConfig
from stacks.execution_role import RoleResources, SageMakerExecutionRole
from stacks.python_function import ARCHITECTURE, RUNTIME, PythonFunction
from stacks.storage import StorageStack


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
    def pipeline_ref(self) -> sagemaker.PipelineReference:
        return sagemaker.PipelineReference(pipeline_name=self._name)

    def grant_start_pipeline_execution(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:StartPipelineExecution"], resource_arns=[self._arn])


class PipelinesStack(Stack):
    """Registers the training and batch-prediction pipelines whenever their definitions, scripts or settings change."""

    def __init__(self, scope: Construct, construct_id: str, *, project_name: str, environment: EnvironmentConfig,
                 storage: StorageStack, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = f"{project_name}-{environment.name}"
        removal = RemovalPolicy.RETAIN if environment.storage.retain_data else RemovalPolicy.DESTROY
        self.training_pipeline_name = f"{prefix}-training"
        self.batch_pipeline_name = f"{prefix}-batch-prediction"
        self.model_package_group_name = prefix

        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self, "ModelPackageGroup", model_package_group_name=self.model_package_group_name,
            model_package_group_description=f"LightGBM abalone-age models of {prefix}",
        )
        self.model_package_group.apply_removal_policy(removal)

        self.execution_role = SageMakerExecutionRole(self, "ExecutionRole", resources=RoleResources(
            data_access_policy=storage.data_access_policy,
            pipeline_names=(self.training_pipeline_name, self.batch_pipeline_name),
            model_package_group_name=self.model_package_group_name,
        )).role

        self.sdk_layer = lambda_.LayerVersion(
            self, "SageMakerSdkLayer", code=layer_code(LAMBDA_TARGET), compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE], removal_policy=RemovalPolicy.DESTROY,
            description="SageMaker Python SDK 2.x, trimmed for defining pipelines",
        )
        logs = {"log_retention_days": environment.storage.log_retention_days, "removal_policy": removal}

        self.resolve_batch_inputs = PythonFunction(
            self, "ResolveBatchInputs", code=function_code("resolve_batch_inputs"), role=self.execution_role,
            description="Batch pipeline step: latest Approved model package and the day's input prefix",
            timeout=Duration.seconds(30), **logs,
        ).function

        training, batch, endpoint = environment.training, environment.batch_prediction, environment.endpoint
        settings = {
            "ROLE_ARN": self.execution_role.role_arn,
            "KMS_KEY_ARN": storage.key.key_arn,
            "RAW_DATA_BUCKET": storage.raw_data_bucket.bucket_name,
            "FEATURES_BUCKET": storage.features_bucket.bucket_name,
            "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
            "RAW_DATA_PREFIX": environment.storage.raw_data_prefix,
            "BATCH_INPUT_PREFIX": batch.input_prefix,
            "BATCH_OUTPUT_PREFIX": batch.output_prefix,
            "TRAINING_PIPELINE_NAME": self.training_pipeline_name,
            "BATCH_PIPELINE_NAME": self.batch_pipeline_name,
            "MODEL_PACKAGE_GROUP_NAME": self.model_package_group_name,
            "TRAINING_IMAGE_URI": self.image_uri(storage.training_repository_name, training.training_image_tag),
            "INFERENCE_IMAGE_URI": self.image_uri(storage.inference_repository_name, training.inference_image_tag),
            "RESOLVE_BATCH_INPUTS_FUNCTION_ARN": self.resolve_batch_inputs.function_arn,
            "PROCESSING_INSTANCE_TYPE": training.processing_instance_type,
            "PROCESSING_INSTANCE_COUNT": str(training.processing_instance_count),
            "TRAINING_INSTANCE_TYPE": training.training_instance_type,
            "TRAINING_INSTANCE_COUNT": str(training.training_instance_count),
            "TUNING_MAX_JOBS": str(training.tuning_max_jobs),
            "TUNING_MAX_PARALLEL_JOBS": str(training.tuning_max_parallel_jobs),
            "MSE_THRESHOLD": str(training.mse_threshold),
            "MODEL_APPROVAL_STATUS": training.model_approval_status,
            "ENDPOINT_INSTANCE_TYPE": endpoint.instance_type,
            "TRANSFORM_INSTANCE_TYPE": batch.instance_type,
            "TRANSFORM_INSTANCE_COUNT": str(batch.instance_count),
            "PROCESSING_TIMEZONE": environment.schedules.timezone,
        }
        self.register_pipelines = PythonFunction(
            self, "RegisterPipelines", code=function_code("register_pipelines", with_pipeline_scripts=True),
            role=self.execution_role, layers=[self.sdk_layer], memory_size=1024, timeout=Duration.minutes(5),
            description="Defines the SageMaker Pipelines with the SDK and upserts them",
            environment={**settings, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}, **logs,
        ).function
        # A policy of its own: in the role's default policy it would make the function depend on itself.
        iam.Policy(self, "InvokeResolveBatchInputs", roles=[self.execution_role], statements=[
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.resolve_batch_inputs.function_arn]),
        ])

        registration = CustomResource(
            self, "PipelineRegistration", service_token=self.register_pipelines.function_arn,
            resource_type="Custom::SageMakerPipelines",
            properties={
                "DefinitionHash": content_hash(LAMBDAS / "register_pipelines", PIPELINE_SCRIPTS),
                "LayerHash": build_key(LAMBDA_TARGET),
                "Settings": settings,
            },
        )
        registration.node.add_dependency(self.model_package_group)
        CfnOutput(self, "TrainingPipelineName", value=self.training_pipeline_name)
        CfnOutput(self, "BatchPipelineName", value=self.batch_pipeline_name)
        CfnOutput(self, "RegisterPipelinesFunctionName", value=self.register_pipelines.function_name)

    def image_uri(self, repository_name: str, tag: str) -> str:
        """Built from this stack's account and region: no cross-stack reference to parse at deploy time."""
        return f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}/{repository_name}:{tag}"
