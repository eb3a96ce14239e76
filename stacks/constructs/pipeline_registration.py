"""Registration on deploy: a custom resource (CDK Provider framework) whose Lambda defines and upserts both pipelines."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CustomResource, Duration, custom_resources
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct, IConstruct

from lambdas.common.contracts import PipelineSettings
from layers.build_layer import LAMBDA_TARGET, build_key
from stacks.constructs.platform_function import PlatformFunction
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.bundling import COMMON, LAMBDAS, PIPELINE_SCRIPTS, content_hash, function_code
from stacks.synth.log_groups import LogGroups
from stacks.synth.logical_ids import keep_logical_id
from stacks.synth.nag import acknowledge_provider_functions

# CloudFormation waits this long for the registration's answer before failing the deploy, instead of an hour.
REGISTRATION_TIMEOUT = Duration.minutes(10)


@dataclass(frozen=True)
class PipelineRegistrationProps:
    settings: PipelineSettings
    definition_role: iam.IRole
    sdk_layer: lambda_.ILayerVersion
    # Registered after these exist (the model package group the training pipeline registers into).
    depends_on: tuple[IConstruct, ...]
    log_groups: LogGroups
    # The environment's VPC, which the function runs in; None outside any VPC.
    network: VpcPlacement | None = None


class PipelineRegistration(Construct):
    """Upserts the pipelines whenever their code, the layer or the settings change, and deletes them with the stack.

    The settings travel as the resource's property (so a rollback rebuilds from the previous ones) and as the
    function's SETTINGS variable (for direct invocations).
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: PipelineRegistrationProps) -> None:
        super().__init__(scope, construct_id)
        register = PlatformFunction(
            self,
            "Function",
            code=function_code("register_pipelines", with_pipeline_scripts=True),
            role=props.definition_role,
            layers=[props.sdk_layer],
            memory_size=1024,
            timeout=Duration.minutes(5),
            description="Defines the SageMaker Pipelines with the SDK and upserts them",
            settings=props.settings,
            environment={"SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
            name="register-pipelines",
            log_groups=props.log_groups,
            network=props.network,
            synchronous_caller="the CDK Provider framework for CloudFormation",
        )
        keep_logical_id(register.log_group, "RegisterPipelinesLogsD64AABE1")
        self.function = register.function
        provider_logs = props.log_groups.create(self, "ProviderLogs", "registration-provider")
        keep_logical_id(provider_logs, "RegistrationProviderLogs21B114F2")
        provider = custom_resources.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            log_group=provider_logs,
            **(props.network.function_options() if props.network else {}),
        )
        # The service token is this function's ARN, and CloudFormation refuses to change a custom resource's
        # service token ("Updates are not supported", AWS::CloudFormation::CustomResource), so its id stays.
        keep_logical_id(provider.node.find_child("framework-onEvent"), "RegistrationProviderframeworkonEvent334FDBE0")
        acknowledge_provider_functions(
            provider, ("framework-onEvent",), [self.function.function_arn], "registration function", props.network is not None
        )
        # "Default" keeps the resource's logical id: a new one would create the pipelines again, then delete them.
        resource = CustomResource(
            self,
            "Default",
            service_token=provider.service_token,
            resource_type="Custom::SageMakerPipelines",
            service_timeout=REGISTRATION_TIMEOUT,
            properties={
                "DefinitionHash": content_hash(LAMBDAS / "register_pipelines", COMMON, PIPELINE_SCRIPTS),
                "LayerHash": build_key(LAMBDA_TARGET),
                "Settings": register.settings_json,
            },
        )
        for dependency in props.depends_on:
            resource.node.add_dependency(dependency)
