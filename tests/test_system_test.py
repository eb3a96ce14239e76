"""The system test: its state machine's shape, each check against moto and AWS's shapes, the report, and make validate."""

from __future__ import annotations

import importlib
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_strict import Call, permissions_for
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from conftest import (
    ACCOUNT,
    CONFIG,
    ENVIRONMENTS,
    LAMBDA_CONTEXT,
    NONPRODUCTION_NAMES,
    PROJECT,
    REGION,
    UNKNOWN_ENVIRONMENT,
    function_properties,
    load_lambda,
)

from common.contracts import SystemTestSettings
from common.names import ResourceNames

system_test = load_lambda("system_test")
checks = system_test.checks
validate = importlib.import_module("validate")

NAMES = NONPRODUCTION_NAMES
ENV = NAMES.environment
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-1111-2222-3333-444455556666"
GROUP = NAMES.model_package_group
ENDPOINT = NAMES.endpoint
EVALUATION = f"s3://artifacts-bucket/{NAMES.training_pipeline}/exec1/evaluation"
SETTINGS = SystemTestSettings(
    environment=ENV,
    kms_key_arn=KEY,
    buckets=("raw-bucket", "features-bucket", "artifacts-bucket"),
    repositories=(NAMES.training_repository, NAMES.inference_repository),
    pipelines=(NAMES.training_pipeline, NAMES.batch_pipeline),
    model_package_group_name=GROUP,
    schedules=("nightly-retraining=ENABLED", "daily-batch=DISABLED"),
    endpoint_name=ENDPOINT,
    data_capture_s3_uri=f"s3://artifacts-bucket/data-capture/{ENDPOINT}",
    max_latency_ms=200,
    alerts_topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts",
)


# --- the synthesized state machine ---------------------------------------------------------------------------------


def _definition(assembly) -> dict:
    ((stack, _, machine),) = [
        r for r in assembly.resources("AWS::StepFunctions::StateMachine") if "system-test" in json.dumps(r[2]["Properties"])
    ]
    return json.loads(assembly.resolve(stack, machine["Properties"]["DefinitionString"]))


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_check_is_a_state_whose_failure_is_collected_not_short_circuited(assemblies, name):
    definition = _definition(assemblies[name])
    parallel = definition["States"]["Checks"]
    assert (definition["StartAt"], parallel["Type"], parallel["Next"]) == ("Checks", "Parallel", "Report")
    resource_branches, (model,) = parallel["Branches"][:-1], parallel["Branches"][-1:]
    assert [b["States"][b["StartAt"]]["Parameters"]["check"] for b in resource_branches] == list(checks.RESOURCE_CHECKS)
    for branch in resource_branches:
        task = branch["States"][branch["StartAt"]]
        (catch,) = task["Catch"]
        caught = branch["States"][catch["Next"]]
        assert catch["ErrorEquals"] == ["States.ALL"] and caught["Type"] == "Pass" and "End" in caught
        assert caught["Parameters"] == {"check": task["Parameters"]["check"], "status": "error", "finding.$": "$.Cause"}
    states = model["States"]
    order = [
        "EndpointServesLatest",
        "EndpointReproducesOfflinePredictions",
        "RequestsSent?",
        "WaitForCapture",
        "DataCaptureLands",
        "ModelResults",
    ]
    assert [states[s].get("Next") for s in order[:2]] == order[1:3]
    assert [states[s]["Parameters"]["check"] for s in order[:2]] == list(system_test.MODEL_CHECKS[:2])
    assert states["DataCaptureLands"]["Parameters"]["check"] == system_test.MODEL_CHECKS[2]
    (sent,) = states["RequestsSent?"]["Choices"]
    assert sent["And"] == [
        {"Variable": "$.reproduces.requests", "IsPresent": True},
        {"Variable": "$.reproduces.requests", "NumericGreaterThan": 0},
    ], "an errored model check has no request count; the Choice must not fail on it"
    assert (
        states["WaitForCapture"]["Seconds"] == 300
        and states["DataCaptureLands"]["Parameters"]["since.$"] == "$.reproduces.sent_at"
    )
    assert all(states[s]["Catch"][0]["Next"] == "ModelChecksError" for s in order[:2])
    report = definition["States"]["Report"]
    assert report["Parameters"] == {"results.$": "$"} and report["Next"] == "Passed?"
    failed = definition["States"]["SystemTestFailed"]
    assert (failed["Type"], failed["Error"], failed["CausePath"]) == ("Fail", "SystemTestFailed", "$.summary")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_the_settings_are_the_stack_output_make_validate_reads(assemblies, name):
    assembly = assemblies[name]
    ((stack, _, _),) = [r for r in assembly.resources("AWS::StepFunctions::StateMachine") if "system-test" in json.dumps(r[2])]
    output = SystemTestSettings.from_json(assembly.output(stack, "SystemTestSettings"))
    function_stack, function = function_properties(assembly, "System test")
    assert (
        SystemTestSettings.from_json(assembly.resolve(function_stack, function["Environment"]["Variables"]["SETTINGS"])) == output
    )
    configured = CONFIG.environment(name)
    assert output.environment == name and output.endpoint_name == ResourceNames(PROJECT, name).endpoint
    states = [configured.schedules.retraining_enabled, configured.schedules.batch_prediction_enabled]
    assert [entry.rsplit("=", 1)[1] for entry in output.schedules] == ["ENABLED" if s else "DISABLED" for s in states]
    assert output.max_latency_ms == configured.endpoint.max_latency_ms


