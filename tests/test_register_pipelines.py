"""The pipeline definitions built offline (moto for S3 and SageMaker) and the register handler."""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import tarfile
from dataclasses import fields, replace

import boto3
import pytest
from conftest import ACCOUNT, LAMBDA_CONTEXT, REGION, REPO_ROOT, custom_resource_event, load_lambda, settings_environment

from common.contracts import BatchInputsRequest, PipelineSettings, QualityGateConfig, SettingsError, TrainingDataRequest
from pipeline_scripts import dataset as contract

register = load_lambda("register_pipelines")
scripts_module = sys.modules["bundled_scripts"]
training_module = sys.modules["training_pipeline"]
sys.path.insert(0, str(REPO_ROOT / "pipeline_scripts"))
import preprocess

# The regression dataset S is gated on with mse, whatever dataset cdk.json ships (binary_definitions has its own).
REGRESSION_DATASET = {
    "target": "age",
    "problem_type": "regression",
    "features": [{"name": "colour", "type": "categorical"}, {"name": "size", "type": "numeric"}],
}


@pytest.fixture(scope="module")
def S(pipeline_settings) -> PipelineSettings:
    """The reference non-production environment's settings as its template gives them, with values that differ from
    every default, on a regression dataset of its own."""
    training = replace(
        pipeline_settings.training,
        training_instance_type="ml.m5.2xlarge",
        tuning_max_jobs=6,
        tuning_max_parallel_jobs=3,
        quality_gate=QualityGateConfig("mse", 5.5),
        model_approval_status="PendingManualApproval",
    )
    return replace(
        pipeline_settings,
        dataset=REGRESSION_DATASET,
        training=training,
        timezone="Europe/Berlin",
        batch_prediction=replace(pipeline_settings.batch_prediction, instance_count=2),
    )


@pytest.fixture(autouse=True)
def bundled_scripts(monkeypatch):
    """The asset puts pipeline_scripts/ beside the handler; here it is the repository's."""
    monkeypatch.setattr(scripts_module, "BUNDLED_SCRIPTS", REPO_ROOT / "pipeline_scripts")


def _create_buckets(s3, settings: PipelineSettings) -> None:
    for name in (settings.artifacts_bucket, settings.raw_data_bucket, settings.features_bucket):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


@pytest.fixture
def buckets(aws, S):
    s3 = boto3.client("s3", region_name=REGION)
    _create_buckets(s3, S)
    return s3


@pytest.fixture(scope="module")
def built(S) -> tuple[dict[str, dict], dict[str, bytes]]:
    """Both definitions, built once against moto, and the objects the build uploaded to the artifacts bucket."""
    from moto import mock_aws

    original, scripts_module.BUNDLED_SCRIPTS = scripts_module.BUNDLED_SCRIPTS, REPO_ROOT / "pipeline_scripts"
    session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        with mock_aws():
            s3 = session.client("s3")
            _create_buckets(s3, S)
            pipelines = register.build_pipelines(S, boto_session=session)
            definitions = {name: json.loads(p.definition()) for name, p in pipelines.items()}
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=S.artifacts_bucket)["Contents"]]
            uploaded = {key: s3.get_object(Bucket=S.artifacts_bucket, Key=key)["Body"].read() for key in keys}
    finally:
        scripts_module.BUNDLED_SCRIPTS = original
    return definitions, uploaded


@pytest.fixture
def definitions(built):
    return built[0]


def _all_steps(steps: list[dict]) -> dict[str, dict]:
    found = {}
    for step in steps:
        found[step["Name"]] = step
        arguments = step.get("Arguments", {})
        found.update(_all_steps(arguments.get("IfSteps", []) + arguments.get("ElseSteps", [])))
    return found


def _step(definition, name):
    return _all_steps(definition["Steps"])[name]


