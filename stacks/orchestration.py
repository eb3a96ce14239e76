"""What runs the platform by itself: schedules, data and image triggers, the endpoint deployer, alerts."""

from __future__ import annotations

import jsii
from aws_cdk import Acknowledgment, ArnFormat, Duration, RemovalPolicy, Stack, TimeZone, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from lambdas.common.contracts import SETTINGS_VARIABLE, DeployerSettings
from stacks.bundling import function_code
from stacks.config import EnvironmentConfig, supports_volume_kms
from stacks.nag import acknowledge_iam5, arn_finding
from stacks.pipelines import PipelinesStack, RegisteredPipeline
from stacks.platform_function import PlatformFunction
from stacks.storage import StorageStack

SAGEMAKER = "aws.sagemaker"


@jsii.implements(events.IRuleTarget)
class StartPipeline:
    """EventBridge rule target that starts a SageMaker pipeline with its default parameters."""

    def __init__(self, pipeline: RegisteredPipeline, role: iam.IRole, dead_letter_queue: sqs.IQueue) -> None:
        self._pipeline, self._role, self._queue = pipeline, role, dead_letter_queue

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        self._pipeline.grant_start_pipeline_execution(self._role)
        self._queue.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self._queue.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": rule.rule_ref.rule_arn}},
            )
        )
        return events.RuleTargetConfig(
            arn=self._pipeline.pipeline_arn,
            role=self._role,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self._queue.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(maximum_retry_attempts=3, maximum_event_age_in_seconds=3600),
        )