# --- resource checks against moto --------------------------------------------------------------------------------


@pytest.fixture
def environment(aws):
    """The resources SETTINGS names, made as the stacks make them."""
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in SETTINGS.buckets:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY}}]
            },
        )
    ecr = boto3.client("ecr", region_name=REGION)
    for name in SETTINGS.repositories:
        ecr.create_repository(repositoryName=name, encryptionConfiguration={"encryptionType": "KMS", "kmsKey": KEY})
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    for name in SETTINGS.pipelines:
        sagemaker.create_pipeline(
            PipelineName=name,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/execution",
            ClientRequestToken="0" * 32,
        )
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    scheduler = boto3.client("scheduler", region_name=REGION)
    for entry in SETTINGS.schedules:
        name, state = entry.split("=")
        scheduler.create_schedule(
            Name=name,
            ScheduleExpression="cron(0 2 * * ? *)",
            State=state,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/p", "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/r"},
        )
    return checks.Clients(s3=s3, ecr=ecr, sagemaker=sagemaker, scheduler=scheduler)


def test_a_deployed_environment_passes_every_resource_check(environment):
    results = checks.run_all_resource_checks(SETTINGS, environment)
    assert [(r["check"], r["status"]) for r in results] == [(name, "pass") for name in checks.RESOURCE_CHECKS]


def test_each_broken_resource_is_named_and_the_other_checks_still_run(environment):
    environment.ecr.delete_repository(repositoryName=NAMES.inference_repository)
    environment.scheduler.update_schedule(
        Name="nightly-retraining",
        ScheduleExpression="cron(0 2 * * ? *)",
        State="DISABLED",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/p", "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/r"},
    )
    environment.sagemaker.delete_pipeline(PipelineName=NAMES.batch_pipeline, ClientRequestToken="1" * 32)
    other_key = replace(SETTINGS, kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/another")
    results = {r["check"]: r for r in checks.run_all_resource_checks(other_key, environment)}
    assert results["repositories_present"] == {
        "check": "repositories_present",
        "status": "fail",
        "finding": f"repository {NAMES.inference_repository} does not exist",
    }
    assert results["schedules_in_state"]["finding"] == "schedule nightly-retraining is DISABLED, configured ENABLED"
    assert results["pipelines_registered"]["finding"] == f"pipeline {NAMES.batch_pipeline} is not registered"
    assert (
        results["buckets_encrypted"]["status"] == "fail"
        and "raw-bucket is encrypted with aws:kms" in results["buckets_encrypted"]["finding"]
    )
    assert results["package_group_present"]["status"] == "pass"


def test_an_aws_error_in_one_check_is_its_error_finding(environment, monkeypatch):
    def denied(**kwargs):
        raise checks.ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "GetSchedule")

    monkeypatch.setattr(environment.scheduler, "get_schedule", denied)
    results = {r["check"]: r for r in checks.run_all_resource_checks(SETTINGS, environment)}
    assert results["schedules_in_state"] == {
        "check": "schedules_in_state",
        "status": "error",
        "finding": "AccessDeniedException: not authorized",
    }
    assert results["buckets_encrypted"]["status"] == "pass"