def test_training_steps_and_branches(definitions):
    training = definitions["training"]
    assert [s["Name"] for s in training["Steps"]] == ["CheckTrainingData", "HasTrainingData"]
    has_data = _step(training, "HasTrainingData")["Arguments"]
    assert has_data["Conditions"] == [
        {"Type": "Equals", "LeftValue": {"Get": "Steps.CheckTrainingData.OutputParameters['status']"}, "RightValue": "ready"}
    ]
    assert [s["Name"] for s in has_data["IfSteps"]] == [
        "Preprocess",
        "DataQualityBaseline",
        "TuneLightGBM",
        "EvaluateModel",
        "QualityGate",
    ]
    assert has_data["ElseSteps"] == [], "no training data ends as a success, not a failure alert"
    check_data = _step(training, "CheckTrainingData")
    assert check_data["Arguments"] == {
        "input_data_uri": {"Get": "Parameters.InputDataUri"},
        "execution_id": {"Get": "Execution.PipelineExecutionId"},
    }
    check = _step(training, "QualityGate")["Arguments"]
    assert [s["Name"] for s in check["IfSteps"]] == ["RegisterModel-RegisterModel"]
    assert [s["Name"] for s in check["ElseSteps"]] == ["QualityGateFailed"]
    assert set(check_data["Arguments"]) == {f.name for f in fields(TrainingDataRequest)}, "the step sends the check's contract"


def test_training_parameters_and_defaults_come_from_the_stack(definitions, S):
    parameters = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definitions["training"]["Parameters"]}
    assert parameters == {
        "InputDataUri": ("String", f"s3://{S.raw_data_bucket}/incoming/"),
        "ProcessingInstanceType": ("String", "ml.m5.xlarge"),
        "ProcessingInstanceCount": ("Integer", 1),
        "TrainingInstanceType": ("String", "ml.m5.2xlarge"),
        "TrainingInstanceCount": ("Integer", 1),
        "TrainingImageUri": ("String", S.training_image_uri),
        "InferenceImageUri": ("String", S.inference_image_uri),
        "QualityGateThreshold": ("Float", 5.5),
        "ModelApprovalStatus": ("String", "PendingManualApproval"),
    }


def test_steps_depend_on_each_other_through_their_properties(definitions):
    training = definitions["training"]
    tuning = _step(training, "TuneLightGBM")["Arguments"]["TrainingJobDefinition"]["InputDataConfig"]
    assert {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in tuning} == {
        channel: {"Get": f"Steps.Preprocess.ProcessingOutputConfig.Outputs['{channel}'].S3Output.S3Uri"}
        for channel in ("train", "validation")
    }
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in _step(training, "EvaluateModel")["Arguments"]["ProcessingInputs"]}
    for split in ("test", "holdout"):
        assert inputs[split] == {"Get": f"Steps.Preprocess.ProcessingOutputConfig.Outputs['{split}'].S3Output.S3Uri"}
    assert {"Get": "Steps.TuneLightGBM.TrainingJobSummaries[0].TrainingJobName"} in inputs["model"]["Std:Join"]["Values"]


