"""The rehearsal: each Lambda function of a synthesized stage run as Lambda runs it, with the events its callers send.

- `functions(assembly, outdir)` reads every function from the templates: handler string, bundled asset in
  cdk.out, layers, resolved environment and role.
- `ExecutionEnvironment` starts one function in a process of its own (tests/lambda_runtime.py): only its
  asset, its layers and the runtime's boto3 are importable. Its AWS calls come back here, to `Backend`,
  which validates each one against botocore's model (enums, patterns, lengths), evaluates it against the
  function's role in the template (a denied call is answered AccessDenied, as AWS would), and answers it
  from moto or from a fake of what moto lacks.
- `ProviderFramework` is the CDK Provider framework's onEvent/isComplete loop, as the bundled framework.js
  in cdk.out runs it; `sample_event` builds AWS's documented event for a rule's pattern.

tests/test_rehearsal.py follows every wire of every stage with them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aws_events
import boto3
import lambda_runtime
from aws_strict import (
    REGION,
    Assembly,
    Call,
    Permission,
    denied,
    permissions_for,
    service_side_calls,
    stack_id,
    validate_request,
)
from botocore.exceptions import ClientError
from moto.events.models import EventPattern

from layers import build_layer

RUNTIME_DRIVER = Path(lambda_runtime.__file__)
# Set by Lambda itself; a function's configuration may not set them ("Defined runtime environment variables",
# Lambda Developer Guide), and Lambda refuses a function whose variables exceed 4 KB in all.
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
ENVIRONMENT_LIMIT_BYTES = 4096


@dataclass(frozen=True)
class Function:
    """One AWS::Lambda::Function as the template configures it, intrinsics resolved."""

    stack: str
    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    code: Path
    layers: tuple[Path, ...]
    environment: dict[str, str] = field(hash=False)
    role_arn: str = ""
    timeout: int = 3
    memory: int = 128
    log_group: str = ""
    log_level: str | None = None
    dead_letter_arn: str | None = None

    @property
    def is_python(self) -> bool:
        return self.runtime.startswith("python")


def _asset(outdir: Path, s3_key: str) -> Path:
    path = outdir / f"asset.{s3_key.removesuffix('.zip')}"
    if not path.is_dir():
        raise FileNotFoundError(f"no bundled asset {path.name} in {outdir}")
    return path


def functions(assembly: Assembly, outdir: Path) -> dict[str, Function]:
    """Every function of the stage, by ARN."""
    found = {}
    for stack, logical_id, resource in assembly.resources("AWS::Lambda::Function"):
        p = resource["Properties"]
        layers = []
        for layer in p.get("Layers", []):
            (layer_stack, layer_id) = (stack, layer["Ref"])
            content = assembly.templates[layer_stack]["Resources"][layer_id]["Properties"]["Content"]
            layers.append(_asset(outdir, content["S3Key"]))
        logging = p.get("LoggingConfig") or {}
        variables = (p.get("Environment") or {}).get("Variables", {})
        name = assembly.physical_name(stack, logical_id)
        function = Function(
            stack=stack,
            logical_id=logical_id,
            name=name,
            arn=assembly.attribute(stack, logical_id, "Arn"),
            handler=p["Handler"],
            runtime=p["Runtime"],
            code=_asset(outdir, p["Code"]["S3Key"]) if "S3Key" in p["Code"] else outdir,
            layers=tuple(layers),
            environment={k: str(v) for k, v in assembly.resolve(stack, variables).items()},
            role_arn=assembly.resolve(stack, p["Role"]),
            timeout=int(p.get("Timeout", 3)),
            memory=int(p.get("MemorySize", 128)),
            log_group=assembly.resolve(stack, logging["LogGroup"]) if "LogGroup" in logging else f"/aws/lambda/{name}",
            log_level=logging.get("ApplicationLogLevel") if logging.get("LogFormat") == "JSON" else None,
            dead_letter_arn=assembly.resolve(stack, p["DeadLetterConfig"]["TargetArn"]) if "DeadLetterConfig" in p else None,
        )
        found[function.arn] = function
    return found


def configuration_problems(function: Function) -> list[str]:
    """What Lambda refuses at deploy time: reserved variables and more than 4 KB of variables."""
    problems = [f"sets the reserved variable {name}" for name in sorted(set(function.environment) & RESERVED_VARIABLES)]
    size = sum(len(k.encode()) + len(v.encode()) for k, v in function.environment.items())
    if size > ENVIRONMENT_LIMIT_BYTES:
        problems.append(f"has {size} bytes of environment variables, over Lambda's {ENVIRONMENT_LIMIT_BYTES}")
    return [f"{function.logical_id} {p}" for p in problems]


# --- the runtime's own packages and the layers --------------------------------------------------------------


# Kept between runs (.cache/ is ignored by git): the runtime links, the local layer build and the bytecode.
CACHE = build_layer.CACHE / "rehearsal"


@cache
def runtime_directory() -> Path:
    """The SDK the Python runtime provides (boto3 and its dependencies), as links into this interpreter's."""
    directory = CACHE / f"runtime-{sys.version_info.major}.{sys.version_info.minor}"
    directory.mkdir(parents=True, exist_ok=True)
    for package in lambda_runtime.RUNTIME_PACKAGES:
        source = Path(__import__(package).__file__).resolve()
        target = source.parent if source.name == "__init__.py" else source
        link = directory / target.name
        if not link.exists():
            link.symlink_to(target)
    return directory


