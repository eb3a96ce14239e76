"""The pipeline definitions built offline (moto for S3 and SageMaker) and the register handler."""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile

import boto3
import pytest

from conftest import ACCOUNT, REGION, REPO_ROOT, load_lambda, pipeline_environment

register = load_lambda("register_pipelines")
settings_module = sys.modules["settings"]
training_module = sys.modules["training_pipeline"]
sys.path.insert(0, str(REPO_ROOT / "pipeline_scripts"))
import train  # noqa: E402  (the training script whose metric lines the tuner parses)

ENV = pipeline_environment()


@pytest.fixture
def buckets(aws):
    s3 = boto3.client("s3", region_name=REGION)
    for name in ("artifacts", "raw-data", "features"):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return s3


@pytest.fixture
def definitions(buckets):
    settings = settings_module.PipelineSettings.from_environment(ENV)
    pipelines = register.build_pipelines(settings)
    return {name: json.loads(p.definition()) for name, p in pipelines.items()}


def _step(definition, name):
    steps = {s["Name"]: s for s in definition["Steps"]}
    for step in definition["Steps"]:
        for nested in step.get("Arguments", {}).get("IfSteps", []) + step.get("Arguments", {}).get("ElseSteps", []):
            steps[nested["Name"]] = nested
    return steps[name]


def test_training_steps_and_branches(definitions):
    training = definitions["training"]
    assert [s["Name"] for s in training["Steps"]] == ["Preprocess", "TuneLightGBM", "EvaluateModel", "CheckMse"]
    check = _step(training, "CheckMse")["Arguments"]
    assert [s["Name"] for s in check["IfSteps"]] == ["RegisterModel-RegisterModel"]
    assert [s["Name"] for s in check["ElseSteps"]] == ["MseAboveThreshold"]


def test_training_parameters_and_defaults_come_from_the_stack(definitions):
    parameters = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definitions["training"]["Parameters"]}
    assert parameters == {
        "InputDataUri": ("String", "s3://raw-data/incoming/"),
        "ProcessingInstanceType": ("String", "ml.m5.xlarge"), "ProcessingInstanceCount": ("Integer", 1),
        "TrainingInstanceType": ("String", "ml.m5.2xlarge"), "TrainingInstanceCount": ("Integer", 1),
        "TrainingImageUri": ("String", ENV["TRAINING_IMAGE_URI"]), "InferenceImageUri": ("String", ENV["INFERENCE_IMAGE_URI"]),
        "MseThreshold": ("Float", 5.5), "ModelApprovalStatus": ("String", "PendingManualApproval"),
    }


def test_steps_depend_on_each_other_through_their_properties(definitions):
    training = definitions["training"]
    tuning = _step(training, "TuneLightGBM")["Arguments"]["TrainingJobDefinition"]["InputDataConfig"]
    assert {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in tuning} == {
        channel: {"Get": f"Steps.Preprocess.ProcessingOutputConfig.Outputs['{channel}'].S3Output.S3Uri"}
        for channel in ("train", "validation")
    }
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in _step(training, "EvaluateModel")["Arguments"]["ProcessingInputs"]}
    assert inputs["test"] == {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}
    assert {"Get": "Steps.TuneLightGBM.TrainingJobSummaries[0].TrainingJobName"} in inputs["model"]["Std:Join"]["Values"]


def test_preprocessing_writes_the_features_bucket_in_the_sklearn_container(definitions):
    preprocess = _step(definitions["training"], "Preprocess")["Arguments"]
    assert preprocess["AppSpecification"]["ImageUri"] == f"141502667606.dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    outputs = {o["OutputName"]: o["S3Output"]["S3Uri"]["Std:Join"]["Values"] for o in preprocess["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["train"] == ["s3://features", "mlops-test-training", {"Get": "Execution.PipelineExecutionId"}, "train"]
    assert preprocess["ProcessingOutputConfig"]["KmsKeyId"] == ENV["KMS_KEY_ARN"]