def test_preprocessing_runs_in_the_training_image_and_writes_the_features_bucket(built, S):
    definitions, uploaded = built
    preprocess = _step(definitions["training"], "Preprocess")["Arguments"]
    assert preprocess["AppSpecification"]["ImageUri"] == {"Get": "Parameters.TrainingImageUri"}
    entrypoint = preprocess["AppSpecification"]["ContainerEntrypoint"]
    runner = next(i["S3Input"] for i in preprocess["ProcessingInputs"] if i["InputName"] == "entrypoint")
    assert entrypoint == ["/bin/bash", f"{runner['LocalPath']}/runproc.sh"]
    script = uploaded[runner["S3Uri"].removeprefix(f"s3://{S.artifacts_bucket}/")].decode()
    assert "python3 preprocess.py" in script, "the training image's interpreter runs the bundled script"
    outputs = {
        o["OutputName"]: o["S3Output"]["S3Uri"]["Std:Join"]["Values"] for o in preprocess["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs["train"] == [
        f"s3://{S.features_bucket}",
        S.training_pipeline_name,
        {"Get": "Execution.PipelineExecutionId"},
        "train",
    ]
    assert preprocess["ProcessingOutputConfig"]["KmsKeyId"] == S.kms_key_arn


def test_tuning_objective_ranges_and_limits(definitions, S):
    tuning = _step(definitions["training"], "TuneLightGBM")["Arguments"]
    config = tuning["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "validation:rmse"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3}
    ranges = config["ParameterRanges"]
    assert {r["Name"] for r in ranges["IntegerParameterRanges"]} == {"num_leaves", "min_data_in_leaf"}
    assert {r["Name"] for r in ranges["ContinuousParameterRanges"]} == {"learning_rate", "feature_fraction", "lambda_l2"}
    job = tuning["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == {"Get": "Parameters.TrainingImageUri"}
    assert job["RoleArn"] == S.job_role_arn and job["EnableNetworkIsolation"] is True
    assert job["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{S.artifacts_bucket}/{S.training_pipeline_name}/models",
        "KmsKeyId": S.kms_key_arn,
    }


def test_objective_regex_parses_the_line_the_training_script_prints(definitions):
    job = _step(definitions["training"], "TuneLightGBM")["Arguments"]["TrainingJobDefinition"]
    objective = _step(definitions["training"], "TuneLightGBM")["Arguments"]["HyperParameterTuningJobConfig"][
        "HyperParameterTuningJobObjective"
    ]["MetricName"]
    regex = next(d["Regex"] for d in job["AlgorithmSpecification"]["MetricDefinitions"] if d["Name"] == objective)
    channel, metric = objective.split(":")
    line = contract.metric_line(channel, metric, 2.13)
    assert float(re.search(regex, f"[0]\ttrain\n{line}\n").group(1)) == pytest.approx(2.13)


def test_preprocessing_keeps_enough_train_rows_for_every_min_data_in_leaf_the_tuner_tries():
    """LightGBM splits a node only when both sides keep min_data_in_leaf rows: fewer than twice it fit a constant."""
    assert preprocess.MIN_ROWS["train"] == 2 * int(training_module.HYPERPARAMETER_RANGES["min_data_in_leaf"].max_value)


def test_quality_gate_compares_the_reported_metric_with_the_threshold(definitions):
    check = _step(definitions["training"], "QualityGate")["Arguments"]["Conditions"]
    assert check == [
        {
            "Type": "LessThanOrEqualTo",
            "LeftValue": {
                "Std:JsonGet": {
                    "PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"},
                    "Path": "regression_metrics.mse.value",
                }
            },
            "RightValue": {"Get": "Parameters.QualityGateThreshold"},
        }
    ]
    message = _step(definitions["training"], "QualityGateFailed")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert message[0] == "Model rejected: test mse" and message[2] == "must be at most"
    assert message[-1] == {"Get": "Parameters.QualityGateThreshold"}


def test_register_step_uses_the_inference_image_and_evaluation_metrics(definitions, S):
    register_step = _step(definitions["training"], "RegisterModel-RegisterModel")["Arguments"]
    assert register_step["ModelPackageGroupName"] == S.model_package_group_name
    assert register_step["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    container = register_step["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == {"Get": "Parameters.InferenceImageUri"}
    assert register_step["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv", "application/json"]
    statistics = register_step["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"]["Std:Join"]["Values"][-1] == "evaluation.json"


def test_every_package_carries_the_data_quality_baseline_of_its_training_split(definitions, S):
    """Model Monitor's analyzer baselines the train split's raw records; the package registers its statistics and
    constraints as model metrics and as the drift-check baselines a monitoring schedule is built from."""
    baseline = _step(definitions["training"], "DataQualityBaseline")
    assert (baseline["Type"], baseline["CheckType"], baseline["SkipCheck"], baseline["RegisterNewBaseline"]) == (
        "QualityCheck",
        "DATA_QUALITY",
        True,
        True,
    )
    (dataset,) = baseline["Arguments"]["ProcessingInputs"]
    assert dataset["S3Input"]["S3Uri"] == {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['baseline'].S3Output.S3Uri"}
    assert json.loads(baseline["Arguments"]["Environment"]["dataset_format"]) == {
        "csv": {"header": False, "output_columns_position": "START"}
    }
    assert baseline["Arguments"]["ProcessingOutputConfig"]["KmsKeyId"] == S.kms_key_arn
    preprocess = _step(definitions["training"], "Preprocess")["Arguments"]
    (source,) = [
        o["S3Output"]["LocalPath"] for o in preprocess["ProcessingOutputConfig"]["Outputs"] if o["OutputName"] == "baseline"
    ]
    assert source == "/opt/ml/processing/baseline", "where preprocess.py writes baseline.csv"
    register_step = _step(definitions["training"], "RegisterModel-RegisterModel")["Arguments"]
    quality = register_step["ModelMetrics"]["ModelDataQuality"]
    drift = register_step["DriftCheckBaselines"]["ModelDataQuality"]
    for kind in ("Statistics", "Constraints"):
        assert quality[kind] == {
            "ContentType": "application/json",
            "S3Uri": {"Get": f"Steps.DataQualityBaseline.CalculatedBaseline{kind}"},
        }
        assert drift[kind]["S3Uri"] == {"Get": f"Steps.DataQualityBaseline.BaselineUsedForDriftCheck{kind}"}


def test_scripts_are_uploaded_from_the_local_path_into_the_artifacts_bucket(built, S):
    definitions, uploaded = built
    for step_name, script in (("Preprocess", "preprocess.py"), ("EvaluateModel", "evaluate.py")):
        arguments = _step(definitions["training"], step_name)["Arguments"]
        code = next(i["S3Input"]["S3Uri"] for i in arguments["ProcessingInputs"] if i["InputName"] == "code")
        assert code.startswith(f"s3://{S.artifacts_bucket}/code/{S.training_pipeline_name}/code/") and code.endswith(
            "/sourcedir.tar.gz"
        )
        archive = uploaded[code.removeprefix(f"s3://{S.artifacts_bucket}/")]
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            assert {script, "inference.py", "train.py"} <= set(tar.getnames())
            assert (REPO_ROOT / "pipeline_scripts" / script).read_bytes() == tar.extractfile(script).read()


def test_evaluation_runs_in_the_training_image_and_the_package_points_at_its_report(definitions):
    """No step is cached: each one's inputs are under its own execution's prefix, and the package's metrics name
    the evaluation step's own output, which a cached step would not have written in this execution."""
    evaluate = _step(definitions["training"], "EvaluateModel")
    assert evaluate["Arguments"]["AppSpecification"]["ImageUri"] == {"Get": "Parameters.TrainingImageUri"}
    assert not [name for name, step in _all_steps(definitions["training"]["Steps"]).items() if "CacheConfig" in step]
    register = _step(definitions["training"], "RegisterModel-RegisterModel")
    statistics = register["Arguments"]["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert statistics["Std:Join"]["Values"][0] == {
        "Get": "Steps.EvaluateModel.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"
    }
    assert evaluate["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]


def test_batch_input_is_checked_against_the_packages_baseline_without_blocking(definitions, S):
    batch = definitions["batch-prediction"]
    has_baseline = _step(batch, "HasBaseline")["Arguments"]
    (condition,) = has_baseline["Conditions"]
    assert condition["Type"] == "Not" and condition["Condition"]["Type"] == "Equals"
    assert condition["Condition"]["LeftValue"] == {
        "Get": "Steps.ResolveModelAndData.OutputParameters['baseline_constraints_uri']"
    }
    assert condition["Condition"]["RightValue"] == ""
    assert [s["Name"] for s in has_baseline["IfSteps"]] == ["CheckInputDataQuality"] and has_baseline["ElseSteps"] == []
    step = _step(batch, "CheckInputDataQuality")
    assert (step["CheckType"], step["SkipCheck"], step["FailOnViolation"], step["RegisterNewBaseline"]) == (
        "DATA_QUALITY",
        False,
        False,
        False,
    )
    for kind in ("statistics", "constraints"):
        assert step[f"SuppliedBaseline{kind.title()}"] == {
            "Get": f"Steps.ResolveModelAndData.OutputParameters['baseline_{kind}_uri']"
        }
    job = step["Arguments"]
    (dataset,) = job["ProcessingInputs"]
    assert dataset["S3Input"]["S3Uri"] == {"Get": "Steps.ResolveModelAndData.OutputParameters['input_uri']"}
    environment = job["Environment"]
    assert json.loads(environment["dataset_format"]) == {"csv": {"header": False, "output_columns_position": "START"}}
    (output,) = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Steps.ResolveModelAndData.OutputParameters['output_uri']"}, "data-quality"]}
    }
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == S.kms_key_arn and job["RoleArn"] == S.job_role_arn


def test_batch_pipeline_resolves_the_model_at_execution_time(definitions, S):
    batch = definitions["batch-prediction"]
    assert [s["Name"] for s in batch["Steps"]] == ["ResolveModelAndData", "CheckModelAndData"]
    resolve = _step(batch, "ResolveModelAndData")
    assert resolve["FunctionArn"] == S.resolve_batch_inputs_function_arn
    assert resolve["Arguments"]["model_package_group_name"] == S.model_package_group_name
    assert resolve["Arguments"]["timezone"] == "Europe/Berlin"
    assert set(resolve["Arguments"]) == {f.name for f in fields(BatchInputsRequest)}, "the step sends the resolver's contract"
    assert {o["OutputName"] for o in resolve["OutputParameters"]} == {
        "status",
        "message",
        "model_package_arn",
        "image_uri",
        "model_data_url",
        "input_uri",
        "output_uri",
        "baseline_statistics_uri",
        "baseline_constraints_uri",
    }
    check = _step(batch, "CheckModelAndData")["Arguments"]
    assert check["Conditions"][0]["RightValue"] == "ready"
    assert [s["Name"] for s in check["IfSteps"]] == ["CreateModel-CreateModel", "BatchTransform", "HasBaseline"]
    assert check["ElseSteps"] == [], "a day with nothing to do ends as a success, not a failure alert"
    container = _step(batch, "CreateModel-CreateModel")["Arguments"]["PrimaryContainer"]
    assert container["Image"] == {"Get": "Steps.ResolveModelAndData.OutputParameters['image_uri']"}
    transform = _step(batch, "BatchTransform")["Arguments"]
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": "Steps.ResolveModelAndData.OutputParameters['input_uri']"
    }
    assert transform["TransformOutput"]["S3OutputPath"] == {"Get": "Steps.ResolveModelAndData.OutputParameters['output_uri']"}
    assert transform["TransformInput"]["SplitType"] == "Line" and transform["TransformOutput"]["KmsKeyId"] == S.kms_key_arn
    parameters = {p["Name"]: p.get("DefaultValue") for p in batch["Parameters"]}
    assert (
        parameters["OutputPrefixUri"] == f"s3://{S.artifacts_bucket}/batch-predictions/"
        and parameters["TransformInstanceCount"] == 2
    )


@pytest.fixture
def function_env(monkeypatch, S):
    """The register function's environment as the stack writes it; no AWS behind it (the cases fail before any call)."""
    for key, value in settings_environment(S).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def lambda_env(buckets, function_env):
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def stack_id(aws) -> str:
    """The registration's stack, which it asks whether an update is a rollback."""
    template = json.dumps({"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}})
    return boto3.client("cloudformation", region_name=REGION).create_stack(StackName="Pipelines", TemplateBody=template)[
        "StackId"
    ]


def _settings_json(settings: PipelineSettings, **changes) -> str:
    return json.dumps({**settings.to_dict(), **changes})


def test_handler_creates_then_updates_the_same_pipelines(lambda_env, monkeypatch, S):
    first = register.handler({}, LAMBDA_CONTEXT)
    assert first == {
        "pipelines": {
            "training": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{S.training_pipeline_name}",
            "batch-prediction": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{S.batch_pipeline_name}",
        }
    }
    monkeypatch.setenv(
        "SETTINGS", _settings_json(replace(S, training=replace(S.training, quality_gate=QualityGateConfig("mse", 4.25))))
    )
    assert register.handler({"pipelines": ["training"]}, LAMBDA_CONTEXT) == {
        "pipelines": {"training": first["pipelines"]["training"]}
    }
    assert len(lambda_env.list_pipelines()["PipelineSummaries"]) == 2
    definition = json.loads(lambda_env.describe_pipeline(PipelineName=S.training_pipeline_name)["PipelineDefinition"])
    assert {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}["QualityGateThreshold"] == 4.25


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"pipelines": ["nightly"]}, "unknown pipeline 'nightly'; choose from training, batch-prediction"),
        ({"pipelines": []}, "'pipelines' must be a non-empty list drawn from training, batch-prediction"),
        ({"pipelines": [1]}, "'pipelines' must be a non-empty list drawn from training, batch-prediction"),
        ({"pipeline": "training"}, 'unknown key(s) pipeline; send {} or {"pipelines": [...]}'),
        ("training", "event must be a JSON object, got str"),
    ],
)
def test_handler_rejects_malformed_events(function_env, event, message):
    with pytest.raises(register.RequestError) as error:
        register.handler(event, LAMBDA_CONTEXT)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (None, "SETTINGS must be a JSON object, got NoneType; the stack writes it, so redeploy the stack"),
        (
            "{not json",
            "SETTINGS is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
            "the stack writes it, so redeploy the stack",
        ),
        ({"region": ""}, "SETTINGS.region = '' must be a non-empty string; the stack writes it, so redeploy the stack"),
        ({"training": {"tuning_max_jobs": "many"}}, "SETTINGS.training.tuning_max_jobs = 'many' must be an integer; "),
        (
            {"training": "ml.m5.large"},
            "SETTINGS.training must be a JSON object, got str; the stack writes it, so redeploy the stack",
        ),
        ({"extra": 1}, "SETTINGS has unknown key(s) extra; expected region, pipeline_definition_role_arn, "),
    ],
)
def test_bad_settings_are_named(function_env, monkeypatch, S, change, message):
    if change is None:
        monkeypatch.delenv("SETTINGS")
    else:
        monkeypatch.setenv("SETTINGS", change if isinstance(change, str) else _settings_json(S, **change))
    with pytest.raises(SettingsError) as error:
        register.handler({}, LAMBDA_CONTEXT)
    assert str(error.value).startswith(message)