# --- model checks with SageMaker's shapes ------------------------------------------------------------------------

PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3"
REQUESTS = ("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15", "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21")
OFFLINE = ("14.123456\n", "9.500000\n")
SAMPLE_KEY = f"{EVALUATION.split('/', 3)[3]}/holdout.jsonl"


def _package(with_report: bool = True) -> dict:
    package = {
        "ModelPackageName": GROUP,
        "ModelPackageArn": PACKAGE_ARN,
        "ModelPackageVersion": 3,
        "CreationTime": datetime(2026, 11, 23),
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": "Approved",
    }
    if with_report:
        package["ModelMetrics"] = {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"{EVALUATION}/evaluation.json"}}
        }
    return package


def _approved(stub: Stubber, package: dict | None) -> None:
    summaries = (
        []
        if package is None
        else [
            {
                "ModelPackageGroupName": GROUP,
                "ModelPackageVersion": 3,
                "ModelPackageArn": PACKAGE_ARN,
                "CreationTime": datetime(2026, 11, 23),
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": "Approved",
            }
        ]
    )
    stub.add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": summaries},
        {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )
    if package is not None:
        stub.add_response("describe_model_package", package, {"ModelPackageName": PACKAGE_ARN})


def _endpoint(stub: Stubber, config: str = f"{ENDPOINT}-v3-0a1b2c3d-1", status: str = "InService") -> None:
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
            "EndpointConfigName": config,
            "EndpointStatus": status,
            "CreationTime": datetime(2026, 11, 23),
            "LastModifiedTime": datetime(2026, 11, 23),
        },
        {"EndpointName": ENDPOINT},
    )


@pytest.fixture
def stubbed():
    def client(service: str):
        return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")

    clients = checks.Clients(
        s3=client("s3"),
        ecr=client("ecr"),
        sagemaker=client("sagemaker"),
        scheduler=client("scheduler"),
        runtime=client("sagemaker-runtime"),
    )
    stubs = {name: Stubber(getattr(clients, name)) for name in ("s3", "sagemaker", "runtime")}
    for stub in stubs.values():
        stub.activate()
    yield clients, stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def test_before_any_approved_model_the_model_checks_do_not_apply(stubbed):
    clients, stubs = stubbed
    _approved(stubs["sagemaker"], None)
    _approved(stubs["sagemaker"], None)
    assert checks.endpoint_serves_latest(SETTINGS, clients)["status"] == "not-applicable"
    reproduces = checks.endpoint_reproduces_offline_predictions(SETTINGS, clients)
    assert (reproduces["status"], reproduces["requests"], reproduces["finding"]) == (
        "not-applicable",
        0,
        f"no approved model package in {GROUP} yet",
    )


@pytest.mark.parametrize(
    "config, status, verdict",
    [
        (f"{ENDPOINT}-v3-0a1b2c3d-1", "InService", "pass"),
        (f"{ENDPOINT}-v2-0a1b2c3d-1", "InService", "fail"),
        (f"{ENDPOINT}-v3-0a1b2c3d-1", "Updating", "fail"),
    ],
)
def test_the_endpoint_must_serve_the_latest_approved_version(stubbed, config, status, verdict):
    clients, stubs = stubbed
    _approved(stubs["sagemaker"], _package())
    _endpoint(stubs["sagemaker"], config, status)
    assert checks.endpoint_serves_latest(SETTINGS, clients)["status"] == verdict


def test_an_approved_model_without_endpoint_fails_naming_the_deployer(stubbed):
    clients, stubs = stubbed
    _approved(stubs["sagemaker"], _package())
    stubs["sagemaker"].add_client_error(
        "describe_endpoint",
        "ValidationException",
        f'Could not find endpoint "arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}".',
    )
    result = checks.endpoint_serves_latest(SETTINGS, clients)
    assert result["finding"] == f"no endpoint {ENDPOINT} although version 3 is approved; see the deployer's log"


def _listed(stubs) -> None:
    stubs["s3"].add_response(
        "list_objects_v2",
        {"KeyCount": 1, "Contents": [{"Key": SAMPLE_KEY, "Size": 10}], "Name": "artifacts-bucket", "MaxKeys": 1},
        expected_params={"Bucket": "artifacts-bucket", "Prefix": SAMPLE_KEY, "MaxKeys": 1},
    )