def test_tuning_objective_ranges_and_limits(definitions):
    tuning = _step(definitions["training"], "TuneLightGBM")["Arguments"]
    config = tuning["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "validation:rmse"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3}
    ranges = config["ParameterRanges"]
    assert {r["Name"] for r in ranges["IntegerParameterRanges"]} == {"num_leaves", "min_data_in_leaf"}
    assert {r["Name"] for r in ranges["ContinuousParameterRanges"]} == {"learning_rate", "feature_fraction", "lambda_l2"}
    job = tuning["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == {"Get": "Parameters.TrainingImageUri"}
    assert job["RoleArn"] == ENV["ROLE_ARN"] and job["EnableNetworkIsolation"] is True
    assert job["OutputDataConfig"] == {"S3OutputPath": "s3://artifacts/mlops-test-training/models", "KmsKeyId": ENV["KMS_KEY_ARN"]}


def test_objective_regex_parses_the_training_scripts_metric_line():
    line = train.METRIC_LINE.format(channel="validation", metric="rmse", value=2.13)
    regex = next(d["Regex"] for d in training_module.METRIC_DEFINITIONS if d["Name"] == training_module.OBJECTIVE)
    assert float(re.search(regex, f"[0]\ttrain\n{line}\n").group(1)) == pytest.approx(2.13)


def test_condition_compares_the_reported_mse_with_the_threshold(definitions):
    check = _step(definitions["training"], "CheckMse")["Arguments"]["Conditions"]
    assert check == [{
        "Type": "LessThanOrEqualTo",
        "LeftValue": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"},
                                      "Path": "regression_metrics.mse.value"}},
        "RightValue": {"Get": "Parameters.MseThreshold"},
    }]
    message = _step(definitions["training"], "MseAboveThreshold")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert message[0] == "Model rejected: test MSE" and message[-1] == {"Get": "Parameters.MseThreshold"}