def test_a_nested_setting_of_the_wrong_type_is_named_with_its_path(S):
    values = S.to_dict()
    del values["kms_key_arn"]
    with pytest.raises(SettingsError, match=r"^Settings lacks kms_key_arn; the stack writes them"):
        PipelineSettings.from_mapping(values, "Settings")
    values = {**S.to_dict(), "training": {**S.training.to_dict(), "tuning_max_jobs": True}}
    with pytest.raises(SettingsError, match=r"^Settings.training.tuning_max_jobs = True must be an integer; the stack writes"):
        PipelineSettings.from_mapping(values, "Settings")


@pytest.mark.parametrize(
    ("path", "written", "message"),
    [
        ("quality_gate.threshold", "NaN", "= nan must be a finite number"),
        ("quality_gate.threshold", "Infinity", "= inf must be a finite number"),
        ("quality_gate.threshold", "-1e999", "= -inf must be a finite number"),
        ("quality_gate.threshold", "false", "= False must be a finite number"),
        ("tuning_max_jobs", "true", "= True must be an integer"),
        ("tuning_max_jobs", "NaN", "= nan must be an integer"),
    ],
)
def test_a_numeric_setting_takes_neither_a_boolean_nor_nan_nor_infinity(S, path, written, message):
    """Python's json reads NaN and Infinity, which JSON itself has not; a threshold of NaN would pass every model."""
    values = S.to_dict()
    *parents, key = ["training", *path.split(".")]
    target = values
    for parent in parents:
        target = target[parent]
    target[key] = "<number>"
    text = json.dumps(values).replace('"<number>"', written)
    with pytest.raises(SettingsError) as error:
        PipelineSettings.from_json(text)
    assert str(error.value) == f"SETTINGS.training.{path} {message}; the stack writes it, so redeploy the stack"


