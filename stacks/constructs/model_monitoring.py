"""Model Monitor on the endpoint: the monitoring jobs' role, the drift alarm, and retraining when it fires.

The endpoint deployer owns the schedule itself (it follows the serving package's baseline); this construct
owns what does not change with the package.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aws_cdk import ArnFormat, Aws, CfnMapping, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.common import layout, names
from lambdas.common.contracts import MonitoringConfig, RetrainingSettings
from lambdas.common.names import ResourceNames
from stacks.constructs.alerts import alarm
from stacks.constructs.platform_function import PlatformFunction
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.bundling import function_code
from stacks.synth.log_groups import LogGroups
from stacks.synth.nag import acknowledge_compliance, acknowledge_iam5, arn_finding

# Where Model Monitor's analyzer publishes a data-quality job's per-feature metrics for an endpoint, with the
# dimensions Endpoint and MonitoringSchedule ("CloudWatch Metrics for Bring Your Own Containers" and the
# SageMaker Model Monitor example notebooks). A headerless CSV's columns are named _c0, _c1, ...
DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
ANALYZER_REPOSITORY = "sagemaker-model-monitor-analyzer"


@cache
def analyzer_registries() -> dict[str, str]:
    """Region -> account of Model Monitor's analyzer image, from the SageMaker Python SDK's published image config.

    Read as data (the SDK is not imported): the same table `sagemaker.image_uris.retrieve("model-monitor", region)` uses.
    """
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the SageMaker Python SDK is not installed; run `make setup`")
    config = json.loads((Path(spec.submodule_search_locations[0]) / "image_uri_config" / "model-monitor.json").read_text())
    (version,) = config["versions"].values()
    assert version["repository"] == ANALYZER_REPOSITORY, version["repository"]
    return dict(sorted(version["registries"].items()))


def drift_metric_names(columns: int) -> list[str]:
    """The analyzer's per-feature drift metrics of a headerless CSV: its columns are named _c0, _c1, ..."""
    return [f"feature_baseline_drift__c{index}" for index in range(columns)]


# "You can include up to 10 metrics in a metric math alarm" (CloudWatch User Guide, metric math alarms): beyond ten
# features, one alarm per ten and a composite alarm of them.
METRICS_PER_ALARM = 10


@dataclass(frozen=True)
class ModelMonitoringProps:
    names: ResourceNames
    # A request's record as the endpoint captures it: the features in order (pipeline_scripts/dataset.py).
    captured_columns: tuple[str, ...]
    monitoring: MonitoringConfig
    training_pipeline: sagemaker.IPipeline
    artifacts_bucket: s3.IBucket
    monitoring_access_policy: iam.IManagedPolicy
    alerts: sns.ITopic
    dead_letters: sqs.IQueue
    log_groups: LogGroups
    # The environment's VPC, which the function runs in; None outside any VPC.
    network: VpcPlacement | None = None