class OrchestrationStack(Stack):
    """Schedule -> pipeline; new data or image -> training; approval -> deployer -> endpoint; failure -> alert."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project_name: str,
        environment: EnvironmentConfig,
        storage: StorageStack,
        pipelines: PipelinesStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.endpoint_name = f"{project_name}-{environment.name}"
        removal = RemovalPolicy.RETAIN if environment.storage.retain_data else RemovalPolicy.DESTROY
        self.training_pipeline = RegisteredPipeline(self, "TrainingPipeline", pipeline_name=pipelines.training_pipeline_name)
        self.batch_pipeline = RegisteredPipeline(self, "BatchPipeline", pipeline_name=pipelines.batch_pipeline_name)

        self._alerts(environment, removal)
        self._endpoint_alarms(environment)
        self._deployer(environment, storage, pipelines, removal)
        self.pipeline_starter = self._pipeline_starter_role()
        self._pipeline_triggers(environment, storage)
        self._schedules(environment, storage)
        self._failure_alerts()

    def _alerts(self, environment: EnvironmentConfig, removal: RemovalPolicy) -> None:
        self.alerts_key = kms.Key(
            self,
            "AlertsKey",
            enable_key_rotation=True,
            removal_policy=removal,
            description=f"Encrypts the alerts topic of {self.endpoint_name}",
        )
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            self.alerts_key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": self.account}},
                )
            )
        self.alerts = sns.Topic(
            self, "Alerts", master_key=self.alerts_key, enforce_ssl=True, display_name=f"{self.endpoint_name} MLOps alerts"
        )
        if environment.alert_email:
            self.alerts.add_subscription(subscriptions.EmailSubscription(environment.alert_email))
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal,
        )
        Validations.of(self.dead_letters).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3", reason="This queue is itself the dead-letter queue of the rules, schedules and deployer."
            )
        )
        self._alarm(
            "DeadLettersWaiting",
            self.dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=1,
            description="Events that could not be delivered to a pipeline or the deployer",
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        alarm_name: str | None = None,
        periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
            alarm_name=alarm_name,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alerts))
        return alarm

    def _endpoint_alarms(self, environment: EnvironmentConfig) -> None:
        """Named alarms that the deployer hands to SageMaker for automatic rollback; they also alert."""
        dimensions = {"EndpointName": self.endpoint_name, "VariantName": "AllTraffic"}
        errors = cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions_map=dimensions,
            statistic="Sum",
            period=Duration.minutes(1),
        )
        latency = cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",
            dimensions_map=dimensions,
            statistic="p99",
            period=Duration.minutes(1),
        )
        self.rollback_alarms = [
            self._alarm(
                "Endpoint5xxErrors",
                errors,
                threshold=1,
                periods=2,
                alarm_name=f"{self.endpoint_name}-5xx-errors",
                description="Endpoint answers with 5xx errors; an update in progress rolls back",
            ),
            self._alarm(
                "EndpointModelLatency",
                latency,
                threshold=environment.endpoint.max_latency_ms * 1000,
                periods=2,
                alarm_name=f"{self.endpoint_name}-model-latency",
                description=f"p99 model latency above {environment.endpoint.max_latency_ms} ms; an update in progress rolls back",
            ),
        ]

    def _deployer(
        self, environment: EnvironmentConfig, storage: StorageStack, pipelines: PipelinesStack, removal: RemovalPolicy
    ) -> None:
        endpoint = environment.endpoint
        role = iam.Role(
            self,
            "DeployerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Endpoint deployer: models, endpoint configs and the endpoint of this environment",
        )

        def sagemaker_arn(kind: str, name: str) -> str:
            return self.format_arn(service="sagemaker", resource=kind, resource_name=name)

        group = pipelines.model_package_group_name
        endpoint_arn = sagemaker_arn("endpoint", self.endpoint_name)
        config_arns = sagemaker_arn("endpoint-config", f"{self.endpoint_name}-v*")
        # Target tracking creates and deletes its own alarms, named after the scalable resource.
        tracking_alarms = self.format_arn(
            service="cloudwatch",
            resource="alarm",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
            resource_name=f"TargetTracking-endpoint/{self.endpoint_name}/variant/*",
        )
        statements = [
            (["sagemaker:DescribeModelPackage"], [sagemaker_arn("model-package", f"{group}/*")]),
            (
                ["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel"],
                [sagemaker_arn("model", f"{self.endpoint_name}-v*")],
            ),
            (
                ["sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig"],
                [config_arns],
            ),
            # CreateEndpoint and UpdateEndpoint authorize the endpoint config as well as the endpoint
            # (Service Authorization Reference: both resource types are required).
            (["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"], [endpoint_arn, config_arns]),
            # Application Auto Scaling checks that its caller may do what target tracking will do
            # (Application Auto Scaling User Guide, "Permissions required to call Application Auto Scaling API actions").
            (
                ["sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"],
                [endpoint_arn],
            ),
            (["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"], [tracking_alarms]),
            (
                [
                    "sagemaker:ListEndpointConfigs",
                    "sagemaker:ListModelPackages",
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DescribeScalingPolicies",
                    "application-autoscaling:DeleteScalingPolicy",
                ],
                ["*"],
            ),
            (["cloudwatch:DescribeAlarms"], [a.alarm_arn for a in self.rollback_alarms]),
            (["kms:CreateGrant", "kms:DescribeKey"], [storage.key.key_arn]),
        ]
        for actions, resources in statements:
            role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))
        pipelines.roles.job_role.grant_pass_role(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    self.format_arn(
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
        self._acknowledge_deployer_wildcards(role, group)

        self.deployer = PlatformFunction(
            self,
            "DeployEndpoint",
            code=function_code("deploy_endpoint"),
            role=role,
            timeout=Duration.minutes(15),
            description="Approved model package -> model -> endpoint config -> endpoint (blue/green)",
            log_retention_days=environment.storage.log_retention_days,
            removal_policy=removal,
            dead_letter_queue=self.dead_letters,
            retry_attempts=2,
            max_event_age=Duration.hours(1),
            environment={
                SETTINGS_VARIABLE: self.to_json_string(
                    DeployerSettings(
                        endpoint_name=self.endpoint_name,
                        model_package_group_name=group,
                        job_role_arn=pipelines.roles.job_role.role_arn,
                        endpoint=endpoint,
                        data_capture_s3_uri=f"s3://{storage.artifacts_bucket.bucket_name}/data-capture/{self.endpoint_name}",
                        kms_key_arn=storage.key.key_arn,
                        volume_kms_key_arn=storage.key.key_arn if supports_volume_kms(endpoint.instance_type) else None,
                        rollback_alarm_names=tuple(a.alarm_name for a in self.rollback_alarms),
                    ).to_dict()
                )
            },
        ).function
        self._alarm(
            "DeployerErrors",
            self.deployer.metric_errors(period=Duration.minutes(5)),
            threshold=1,
            description="The endpoint deployer failed; see its log group",
        )

        approval = events.Rule(
            self,
            "ModelApproved",
            description="An approved model version goes to the deployer",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER],
                detail_type=["SageMaker Model Package State Change"],
                detail={"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]},
            ),
        )
        in_service = events.Rule(
            self,
            "EndpointInService",
            description="A created or updated endpoint gets autoscaling",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER],
                detail_type=["SageMaker Endpoint State Change"],
                detail={"EndpointName": [self.endpoint_name], "EndpointStatus": ["IN_SERVICE"]},
            ),
        )
        for rule in (approval, in_service):
            rule.add_target(
                targets.LambdaFunction(
                    self.deployer, dead_letter_queue=self.dead_letters, retry_attempts=3, max_event_age=Duration.hours(1)
                )
            )

    def _acknowledge_deployer_wildcards(self, role: iam.Role, group: str) -> None:
        name = self.endpoint_name
        reasons = {
            arn_finding("sagemaker", f"model-package/{group}/*"): "Versions of this environment's one model package group.",
            arn_finding("sagemaker", f"model/{name}-v*"): "Models the deployer names after this endpoint and a package version.",
            arn_finding("sagemaker", f"endpoint-config/{name}-v*"): "Endpoint configs the deployer names after this endpoint "
            "and a package version.",
            arn_finding("cloudwatch", f"alarm:TargetTracking-endpoint/{name}/variant/*"): "The alarms target tracking creates "
            "for this endpoint's variant; Application Auto Scaling names them.",
            "Resource::*": "sagemaker:ListEndpointConfigs, sagemaker:ListModelPackages and the Application Auto Scaling "
            "actions support no resource-level permissions.",
        }
        acknowledge_iam5(role.node.find_child("DefaultPolicy"), reasons)

    def _pipeline_starter_role(self) -> iam.Role:
        """Assumed by EventBridge and EventBridge Scheduler to start this environment's pipelines."""
        role = iam.Role(
            self,
            "PipelineStarterRole",
            description="Starts this environment's SageMaker pipelines",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("events.amazonaws.com"), iam.ServicePrincipal("scheduler.amazonaws.com")
            ).with_conditions({"StringEquals": {"aws:SourceAccount": self.account}}),
        )
        self.dead_letters.grant_send_messages(role)
        return role

    def _pipeline_triggers(self, environment: EnvironmentConfig, storage: StorageStack) -> None:
        prefix, marker = environment.storage.raw_data_prefix, environment.storage.training_trigger_suffix
        new_data = events.Rule(
            self,
            "NewTrainingData",
            description=f"A '{marker}' marker under {prefix} ends an upload of training data: retrain once, not per file",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [storage.raw_data_bucket.bucket_name]},
                    "object": {"key": [{"wildcard": f"{prefix}*{marker}"}]},
                },
            ),
        )
        new_image = events.Rule(
            self,
            "NewTrainingImage",
            description="The configured training image tag was pushed: train with it",
            event_pattern=events.EventPattern(
                source=["aws.ecr"],
                detail_type=["ECR Image Action"],
                detail={
                    "action-type": ["PUSH"],
                    "result": ["SUCCESS"],
                    "repository-name": [storage.training_repository_name],
                    "image-tag": [environment.training.training_image_tag],
                },
            ),
        )
        for rule in (new_data, new_image):
            rule.add_target(StartPipeline(self.training_pipeline, self.pipeline_starter, self.dead_letters))

    def _schedules(self, environment: EnvironmentConfig, storage: StorageStack) -> None:
        config = environment.schedules
        zone = TimeZone.of(config.timezone)
        parameter = scheduler_targets.SageMakerPipelineParameter
        scheduler.Schedule(
            self,
            "NightlyRetraining",
            description="Nightly retraining on everything under the raw-data prefix",
            enabled=config.retraining_enabled,
            schedule=scheduler.ScheduleExpression.expression(config.retraining_cron, zone),
            target=scheduler_targets.SageMakerStartPipelineExecution(
                self.training_pipeline,
                role=self.pipeline_starter,
                dead_letter_queue=self.dead_letters,
                retry_attempts=3,
                pipeline_parameter_list=[
                    parameter(
                        name="InputDataUri",
                        value=f"s3://{storage.raw_data_bucket.bucket_name}/{environment.storage.raw_data_prefix}",
                    )
                ],
            ),
        )
        scheduler.Schedule(
            self,
            "DailyBatchPrediction",
            description="Daily batch prediction of the day's new data (dated prefix, schedule time zone) "
            "with the latest approved model",
            enabled=config.batch_prediction_enabled,
            schedule=scheduler.ScheduleExpression.expression(config.batch_prediction_cron, zone),
            target=scheduler_targets.SageMakerStartPipelineExecution(
                self.batch_pipeline,
                role=self.pipeline_starter,
                dead_letter_queue=self.dead_letters,
                retry_attempts=3,
                pipeline_parameter_list=[
                    parameter(
                        name="InputPrefixUri",
                        value=f"s3://{storage.raw_data_bucket.bucket_name}/{environment.batch_prediction.input_prefix}",
                    ),
                    parameter(
                        name="OutputPrefixUri",
                        value=f"s3://{storage.artifacts_bucket.bucket_name}/{environment.batch_prediction.output_prefix}",
                    ),
                ],
            ),
        )

    def _failure_alerts(self) -> None:
        rule = events.Rule(
            self,
            "PipelineFailed",
            description="A training or batch-prediction execution failed",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER],
                detail_type=["SageMaker Model Building Pipeline Execution Status Change"],
                detail={
                    "currentPipelineExecutionStatus": ["Failed"],
                    "pipelineArn": [self.training_pipeline.pipeline_arn, self.batch_pipeline.pipeline_arn],
                },
            ),
        )
        rule.add_target(
            targets.SnsTopic(
                self.alerts,
                message=events.RuleTargetInput.from_text(
                    f"SageMaker pipeline execution failed: {events.EventField.from_path('$.detail.pipelineExecutionArn')} "
                    f"({events.EventField.from_path('$.detail.pipelineExecutionDisplayName')}). "
                    "See the execution's failed step in SageMaker Studio."
                ),
            )
        )