def _cfn_event(request_type: str, settings: PipelineSettings, **extra) -> dict:
    return custom_resource_event(request_type, "Custom::SageMakerPipelines", "PipelineRegistration", settings, **extra)


def test_update_builds_from_the_resource_properties_not_the_environment(lambda_env, monkeypatch, S, stack_id):
    """A rollback sends the previous properties; the pipelines must be rebuilt from them."""
    monkeypatch.setenv(
        "SETTINGS", _settings_json(replace(S, training=replace(S.training, quality_gate=QualityGateConfig("mse", 9.0))))
    )
    register.on_event(_cfn_event("Update", S, PhysicalResourceId="a|b", StackId=stack_id), LAMBDA_CONTEXT)
    definition = json.loads(lambda_env.describe_pipeline(PipelineName=S.training_pipeline_name)["PipelineDefinition"])
    assert {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}["QualityGateThreshold"] == 5.5


def test_a_failed_first_create_leaves_no_pipeline_behind(lambda_env, monkeypatch, S):
    real_build = register.build_pipelines

    class Rejected:
        name = S.batch_pipeline_name

        def upsert(self, **kwargs):
            raise RuntimeError("batch pipeline rejected")

    monkeypatch.setattr(register, "build_pipelines", lambda *a, **kw: {**real_build(*a, **kw), "batch-prediction": Rejected()})
    with pytest.raises(RuntimeError, match="batch pipeline rejected"):
        register.on_event(_cfn_event("Create", S), LAMBDA_CONTEXT)
    assert lambda_env.list_pipelines()["PipelineSummaries"] == []


