"""Alerts: one KMS-encrypted topic (with an optional e-mail subscription) and the dead-letter queue it watches."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, ArnFormat, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.common import names
from lambdas.common.names import ResourceNames
from stacks.synth.logical_ids import keep_logical_id


def alarm(
    scope: Construct,
    construct_id: str,
    metric: cloudwatch.IMetric,
    topic: sns.ITopic,
    *,
    threshold: float,
    description: str,
    alarm_name: str,
    periods: int = 1,
) -> cloudwatch.Alarm:
    """An alarm at or above `threshold` for `periods` periods that notifies `topic`; no data is not a breach.

    Its name is the environment's (`ResourceNames.alarm`): the topic and its key let in alarms of those names only.
    """
    result = cloudwatch.Alarm(
        scope,
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
    result.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    return result


@dataclass(frozen=True)
class AlertsProps:
    names: ResourceNames
    alert_email: str | None
    removal_policy: RemovalPolicy


class Alerts(Construct):
    """`topic` takes alarms and failure events (CloudWatch and EventBridge may use its key); `dead_letters` holds
    events that could not be delivered, and an alarm says so."""

    def __init__(self, scope: Construct, construct_id: str, *, props: AlertsProps) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            removal_policy=props.removal_policy,
            description=f"Encrypts the alerts topic of {props.names.prefix}",
        )
        keep_logical_id(self.key, "AlertsKey9D05DB5E")
        stack = Stack.of(self)
        alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=props.names.alarm_pattern,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        # CloudWatch publishes as its service principal, on behalf of this account's alarms of this environment
        # (CloudWatch User Guide, "Preventing confused deputy security issues").
        from_alarms = {"StringEquals": {"aws:SourceAccount": stack.account}, "ArnLike": {"aws:SourceArn": alarms}}
        # "Default" keeps the topic's logical id as it was before this construct existed. enforce_ssl writes a
        # topic policy that replaces SNS's default one: every publisher must be allowed in it. EventBridge rule
        # targets (targets.SnsTopic) add their own statements to the topic's policy and key policy, without
        # source conditions, which AWS documents EventBridge does not send for SNS topics and their keys (SNS
        # Developer Guide, "Enable compatibility between event sources from AWS services and encrypted topics").
        self.topic = sns.Topic(
            self, "Default", master_key=self.key, enforce_ssl=True, display_name=f"{props.names.prefix} MLOps alerts"
        )
        self.let_service_publish("cloudwatch.amazonaws.com", from_alarms)
        if props.alert_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(props.alert_email))
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=props.removal_policy,
        )
        keep_logical_id(self.dead_letters, "DeadLettersBBF8BAAB")
        # Two policies of one queue would clear each other: the new one is written, then deleting the old one empties it.
        keep_logical_id(self.dead_letters.node.find_child("Policy"), "DeadLettersPolicy05322138")
        Validations.of(self.dead_letters).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3", reason="This queue is itself the dead-letter queue of the rules, schedules and deployer."
            )
        )
        alarm(
            self,
            "DeadLettersWaiting",
            self.dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            self.topic,
            threshold=1,
            description="Events that could not be delivered to a pipeline, the deployer or the topic",
            alarm_name=props.names.alarm("dead-letters"),
        )

    def let_service_publish(self, service: str, conditions: dict) -> None:
        """`service` may publish to the topic and use its key, under `conditions` (its confused-deputy keys)."""
        principal = iam.ServicePrincipal(service)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[principal], actions=["sns:Publish"], resources=[self.topic.topic_arn], conditions=conditions
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[principal], actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"], conditions=conditions
            )
        )

    def alert_on_critical_findings(self, repository_names: list[str]) -> None:
        """An image scan (on push) that reports CRITICAL findings in these repositories alerts on the topic.

        The event is ECR's "ECR Image Scan" with `finding-severity-counts` (Amazon ECR User Guide,
        "Amazon ECR events and EventBridge"); a count of zero is left out of the event, so any count matches.
        """
        rule = events.Rule(
            self,
            "CriticalImageFindings",
            description="An image scan found CRITICAL vulnerabilities in a training or inference image",
            event_pattern=events.EventPattern(
                source=["aws.ecr"],
                detail_type=[names.ECR_IMAGE_SCAN],
                detail={
                    "scan-status": ["COMPLETE"],
                    "repository-name": repository_names,
                    "finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]},
                },
            ),
        )
        rule.add_target(
            targets.SnsTopic(
                self.topic,
                dead_letter_queue=self.dead_letters,
                retry_attempts=3,
                max_event_age=Duration.hours(24),
                message=events.RuleTargetInput.from_text(
                    f"Image scan of {events.EventField.from_path('$.detail.repository-name')} "
                    f"({events.EventField.from_path('$.detail.image-digest')}) found "
                    f"{events.EventField.from_path('$.detail.finding-severity-counts.CRITICAL')} CRITICAL findings. "
                    "See the image's scan findings in the ECR console before the next training or deployment uses it."
                ),
            )
        )
