"""What runs the platform by itself: alerts, the endpoint deployer, and the pipelines' triggers."""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from constructs import Construct

from lambdas.common.contracts import SystemTestSettings
from lambdas.common.names import ResourceNames
from pipeline_scripts.dataset import Dataset
from stacks.constructs.alerts import Alerts, AlertsProps
from stacks.constructs.cost_budget import CostBudget, CostBudgetProps
from stacks.constructs.endpoint_deployer import EndpointDeployer, EndpointDeployerProps
from stacks.constructs.environment_dashboard import EnvironmentDashboard, EnvironmentDashboardProps
from stacks.constructs.model_monitoring import ModelMonitoring, ModelMonitoringProps
from stacks.constructs.model_package_group import ModelPackageGroup
from stacks.constructs.pipeline_triggers import PipelineTriggers, PipelineTriggersProps
from stacks.constructs.registered_pipeline import RegisteredPipeline
from stacks.constructs.system_test_state_machine import SystemTestStateMachine, SystemTestStateMachineProps
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.storage import DataStores
from stacks.synth.config import EnvironmentConfig


class OrchestrationStack(Stack):
    """Schedule -> pipeline; new data or image -> training; approval -> deployer -> endpoint; failure -> alert."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        dataset: Dataset,
        environment: EnvironmentConfig,
        stores: DataStores,
        job_role: iam.IRole,
        training_image_tag: str,
        model_package_group: ModelPackageGroup,
        system_test_invoker_account: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.endpoint_name = names.endpoint
        removal = RemovalPolicy.RETAIN if environment.storage.retain_data else RemovalPolicy.DESTROY
        self.training_pipeline = RegisteredPipeline(self, "TrainingPipeline", pipeline_name=names.training_pipeline)
        self.batch_pipeline = RegisteredPipeline(self, "BatchPipeline", pipeline_name=names.batch_pipeline)
        network = VpcPlacement(self, "Network", network=environment.network) if environment.network else None

        # Construct ids are part of the logical ids of what they hold: renaming one replaces its resources.
        self.alerts = Alerts(
            self,
            "Alerts",
            props=AlertsProps(names=names, alert_email=environment.alert_email, removal_policy=removal),
        )
        self.alerts.alert_on_critical_findings([stores.training_repository_name, stores.inference_repository_name])
        self.monitoring = (
            ModelMonitoring(
                self,
                "Monitoring",
                props=ModelMonitoringProps(
                    names=names,
                    captured_columns=dataset.captured_columns,
                    monitoring=environment.monitoring,
                    training_pipeline=self.training_pipeline,
                    artifacts_bucket=stores.artifacts_bucket,
                    monitoring_access_policy=stores.monitoring_access_policy,
                    alerts=self.alerts.topic,
                    dead_letters=self.alerts.dead_letters,
                    log_groups=stores.log_groups,
                    network=network,
                ),
            )
            if environment.monitoring.enabled
            else None
        )
        self.deployer = EndpointDeployer(
            self,
            "DeployEndpoint",
            props=EndpointDeployerProps(
                names=names,
                endpoint=environment.endpoint,
                model_package_group=model_package_group,
                job_role=job_role,
                data_key=stores.key,
                artifacts_bucket=stores.artifacts_bucket,
                alerts=self.alerts.topic,
                dead_letters=self.alerts.dead_letters,
                log_groups=stores.log_groups,
                monitoring=environment.monitoring,
                model_monitoring=self.monitoring,
                network=network,
            ),
        )
        self.triggers = PipelineTriggers(
            self,
            "Triggers",
            props=PipelineTriggersProps(
                training_pipeline=self.training_pipeline,
                batch_pipeline=self.batch_pipeline,
                raw_data_bucket=stores.raw_data_bucket,
                artifacts_bucket=stores.artifacts_bucket,
                training_repository_name=stores.training_repository_name,
                training_image_tag=training_image_tag,
                storage=environment.storage,
                batch_prediction=environment.batch_prediction,
                schedules=environment.schedules,
                alerts=self.alerts.topic,
                dead_letters=self.alerts.dead_letters,
            ),
        )
        self.system_test = SystemTestStateMachine(
            self,
            "SystemTest",
            props=SystemTestStateMachineProps(
                names=names,
                model_package_group=model_package_group,
                settings=SystemTestSettings(
                    environment=environment.name,
                    kms_key_arn=stores.key.key_arn,
                    buckets=(
                        stores.raw_data_bucket.bucket_name,
                        stores.features_bucket.bucket_name,
                        stores.artifacts_bucket.bucket_name,
                    ),
                    repositories=(stores.training_repository_name, stores.inference_repository_name),
                    pipelines=(names.training_pipeline, names.batch_pipeline),
                    model_package_group_name=model_package_group.name,
                    schedules=tuple(
                        f"{schedule.schedule_name}={'ENABLED' if enabled else 'DISABLED'}"
                        for schedule, enabled in self.triggers.schedule_states
                    ),
                    endpoint_name=self.endpoint_name,
                    data_capture_s3_uri=self.deployer.settings.data_capture_s3_uri,
                    max_latency_ms=environment.endpoint.max_latency_ms,
                    alerts_topic_arn=self.alerts.topic.topic_arn,
                ),
                read_policy=stores.system_test_read_policy,
                alerts=self.alerts.topic,
                schedule_arns=tuple(schedule.schedule_arn for schedule, _ in self.triggers.schedule_states),
                log_groups=stores.log_groups,
                invoker_account=system_test_invoker_account,
                network=network,
            ),
        )
        # `make validate ENV=<name>` reads what to check from here.
        CfnOutput(
            self,
            "SystemTestSettings",
            value=self.to_json_string(self.system_test.settings.to_dict()),
            description="What the system test and make validate check in this environment",
        )
        CfnOutput(self, "SystemTestStateMachineArn", value=self.system_test.state_machine.state_machine_arn)
        self.budget = CostBudget(
            self,
            "Budget",
            props=CostBudgetProps(
                names=names,
                monthly_usd=environment.budget.monthly_usd,
                alerts=self.alerts,
            ),
        )
        alarms = tuple(c for c in self.node.find_all() if isinstance(c, (cloudwatch.Alarm, cloudwatch.CompositeAlarm)))
        self.dashboard = EnvironmentDashboard(
            self,
            "Dashboard",
            props=EnvironmentDashboardProps(
                names=names,
                dead_letters=self.alerts.dead_letters,
                alarms=alarms,
                drift_alarm=self.monitoring.drift_alarm if self.monitoring else None,
            ),
        )
        CfnOutput(self, "DashboardUrl", value=self.dashboard.url, description="This environment's CloudWatch dashboard")
