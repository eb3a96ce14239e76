"""What starts the pipelines (schedules, new training data, a new training image) and what reports their failures."""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from lambdas.common import names
from lambdas.common.contracts import BatchPredictionConfig
from stacks.synth.config import ScheduleConfig, StorageConfig


@jsii.implements(events.IRuleTarget)
class StartPipeline:
    """EventBridge rule target that starts a SageMaker pipeline with its default parameters."""

    def __init__(self, pipeline: sagemaker.IPipeline, role: iam.IRole, dead_letter_queue: sqs.IQueue) -> None:
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


@dataclass(frozen=True)
class PipelineTriggersProps:
    training_pipeline: sagemaker.IPipeline
    batch_pipeline: sagemaker.IPipeline
    raw_data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    training_repository_name: str
    training_image_tag: str
    storage: StorageConfig
    batch_prediction: BatchPredictionConfig
    schedules: ScheduleConfig
    alerts: sns.ITopic
    dead_letters: sqs.IQueue


class PipelineTriggers(Construct):
    """Schedule -> pipeline; new data or image -> training; a failed execution -> alert.

    EventBridge and EventBridge Scheduler share one role that may only start these two pipelines.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: PipelineTriggersProps) -> None:
        super().__init__(scope, construct_id)
        self.starter_role = iam.Role(
            self,
            "StarterRole",
            description="Starts this environment's SageMaker pipelines",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("events.amazonaws.com"), iam.ServicePrincipal("scheduler.amazonaws.com")
            ).with_conditions({"StringEquals": {"aws:SourceAccount": Stack.of(self).account}}),
        )
        props.dead_letters.grant_send_messages(self.starter_role)
        self._training_rules(props)
        self.schedule_states: tuple[tuple[scheduler.Schedule, bool], ...] = ()
        self._schedules(props)
        self._failure_alerts(props)

    def _training_rules(self, props: PipelineTriggersProps) -> None:
        prefix, marker = props.storage.raw_data_prefix, props.storage.training_trigger_suffix
        new_data = events.Rule(
            self,
            "NewTrainingData",
            description=f"A '{marker}' marker under {prefix} ends an upload of training data: retrain once, not per file",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=[names.OBJECT_CREATED],
                detail={
                    "bucket": {"name": [props.raw_data_bucket.bucket_name]},
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
                detail_type=[names.ECR_IMAGE_ACTION],
                detail={
                    "action-type": ["PUSH"],
                    "result": ["SUCCESS"],
                    "repository-name": [props.training_repository_name],
                    "image-tag": [props.training_image_tag],
                },
            ),
        )
        for rule in (new_data, new_image):
            rule.add_target(StartPipeline(props.training_pipeline, self.starter_role, props.dead_letters))

    def _schedules(self, props: PipelineTriggersProps) -> None:
        config = props.schedules
        zone = TimeZone.of(config.timezone)
        parameter = scheduler_targets.SageMakerPipelineParameter

        def start(pipeline: sagemaker.IPipeline, **parameters: str) -> scheduler_targets.SageMakerStartPipelineExecution:
            return scheduler_targets.SageMakerStartPipelineExecution(
                pipeline,
                role=self.starter_role,
                dead_letter_queue=props.dead_letters,
                retry_attempts=3,
                pipeline_parameter_list=[parameter(name=name, value=value) for name, value in parameters.items()],
            )

        raw, artifacts = props.raw_data_bucket.bucket_name, props.artifacts_bucket.bucket_name
        nightly = scheduler.Schedule(
            self,
            "NightlyRetraining",
            description="Nightly retraining on everything under the raw-data prefix",
            enabled=config.retraining_enabled,
            schedule=scheduler.ScheduleExpression.expression(config.retraining_cron, zone),
            target=start(props.training_pipeline, InputDataUri=f"s3://{raw}/{props.storage.raw_data_prefix}"),
        )
        daily = scheduler.Schedule(
            self,
            "DailyBatchPrediction",
            description="Daily batch prediction of the day's new data (dated prefix, schedule time zone) "
            "with the latest approved model",
            enabled=config.batch_prediction_enabled,
            schedule=scheduler.ScheduleExpression.expression(config.batch_prediction_cron, zone),
            target=start(
                props.batch_pipeline,
                InputPrefixUri=f"s3://{raw}/{props.batch_prediction.input_prefix}",
                OutputPrefixUri=f"s3://{artifacts}/{props.batch_prediction.output_prefix}",
            ),
        )
        self.schedule_states = ((nightly, config.retraining_enabled), (daily, config.batch_prediction_enabled))

    def _failure_alerts(self, props: PipelineTriggersProps) -> None:
        rule = events.Rule(
            self,
            "PipelineFailed",
            description="A training or batch-prediction execution failed",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[names.PIPELINE_EXECUTION_STATUS_CHANGE],
                detail={
                    "currentPipelineExecutionStatus": ["Failed"],
                    "pipelineArn": [props.training_pipeline.pipeline_arn, props.batch_pipeline.pipeline_arn],
                },
            ),
        )
        rule.add_target(
            targets.SnsTopic(
                props.alerts,
                dead_letter_queue=props.dead_letters,
                retry_attempts=3,
                max_event_age=Duration.hours(24),
                message=events.RuleTargetInput.from_text(
                    f"SageMaker pipeline execution failed: {events.EventField.from_path('$.detail.pipelineExecutionArn')} "
                    f"({events.EventField.from_path('$.detail.pipelineExecutionDisplayName')}). "
                    "See the execution's failed step in SageMaker Studio."
                ),
            )
        )
