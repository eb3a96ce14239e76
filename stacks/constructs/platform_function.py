"""A Lambda function with the platform's defaults: the layer's runtime and architecture, JSON logs, its own log group.

Named so that it cannot be taken for aws-cdk's alpha `PythonFunction`, which bundles in Docker; this one
bundles locally (stacks/synth/bundling.py).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from lambdas.common.contracts import SETTINGS_VARIABLE, Settings
from layers.build_layer import LAMBDA_TARGET
from stacks.constructs.vpc_placement import VpcPlacement
from stacks.synth.log_groups import LogGroups
from stacks.synth.nag import acknowledge_compliance

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
if RUNTIME.name != f"python{LAMBDA_TARGET.python_version}" or ARCHITECTURE.name != LAMBDA_TARGET.architecture:
    raise RuntimeError(f"Lambda runtime {RUNTIME.name}/{ARCHITECTURE.name} differs from the layer target {LAMBDA_TARGET.key}")


class PlatformFunction(Construct):
    """`function` logs JSON to `log_group`, the environment's encrypted group `<prefix>/<name>`.

    Lambda's advanced logging controls set the application log level; Powertools' Logger follows it
    (AWS_LAMBDA_LOG_LEVEL), so every handler logs one structured style at the level the stack chose.
    `settings` travels as the SETTINGS variable (`settings_json`), which the handler reads back typed.
    A function is either invoked by a `synchronous_caller` (named for its compliance acknowledgment) or has a
    `dead_letter_queue`. With a `network`, it runs in the environment's subnets.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        role: iam.IRole,
        description: str,
        name: str,
        log_groups: LogGroups,
        settings: Settings | None = None,
        synchronous_caller: str | None = None,
        environment: dict[str, str] | None = None,
        layers: list[lambda_.ILayerVersion] | None = None,
        timeout: Duration | None = None,
        memory_size: int = 256,
        handler: str = "handler.handler",
        network: VpcPlacement | None = None,
        **function_options,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings_json = Stack.of(self).to_json_string(settings.to_dict()) if settings else None
        if self.settings_json:
            environment = {SETTINGS_VARIABLE: self.settings_json, **(environment or {})}
        self.log_group = log_groups.create(self, "Logs", name)
        if network is not None:
            function_options.update(network.function_options())
            network.grant_lambda_network_interfaces(role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=code,
            role=role,
            description=description,
            environment=environment,
            layers=layers,
            timeout=timeout or Duration.seconds(60),
            memory_size=memory_size,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            **function_options,
        )
        self.log_group.grant_write(role)
        # An asynchronous event that fails every retry is kept only in a dead-letter queue; a synchronous caller
        # gets the error itself.
        if synchronous_caller is not None:
            acknowledge_compliance(
                self.function,
                "LambdaDLQ",
                f"Invoked synchronously by {synchronous_caller}, which gets and reports the error; a dead-letter "
                "queue holds only failed asynchronous invocations.",
            )
        elif "dead_letter_queue" not in function_options:
            raise ValueError(f"{self.node.path}: an asynchronously invoked function needs a dead_letter_queue")
