"""Every wire of every stage, followed as AWS follows it: the first deploy, the day after, and the stack's deletion.

Each Lambda function runs from its bundled asset in cdk.out, by its synthesized Handler string, in a process
where nothing of the repository is importable (tests/rehearsal.py). It is invoked only through what invokes it
in the templates: the CDK Provider framework for custom resources, EventBridge rules with AWS's documented
events, the system test's state machine in moto's Step Functions interpreter, and the SageMaker Pipelines
Lambda steps with the arguments of the pipeline definitions. Every AWS call it makes is validated against
botocore's model and evaluated against its role before moto answers it.

A function, custom resource, rule target or task that no wire below reaches fails
`test_every_wire_is_followed`, naming it: a new one is rehearsed in the change that adds it.
"""

from __future__ import annotations

import ast
import json
import re
import threading
from dataclasses import dataclass, field

import boto3
import pytest
import rehearsal
from aws_strict import ACCOUNT, REGION, Assembly
from conftest import ENVIRONMENTS, approved_package, template_pipeline_settings
from moto import mock_aws
from pipeline_steps import Definition
from sagemaker_fakes import MonitoringSchedules, client_error

# Node.js functions aws-cdk-lib writes for its own constructs, each with what invokes it. They are CDK's code;
# the rehearsal follows the wire through them (the Provider framework) or leaves them to aws-cdk-lib.
CDK_HANDLERS = {
    "framework.onEvent": "the Provider framework's entry point for a custom resource",
    "framework.isComplete": "the Provider framework's waiter, polling the user isComplete function",
    "framework.onTimeout": "the Provider framework's waiter, failing a custom resource that timed out",
    "index.handler": "aws-cdk-lib's S3 auto-delete-objects custom resource (non-production buckets)",
}
CDK_CUSTOM_RESOURCES = {"Custom::S3AutoDeleteObjects"}
# The one denial the SDK is built to survive: boto3's Bucket.load catches AccessDenied from ListBuckets
# (boto3/s3/inject.py, bucket_load), and the SDK then checks its default bucket with ListObjectsV2.
TOLERATED_DENIALS = {("s3", "ListBuckets")}


@dataclass
class Stage:
    name: str
    assembly: Assembly
    functions: dict[str, rehearsal.Function]
    backend: rehearsal.Backend
    workdir: object
    environments: dict[str, rehearsal.ExecutionEnvironment] = field(default_factory=dict)
    followed: set[str] = field(default_factory=set)
    stack_status: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def environment(self, arn: str) -> rehearsal.ExecutionEnvironment:
        """One warm environment per function, also when a Parallel state's branches ask at once."""
        with self.lock:
            if arn not in self.environments:
                self.environments[arn] = rehearsal.ExecutionEnvironment(self.functions[arn], self.backend, self.workdir)
            return self.environments[arn]

    def invoke(self, arn: str, event, wire: str) -> rehearsal.Invocation:
        self.followed.add(wire)
        invocation = self.environment(arn).invoke(event)
        return invocation

    def function(self, description_start: str) -> rehearsal.Function:
        (stack, logical_id) = next(
            (s, i)
            for s, i, r in self.assembly.resources("AWS::Lambda::Function")
            if str(r["Properties"].get("Description", "")).startswith(description_start)
        )
        return next(f for f in self.functions.values() if f.logical_id == logical_id and f.stack == stack)


def _fakes(stage_status: dict[str, str]) -> dict:
    """What moto lacks, answered as the API references document it."""
    schedules = MonitoringSchedules()
    session = boto3.Session(region_name=REGION)
    schedules.install(session.events)

    def monitoring(operation: str):
        client = session.client("sagemaker", region_name=REGION)
        method = {api: python for python, api in client.meta.method_to_api_mapping.items()}[operation]
        return lambda params: getattr(client, method)(**params)

    def describe_stacks(params: dict) -> dict:
        stack_id = params["StackName"]
        name = stack_id.split("/")[1] if stack_id.startswith("arn:") else stack_id
        if name not in stage_status:
            raise client_error("DescribeStacks", "ValidationError", f"Stack with id {stack_id} does not exist")
        return {
            "Stacks": [
                {
                    "StackId": stack_id,
                    "StackName": name,
                    "CreationTime": "2026-12-03T06:00:00Z",
                    "StackStatus": stage_status[name],
                }
            ]
        }

    fakes = {
        ("sagemaker", op): monitoring(op) for op in [f"{v}MonitoringSchedule" for v in ("Create", "Update", "Describe", "Delete")]
    }
    fakes.update(
        {("sagemaker", op): monitoring(op) for op in ("CreateDataQualityJobDefinition", "DeleteDataQualityJobDefinition")}
    )
    fakes[("sagemaker", "UpdateEndpoint")] = lambda params: {
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{params['EndpointName']}"
    }
    fakes[("cloudformation", "DescribeStacks")] = describe_stacks
    return fakes


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def stage(request, synthesized, assemblies, pipeline_definitions, tmp_path_factory):
    """One stage deployed to moto; pipeline_definitions are built first, in moto of their own."""
    name = request.param
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            patch.setenv(key, value)
        with mock_aws():
            assembly = assemblies[name]
            rehearsal.deploy(assembly)
            status: dict[str, str] = {}
            backend = rehearsal.Backend(assembly, _fakes(status))
            stage = Stage(
                name,
                assembly,
                rehearsal.functions(assembly, synthesized.outdir),
                backend,
                tmp_path_factory.mktemp(f"rehearsal-{name}"),
                stack_status=status,
            )
            yield stage
            for environment in stage.environments.values():
                environment.stop()


