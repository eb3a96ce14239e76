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

from lambdas.common.contracts import DeployerSettings, EndpointConfig, MonitoringConfig
from stacks.constructs.alerts import alarm
from stacks.constructs.model_monitoring import ModelMonitoring, schedule_name
from stacks.constructs.platform_function import PlatformFunction
from stacks.synth.bundling import function_code
from stacks.synth.config import supports_volume_kms
from stacks.synth.log_groups import LogGroups
from stacks.synth.logical_ids import keep_logical_id
from stacks.synth.nag import acknowledge_iam5, arn_finding

SAGEMAKER = "aws.sagemaker"
VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class EndpointDeployerProps:
    endpoint_name: str
    endpoint: EndpointConfig
    model_package_group_name: str
    job_role: iam.IRole
    data_key: kms.IKey
    artifacts_bucket: s3.IBucket
    alerts: sns.ITopic
    dead_letters: sqs.IQueue
    log_groups: LogGroups
    monitoring: MonitoringConfig
    # What the data-quality schedule runs with; None when monitoring is disabled (the deployer then removes it).
    model_monitoring: ModelMonitoring | None = None


class EndpointDeployer(Construct):
    """Deploys each approved package of the group to the endpoint, and converges when the endpoint is InService.

    The rollback alarms are named, so SageMaker can watch them during a blue/green update; they also alert.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: EndpointDeployerProps) -> None:
        super().__init__(scope, construct_id)
        self.rollback_alarms = self._rollback_alarms(props)
        role = self._role(props)
        endpoint, name = props.endpoint, props.endpoint_name
        self.settings = settings = DeployerSettings(
            endpoint_name=name,
            model_package_group_name=props.model_package_group_name,
            job_role_arn=props.job_role.role_arn,
            endpoint=endpoint,
            data_capture_s3_uri=f"s3://{props.artifacts_bucket.bucket_name}/data-capture/{name}",
            kms_key_arn=props.data_key.key_arn,
            volume_kms_key_arn=props.data_key.key_arn if supports_volume_kms(endpoint.instance_type) else None,
            rollback_alarm_names=tuple(a.alarm_name for a in self.rollback_alarms),
            monitoring=props.monitoring,
            monitoring_schedule_name=schedule_name(name),
            **self._monitoring_settings(props),
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
            alarm_name=f"{props.endpoint_name}-deployer-errors",
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
        dimensions = {"EndpointName": props.endpoint_name, "VariantName": VARIANT}

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
                alarm_name=f"{props.endpoint_name}-5xx-errors",
                description="Endpoint answers with 5xx errors; an update in progress rolls back",
            ),
            alarm(
                self,
                "EndpointModelLatency",
                metric("ModelLatency", "p99"),
                props.alerts,
                threshold=latency_ms * 1000,
                periods=2,
                alarm_name=f"{props.endpoint_name}-model-latency",
                description=f"p99 model latency above {latency_ms} ms; an update in progress rolls back",
            ),
        ]
        for item, logical_id in zip(alarms, ("Endpoint5xxErrorsF2F1F6DC", "EndpointModelLatencyB07AEF96"), strict=True):
            keep_logical_id(item, logical_id)
        return alarms

    def _role(self, props: EndpointDeployerProps) -> iam.Role:
        stack, name, group = Stack.of(self), props.endpoint_name, props.model_package_group_name
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Endpoint deployer: models, endpoint configs and the endpoint of this environment",
        )

        def sagemaker_arn(kind: str, resource_name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=kind, resource_name=resource_name)

        endpoint_arn = sagemaker_arn("endpoint", name)
        config_arns = sagemaker_arn("endpoint-config", f"{name}-v*")
        definition_arns = sagemaker_arn("data-quality-job-definition", f"{name}-dq-v*")
        # Target tracking creates and deletes its own alarms, named after the scalable resource.
        tracking_alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
            resource_name=f"TargetTracking-endpoint/{name}/variant/*",
        )
        key = props.data_key.key_arn
        endpoint_volume = {"sagemaker:VolumeKmsKey": key} if supports_volume_kms(props.endpoint.instance_type) else {}
        monitoring_volume = {"sagemaker:VolumeKmsKey": key} if supports_volume_kms(props.monitoring.instance_type) else {}
        isolated = {"Bool": {"sagemaker:NetworkIsolation": "true"}}
        # Application Auto Scaling's write actions take the service namespace and dimension as condition keys
        # (Service Authorization Reference): the deployer may scale SageMaker variants, nothing else in the account.
        variants = {
            "StringEquals": {
                "application-autoscaling:service-namespace": "sagemaker",
                "application-autoscaling:scalable-dimension": SCALABLE_DIMENSION,
            }
        }
        statements: list[tuple[list[str], list[str], dict]] = [
            (["sagemaker:DescribeModelPackage"], [sagemaker_arn("model-package", f"{group}/*")], {}),
            (["sagemaker:CreateModel"], [sagemaker_arn("model", f"{name}-v*")], isolated),
            (["sagemaker:DescribeModel", "sagemaker:DeleteModel"], [sagemaker_arn("model", f"{name}-v*")], {}),
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
                [sagemaker_arn("monitoring-schedule", schedule_name(name))],
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
                    "sagemaker:ListModelPackages",
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
                    self, "sagemaker", f"model-package/{group}/*"
                ): "Versions of this environment's one model package group.",
                arn_finding(
                    self, "sagemaker", f"model/{name}-v*"
                ): "Models the deployer names after this endpoint and a package version.",
                arn_finding(
                    self, "sagemaker", f"endpoint-config/{name}-v*"
                ): "Endpoint configs the deployer names after this endpoint and a package version.",
                arn_finding(self, "cloudwatch", f"alarm:TargetTracking-endpoint/{name}/variant/*"): "The alarms target tracking "
                "creates for this endpoint's variant; Application Auto Scaling names them.",
                arn_finding(self, "sagemaker", f"data-quality-job-definition/{name}-dq-v*"): "Data-quality job definitions the "
                "deployer names after this endpoint and a package version.",
                "Resource::*": "sagemaker:ListEndpointConfigs, ListModelPackages, ListDataQualityJobDefinitions and "
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
                detail_type=["SageMaker Model Package State Change"],
                detail={"ModelPackageGroupName": [props.model_package_group_name], "ModelApprovalStatus": ["Approved"]},
            ),
        )
        in_service = events.Rule(
            self,
            "EndpointInService",
            description="A created or updated endpoint gets autoscaling",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER],
                detail_type=["SageMaker Endpoint State Change"],
                detail={"EndpointName": [props.endpoint_name], "EndpointStatus": ["IN_SERVICE"]},
            ),
        )
        for rule in (approval, in_service):
            rule.add_target(
                targets.LambdaFunction(
                    self.function, dead_letter_queue=props.dead_letters, retry_attempts=3, max_event_age=Duration.hours(1)
                )
            )