def _distributions(site: Path) -> list[str]:
    return sorted(p.name for p in site.glob("*.dist-info"))


@cache
def local_layer(asset: Path) -> Path:
    """The layer built for this interpreter instead of Lambda's, from the same pins and with the same trimming.

    The template's layer (built for Lambda's python and architecture) must hold exactly the same distributions.
    """
    target = build_layer.local_target()
    output = CACHE / f"layer-{build_layer.build_key(target)[:16]}"
    built = output / "python"
    if not built.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".layer-", dir=CACHE))
        build_layer.build(target, staging)
        staging.rename(output)
    if _distributions(asset / "python") != _distributions(built):
        raise ValueError(f"layer asset {asset.name} does not hold the distributions of layers/sagemaker_sdk/requirements.txt")
    return built


def bytecode_cache() -> Path:
    """Bytecode of every environment goes here (-X pycache_prefix), never into the assets."""
    return CACHE / "pycache"


# --- AWS, as the functions see it ---------------------------------------------------------------------------


def error_response(code: str, message: str, status: int = 400) -> dict:
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}


@dataclass
class Answered:
    """One call a function made, with what the backend did with it."""

    function: str
    call: Call
    outcome: str  # "answered", "error:<code>", "denied", "invalid"
    detail: str = ""


class Backend:
    """moto behind botocore's model and the caller's role; `fakes` answer what moto lacks.

    A fake is `(service, operation) -> callable(params) -> response`, raising ClientError for AWS's errors.
    """

    def __init__(self, assembly: Assembly, fakes: dict[tuple[str, str], Callable[[dict], dict]] | None = None) -> None:
        self.assembly = assembly
        self.fakes = dict(fakes or {})
        self.session = boto3.Session(region_name=REGION)
        self._clients: dict[tuple[str, str], Any] = {}
        self._statements: dict[str, list[dict]] = {}
        self.answered: list[Answered] = []
        self._lock = threading.Lock()

    def statements(self, role_arn: str) -> list[dict]:
        if role_arn not in self._statements:
            self._statements[role_arn] = self.assembly.role_statements(*self.assembly.role_logical_id(role_arn))
        return self._statements[role_arn]

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=region)
        return self._clients[key]

    def answer(self, function: Function, message: dict) -> dict:
        service, operation, region = message["service"], message["operation"], message["region"] or REGION
        params = lambda_runtime.decode(message["params"])
        call = Call(service, operation, params)
        with self._lock:
            try:
                return self._answer(function, call, region)
            except Exception as error:  # A gap of the harness: the function gets a 500, the test names the gap.
                self.answered.append(Answered(function.logical_id, call, "unanswered", f"{type(error).__name__}: {error}"))
                return {"type": "error", "response": error_response("InternalFailure", str(error), 500)}

    def _answer(self, function: Function, call: Call, region: str) -> dict:
        errors = validate_request(call.service, call.operation, call.params)
        if errors:
            self.answered.append(Answered(function.logical_id, call, "invalid", "; ".join(errors)))
            return {"type": "error", "response": error_response("ValidationException", "; ".join(errors))}
        refused = denied(self.statements(function.role_arn), permissions_for([call, *service_side_calls([call])]))
        if refused:
            self.answered.append(Answered(function.logical_id, call, "denied", "; ".join(refused)))
            code = "AccessDenied" if call.service == "s3" else "AccessDeniedException"
            return {"type": "error", "response": error_response(code, f"not authorized: {refused[0]}", 403)}
        try:
            fake = self.fakes.get((call.service, call.operation))
            if fake is not None:
                response = fake(call.params)
            else:
                method = self.client(call.service, region).meta.method_to_api_mapping
                name = {api: python for python, api in method.items()}[call.operation]
                response = getattr(self.client(call.service, region), name)(**call.params)
        except ClientError as error:
            self.answered.append(Answered(function.logical_id, call, f"error:{error.response['Error']['Code']}"))
            return {"type": "error", "response": lambda_runtime.encode(error.response)}
        except NotImplementedError as error:
            self.answered.append(Answered(function.logical_id, call, "unanswered", str(error)))
            return {"type": "error", "response": error_response("InternalFailure", f"moto lacks {call.operation}", 500)}
        self.answered.append(Answered(function.logical_id, call, "answered"))
        return {"type": "response", "response": lambda_runtime.encode(response)}

    def calls_of(self, function: Function) -> list[Answered]:
        return [a for a in self.answered if a.function == function.logical_id]