def test_register_step_uses_the_inference_image_and_evaluation_metrics(definitions):
    register_step = _step(definitions["training"], "RegisterModel-RegisterModel")["Arguments"]
    assert register_step["ModelPackageGroupName"] == "mlops-test"
    assert register_step["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    container = register_step["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == {"Get": "Parameters.InferenceImageUri"}
    assert register_step["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv", "application/json"]
    statistics = register_step["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"]["Std:Join"]["Values"][-1] == "evaluation.json"


def test_scripts_are_uploaded_from_the_local_path_into_the_artifacts_bucket(definitions, buckets):
    for step_name, script in (("Preprocess", "preprocess.py"), ("EvaluateModel", "evaluate.py")):
        arguments = _step(definitions["training"], step_name)["Arguments"]
        code = next(i["S3Input"]["S3Uri"] for i in arguments["ProcessingInputs"] if i["InputName"] == "code")
        assert code.startswith("s3://artifacts/mlops-test-training/code/") and code.endswith("/sourcedir.tar.gz")
        archive = buckets.get_object(Bucket="artifacts", Key=code.removeprefix("s3://artifacts/"))["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            assert {script, "inference.py", "train.py"} <= set(tar.getnames())
            assert (REPO_ROOT / "pipeline_scripts" / script).read_bytes() == tar.extractfile(script).read()


def test_evaluation_runs_in_the_training_image_and_caches(definitions):
    evaluate = _step(definitions["training"], "EvaluateModel")
    assert evaluate["Arguments"]["AppSpecification"]["ImageUri"] == {"Get": "Parameters.TrainingImageUri"}
    assert evaluate["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
    assert "CacheConfig" not in _step(definitions["training"], "Preprocess")
    assert evaluate["PropertyFiles"] == [{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}]


def test_batch_pipeline_resolves_the_model_at_execution_time(definitions):
    batch = definitions["batch-prediction"]
    assert [s["Name"] for s in batch["Steps"]] == ["ResolveModelAndData", "CheckModelAndData"]
    resolve = _step(batch, "ResolveModelAndData")
    assert resolve["FunctionArn"] == ENV["RESOLVE_BATCH_INPUTS_FUNCTION_ARN"]
    assert resolve["Arguments"]["model_package_group_name"] == "mlops-test"
    assert resolve["Arguments"]["timezone"] == "Europe/Berlin"
    assert {o["OutputName"] for o in resolve["OutputParameters"]} == {
        "status", "message", "model_package_arn", "image_uri", "model_data_url", "input_uri", "output_uri"}
    check = _step(batch, "CheckModelAndData")["Arguments"]
    assert check["Conditions"][0]["RightValue"] == "ready"
    assert [s["Name"] for s in check["IfSteps"]] == ["CreateModel-CreateModel", "BatchTransform"]
    assert _step(batch, "NoApprovedModelOrData")["Arguments"]["ErrorMessage"] == {"Get": "Steps.ResolveModelAndData.OutputParameters['message']"}
    container = _step(batch, "CreateModel-CreateModel")["Arguments"]["PrimaryContainer"]
    assert container["Image"] == {"Get": "Steps.ResolveModelAndData.OutputParameters['image_uri']"}
    transform = _step(batch, "BatchTransform")["Arguments"]
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": "Steps.ResolveModelAndData.OutputParameters['input_uri']"}
    assert transform["TransformOutput"]["S3OutputPath"] == {"Get": "Steps.ResolveModelAndData.OutputParameters['output_uri']"}
    assert transform["TransformInput"]["SplitType"] == "Line" and transform["TransformOutput"]["KmsKeyId"] == ENV["KMS_KEY_ARN"]
    parameters = {p["Name"]: p.get("DefaultValue") for p in batch["Parameters"]}
    assert parameters["OutputPrefixUri"] == "s3://artifacts/batch-predictions/" and parameters["TransformInstanceCount"] == 2


@pytest.fixture
def lambda_env(buckets, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return boto3.client("sagemaker", region_name=REGION)


def test_handler_creates_then_updates_the_same_pipelines(lambda_env, monkeypatch):
    first = register.handler({}, None)
    assert first == {"pipelines": {
        "training": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlops-test-training",
        "batch-prediction": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlops-test-batch-prediction",
    }}
    monkeypatch.setenv("MSE_THRESHOLD", "4.25")
    assert register.handler({"pipelines": ["training"]}, None) == {"pipelines": {"training": first["pipelines"]["training"]}}
    assert len(lambda_env.list_pipelines()["PipelineSummaries"]) == 2
    definition = json.loads(lambda_env.describe_pipeline(PipelineName="mlops-test-training")["PipelineDefinition"])
    assert {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}["MseThreshold"] == 4.25


@pytest.mark.parametrize(("event", "message"), [
    ({"pipelines": ["nightly"]}, "unknown pipeline 'nightly'; choose from training, batch-prediction"),
    ({"pipelines": []}, "'pipelines' must be a non-empty list drawn from training, batch-prediction"),
    ({"pipeline": "training"}, "unknown key(s) pipeline; send {} or {\"pipelines\": [...]}"),
    ("training", "event must be a JSON object, got str"),
])
def test_handler_rejects_malformed_events(lambda_env, event, message):
    with pytest.raises(register.RequestError) as error:
        register.handler(event, None)
    assert str(error.value) == message


def test_handler_names_a_missing_environment_variable(lambda_env, monkeypatch):
    monkeypatch.delenv("MODEL_PACKAGE_GROUP_NAME")
    with pytest.raises(settings_module.SettingsError) as error:
        register.handler({}, None)
    assert str(error.value) == ("environment variable MODEL_PACKAGE_GROUP_NAME is missing or empty; "
                                "the stack sets it, so redeploy it or set it when running locally")


def test_settings_reject_a_non_numeric_count():
    with pytest.raises(settings_module.SettingsError) as error:
        settings_module.PipelineSettings.from_environment(pipeline_environment(TUNING_MAX_JOBS="many"))
    assert str(error.value) == "environment variable TUNING_MAX_JOBS='many' is not a valid int"


class Context:
    log_stream_name = "2026/11/23/[$LATEST]abc"


@pytest.fixture
def cfn_responses(monkeypatch):
    sent = []

    class Response:
        status = 200

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(request, timeout):
        sent.append((request.full_url, request.get_method(), json.loads(request.data)))
        return Response()

    monkeypatch.setattr(register.urllib.request, "urlopen", urlopen)
    return sent


def _cfn_event(request_type: str, **extra) -> dict:
    return {"RequestType": request_type, "ResponseURL": "https://cloudformation-response.example/presigned",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/dev-Pipelines/1", "RequestId": "r-1",
            "LogicalResourceId": "PipelineRegistration", "ResourceType": "Custom::SageMakerPipelines", **extra}


def test_custom_resource_create_then_delete(lambda_env, cfn_responses):
    register.handler(_cfn_event("Create"), Context())
    url, method, body = cfn_responses[-1]
    assert (url, method, body["Status"]) == ("https://cloudformation-response.example/presigned", "PUT", "SUCCESS")
    assert body["PhysicalResourceId"] == "mlops-test-training|mlops-test-batch-prediction"
    assert body["Data"]["TrainingPipelineArn"].endswith(":pipeline/mlops-test-training")
    assert len(lambda_env.list_pipelines()["PipelineSummaries"]) == 2

    register.handler(_cfn_event("Delete", PhysicalResourceId=body["PhysicalResourceId"]), Context())
    assert cfn_responses[-1][2]["Status"] == "SUCCESS"
    assert lambda_env.list_pipelines()["PipelineSummaries"] == []


def test_custom_resource_failure_is_reported_not_raised(lambda_env, cfn_responses, monkeypatch):
    monkeypatch.delenv("ARTIFACTS_BUCKET")
    assert register.handler(_cfn_event("Update", PhysicalResourceId="a|b"), Context()) is None
    body = cfn_responses[-1][2]
    assert body["Status"] == "FAILED" and body["PhysicalResourceId"] == "a|b"
    assert body["Reason"].startswith("SettingsError: environment variable ARTIFACTS_BUCKET is missing or empty")


def test_delete_after_a_failed_create_deletes_nothing(lambda_env, cfn_responses):
    register.handler(_cfn_event("Delete", PhysicalResourceId="no-pipelines-registered"), Context())
    assert cfn_responses[-1][2]["Status"] == "SUCCESS"
