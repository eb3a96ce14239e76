"""One CloudWatch dashboard per environment: the endpoint, both pipelines, drift, dead letters and every alarm."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.common import names
from lambdas.common.names import ResourceNames

# "SageMaker AI endpoint invocation metrics" (SageMaker Developer Guide, "Metrics for monitoring Amazon SageMaker AI
# with Amazon CloudWatch"): AWS/SageMaker, dimensions EndpointName and VariantName, latencies in microseconds.
ENDPOINT_NAMESPACE = "AWS/SageMaker"
# "SageMaker AI pipelines metrics" (same page): per pipeline, dimension PipelineName; ExecutionDuration in milliseconds.
PIPELINE_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
PERIOD = Duration.minutes(5)
DAY = Duration.days(1)


@dataclass(frozen=True)
class EnvironmentDashboardProps:
    names: ResourceNames
    dead_letters: sqs.IQueue
    alarms: tuple[cloudwatch.IAlarm, ...]
    # The drift alarm's own metric, when monitoring is on.
    drift_alarm: cloudwatch.AlarmBase | None


class EnvironmentDashboard(Construct):
    """`dashboard` is named after the environment (`<project>-<env>`); `url` opens it in the console."""

    def __init__(self, scope: Construct, construct_id: str, *, props: EnvironmentDashboardProps) -> None:
        super().__init__(scope, construct_id)
        endpoint = {"EndpointName": props.names.endpoint, "VariantName": names.VARIANT}

        def served(metric: str, statistic: str = "Sum", label: str | None = None) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=ENDPOINT_NAMESPACE,
                metric_name=metric,
                dimensions_map=endpoint,
                statistic=statistic,
                period=PERIOD,
                label=label or metric,
            )

        def pipeline(name: str, metric: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=PIPELINE_NAMESPACE,
                metric_name=metric,
                dimensions_map={"PipelineName": name},
                statistic=statistic,
                period=DAY,
                label=f"{name.removeprefix(props.names.prefix + '-')} {metric}",
            )

        pipelines = (props.names.training_pipeline, props.names.batch_pipeline)
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Default",
            dashboard_name=props.names.prefix,
            default_interval=Duration.days(7),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Endpoint invocations and errors",
                left=[served("Invocations"), served("Invocation4XXErrors"), served("Invocation5XXErrors")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint latency p99 (microseconds)",
                left=[served("ModelLatency", "p99"), served("OverheadLatency", "p99")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Invocations per instance",
                left=[served("InvocationsPerInstance")],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Pipeline executions per day",
                left=[pipeline(p, m) for p in pipelines for m in ("ExecutionSucceeded", "ExecutionFailed")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Pipeline execution duration (ms)",
                left=[pipeline(p, "ExecutionDuration", "Maximum") for p in pipelines],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Undelivered events (dead-letter queue)",
                left=[props.dead_letters.metric_approximate_number_of_messages_visible(period=PERIOD)],
                width=8,
            ),
        )
        if props.drift_alarm is not None:
            self.dashboard.add_widgets(
                cloudwatch.AlarmStatusWidget(title="Drift", alarms=[props.drift_alarm], width=8),
            )
        self.dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(props.alarms), width=24))
        region = Stack.of(self).region
        self.url = (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{props.names.prefix}"
        )
