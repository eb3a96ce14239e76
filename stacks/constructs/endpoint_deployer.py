"""The endpoint deployer: approved package -> blue/green endpoint, with its rollback alarms, role and triggers."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.common import layout, names
from lambdas.common.contracts import DeployerSettings, EndpointConfig, MonitoringConfig, MonitoringScheduleConfig
from lambdas.common.names import ENVIRONMENT_TAG, PROJECT_TAG, VARIANT, EndpointResources, ResourceNames
from stacks.constructs.alerts import alarm
from stacks.constructs.model_monitoring import ModelMonitoring
from stacks.constructs.model_package_group import ModelPackageGroup
from stacks.constructs.platform_function import PlatformFunction
from stacks.constructs.sagemaker_roles import vpc_conditions
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.arns import sagemaker_arn
from stacks.synth.bundling import function_code
from stacks.synth.config import supports_volume_kms
from stacks.synth.log_groups import LogGroups
from stacks.synth.logical_ids import keep_logical_id
from stacks.synth.nag import acknowledge_iam5, arn_finding

SAGEMAKER = "aws.sagemaker"


@dataclass(frozen=True)
class EndpointDeployerProps:
    names: ResourceNames
    endpoint: EndpointConfig
    model_package_group: ModelPackageGroup
    job_role: iam.IRole
    data_key: kms.IKey
    artifacts_bucket: s3.IBucket
    alerts: sns.ITopic
    dead_letters: sqs.IQueue
    log_groups: LogGroups
    monitoring: MonitoringConfig
    # What the data-quality schedule runs with; None when monitoring is disabled (the deployer then removes it).
    model_monitoring: ModelMonitoring | None = None
    # The environment's VPC, which the function runs in; None outside any VPC.
    network: VpcPlacement | None = None


class EndpointDeployer(Construct):
    """Deploys each approved package of the group to the endpoint, and converges when the endpoint is InService.

    The rollback alarms are named, so SageMaker can watch them during a blue/green update; they also alert.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: EndpointDeployerProps) -> None:
        super().__init__(scope, construct_id)
        self.rollback_alarms = self._rollback_alarms(props)
        role = self._role(props)
        endpoint, name = props.endpoint, props.names.endpoint
        self.settings = settings = DeployerSettings(
            endpoint_name=name,
            model_package_group_name=props.model_package_group.name,
            job_role_arn=props.job_role.role_arn,
            endpoint=endpoint,
            data_capture_s3_uri=layout.s3_uri(props.artifacts_bucket.bucket_name, layout.data_capture(name)),
            kms_key_arn=props.data_key.key_arn,
            volume_kms_key_arn=props.data_key.key_arn if supports_volume_kms(endpoint.instance_type) else None,
            rollback_alarm_names=tuple(a.alarm_name for a in self.rollback_alarms),
            monitoring=MonitoringScheduleConfig(
                enabled=props.monitoring.enabled,
                schedule_cron=props.monitoring.schedule_cron,
                instance_type=props.monitoring.instance_type,
            ),
            monitoring_schedule_name=props.names.monitoring_schedule,
            resource_tags={PROJECT_TAG: props.names.project, ENVIRONMENT_TAG: props.names.environment},
            **self._monitoring_settings(props),
            network=props.network.network if props.network else None,
        )
        # "Default" keeps the function's and its log group's logical ids as they were before this construct existed.
        self.function = PlatformFunction(
            self,
            "Default",
            code=function_code("deploy_endpoint"),
            role=role,
            timeout=Duration.minutes(15),
            description="Approved model package -> model -> endpoint config -> endpoint (blue/green)",
            name="deploy-endpoint",
            log_groups=props.log_groups,
            network=props.network,
            dead_letter_queue=props.dead_letters,
            retry_attempts=2,
            max_event_age=Duration.hours(1),
            settings=settings,
        ).function
        alarm(
            self,
            "Errors",
            self.function.metric_errors(period=Duration.minutes(5)),
            props.alerts,
            threshold=1,
            description="The endpoint deployer failed; see its log group",
            alarm_name=props.names.alarm("deployer-errors"),
        )
        self._rules(props)

    @staticmethod
    def _monitoring_settings(props: EndpointDeployerProps) -> dict[str, str | None]:
        monitor = props.model_monitoring
        if monitor is None:
            return {}
        return {
            "monitoring_role_arn": monitor.role.role_arn,
            "monitor_image_uri": monitor.analyzer_image_uri,
            "monitoring_reports_s3_uri": monitor.reports_s3_uri,
            "monitoring_volume_kms_key_arn": props.data_key.key_arn
            if supports_volume_kms(props.monitoring.instance_type)
            else None,
        }

    def _rollback_alarms(self, props: EndpointDeployerProps) -> list[cloudwatch.Alarm]:
        dimensions = {"EndpointName": props.names.endpoint, "VariantName": VARIANT}

        def metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name=name,
                dimensions_map=dimensions,
                statistic=statistic,
                period=Duration.minutes(1),
            )

        latency_ms = props.endpoint.max_latency_ms
        alarms = [
            alarm(
                self,
                "Endpoint5xxErrors",
                metric("Invocation5XXErrors", "Sum"),
                props.alerts,
                threshold=1,
                periods=2,
                alarm_name=props.names.alarm("5xx-errors"),
                description="Endpoint answers with 5xx errors; an update in progress rolls back",
            ),
            alarm(
                self,
                "EndpointModelLatency",
                metric("ModelLatency", "p99"),
                props.alerts,
                threshold=latency_ms * 1000,
                periods=2,
                alarm_name=props.names.alarm("model-latency"),
                description=f"p99 model latency above {latency_ms} ms; an update in progress rolls back",
            ),
        ]
        for item, logical_id in zip(alarms, ("Endpoint5xxErrorsF2F1F6DC", "EndpointModelLatencyB07AEF96"), strict=True):
            keep_logical_id(item, logical_id)
        return alarms

    def _role(self, props: EndpointDeployerProps) -> iam.Role:
        stack, name = Stack.of(self), props.names.endpoint
        made = EndpointResources(name)
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Endpoint deployer: models, endpoint configs and the endpoint of this environment",
        )
        props.model_package_group.grant_read_packages(role)
        endpoint_arn = sagemaker_arn(self, "endpoint", name)
        model_arns = sagemaker_arn(self, "model", f"{made.versions}*")
        config_arns = sagemaker_arn(self, "endpoint-config", f"{made.versions}*")
        definition_arns = sagemaker_arn(self, "data-quality-job-definition", f"{made.job_definitions}*")
        # Target tracking creates and deletes its own alarms, named after the scalable resource.
        tracking_alarms = stack.format_arn(
            service="cloudwatch", resource="alarm", arn_format=ArnFormat.COLON_RESOURCE_NAME, resource_name=made.scaling_alarms
        )
        key = props.data_key.key_arn
        endpoint_volume = {"sagemaker:VolumeKmsKey": key} if supports_volume_kms(props.endpoint.instance_type) else {}
        monitoring_volume = {"sagemaker:VolumeKmsKey": key} if supports_volume_kms(props.monitoring.instance_type) else {}
        # Models and monitoring jobs isolated, and in the environment's subnets when it has a VPC.
        isolated = {
            "Bool": {"sagemaker:NetworkIsolation": "true"},
            **vpc_conditions(props.network.network if props.network else None),
        }
        # Application Auto Scaling's write actions take the service namespace and dimension as condition keys
        # (Service Authorization Reference): the deployer may scale SageMaker variants, nothing else in the account.
        variants = {
            "StringEquals": {
                "application-autoscaling:service-namespace": "sagemaker",
                "application-autoscaling:scalable-dimension": names.SCALABLE_DIMENSION,
            }
        }
        statements: list[tuple[list[str], list[str], dict]] = [
            (["sagemaker:CreateModel"], [model_arns], isolated),
            (["sagemaker:DescribeModel", "sagemaker:DeleteModel"], [model_arns], {}),
            (["sagemaker:CreateEndpointConfig"], [config_arns], {"ArnEquals": endpoint_volume} if endpoint_volume else {}),
            (["sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig"], [config_arns], {}),
            # CreateEndpoint and UpdateEndpoint authorize the endpoint config as well as the endpoint
            # (Service Authorization Reference: both resource types are required).
            (["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"], [endpoint_arn, config_arns], {}),
            # Application Auto Scaling checks that its caller may do what target tracking will do
            # (Application Auto Scaling User Guide, "Permissions required to call Application Auto Scaling API actions").
            (
                ["sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"],
                [endpoint_arn],
                {},
            ),
            (["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"], [tracking_alarms], {}),
            # Tags on create are authorized as sagemaker:AddTags on the new resource (a dependent action of each Create*
            # in the Service Authorization Reference), on the resources the deployer makes.
            (
                ["sagemaker:AddTags"],
                [
                    model_arns,
                    config_arns,
                    endpoint_arn,
                    definition_arns,
                    sagemaker_arn(self, "monitoring-schedule", props.names.monitoring_schedule),
                ],
                {},
            ),
            # The data-quality schedule of this endpoint and the job definitions named after its packages.
            (
                ["sagemaker:CreateDataQualityJobDefinition"],
                [definition_arns],
                {**isolated, "ArnEquals": {"sagemaker:OutputKmsKey": key, **monitoring_volume}},
            ),
            (
                ["sagemaker:DescribeDataQualityJobDefinition", "sagemaker:DeleteDataQualityJobDefinition"],
                [definition_arns],
                {},
            ),
            (
                [
                    "sagemaker:CreateMonitoringSchedule",
                    "sagemaker:UpdateMonitoringSchedule",
                    "sagemaker:DescribeMonitoringSchedule",
                    "sagemaker:DeleteMonitoringSchedule",
                ],
                [sagemaker_arn(self, "monitoring-schedule", props.names.monitoring_schedule)],
                {},
            ),
            (
                [
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DeleteScalingPolicy",
                ],
                ["*"],
                variants,
            ),
            (
                [
                    "sagemaker:ListEndpointConfigs",
                    "sagemaker:ListDataQualityJobDefinitions",
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                ],
                ["*"],
                {},
            ),
            # Alarms have no grant methods; SageMaker reads these two during a blue/green update as the caller.
            (["cloudwatch:DescribeAlarms"], [a.alarm_arn for a in self.rollback_alarms], {}),
        ]
        for actions, resources, conditions in statements:
            role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources, conditions=conditions or None))
        # SageMaker creates the grants that encrypt the endpoint's volume and captured data as the caller.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"], resources=[key], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}
            )
        )
        props.data_key.grant(role, "kms:DescribeKey")
        props.job_role.grant_pass_role(role)
        if props.model_monitoring is not None:
            props.model_monitoring.role.grant_pass_role(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    stack.format_arn(
                        service="iam",
                        region="",
                        resource="role",
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                        resource_name="aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                    )
                ],
                conditions={"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}},
            )
        )
        acknowledge_iam5(
            role.node.find_child("DefaultPolicy"),
            {
                arn_finding(
                    self, "sagemaker", f"model/{made.versions}*"
                ): "Models the deployer names after this endpoint and a package version.",
                arn_finding(
                    self, "sagemaker", f"endpoint-config/{made.versions}*"
                ): "Endpoint configs the deployer names after this endpoint and a package version.",
                arn_finding(self, "cloudwatch", f"alarm:{made.scaling_alarms}"): "The alarms target tracking "
                "creates for this endpoint's variant; Application Auto Scaling names them.",
                arn_finding(self, "sagemaker", f"data-quality-job-definition/{made.job_definitions}*"): "Data-quality job "
                "definitions the deployer names after this endpoint and a package version.",
                "Resource::*": "sagemaker:ListEndpointConfigs, ListDataQualityJobDefinitions and "
                "Application Auto Scaling's Describe actions support no resource-level permissions; its write actions "
                "name scalable targets by ids AWS assigns, so they are confined to SageMaker variants by its "
                "service-namespace and scalable-dimension condition keys.",
            },
        )
        return role

    def _rules(self, props: EndpointDeployerProps) -> None:
        approval = events.Rule(
            self,
            "ModelApproved",
            description="An approved model version goes to the deployer",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER],
                detail_type=[names.MODEL_PACKAGE_STATE_CHANGE],
                detail={"ModelPackageGroupName": [props.model_package_group.name], "ModelApprovalStatus": ["Approved"]},
            ),
        )
        in_service = events.Rule(
            self,
            "EndpointInService",
            description="A created or updated endpoint gets autoscaling",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER],
                detail_type=[names.ENDPOINT_STATE_CHANGE],
                detail={"EndpointName": [props.names.endpoint], "EndpointStatus": ["IN_SERVICE"]},
            ),
        )
        for rule in (approval, in_service):
            rule.add_target(
                targets.LambdaFunction(
                    self.function, dead_letter_queue=props.dead_letters, retry_attempts=3, max_event_age=Duration.hours(1)
                )
            )