def test_bad_custom_resource_events_raise_clear_errors(function_env, S):
    with pytest.raises(register.RequestError, match="RequestType must be Create, Update or Delete"):
        register.on_event({"RequestType": "Upsert"}, LAMBDA_CONTEXT)
    with pytest.raises(SettingsError, match=r"ResourceProperties\.Settings must be a JSON object"):
        register.on_event(_cfn_event("Create", S, ResourceProperties={}), LAMBDA_CONTEXT)


def test_delete_after_a_failed_create_deletes_nothing(lambda_env, S):
    assert register.on_event(_cfn_event("Delete", S, PhysicalResourceId="log-stream-of-a-failed-create"), LAMBDA_CONTEXT) == {
        "PhysicalResourceId": "log-stream-of-a-failed-create"
    }


def _executions(client, settings: PipelineSettings) -> list[dict]:
    return client.list_pipeline_executions(PipelineName=settings.training_pipeline_name)["PipelineExecutionSummaries"]


def test_a_new_training_image_starts_training_once(lambda_env, S):
    """The first deploy and every deploy with a new training image train; other deploys do not."""
    register.upsert(S)
    assert register.train_on_new_image(_cfn_event("Create", S), S, lambda_env).startswith("arn:aws:sagemaker:")
    assert [e["PipelineExecutionDisplayName"] for e in _executions(lambda_env, S)] == ["new-training-image"]
    previous = {"Settings": json.dumps(S.to_dict())}
    assert register.train_on_new_image(_cfn_event("Update", S, OldResourceProperties=previous), S, lambda_env) is None
    newer = replace(S, training_image_uri=S.training_image_uri.rsplit(":", 1)[0] + ":sha-00000000000000aa")
    update = _cfn_event("Update", newer, RequestId="r-2", OldResourceProperties=previous)
    assert register.train_on_new_image(update, newer, lambda_env).startswith("arn:aws:sagemaker:")
    assert len(_executions(lambda_env, S)) == 2