def _custom_resources(stage: Stage) -> list[tuple[str, str, dict]]:
    return [
        (s, i, r)
        for s, template in stage.assembly.templates.items()
        for i, r in template["Resources"].items()
        if r["Type"].startswith("Custom::") or r["Type"] == "AWS::CloudFormation::CustomResource"
    ]


def _provider(stage: Stage, service_token: str) -> rehearsal.ProviderFramework:
    framework = stage.functions[service_token]
    assert framework.handler == "framework.onEvent", f"{service_token} is not a CDK Provider framework onEvent function"
    on_event = framework.environment["USER_ON_EVENT_FUNCTION_ARN"]
    is_complete = framework.environment.get("USER_IS_COMPLETE_FUNCTION_ARN")
    return rehearsal.ProviderFramework(stage.environment(on_event), stage.environment(is_complete) if is_complete else None)


def test_the_bundled_provider_framework_is_the_one_emulated(synthesized, stage):
    for token in {
        r["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
        for _, _, r in _custom_resources(stage)
        if r["Type"] not in CDK_CUSTOM_RESOURCES
    }:
        framework = next(f for f in stage.functions.values() if f.logical_id == token)
        code = (framework.code / "framework.js").read_text()
        missing = [expression for expression in rehearsal.FRAMEWORK_CONTRACT if expression not in code]
        assert not missing, f"aws-cdk-lib's Provider framework changed; review tests/rehearsal.py against {missing}"


def test_every_function_is_deployable_and_known(stage):
    problems = [p for f in stage.functions.values() for p in rehearsal.configuration_problems(f)]
    assert problems == []
    unknown = [f.logical_id for f in stage.functions.values() if not f.is_python and f.handler not in CDK_HANDLERS]
    assert unknown == [], "Node.js functions the rehearsal does not know; follow their wires in tests/test_rehearsal.py"


def test_every_python_entry_point_logs_with_the_lambda_context(stage):
    """Powertools' inject_lambda_context on the function each synthesized Handler names, in its bundled asset: every
    log line then carries the request id and the function's name."""
    undecorated = []
    for function in stage.functions.values():
        if not function.is_python:
            continue
        module, _, name = function.handler.rpartition(".")
        tree = ast.parse((function.code / f"{module.replace('.', '/')}.py").read_text())
        (entry,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name]
        decorators = [ast.unparse(d) for d in entry.decorator_list]
        if "logger.inject_lambda_context" not in decorators:
            undecorated.append(f"{function.logical_id}: {function.handler}")
    assert undecorated == []


def _create_everything(stage: Stage) -> dict[str, rehearsal.CustomResourceResponse]:
    """The first deploy: each custom resource's Create, in template order (the images before the pipelines)."""
    created = {}
    for stack, logical_id, resource in _custom_resources(stage):
        if resource["Type"] in CDK_CUSTOM_RESOURCES:
            continue
        stage.stack_status[stack] = "CREATE_IN_PROGRESS"
        request = rehearsal.custom_resource_request("Create", stage.assembly, stack, logical_id)
        stage.followed.add(f"custom resource {logical_id}")
        created[logical_id] = _provider(stage, request["ServiceToken"]).handle(request)
        stage.stack_status[stack] = "CREATE_COMPLETE"
    return created


def test_the_first_deploy_creates_images_and_pipelines_and_starts_training(stage):
    created = _create_everything(stage)
    failed = {k: v.reason for k, v in created.items() if v.status != "SUCCESS"}
    assert failed == {}
    settings = template_pipeline_settings(stage.assembly)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    for name in (settings.training_pipeline_name, settings.batch_pipeline_name):
        assert sagemaker.describe_pipeline(PipelineName=name)["PipelineStatus"] == "Active"
    executions = sagemaker.list_pipeline_executions(PipelineName=settings.training_pipeline_name)["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionDisplayName"] for e in executions] == ["new-training-image"]
    builds = boto3.client("codebuild", region_name=REGION).list_builds()["ids"]
    assert len(builds) == 1, "the first deploy builds the missing images once"