# --- one function's execution environment -------------------------------------------------------------------


@dataclass
class Invocation:
    result: Any = None
    error_type: str | None = None
    error_message: str = ""
    trace: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.error_type is not None


class ExecutionEnvironment:
    """One warm execution environment of `function`: started once, invoked one event at a time."""

    def __init__(self, function: Function, backend: Backend, workdir: Path) -> None:
        if not function.is_python:
            raise ValueError(f"{function.logical_id} runs {function.runtime}; only Python functions are rehearsed")
        self.function, self.backend = function, backend
        layers = os.pathsep.join(str(local_layer(layer)) for layer in function.layers)
        to_child, self._child_in = os.pipe()
        self._child_out, from_child = os.pipe()
        self.log = workdir / f"{function.logical_id}.log"
        with self.log.open("w") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-X",
                    f"pycache_prefix={bytecode_cache()}",
                    str(RUNTIME_DRIVER),
                    function.handler,
                    str(function.code),
                    layers,
                    str(runtime_directory()),
                    str(to_child),
                    str(from_child),
                ],
                env=self._variables(),
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(to_child, from_child),
            )
        os.close(to_child)
        os.close(from_child)
        self._to = os.fdopen(self._child_in, "w", encoding="utf-8")
        self._from = os.fdopen(self._child_out, "r", encoding="utf-8")
        self._lock = threading.Lock()

    def _variables(self) -> dict[str, str]:
        """The function's variables and what Lambda sets beside them."""
        f = self.function
        variables = {
            **f.environment,
            "_HANDLER": f.handler,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{f.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": f.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(f.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]0123456789abcdef",
            "AWS_ACCESS_KEY_ID": "ASIAREHEARSAL",
            "AWS_SECRET_ACCESS_KEY": "rehearsal",
            "AWS_SESSION_TOKEN": "rehearsal",
            "LAMBDA_TASK_ROOT": str(f.code),
            "LAMBDA_RUNTIME_DIR": str(runtime_directory()),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }
        if f.log_level:
            variables.update(AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL=f.log_level)
        return variables

    def invoke(self, event: Any) -> Invocation:
        f = self.function
        context = {
            "function_name": f.name,
            "invoked_function_arn": f.arn,
            "memory_limit_in_mb": f.memory,
            "aws_request_id": str(uuid.uuid4()),
            "log_group_name": f.log_group,
            "timeout_seconds": f.timeout,
        }
        with self._lock:
            self._send({"type": "invoke", "event": event, "context": context})
            while True:
                message = self._receive()
                if message["type"] == "call":
                    self._send(self.backend.answer(f, message))
                elif message["type"] == "result":
                    return Invocation(result=message["result"])
                else:
                    return Invocation(
                        error_type=message["errorType"], error_message=message["errorMessage"], trace=message["stackTrace"]
                    )

    def _send(self, message: dict) -> None:
        self._to.write(json.dumps(message) + "\n")
        self._to.flush()

    def _receive(self) -> dict:
        line = self._from.readline()
        if not line:
            raise RuntimeError(f"{self.function.logical_id}'s environment ended; its output:\n{self.output()}")
        return json.loads(line)

    def output(self) -> str:
        return self.log.read_text()[-4000:]

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._send({"type": "stop"})
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()


# --- CloudFormation and the CDK Provider framework -----------------------------------------------------------

# The framework's own code, bundled in cdk.out: what the emulation below relies on, spelled as framework.js has it.
FRAMEWORK_CONTRACT = (
    "Payload:JSON.stringify({...sanitizedPayload,ResponseURL:responseUrl})",
    "const physicalResourceId=onEventResult.PhysicalResourceId||defaultPhysicalResourceId(cfnRequest)",
    'cfnRequest.RequestType==="Delete"&&physicalResourceId!==cfnRequest.PhysicalResourceId',
    "{...cfnRequest,...onEventResult,PhysicalResourceId:physicalResourceId}",
    "const response={...event,...isCompleteResult,Data:{...event.Data,...isCompleteResult.Data}}",
    '"Data" is not allowed if "IsComplete" is "False"',
)
# "The total size of the response body can't exceed 4096 bytes" (CloudFormation User Guide, custom resource responses).
RESPONSE_LIMIT_BYTES = 4096


def cloudformation_properties(properties: dict) -> dict:
    """Custom resource properties as CloudFormation passes them: scalars as strings."""

    def text(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: text(v) for k, v in value.items()}
        if isinstance(value, list):
            return [text(v) for v in value]
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else str(value)

    return text(properties)


def custom_resource_request(
    request_type: str,
    assembly: Assembly,
    stack: str,
    logical_id: str,
    old_properties: dict | None = None,
    physical_id: str | None = None,
) -> dict:
    """The request CloudFormation sends to the service token ("Custom resource request objects")."""
    resource = assembly.templates[stack]["Resources"][logical_id]
    properties = cloudformation_properties(assembly.resolve(stack, resource["Properties"]))
    request = {
        "RequestType": request_type,
        "ServiceToken": properties["ServiceToken"],
        "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/signed",
        "StackId": stack_id(stack),
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": logical_id,
        "ResourceType": resource["Type"],
        "ResourceProperties": properties,
    }
    if request_type != "Create":
        request["PhysicalResourceId"] = physical_id
    if request_type == "Update":
        request["OldResourceProperties"] = old_properties if old_properties is not None else properties
    return request


@dataclass
class CustomResourceResponse:
    status: str
    physical_id: str | None = None
    data: dict = field(default_factory=dict)
    reason: str = ""
    polls: int = 0


class ProviderFramework:
    """The CDK Provider framework between CloudFormation and the user functions (framework.js, safeHandler).

    onEvent gets the request; its answer is merged into the request for isComplete, which is polled until
    it answers IsComplete; any error is a FAILED response whose reason is the error message.
    """

    MAX_POLLS = 20

    def __init__(self, on_event: ExecutionEnvironment, is_complete: ExecutionEnvironment | None) -> None:
        self.on_event, self.is_complete = on_event, is_complete

    def handle(self, request: dict) -> CustomResourceResponse:
        marker = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"
        if request["RequestType"] == "Delete" and request.get("PhysicalResourceId") == marker:
            return CustomResourceResponse("SUCCESS", marker)
        try:
            return self._handle(request)
        except FrameworkError as error:
            physical = request.get("PhysicalResourceId") or (marker if request["RequestType"] == "Create" else None)
            return CustomResourceResponse("FAILED", physical, reason=str(error))

    def _handle(self, request: dict) -> CustomResourceResponse:
        result = self._invoke(self.on_event, request)
        physical = result.get("PhysicalResourceId") or (
            request["RequestId"] if request["RequestType"] == "Create" else request["PhysicalResourceId"]
        )
        if request["RequestType"] == "Delete" and physical != request["PhysicalResourceId"]:
            raise FrameworkError(f'DELETE: cannot change the physical resource ID from "{request["PhysicalResourceId"]}"')
        event = {**request, **result, "PhysicalResourceId": physical}
        polls = 0
        while self.is_complete is not None:
            polls += 1
            if polls > self.MAX_POLLS:
                raise FrameworkError(f"isComplete did not complete within {self.MAX_POLLS} polls")
            answer = self._invoke(self.is_complete, event)
            if not answer.get("IsComplete"):
                if answer.get("Data"):
                    raise FrameworkError('"Data" is not allowed if "IsComplete" is "False"')
                continue
            event = {**event, **answer, "Data": {**(event.get("Data") or {}), **(answer.get("Data") or {})}}
            break
        response = {
            "Status": "SUCCESS",
            "StackId": request["StackId"],
            "RequestId": request["RequestId"],
            "PhysicalResourceId": physical,
            "LogicalResourceId": request["LogicalResourceId"],
            "Data": event.get("Data"),
        }
        if len(json.dumps(response).encode()) > RESPONSE_LIMIT_BYTES:
            raise FrameworkError(f"the response is over CloudFormation's {RESPONSE_LIMIT_BYTES} bytes")
        return CustomResourceResponse("SUCCESS", physical, dict(event.get("Data") or {}), polls=polls)

    @staticmethod
    def _invoke(environment: ExecutionEnvironment, payload: dict) -> dict:
        invocation = environment.invoke(payload)
        if invocation.failed:
            raise FrameworkError(f"{invocation.error_type}: {invocation.error_message}")
        if not isinstance(invocation.result, dict):
            raise FrameworkError(f"return values from user-handlers must be JSON objects. got: {invocation.result!r}")
        return invocation.result


class FrameworkError(Exception):
    """What the framework reports to CloudFormation as the FAILED reason."""


# --- EventBridge ----------------------------------------------------------------------------------------------


def _first(values: Any) -> Any:
    """A value the pattern's list accepts: a literal, or one built for a content filter."""
    for value in values:
        if not isinstance(value, dict):
            return value
        if "wildcard" in value:
            return value["wildcard"].replace("*", "x")
        if "prefix" in value:
            return f"{value['prefix']}x"
        if "numeric" in value:
            operator, bound = value["numeric"][:2]
            return bound + 1 if operator in (">", ">=") else bound - 1
        if "anything-but" in value:
            return "anything-else"
    raise ValueError(f"no value satisfies {values!r}")


def fill(event: dict, pattern: dict) -> dict:
    """`event` with every field the pattern names set to a value the pattern accepts."""
    result = dict(event)
    for key, wanted in pattern.items():
        if isinstance(wanted, dict):
            result[key] = fill(result.get(key) or {}, wanted)
        elif key == "resources":
            result[key] = [_first(wanted)]
        else:
            result[key] = _first(wanted)
    return result


def input_for(target: dict, event: dict) -> Any:
    """What EventBridge delivers to a target: the event, its Input, its InputPath, or its transformed input."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        raise NotImplementedError("InputPath targets are not rehearsed yet; add them to tests/rehearsal.py")
    transformer = target.get("InputTransformer")
    if transformer:
        values = {}
        for name, path in (transformer.get("InputPathsMap") or {}).items():
            value: Any = event
            for part in path.removeprefix("$.").split("."):
                value = value.get(part) if isinstance(value, dict) else None
            values[name] = value
        text = transformer["InputTemplate"]
        for name, value in values.items():
            text = text.replace(f"<{name}>", value if isinstance(value, str) else json.dumps(value))
        return json.loads(text) if text.startswith(("{", "[")) else text
    return event


# AWS's documented example event per detail-type (tests/aws_events.py), from the values a rule's pattern names.
SAMPLES: dict[str, Callable[[dict], dict]] = {
    "SageMaker Model Package State Change": lambda p: aws_events.model_package_state_change(
        _first(p["detail"]["ModelPackageGroupName"]), _first(p["detail"]["ModelApprovalStatus"]), version=1
    ),
    "SageMaker Endpoint State Change": lambda p: aws_events.endpoint_state_change(
        _first(p["detail"]["EndpointName"]), _first(p["detail"]["EndpointStatus"])
    ),
    "CloudWatch Alarm State Change": lambda p: aws_events.cloudwatch_alarm_state_change(
        _first(p["resources"]).split(":alarm:", 1)[1], _first(p["detail"]["state"]["value"])
    ),
    "Object Created": lambda p: aws_events.s3_object_created(
        _first(p["detail"]["bucket"]["name"]), _first(p["detail"]["object"]["key"])
    ),
    "ECR Image Action": lambda p: aws_events.ecr_image_action(
        _first(p["detail"]["repository-name"]), _first(p["detail"]["image-tag"])
    ),
    "ECR Image Scan": lambda p: aws_events.ecr_image_scan(_first(p["detail"]["repository-name"]), {"CRITICAL": 2}),
    "SageMaker Model Building Pipeline Execution Status Change": lambda p: aws_events.pipeline_execution_status_change(
        _first(p["detail"]["pipelineArn"]).rsplit("/", 1)[1], _first(p["detail"]["currentPipelineExecutionStatus"])
    ),
}


def sample_event(pattern: dict) -> dict:
    """AWS's example event for the pattern's detail-type, with the values the pattern names; it must match."""
    (detail_type,) = pattern["detail-type"]
    if detail_type not in SAMPLES:
        raise KeyError(f"no example event for {detail_type!r}; add AWS's documented one to tests/aws_events.py")
    event = fill(SAMPLES[detail_type](pattern), pattern)
    if not EventPattern.load(json.dumps(pattern)).matches_event(event):
        raise AssertionError(f"the example {detail_type!r} event does not match its rule's pattern {pattern}")
    return event


# --- Step Functions -----------------------------------------------------------------------------------------


class StateMachines:
    """Runs a synthesized state machine in moto's Step Functions interpreter (its port of LocalStack's).

    Its Lambda tasks go to the functions' execution environments, after the state machine's role is checked
    for lambda:InvokeFunction on them; Wait states do not wait.
    """

    def __init__(self, environment_of: Callable[[str], ExecutionEnvironment], backend: Backend) -> None:
        self.environment_of, self.backend = environment_of, backend
        self.invoked: list[tuple[str, Any]] = []

    def run(self, name: str, definition: str, role_arn: str, execution_input: dict) -> dict:
        from moto.core.config import default_user_config
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

        runner = self

        class LambdaClient:
            def invoke(self, FunctionName: str, Payload: str | bytes = b"{}", **_: Any) -> dict:
                return runner._invoke(role_arn, FunctionName, json.loads(Payload or b"{}"))

        patches = [
            (lambda_eval_utils, "boto_client_for", lambda **_: LambdaClient()),
            (wait_function.WaitFunction, "_wait_interval", lambda self, env, wait_seconds: None),
        ]
        saved = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in patches]
        config = default_user_config.setdefault("stepfunctions", {})
        previous = config.get("execute_state_machine", False)
        try:
            for owner, attribute, replacement in patches:
                setattr(owner, attribute, replacement)
            config["execute_state_machine"] = True
            sfn = boto3.client("stepfunctions", region_name=REGION)
            arn = sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn)["stateMachineArn"]
            execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))["executionArn"]
            for _ in range(600):
                described = sfn.describe_execution(executionArn=execution)
                if described["status"] != "RUNNING":
                    return described
                threading.Event().wait(0.05)
            raise TimeoutError(f"state machine {name} did not finish")
        finally:
            config["execute_state_machine"] = previous
            for owner, attribute, original in saved:
                setattr(owner, attribute, original)

    def _invoke(self, role_arn: str, function_arn: str, payload: Any) -> dict:
        refused = denied(
            self.backend.statements(role_arn), [Permission("lambda:InvokeFunction", [function_arn], why="a Task state")]
        )
        if refused:
            raise AssertionError(f"the state machine's role may not invoke its task: {refused}")
        self.invoked.append((function_arn, payload))
        invocation = self.environment_of(function_arn).invoke(payload)
        if invocation.failed:
            body = {"errorType": invocation.error_type, "errorMessage": invocation.error_message, "trace": invocation.trace}
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(body).encode())}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(invocation.result).encode())}


# --- a deployed stage, in moto ----------------------------------------------------------------------------------


def deploy(assembly: Assembly) -> None:
    """Create in moto what the templates declare and the functions use, named and encrypted as CloudFormation would."""
    s3 = boto3.client("s3", region_name=REGION)
    for stack, logical_id, resource in assembly.resources("AWS::S3::Bucket"):
        name = assembly.physical_name(stack, logical_id)
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        encryption = resource["Properties"].get("BucketEncryption")
        if encryption:
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                    "BucketKeyEnabled": r.get("BucketKeyEnabled", False),
                }
                for r in assembly.resolve(stack, encryption)["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    ecr = boto3.client("ecr", region_name=REGION)
    for stack, logical_id, resource in assembly.resources("AWS::ECR::Repository"):
        configuration = assembly.resolve(stack, resource["Properties"].get("EncryptionConfiguration") or {})
        ecr.create_repository(
            repositoryName=assembly.physical_name(stack, logical_id),
            encryptionConfiguration={"encryptionType": configuration["EncryptionType"], "kmsKey": configuration["KmsKey"]},
        )
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    for stack, _, resource in assembly.resources("AWS::SageMaker::ModelPackageGroup"):
        sagemaker.create_model_package_group(
            ModelPackageGroupName=assembly.resolve(stack, resource["Properties"]["ModelPackageGroupName"])
        )
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    for stack, logical_id, _ in assembly.resources("AWS::SNS::Topic"):
        sns.create_topic(Name=assembly.physical_name(stack, logical_id).rsplit(":", 1)[1])
    for stack, logical_id, _ in assembly.resources("AWS::SQS::Queue"):
        sqs.create_queue(QueueName=assembly.physical_name(stack, logical_id).rsplit("/", 1)[1])
    codebuild = boto3.client("codebuild", region_name=REGION)
    for stack, logical_id, resource in assembly.resources("AWS::CodeBuild::Project"):
        p = assembly.resolve(stack, resource["Properties"])
        codebuild.create_project(
            name=assembly.physical_name(stack, logical_id),
            source={"type": p["Source"]["Type"], "location": p["Source"]["Location"]},
            artifacts={"type": p["Artifacts"]["Type"]},
            environment={k[0].lower() + k[1:]: v for k, v in p["Environment"].items() if k in ("Type", "Image", "ComputeType")},
            serviceRole=p["ServiceRole"],
        )
    scheduler = boto3.client("scheduler", region_name=REGION)
    for stack, logical_id, resource in assembly.resources("AWS::Scheduler::Schedule"):
        p = assembly.resolve(stack, resource["Properties"])
        scheduler.create_schedule(
            Name=assembly.physical_name(stack, logical_id),
            ScheduleExpression=p["ScheduleExpression"],
            ScheduleExpressionTimezone=p.get("ScheduleExpressionTimezone", "UTC"),
            FlexibleTimeWindow=p["FlexibleTimeWindow"],
            State=p.get("State", "ENABLED"),
            Target={"Arn": p["Target"]["Arn"], "RoleArn": p["Target"]["RoleArn"]},
        )