def test_without_model_monitor_neither_pipeline_runs_the_analyzer(S, buckets):
    """Accounts that cannot use Model Monitor turn monitoring off: no baseline step, no drift baselines, no input check."""
    session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    pipelines = register.build_pipelines(replace(S, data_quality_checks=False), boto_session=session)
    definitions = {name: json.loads(p.definition()) for name, p in pipelines.items()}
    for definition in definitions.values():
        assert not [s for s in _all_steps(definition["Steps"]).values() if s["Type"] == "QualityCheck"]
    register_step = _step(definitions["training"], "RegisterModel-RegisterModel")["Arguments"]
    assert "DriftCheckBaselines" not in register_step and "ModelDataQuality" not in register_step["ModelMetrics"]
    assert [s["Name"] for s in _step(definitions["batch-prediction"], "CheckModelAndData")["Arguments"]["IfSteps"]] == [
        "CreateModel-CreateModel",
        "BatchTransform",
    ]


def test_preprocessing_reads_the_dataset_block_from_a_file_named_by_its_content(built, S):
    """Container arguments hold 256 characters each; the block travels as a file, and a new block is a new key."""
    definitions, uploaded = built
    preprocess = _step(definitions["training"], "Preprocess")["Arguments"]
    (source,) = [i["S3Input"] for i in preprocess["ProcessingInputs"] if i["InputName"] == "dataset"]
    assert source["LocalPath"] == "/opt/ml/processing/dataset"
    body = uploaded[source["S3Uri"].removeprefix(f"s3://{S.artifacts_bucket}/")]
    assert json.loads(body) == S.dataset
    digest = hashlib.sha256(body).hexdigest()
    assert source["S3Uri"] == f"s3://{S.artifacts_bucket}/code/{S.training_pipeline_name}/dataset/{digest}/dataset.json"


def _definitions_of(settings: PipelineSettings) -> dict[str, dict]:
    """Both definitions of `settings`, built against moto."""
    from moto import mock_aws

    original, scripts_module.BUNDLED_SCRIPTS = scripts_module.BUNDLED_SCRIPTS, REPO_ROOT / "pipeline_scripts"
    session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        with mock_aws():
            _create_buckets(session.client("s3"), settings)
            pipelines = register.build_pipelines(settings, boto_session=session)
            return {name: json.loads(p.definition()) for name, p in pipelines.items()}
    finally:
        scripts_module.BUNDLED_SCRIPTS = original


@pytest.fixture(scope="module")
def binary_definitions(S) -> dict[str, dict]:
    """A binary dataset with an id column, gated on AUC: the other direction and batch transform's filters."""

    block = {
        "target": "churned",
        "problem_type": "binary",
        "features": [{"name": "tenure", "type": "numeric"}, {"name": "plan", "type": "categorical"}],
        "id_columns": ["customer_id"],
    }
    settings = replace(S, dataset=block, training=replace(S.training, quality_gate=QualityGateConfig("auc", 0.8)))
    return _definitions_of(settings)