def _sample(stubs, body: bytes) -> None:
    _approved(stubs["sagemaker"], _package())
    _endpoint(stubs["sagemaker"])
    _listed(stubs)
    stubs["s3"].add_response(
        "get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))}, {"Bucket": "artifacts-bucket", "Key": SAMPLE_KEY}
    )


def _endpoint_answers(stubs, answers: list[str]) -> None:
    """The sample as the training pipeline writes it, and the endpoint's answer to each request, in order."""
    _sample(
        stubs, "".join(json.dumps({"request": r, "answer": a}) + "\n" for r, a in zip(REQUESTS, OFFLINE, strict=True)).encode()
    )
    for request, answer in zip(REQUESTS, answers, strict=True):
        stubs["runtime"].add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(answer.encode()), len(answer)), "ContentType": "text/csv"},
            {"EndpointName": ENDPOINT, "ContentType": "text/csv", "Accept": "text/csv", "Body": request.encode()},
        )


def _clock(step_ms: float):
    ticks = iter(range(1000))
    return lambda: next(ticks) * step_ms / 1000


def test_each_sampled_record_is_sent_alone_and_answered_as_offline(stubbed):
    clients, stubs = stubbed
    _endpoint_answers(stubs, ["14.123457\n", "9.500000\n"])
    result = checks.endpoint_reproduces_offline_predictions(SETTINGS, clients, clock=_clock(50))
    assert (result["status"], result["requests"]) == ("pass", 2)
    assert result["finding"] == (
        "all 2 answers match the offline answers (numbers within 0.000001); p95 latency 50 ms (limit 200 ms) over 2 requests"
    )
    assert datetime.fromisoformat(result["sent_at"]) <= datetime.now(UTC)


def test_a_different_answer_fails_naming_the_record_and_both_answers(stubbed):
    clients, stubs = stubbed
    _endpoint_answers(stubs, ["14.123456\n", "9.500002\n"])
    result = checks.endpoint_reproduces_offline_predictions(SETTINGS, clients, clock=_clock(10))
    assert (result["status"], result["requests"]) == ("fail", 2)
    assert result["finding"] == (
        f"1 of 2 answers differ from the offline answers by more than 0.000001: record 2 {REQUESTS[1]!r}: "
        "offline '9.500000', endpoint '9.500002'; p95 latency 10 ms (limit 200 ms) over 2 requests"
    )


def test_a_slow_endpoint_fails_on_p95_latency(stubbed):
    clients, stubs = stubbed
    _endpoint_answers(stubs, list(OFFLINE))
    result = checks.endpoint_reproduces_offline_predictions(SETTINGS, clients, clock=_clock(250))
    assert result["status"] == "fail" and result["finding"].endswith("p95 latency 250 ms (limit 200 ms) over 2 requests")


@pytest.mark.parametrize(
    "offline, answered, same",
    [
        ("14.123456\n", "14.123456\n", True),
        ("14.123456\n", "14.123455", True),
        ("14.123456\n", "14.123458\n", False),
        ("14.123456\n", "14.123456,1\n", False),
        ("0.830000,yes\n", "0.830001,yes\n", True),
        ("0.830000,yes\n", "0.830000,no\n", False),
        ("0.830000,nan\n", "0.830000,nan\n", True),
        ("0.830000,nan\n", "0.830000,NaN\n", False),
        ("0.912345,malignant\n", "0.912346,malignant\n", True),
        ("0.912345,malignant\n", "0.912345,benign\n", False),
        ("0.912345,1\n", "0.912345,1.0\n", False),
        ("0.912345,0\n", "0.912345,0.000001\n", False),
        ("0.100000,0.700000,0.200000,versicolor\n", "0.100001,0.699999,0.200000,versicolor\n", True),
        ("0.100000,0.700000,0.200000,versicolor\n", "0.100000,0.700000,0.200000,setosa\n", False),
    ],
)
def test_answers_compare_field_by_field_numbers_within_the_printed_precision(offline, answered, same):
    """An answer of several fields (a probability and a label) compares each: numbers within a unit of the sixth
    decimal the server prints, anything else exactly."""
    assert checks.answers_match(offline, answered) is same