def _registration(stage: Stage) -> tuple[str, str, dict]:
    return next(r for r in _custom_resources(stage) if r[2]["Type"] == "Custom::SageMakerPipelines")


def _update(stage: Stage, new: dict, old: dict, status: str) -> rehearsal.CustomResourceResponse:
    """An Update of the registration from the `old` settings to the `new`, while the stack is in `status`."""
    stack, logical_id, _ = _registration(stage)
    current = rehearsal.custom_resource_request("Create", stage.assembly, stack, logical_id)["ResourceProperties"]
    settings = template_pipeline_settings(stage.assembly)
    physical = f"{settings.training_pipeline_name}|{settings.batch_pipeline_name}"
    old_properties = {**current, "Settings": json.dumps(old)}
    request = rehearsal.custom_resource_request("Update", stage.assembly, stack, logical_id, old_properties, physical)
    request["ResourceProperties"] = {**current, "Settings": json.dumps(new)}
    stage.stack_status[stack] = status
    return _provider(stage, request["ServiceToken"]).handle(request)


def _training_runs(stage: Stage) -> int:
    name = template_pipeline_settings(stage.assembly).training_pipeline_name
    client = boto3.client("sagemaker", region_name=REGION)
    return len(client.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"])


def test_an_update_trains_on_a_new_image_and_a_rollback_does_not(stage):
    current = template_pipeline_settings(stage.assembly).to_dict()
    older = {**current, "training_image_uri": current["training_image_uri"].rsplit(":", 1)[0] + ":sha-0000000000000000"}
    before = _training_runs(stage)
    assert _update(stage, current, older, "UPDATE_IN_PROGRESS").status == "SUCCESS"
    assert _training_runs(stage) == before + 1, "a new training image trains"
    # A later step of that deploy fails: CloudFormation rolls back with the older settings as the new ones.
    assert _update(stage, older, current, "UPDATE_ROLLBACK_IN_PROGRESS").status == "SUCCESS"
    assert _training_runs(stage) == before + 1, "a rollback registers the previous pipelines and trains nothing"


def _lambda_steps(stage: Stage, pipeline_definitions) -> list[tuple[str, str, dict]]:
    settings, built = pipeline_definitions[stage.name]
    steps = []
    for pipeline, raw in built.items():
        definition = Definition(raw, settings)
        for name, step in definition.steps.items():
            if step["Type"] == "Lambda":
                steps.append((f"{pipeline}/{name}", step["FunctionArn"], definition.concrete(step["Arguments"]), step))
    return steps


def test_pipeline_lambda_steps_answer_every_declared_output(stage, pipeline_definitions):
    """SageMaker Pipelines invokes a Lambda step with its arguments and reads each declared output from the answer."""
    steps = _lambda_steps(stage, pipeline_definitions)
    assert len(steps) == 2
    for name, arn, arguments, step in steps:
        invocation = stage.invoke(arn, arguments, f"pipeline step {name}")
        assert not invocation.failed, f"{name}: {invocation.error_type}: {invocation.error_message}"
        declared = {o["OutputName"]: o["OutputType"] for o in step["OutputParameters"]}
        assert set(declared) <= set(invocation.result), f"{name} lacks outputs {set(declared) - set(invocation.result)}"
        assert all(isinstance(invocation.result[k], str) for k, t in declared.items() if t == "String"), name
        assert invocation.result["status"] in ("no-data", "no-approved-model"), "a fresh environment has nothing to do yet"


def test_the_system_test_passes_on_a_fresh_environment(stage):
    machines = list(stage.assembly.resources("AWS::StepFunctions::StateMachine"))
    ours = [(s, i, r) for s, i, r in machines if "system-test" in json.dumps(r["Properties"].get("StateMachineName", ""))]
    assert len(ours) == 1
    stack, logical_id, machine = ours[0]
    definition = stage.assembly.resolve(stack, machine["Properties"]["DefinitionString"])
    role = stage.assembly.resolve(stack, machine["Properties"]["RoleArn"])
    runner = rehearsal.StateMachines(lambda arn: stage.environment(arn), stage.backend)
    described = runner.run("system-test", definition, role, {})
    for arn, _ in runner.invoked:
        stage.followed.add(f"state machine {logical_id} -> {stage.functions[arn].logical_id}")
    assert described["status"] == "SUCCEEDED", described.get("cause") or described
    report = json.loads(described["output"])
    assert report["passed"] is True
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert {s for c, s in statuses.items() if c.startswith(("buckets", "repositories", "pipelines", "package", "schedules"))} == {
        "pass"
    }
    assert set(statuses.values()) <= {"pass", "not-applicable"}


def _rule_targets(stage: Stage) -> list[tuple[str, str, dict, dict]]:
    found = []
    for stack, logical_id, rule in stage.assembly.resources("AWS::Events::Rule"):
        properties = stage.assembly.resolve(stack, rule["Properties"])
        for target in properties["Targets"]:
            if target["Arn"] in stage.functions:
                found.append((stack, logical_id, properties, target))
    return found


def test_every_rule_delivers_aws_documented_events_to_its_function(stage):
    """Approval, InService and drift events, in the order a model's first day brings them."""
    settings = template_pipeline_settings(stage.assembly)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    for _ in range(2):
        approved_package(sagemaker, settings)
    targets = _rule_targets(stage)
    assert targets
    order = ("SageMaker Model Package State Change", "SageMaker Endpoint State Change", "CloudWatch Alarm State Change")
    targets.sort(key=lambda t: order.index(t[2]["EventPattern"]["detail-type"][0]))
    permissions = [stage.assembly.resolve(s, r["Properties"]) for s, _, r in stage.assembly.resources("AWS::Lambda::Permission")]
    outcomes = {}
    for stack, logical_id, rule, target in targets:
        rule_arn = stage.assembly.attribute(stack, logical_id, "Arn")
        assert any(
            p["FunctionName"] == target["Arn"] and p["Principal"] == "events.amazonaws.com" and p.get("SourceArn") == rule_arn
            for p in permissions
        ), f"rule {logical_id} has no Lambda permission for EventBridge to invoke its target"
        assert "DeadLetterConfig" in target, f"rule {logical_id} has no dead-letter queue"
        event = rehearsal.input_for(target, rehearsal.sample_event(rule["EventPattern"]))
        invocation = stage.invoke(target["Arn"], event, f"rule {logical_id}")
        assert not invocation.failed, f"{logical_id}: {invocation.error_type}: {invocation.error_message}"
        outcomes[logical_id] = invocation.result
    actions = [json.dumps(o) for o in outcomes.values()]
    assert any('"action": "created"' in a for a in actions), "the approval creates the endpoint"
    assert any('"autoscaling"' in a for a in actions), "InService registers autoscaling"


def test_deleting_the_stage_deletes_the_pipelines(stage):
    settings = template_pipeline_settings(stage.assembly)
    for stack, logical_id, resource in reversed(_custom_resources(stage)):
        if resource["Type"] in CDK_CUSTOM_RESOURCES:
            continue
        physical = {
            "Custom::SageMakerPipelines": f"{settings.training_pipeline_name}|{settings.batch_pipeline_name}",
        }.get(resource["Type"], "images")
        stage.stack_status[stack] = "DELETE_IN_PROGRESS"
        request = rehearsal.custom_resource_request("Delete", stage.assembly, stack, logical_id, physical_id=physical)
        response = _provider(stage, request["ServiceToken"]).handle(request)
        assert response.status == "SUCCESS", response.reason
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert not sagemaker.list_pipelines()["PipelineSummaries"]


def test_no_call_was_malformed_denied_or_unanswered(stage):
    problems = [
        f"{a.function}: {a.call.service}.{a.call.operation} {a.outcome}: {a.detail}"
        for a in stage.backend.answered
        if a.outcome in ("invalid", "unanswered")
        or (a.outcome == "denied" and (a.call.service, a.call.operation) not in TOLERATED_DENIALS)
    ]
    assert problems == []


def test_every_wire_is_followed(stage):
    """Every Python function, custom resource, rule target and state machine task of the stage was rehearsed."""
    expected = set()
    for _, logical_id, resource in _custom_resources(stage):
        if resource["Type"] not in CDK_CUSTOM_RESOURCES:
            expected.add(f"custom resource {logical_id}")
    for _, logical_id, _, _ in _rule_targets(stage):
        expected.add(f"rule {logical_id}")
    missing = sorted(expected - stage.followed)
    assert missing == [], f"wires no test follows: {missing}"
    reached = {e.function.arn for e in stage.environments.values()}
    unreached = sorted(f.logical_id for f in stage.functions.values() if f.is_python and f.arn not in reached)
    assert unreached == [], f"functions no wire reaches: {unreached}"
    assert all(re.match(r"^(custom resource|rule|pipeline step|state machine) ", w) for w in stage.followed)


# Every resource type of the stages, with where its wires are followed. A type missing here fails the test below:
# a new kind of resource is rehearsed (or its absence of wires stated) in the change that adds it.
RESOURCE_TYPES = {
    "AWS::CDK::Metadata": "no wire",
    "AWS::CloudWatch::Alarm": "alarm actions: tests/test_deliveries.py",
    "AWS::CloudWatch::CompositeAlarm": "alarm actions: tests/test_deliveries.py (over ten features)",
    "AWS::CodeBuild::Project": "started by the image build custom resource here; its role: tests/test_strict_aws.py",
    "AWS::ECR::Repository": "read by the functions here; pulled by the jobs: tests/test_strict_aws.py",
    "AWS::Events::Rule": "Lambda targets here; every target: tests/test_deliveries.py",
    "AWS::IAM::ManagedPolicy": "evaluated with the roles that attach it",
    "AWS::IAM::Policy": "evaluated with its roles",
    "AWS::IAM::Role": "every call here; the rest: tests/test_strict_aws.py",
    "AWS::KMS::Alias": "no wire",
    "AWS::KMS::Key": "key policies: tests/test_deliveries.py",
    "AWS::Lambda::EventInvokeConfig": "asynchronous retries of the rule targets",
    "AWS::Lambda::Function": "every Python function here",
    "AWS::Lambda::LayerVersion": "loaded by its functions here",
    "AWS::Lambda::Permission": "the rule targets here and in tests/test_deliveries.py",
    "AWS::Logs::LogGroup": "tests/test_deliveries.py",
    "AWS::S3::Bucket": "deployed to moto here; EventBridge notifications: tests/test_deliveries.py",
    "AWS::S3::BucketPolicy": "aws-cdk-lib's TLS-only and auto-delete statements",
    "AWS::SNS::Topic": "published to by the system test here; deliveries: tests/test_deliveries.py",
    "AWS::SNS::TopicPolicy": "tests/test_deliveries.py",
    "AWS::SQS::Queue": "dead letters: tests/test_deliveries.py",
    "AWS::SQS::QueuePolicy": "tests/test_deliveries.py",
    "AWS::SageMaker::ModelPackageGroup": "deployed to moto here",
    "AWS::Scheduler::Schedule": "pipeline targets here; dead letters: tests/test_deliveries.py",
    "AWS::StepFunctions::StateMachine": "the system test here; the Provider framework's waiter is aws-cdk-lib's",
    "Custom::ContainerImages": "the first deploy here",
    "Custom::S3AutoDeleteObjects": "aws-cdk-lib's (non-production buckets)",
    "Custom::SageMakerPipelines": "the first deploy, updates, rollback and deletion here",
}


def test_every_resource_type_has_its_wires_followed(stage):
    types = {r["Type"] for template in stage.assembly.templates.values() for r in template["Resources"].values()}
    assert sorted(types - set(RESOURCE_TYPES)) == [], "resource types the rehearsal does not know; add them to RESOURCE_TYPES"


def test_schedules_and_rules_start_pipelines_with_parameters_they_declare(stage, pipeline_definitions):
    """EventBridge and Scheduler pass their parameters to StartPipelineExecution; SageMaker refuses unknown ones."""
    _, built = pipeline_definitions[stage.name]
    settings = template_pipeline_settings(stage.assembly)
    names = {settings.training_pipeline_name: "training", settings.batch_pipeline_name: "batch-prediction"}
    targets = [
        stage.assembly.resolve(s, r["Properties"])["Target"] for s, _, r in stage.assembly.resources("AWS::Scheduler::Schedule")
    ]
    for stack, _, rule in stage.assembly.resources("AWS::Events::Rule"):
        targets += [t for t in stage.assembly.resolve(stack, rule["Properties"])["Targets"] if ":pipeline/" in t["Arn"]]
    started = 0
    for target in targets:
        pipeline = names[target["Arn"].rsplit("/", 1)[1]]
        parameters = (target.get("SageMakerPipelineParameters") or {}).get("PipelineParameterList", [])
        unknown = {p["Name"] for p in parameters} - {p["Name"] for p in built[pipeline]["Parameters"]}
        assert unknown == set(), f"{target['Arn']} is started with parameters it does not declare: {unknown}"
        started += 1
    assert started == 4