def test_a_metric_that_is_better_higher_gates_at_least_its_threshold(binary_definitions):
    (condition,) = _step(binary_definitions["training"], "QualityGate")["Arguments"]["Conditions"]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "binary_classification_metrics.auc.value"
    message = _step(binary_definitions["training"], "QualityGateFailed")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert message[0] == "Model rejected: test auc" and message[2] == "must be at least"
    tuning = _step(binary_definitions["training"], "TuneLightGBM")["Arguments"]["HyperParameterTuningJobConfig"]
    assert tuning["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "validation:logloss"}
    parameters = {p["Name"]: p.get("DefaultValue") for p in binary_definitions["training"]["Parameters"]}
    assert parameters["QualityGateThreshold"] == 0.8


def test_batch_transform_passes_the_id_columns_through_and_feeds_the_model_the_features(binary_definitions, definitions):
    """The model sees the features; each output row keeps the ids and the answer ("Associate Prediction Results
    with Input Records"). Without id columns the rows go through whole, as before."""
    transform = _step(binary_definitions["batch-prediction"], "BatchTransform")["Arguments"]
    assert transform["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,3,4]"}
    plain = _step(definitions["batch-prediction"], "BatchTransform")["Arguments"]
    assert plain["DataProcessing"] == {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$"}
    checks = [s for s in _all_steps(binary_definitions["batch-prediction"]["Steps"]).values() if s["Type"] == "QualityCheck"]
    assert checks == [], "the analyzer would read the id columns as features"


NETWORK = {
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    "security_group_ids": ["sg-0123456789abcdef0"],
}


@pytest.fixture(scope="module")
def vpc_definitions(S) -> dict[str, dict]:
    """Both definitions of an environment with a `network` block, as SageMaker receives them."""

    from common.contracts import NetworkConfig

    settings = replace(S, network=NetworkConfig.from_mapping(NETWORK, "network"))
    return _definitions_of(settings)


# Where each kind of step carries its job's VpcConfig, as SageMaker Pipelines sends the step's request.
VPC_CONFIG_OF = {
    "Processing": lambda arguments: arguments["NetworkConfig"]["VpcConfig"],
    "QualityCheck": lambda arguments: arguments["NetworkConfig"]["VpcConfig"],
    "Training": lambda arguments: arguments["VpcConfig"],
    "Tuning": lambda arguments: arguments["TrainingJobDefinition"]["VpcConfig"],
    "Model": lambda arguments: arguments["VpcConfig"],
}
# Steps that start no job of their own: a transform job runs in its model's VpcConfig, and CreateTransformJob and
# CreateModelPackage take none (botocore's model, checked below); the rest run no compute in the account.
NO_VPC_CONFIG = {"Transform", "RegisterModel", "Lambda", "Condition", "Fail"}


def test_with_a_network_every_job_of_both_pipelines_runs_in_its_subnets(vpc_definitions, definitions):
    """The SDK has dropped network settings of some steps before; the definitions themselves are the proof."""
    import botocore.session

    expected = {"Subnets": NETWORK["subnet_ids"], "SecurityGroupIds": NETWORK["security_group_ids"]}
    jobs = []
    for name, definition in vpc_definitions.items():
        for step in _all_steps(definition["Steps"]).values():
            assert step["Type"] in VPC_CONFIG_OF or step["Type"] in NO_VPC_CONFIG, (name, step["Name"], step["Type"])
            if step["Type"] in VPC_CONFIG_OF:
                jobs.append(step["Type"])
                assert VPC_CONFIG_OF[step["Type"]](step["Arguments"]) == expected, (name, step["Name"])
            if step["Type"] in ("Processing", "QualityCheck"):
                assert step["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] is True, step["Name"]
            if step["Type"] == "Model":
                assert step["Arguments"]["EnableNetworkIsolation"] is True, step["Name"]
            if step["Type"] == "Transform":
                assert step["Arguments"]["ModelName"] == {"Get": "Steps.CreateModel-CreateModel.ModelName"}
    # Preprocess, evaluate, the baseline; the tuner; the batch model and the input check.
    assert sorted(jobs) == ["Model", "Processing", "Processing", "QualityCheck", "QualityCheck", "Tuning"]
    model = botocore.session.get_session().get_service_model("sagemaker")
    for operation in ("CreateTransformJob", "CreateModelPackage"):
        assert "VpcConfig" not in model.operation_model(operation).input_shape.members, operation
    without = [s for d in definitions.values() for s in _all_steps(d["Steps"]).values() if s["Type"] in VPC_CONFIG_OF]
    assert without and "VpcConfig" not in json.dumps(without)