@pytest.mark.parametrize(
    "body, finding",
    [
        (b"\n", "holds no records"),
        (b'{"request": "M,0.4,0.3,0.1,0.5,0.2,0.1,0.1"}\n', 'line 1 is not {"request": "<CSV record>", "answer"'),
        (b"M,0.4,0.3,0.1,0.5,0.2,0.1,0.1,15\n", "line 1 is not"),
    ],
)
def test_an_empty_or_malformed_sample_fails_without_a_request(stubbed, body, finding):
    clients, stubs = stubbed
    _sample(stubs, body)
    result = checks.endpoint_reproduces_offline_predictions(SETTINGS, clients)
    assert (result["status"], result["requests"]) == ("fail", 0) and finding in result["finding"]
    assert result["finding"].startswith(f"{EVALUATION}/holdout.jsonl ") and result["finding"].endswith("; retrain to rewrite it")


def test_a_package_without_a_sample_does_not_apply(stubbed):
    """A package trained before training wrote the sample: listing its key finds nothing."""
    clients, stubs = stubbed
    _approved(stubs["sagemaker"], _package())
    _endpoint(stubs["sagemaker"])
    stubs["s3"].add_response(
        "list_objects_v2",
        {"KeyCount": 0, "Name": "artifacts-bucket", "Prefix": SAMPLE_KEY, "MaxKeys": 1, "IsTruncated": False},
        expected_params={"Bucket": "artifacts-bucket", "Prefix": SAMPLE_KEY, "MaxKeys": 1},
    )
    result = checks.endpoint_reproduces_offline_predictions(SETTINGS, clients)
    assert (result["status"], result["requests"], result["finding"]) == (
        "not-applicable",
        0,
        f"no held-out sample at {EVALUATION}/holdout.jsonl (a package trained before training wrote one)",
    )


def test_a_denied_sample_is_an_error_not_a_missing_one(stubbed):
    clients, stubs = stubbed
    _approved(stubs["sagemaker"], _package())
    _endpoint(stubs["sagemaker"])
    _listed(stubs)
    stubs["s3"].add_client_error(
        "get_object", service_error_code="AccessDenied", service_message="Access Denied", http_status_code=403
    )
    result = system_test.run_check({"check": "endpoint_reproduces_offline_predictions"}, SETTINGS, clients)
    assert result == {
        "check": "endpoint_reproduces_offline_predictions",
        "status": "error",
        "finding": "AccessDenied: Access Denied",
    }


def test_captured_requests_must_land_after_the_sample_requests(stubbed):
    clients, stubs = stubbed
    sent = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    listing = {"Bucket": "artifacts-bucket", "Prefix": f"data-capture/{ENDPOINT}/"}
    for age in (timedelta(minutes=-30), timedelta(minutes=3)):
        stubs["s3"].add_response(
            "list_objects_v2",
            {
                "Contents": [
                    {"Key": f"data-capture/{ENDPOINT}/AllTraffic/2026/11/23/02/a.jsonl", "LastModified": sent + age, "Size": 9}
                ],
                "KeyCount": 1,
            },
            listing,
        )
    assert checks.data_capture_lands(SETTINGS, clients, sent.isoformat())["status"] == "fail"
    assert checks.data_capture_lands(SETTINGS, clients, sent.isoformat())["status"] == "pass"
    with pytest.raises(ValueError, match="since 'soon' is not an ISO 8601 time"):
        checks.data_capture_lands(SETTINGS, clients, "soon")


# --- the report and the handler ----------------------------------------------------------------------------------


