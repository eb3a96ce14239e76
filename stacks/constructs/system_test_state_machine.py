"""The environment's system test: a Step Functions state machine of independent checks, one Lambda running each.

Every resource check is a branch of its own; the model checks run in order in one branch (serving the
latest approved package, answering the held-out sample as the package does offline and fast enough,
then, after a wait, its captured requests in S3). A failing or erroring check never stops another: the
report step collects every branch's finding, publishes them to the environment's topic and is the
execution's output; the execution then fails when a check failed, so a delivery pipeline stops on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from lambdas.common.contracts import SystemTestSettings
from lambdas.common.names import ResourceNames
from stacks.constructs.model_package_group import ModelPackageGroup
from stacks.constructs.platform_function import PlatformFunction
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.arns import sagemaker_arn
from stacks.synth.bundling import function_code
from stacks.synth.log_groups import LogGroups
from stacks.synth.nag import acknowledge_iam5, arn_finding, resource_finding

RESOURCE_CHECKS = (
    "buckets_encrypted",
    "repositories_present",
    "pipelines_registered",
    "package_group_present",
    "schedules_in_state",
)
# Data capture writes its files to S3 within minutes of the requests (SageMaker Developer Guide, "Capture data").
CAPTURE_WAIT = Duration.minutes(5)


@dataclass(frozen=True)
class SystemTestStateMachineProps:
    names: ResourceNames
    settings: SystemTestSettings
    model_package_group: ModelPackageGroup
    read_policy: iam.IManagedPolicy
    alerts: sns.ITopic
    schedule_arns: tuple[str, ...]
    log_groups: LogGroups
    # The delivery pipeline's account, which may run this test through a role of this environment.
    invoker_account: str | None = None
    # The environment's VPC, which the function runs in; None outside any VPC.
    network: VpcPlacement | None = None


class SystemTestStateMachine(Construct):
    """`state_machine` runs every check of `settings`; `function` is the one Lambda behind its steps."""

    def __init__(self, scope: Construct, construct_id: str, *, props: SystemTestStateMachineProps) -> None:
        super().__init__(scope, construct_id)
        self.settings = props.settings
        role = self._role(props)
        self.function = PlatformFunction(
            self,
            "Check",
            code=function_code("system_test"),
            role=role,
            description="System test: one check of the deployed environment, or the report of all",
            timeout=Duration.minutes(5),
            name="system-test",
            log_groups=props.log_groups,
            network=props.network,
            synchronous_caller="the system test's state machine",
            settings=props.settings,
        ).function
        log_group = props.log_groups.create(self, "Logs", "system-test", state_machine=True)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=props.names.system_test,
            definition_body=sfn.DefinitionBody.from_chainable(self._definition()),
            timeout=Duration.minutes(30),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        self._acknowledge(role)
        if props.invoker_account:
            self._invoker(props.names, props.invoker_account)

    def _invoker(self, names: ResourceNames, account: str) -> None:
        """The role the delivery pipeline's Step Functions action assumes to start this test and follow it."""
        invoker = iam.Role(
            self,
            "InvokerRole",
            role_name=names.system_test_invoker,
            assumed_by=iam.AccountPrincipal(account),
            description="The delivery pipeline starts this environment's system test and waits for its result",
        )
        name = names.system_test
        # What the action does with the role: describe the state machine, start it, follow the execution
        # (CodePipeline User Guide, "Manage the CodePipeline service role", Step Functions invoke action).
        self.state_machine.grant_start_execution(invoker)
        invoker.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:DescribeStateMachine"], resources=[self.state_machine.state_machine_arn])
        )
        invoker.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[
                    Stack.of(self).format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{name}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        acknowledge_iam5(
            invoker.node.find_child("DefaultPolicy"),
            {
                arn_finding(self, "states", f"execution:{name}:*"): "The executions of this one state machine.",
            },
        )

    def _invoke(self, state_id: str, payload: dict, result_path: str | None = None) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self,
            state_id,
            lambda_function=self.function,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            result_path=result_path,
        )

    def _error(self, state_id: str, check: str) -> sfn.Pass:
        """A check whose Lambda failed outright (timeout, throttling): an "error" finding, not a stopped test."""
        return sfn.Pass(self, state_id, parameters={"check": check, "status": "error", "finding.$": "$.Cause"}, result_path="$")

    def _definition(self) -> sfn.IChainable:
        checks = sfn.Parallel(self, "Checks", comment="Every check runs; none stops another")
        for check in RESOURCE_CHECKS:
            name = check.title().replace("_", "")
            checks.branch(self._invoke(name, {"check": check}).add_catch(self._error(f"{name}Error", check)))
        checks.branch(self._model_checks())
        report = self._invoke("Report", {"results.$": "$"})
        verdict = (
            sfn.Choice(self, "Passed?")
            .when(sfn.Condition.boolean_equals("$.passed", True), sfn.Succeed(self, "SystemTestPassed"))
            .otherwise(sfn.Fail(self, "SystemTestFailed", error="SystemTestFailed", cause_path="$.summary"))
        )
        return checks.next(report).next(verdict)

    def _model_checks(self) -> sfn.IChainable:
        failed = self._error("ModelChecksError", "model checks")
        serves = self._invoke("EndpointServesLatest", {"check": "endpoint_serves_latest"}, "$.serves")
        reproduces = self._invoke(
            "EndpointReproducesOfflinePredictions", {"check": "endpoint_reproduces_offline_predictions"}, "$.reproduces"
        )
        capture = self._invoke(
            "DataCaptureLands", {"check": "data_capture_lands", "since.$": "$.reproduces.sent_at"}, "$.capture"
        )
        for step in (serves, reproduces, capture):
            step.add_catch(failed)
        results = sfn.Pass(self, "ModelResults", parameters={"results.$": "States.Array($.serves, $.reproduces, $.capture)"})
        nothing_sent = sfn.Pass(
            self,
            "NoRequestsSent",
            result=sfn.Result.from_object(
                {"check": "data_capture_lands", "status": "not-applicable", "finding": "no requests were sent"}
            ),
            result_path="$.capture",
        )
        wait = sfn.Wait(self, "WaitForCapture", time=sfn.WaitTime.duration(CAPTURE_WAIT))
        return serves.next(reproduces).next(
            sfn.Choice(self, "RequestsSent?")
            .when(
                # An errored check has no request count: a missing field would fail the Choice state itself.
                sfn.Condition.and_(
                    sfn.Condition.is_present("$.reproduces.requests"),
                    sfn.Condition.number_greater_than("$.reproduces.requests", 0),
                ),
                wait.next(capture).next(results),
            )
            .otherwise(nothing_sent.next(results))
        )

    def _role(self, props: SystemTestStateMachineProps) -> iam.Role:
        stack, s = Stack.of(self), props.settings
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="System test: reads this environment's resources and invokes its endpoint",
        )
        role.add_managed_policy(props.read_policy)
        props.model_package_group.grant_read_packages(role)
        props.model_package_group.grant_describe_group(role)
        statements = [
            (
                ["ecr:DescribeRepositories"],
                [stack.format_arn(service="ecr", resource="repository", resource_name=r) for r in s.repositories],
            ),
            (["sagemaker:DescribePipeline"], [sagemaker_arn(self, "pipeline", p) for p in s.pipelines]),
            (["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"], [sagemaker_arn(self, "endpoint", s.endpoint_name)]),
            (["scheduler:GetSchedule"], list(props.schedule_arns)),
        ]
        for actions, resources in statements:
            role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))
        props.alerts.grant_publish(role)
        return role

    def _acknowledge(self, role: iam.Role) -> None:
        acknowledge_iam5(
            role.node.find_child("DefaultPolicy"),
            {
                "Action::kms:GenerateDataKey*": "Part of the topic's own grant method: publishing to the KMS-encrypted "
                "alerts topic.",
            },
        )
        machine_policy = self.state_machine.role.node.find_child("DefaultPolicy")
        acknowledge_iam5(
            machine_policy,
            {
                resource_finding(self, self.function.function_arn, ":*"): "The state machine invokes the check function's "
                "versions and aliases (LambdaInvoke's grant).",
                "Resource::*": "X-Ray tracing and CloudWatch Logs delivery support no resource-level permissions.",
            },
        )