class ModelMonitoring(Construct):
    """`role` runs the data-quality jobs; `drift_alarm` fires when a feature drifts past the threshold, which
    alerts and starts the training pipeline at most once per quiet period."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ModelMonitoringProps) -> None:
        super().__init__(scope, construct_id)
        self.schedule_name = props.names.monitoring_schedule
        self.reports_s3_uri = layout.s3_uri(props.artifacts_bucket.bucket_name, layout.monitoring_reports(props.names.endpoint))
        self.drift_alarm_name = props.names.alarm("data-drift")
        self.analyzer_image_uri = self._analyzer_image_uri()
        self.role = self._role(props)
        self.drift_alarm = self._drift_alarm(props)
        self._retraining(props)

    def _analyzer_image_uri(self) -> str:
        registries = CfnMapping(
            self,
            "AnalyzerRegistries",
            mapping={region: {"account": account} for region, account in analyzer_registries().items()},
            lazy=True,
        )
        account = registries.find_in_map(Stack.of(self).region, "account")
        return f"{account}.dkr.ecr.{Stack.of(self).region}.{Aws.URL_SUFFIX}/{ANALYZER_REPOSITORY}"

    def _role(self, props: ModelMonitoringProps) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Model Monitor's data-quality jobs: read the captured data and baseline, write reports and metrics",
        )
        role.add_managed_policy(props.monitoring_access_policy)
        if props.network is not None:
            props.network.grant_sagemaker_network_interfaces(role)
        for statement in (
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": DATA_METRICS_NAMESPACE}},
            ),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        resource_name="/aws/sagemaker/ProcessingJobs:*",
                    )
                ],
            ),
        ):
            role.add_to_principal_policy(statement)
        acknowledge_iam5(
            role.node.find_child("DefaultPolicy"),
            {
                arn_finding(self, "logs", "log-group:/aws/sagemaker/ProcessingJobs:*"): "Monitoring jobs are processing jobs "
                "and log to streams SageMaker names after them.",
                "Resource::*": "cloudwatch:PutMetricData supports no resource-level permissions; the statement is limited "
                "to Model Monitor's namespace.",
            },
        )
        return role

    def _drift_alarm(self, props: ModelMonitoringProps) -> cloudwatch.AlarmBase:
        dimensions = {"Endpoint": props.names.endpoint, "MonitoringSchedule": self.schedule_name}
        metric_names = drift_metric_names(len(props.captured_columns))
        threshold = props.monitoring.drift_threshold
        description = (
            f"A feature of the captured requests drifted at least {threshold} from the serving model's training "
            "baseline; the training pipeline starts (at most once per quiet period). Reports are under "
            f"{layout.monitoring_reports(props.names.endpoint)}/ in the artifacts bucket"
        )

        def largest(first: int) -> cloudwatch.MathExpression:
            metrics = {
                f"c{index}": cloudwatch.Metric(
                    namespace=DATA_METRICS_NAMESPACE,
                    metric_name=metric_names[index],
                    dimensions_map=dimensions,
                    statistic="Maximum",
                    period=Duration.hours(1),
                )
                for index in range(first, min(first + METRICS_PER_ALARM, len(metric_names)))
            }
            return cloudwatch.MathExpression(
                expression=f"MAX([{', '.join(metrics)}])",
                using_metrics=metrics,
                label="largest feature drift from the baseline",
                period=Duration.hours(1),
            )

        if len(metric_names) <= METRICS_PER_ALARM:
            return alarm(
                self,
                "DriftAlarm",
                largest(0),
                props.alerts,
                threshold=threshold,
                alarm_name=self.drift_alarm_name,
                description=description,
            )
        parts = [
            cloudwatch.Alarm(
                self,
                f"DriftAlarm{number}",
                metric=largest(first),
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_name=props.names.alarm(f"data-drift-{number}"),
                alarm_description=f"Features {first}-{min(first + METRICS_PER_ALARM, len(metric_names)) - 1} of the "
                f"drift alarm {self.drift_alarm_name}",
            )
            for number, first in enumerate(range(0, len(metric_names), METRICS_PER_ALARM), start=1)
        ]
        for part in parts:
            acknowledge_compliance(
                part,
                "CloudWatchAlarmAction",
                f"A member of the composite alarm {self.drift_alarm_name}, which notifies the alerts topic and starts "
                "retraining: one notification per drift, whichever ten features drifted.",
            )
        composite = cloudwatch.CompositeAlarm(
            self,
            "DriftAlarm",
            composite_alarm_name=self.drift_alarm_name,
            alarm_rule=cloudwatch.AlarmRule.any_of(
                *(cloudwatch.AlarmRule.from_alarm(a, cloudwatch.AlarmState.ALARM) for a in parts)
            ),
            alarm_description=description,
        )
        composite.add_alarm_action(cloudwatch_actions.SnsAction(props.alerts))
        return composite

    def _retraining(self, props: ModelMonitoringProps) -> None:
        role = iam.Role(
            self,
            "RetrainRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Retraining on drift: lists and starts the training pipeline's executions",
        )
        props.training_pipeline.grant_start_pipeline_execution(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:ListPipelineExecutions"], resources=[props.training_pipeline.pipeline_arn])
        )
        settings = RetrainingSettings(
            training_pipeline_name=props.names.training_pipeline,
            drift_alarm_name=self.drift_alarm_name,
            quiet_period_hours=props.monitoring.retraining_quiet_period_hours,
        )
        function = PlatformFunction(
            self,
            "Retrain",
            code=function_code("retrain_on_drift"),
            role=role,
            description="Drift alarm -> training pipeline, unless one runs or the quiet period has not passed",
            timeout=Duration.seconds(30),
            name="retrain-on-drift",
            log_groups=props.log_groups,
            network=props.network,
            dead_letter_queue=props.dead_letters,
            retry_attempts=2,
            max_event_age=Duration.hours(1),
            settings=settings,
        ).function
        # "CloudWatch Alarm State Change" events (CloudWatch User Guide, "Alarm events and EventBridge"):
        # one per change of state, so an alarm that stays in ALARM starts nothing more.
        events.Rule(
            self,
            "DriftDetected",
            description="The drift alarm entering ALARM starts retraining",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=[names.ALARM_STATE_CHANGE],
                resources=[self.drift_alarm.alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
        ).add_target(
            targets.LambdaFunction(
                function, dead_letter_queue=props.dead_letters, retry_attempts=3, max_event_age=Duration.hours(1)
            )
        )