def test_the_report_flattens_every_branch_publishes_and_passes_only_without_failures():
    sns = boto3.client("sns", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    resource = {"check": "buckets_encrypted", "status": "pass", "finding": "3 buckets"}
    model = {
        "results": [
            {"check": "endpoint_serves_latest", "status": "not-applicable", "finding": "no approved model package"},
            {
                "check": "endpoint_reproduces_offline_predictions",
                "status": "not-applicable",
                "finding": "no approved model package",
                "requests": 0,
            },
            {"check": "data_capture_lands", "status": "not-applicable", "finding": "no requests were sent"},
        ]
    }
    caught = {"check": "schedules_in_state", "status": "error", "finding": "Lambda.TooManyRequestsException"}
    with Stubber(sns) as stub:
        for subject in (f"{ENV} system test passed", f"{ENV} system test FAILED"):
            stub.add_response(
                "publish", {"MessageId": "m"}, {"TopicArn": SETTINGS.alerts_topic_arn, "Subject": subject, "Message": ANY}
            )
        passed = system_test.report([resource, model], SETTINGS, sns)
        failed = system_test.report([resource, model, caught], SETTINGS, sns)
    assert passed["passed"] is True and len(passed["checks"]) == 4
    assert failed["passed"] is False and failed["summary"] == f"{ENV} system test FAILED: schedules_in_state"
    with pytest.raises(system_test.EventError, match="is not a check result"):
        system_test.report([{"check": "x"}], SETTINGS, sns)


def test_the_handler_names_an_unknown_check(monkeypatch):
    monkeypatch.setenv("SETTINGS", json.dumps(SETTINGS.to_dict()))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    system_test.settings.cache_clear()
    with pytest.raises(system_test.EventError, match="unknown check 'everything'; send"):
        system_test.handler({"check": "everything"}, LAMBDA_CONTEXT)
    with pytest.raises(system_test.EventError, match=r"unknown check \['buckets_encrypted'\]; send"):
        system_test.handler({"check": ["buckets_encrypted"]}, LAMBDA_CONTEXT)
    with pytest.raises(system_test.EventError, match="event must be a JSON object"):
        system_test.handler(["check"], LAMBDA_CONTEXT)
    system_test.settings.cache_clear()


@pytest.mark.parametrize(
    ("results", "message"),
    [
        (
            [{"check": "buckets_encrypted", "status": None, "finding": "x"}],
            "is not a check result with check, status and finding",
        ),
        ([{"check": 1, "status": "pass", "finding": 3}], "is not a check result with check, status and finding"),
        ([], "results hold no check result; the report needs the parallel branches' outputs"),
        ([{"results": None}], "results hold no check result"),
    ],
)
def test_the_report_refuses_results_it_cannot_read_or_an_empty_one(results, message):
    """These raised TypeError or AttributeError, or reported an empty run as passed."""
    with pytest.raises(system_test.EventError, match=re.escape(message)):
        system_test.report(results, SETTINGS, None)


# --- make validate ---------------------------------------------------------------------------------------------


def _stack_with_output(value: str | None) -> None:
    outputs = {"SystemTestSettings": {"Value": value}} if value is not None else {}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=f"{ENV}-Orchestration",
        TemplateBody=json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}),
    )


def test_make_validate_reports_every_check_from_the_stack_output(environment, capsys):
    _stack_with_output(json.dumps(SETTINGS.to_dict()))
    session = boto3.Session(region_name=REGION)
    assert validate.main(["--environment", ENV], session=session) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"{ENV}: 5 of 5 checks passed") and "PASS            buckets_encrypted" in out
    environment.ecr.delete_repository(repositoryName=NAMES.training_repository)
    assert validate.main(["--environment", ENV], session=session) == 1
    assert f"repository {NAMES.training_repository} does not exist" in capsys.readouterr().out


@pytest.mark.parametrize(
    "output, message",
    [
        (
            None,
            f"validate: stack {ENV}-Orchestration has no SystemTestSettings output; redeploy it with this version of the project",
        ),
        ("{}", f"validate: {ENV}-Orchestration output SystemTestSettings lacks environment"),
        (
            json.dumps({**SETTINGS.to_dict(), "mse_threshold": 6}),
            f"validate: {ENV}-Orchestration output SystemTestSettings has unknown key(s) mse_threshold; expected environment, ",
        ),
    ],
)
def test_make_validate_names_an_environment_it_cannot_read(aws, capsys, output, message):
    _stack_with_output(output)
    assert validate.main(["--environment", ENV], session=boto3.Session(region_name=REGION)) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "redeploy" in err and len(err.splitlines()) == 1


def test_make_validate_names_a_missing_stack(aws, capsys):
    assert validate.main(["--environment", UNKNOWN_ENVIRONMENT], session=boto3.Session(region_name=REGION)) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .startswith(
            f"validate: stack {UNKNOWN_ENVIRONMENT}-Orchestration does not exist in {REGION}; deploy it (make deploy ENV=...)"
        )
    )


@pytest.mark.parametrize("default_region", [None, "us-east-1"])
def test_make_validate_reads_aws_region_before_aws_default_region(aws, monkeypatch, capsys, default_region):
    """botocore alone reads only AWS_DEFAULT_REGION: AWS_REGION alone ended in 'You must specify a region'."""
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    if default_region:
        monkeypatch.setenv("AWS_DEFAULT_REGION", default_region)
    else:
        monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert validate.main(["--environment", UNKNOWN_ENVIRONMENT]) == 2
    assert f"{UNKNOWN_ENVIRONMENT}-Orchestration does not exist in eu-central-1;" in capsys.readouterr().err


# --- IAM ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_the_system_test_role_allows_every_check(assemblies, name):
    from test_strict_aws import _assert_allowed, _role_statements

    assembly = assemblies[name]
    stack, function = function_properties(assembly, "System test")
    s = SystemTestSettings.from_json(assembly.resolve(stack, function["Environment"]["Variables"]["SETTINGS"]))
    artifacts = s.buckets[2]
    capture_prefix = s.data_capture_s3_uri.split("/", 3)[3] + "/"
    report = f"s3://{artifacts}/{s.pipelines[0]}/exec1/evaluation/evaluation.json"
    sample = checks.sample_uri({"ModelMetrics": {"ModelQuality": {"Statistics": {"S3Uri": report}}}})
    sample_key = sample.split("/", 3)[3]
    calls = [
        *[Call("s3", "GetBucketEncryption", {"Bucket": b}) for b in s.buckets],
        *[Call("ecr", "DescribeRepositories", {"repositoryNames": [r]}) for r in s.repositories],
        *[Call("sagemaker", "DescribePipeline", {"PipelineName": p}) for p in s.pipelines],
        Call("sagemaker", "DescribeModelPackageGroup", {"ModelPackageGroupName": s.model_package_group_name}),
        *[Call("scheduler", "GetSchedule", {"Name": entry.rsplit("=", 1)[0]}) for entry in s.schedules],
        Call("sagemaker", "ListModelPackages", {"ModelPackageGroupName": s.model_package_group_name}),
        Call(
            "sagemaker",
            "DescribeModelPackage",
            {"ModelPackageName": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{s.model_package_group_name}/3"},
        ),
        Call("sagemaker", "DescribeEndpoint", {"EndpointName": s.endpoint_name}),
        Call("s3", "ListObjectsV2", {"Bucket": artifacts, "Prefix": sample_key}, {"s3:prefix": sample_key}),
        Call("s3", "GetObject", {"Bucket": artifacts, "Key": sample_key}),
        Call("kms", "Decrypt", {"KeyId": s.kms_key_arn}),
        Call("sagemaker-runtime", "InvokeEndpoint", {"EndpointName": s.endpoint_name}),
        Call("s3", "ListObjectsV2", {"Bucket": artifacts, "Prefix": capture_prefix}, {"s3:prefix": capture_prefix}),
        Call("sns", "Publish", {"TopicArn": s.alerts_topic_arn}),
    ]
    _assert_allowed(_role_statements(assembly, assembly.resolve(stack, function["Role"])), permissions_for(calls), "system test")


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_the_state_machine_role_may_invoke_the_check_function(assemblies, name):
    from test_strict_aws import _assert_allowed, _role_statements

    assembly = assemblies[name]
    ((stack, _, machine),) = [
        r for r in assembly.resources("AWS::StepFunctions::StateMachine") if "system-test" in json.dumps(r[2])
    ]
    function_arn = json.loads(assembly.resolve(stack, machine["Properties"]["DefinitionString"]))["States"]["Report"]["Resource"]
    _assert_allowed(
        _role_statements(assembly, assembly.resolve(stack, machine["Properties"]["RoleArn"])),
        permissions_for([Call("lambda", "InvokeFunction", {"FunctionName": function_arn})]),
        "system test state machine",
    )


def test_make_validate_names_a_denied_call_without_a_traceback(capsys):
    class DeniedSession:
        def client(self, service):
            client = boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
            stub = Stubber(client)
            stub.add_client_error(
                "describe_stacks",
                "AccessDenied",
                "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: cloudformation:DescribeStacks",
                403,
            )
            stub.activate()
            return client

    assert validate.main(["--environment", ENV], session=DeniedSession()) == 2
    err = capsys.readouterr().err
    assert err.startswith("validate: An error occurred (AccessDenied) when calling the DescribeStacks operation: User: ")
    assert "Traceback" not in err
