"""The training pipeline: check for data -> preprocess -> tune LightGBM -> evaluate -> quality gate -> register or fail.

No training data under InputDataUri (a fresh environment, or a schedule that finds nothing) ends the
execution as a success without training; the check step's `message` output says so. The dataset block
(pipeline_scripts/dataset.py) decides the tuner's objective, the metrics the jobs report and where the gate
finds its metric in the evaluation report; preprocessing reads the block itself, as a file beside its code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from analyzer import analyzer_job, network_config, vpc_arguments
from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.lambda_helper import Lambda
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.model_monitor.dataset_format import DatasetFormat
from sagemaker.processing import FrameworkProcessor, ProcessingInput, ProcessingOutput
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter, ParameterRange
from sagemaker.utils import instance_supports_kms
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo, ConditionLessThanOrEqualTo
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from sagemaker.workflow.steps import ProcessingStep, TuningStep

from common import layout
from common.contracts import PipelineSettings
from pipeline_scripts.dataset import MIN, Dataset, QualityGate

# FrameworkProcessor's packaging of source_dir (runproc.sh, sourcedir.tar.gz); the jobs run the training image.
SKLEARN_VERSION = "1.2-1"
HYPERPARAMETER_RANGES: dict[str | PipelineVariable, ParameterRange] = {
    "num_leaves": IntegerParameter(7, 63),
    "learning_rate": ContinuousParameter(0.01, 0.2, scaling_type="Logarithmic"),
    "min_data_in_leaf": IntegerParameter(5, 60),
    "feature_fraction": ContinuousParameter(0.6, 1.0),
    "lambda_l2": ContinuousParameter(0.0, 10.0),
}
STATIC_HYPERPARAMETERS: dict[str, str | PipelineVariable] = {"num_boost_round": "3000", "early_stopping_rounds": "100"}
CONTENT_TYPES = ["text/csv", "application/json"]


def _s3(bucket: str, *parts) -> Join:
    return Join(on="/", values=[f"s3://{bucket}", *parts])


def build_training_pipeline(settings: PipelineSettings, session: PipelineSession, scripts: Path) -> Pipeline:
    s = settings
    dataset = Dataset.from_dict(s.dataset)
    assert s.training.quality_gate is not None, "the stack writes every environment's gate"
    quality_gate = QualityGate.from_dict(s.training.quality_gate.to_dict(), dataset.problem_type)
    objective = dataset.tuner_objective
    input_data = ParameterString("InputDataUri", default_value=f"s3://{s.raw_data_bucket}/{s.raw_data_prefix}")
    processing_type = ParameterString("ProcessingInstanceType", default_value=s.training.processing_instance_type)
    processing_count = ParameterInteger("ProcessingInstanceCount", default_value=s.training.processing_instance_count)
    training_type = ParameterString("TrainingInstanceType", default_value=s.training.training_instance_type)
    training_count = ParameterInteger("TrainingInstanceCount", default_value=s.training.training_instance_count)
    training_image = ParameterString("TrainingImageUri", default_value=s.training_image_uri)
    inference_image = ParameterString("InferenceImageUri", default_value=s.inference_image_uri)
    threshold = ParameterFloat("QualityGateThreshold", default_value=quality_gate.threshold)
    approval_status = ParameterString("ModelApprovalStatus", default_value=s.training.model_approval_status)
    run_prefix = [s.training_pipeline_name, ExecutionVariables.PIPELINE_EXECUTION_ID]

    # SageMaker refuses a volume key on instance types with NVMe instance storage (encrypted in hardware).
    def encryption(instance_type: str) -> dict[str, Any]:
        volume_key = s.kms_key_arn if instance_supports_kms(instance_type) else None
        return {"volume_kms_key": volume_key, "output_kms_key": s.kms_key_arn}

    common: dict[str, Any] = {"role": s.job_role_arn, "sagemaker_session": session}
    # No job of the pipeline needs the internet: inputs and outputs are S3 channels SageMaker moves itself. The
    # pipeline execution role is only allowed to start isolated jobs (stacks/sagemaker_roles.job_conditions),
    # in the environment's subnets when it has a VPC.
    isolated = network_config(s)
    in_vpc = vpc_arguments(s)

    # Preprocessing and evaluation run in the training image: the same pinned libraries as training and the tests.
    preprocessor = FrameworkProcessor(
        estimator_cls=SKLearn,
        framework_version=SKLEARN_VERSION,
        image_uri=training_image,
        command=["python3"],
        instance_type=processing_type,
        instance_count=processing_count,
        base_job_name=f"{s.training_pipeline_name}-preprocess",
        network_config=isolated,
        **common,
        **encryption(s.training.processing_instance_type),
    )
    preprocess = ProcessingStep(
        name="Preprocess",
        step_args=preprocessor.run(
            code="preprocess.py",
            source_dir=str(scripts),
            inputs=[
                ProcessingInput(source=input_data, destination="/opt/ml/processing/input", input_name="raw"),
                ProcessingInput(
                    source=upload_dataset(s, session),
                    destination="/opt/ml/processing/dataset",
                    input_name="dataset",
                ),
            ],
            outputs=[
                ProcessingOutput(
                    output_name=split,
                    source=f"/opt/ml/processing/{split}",
                    destination=_s3(s.features_bucket, *run_prefix, split),
                )
                for split in ("train", "validation", "test", "baseline", "holdout")
            ],
        ),
    )
    # The train split's raw records, as the endpoint captures them (CSV, no header, no target): Model Monitor's
    # data-quality baseline. Registered with the package, so every package carries what it is monitored against.
    baseline = QualityCheckStep(
        name="DataQualityBaseline",
        quality_check_config=DataQualityCheckConfig(
            baseline_dataset=preprocess.properties.ProcessingOutputConfig.Outputs["baseline"].S3Output.S3Uri,
            dataset_format=DatasetFormat.csv(header=False),
            output_s3_uri=_s3(s.artifacts_bucket, *run_prefix, "data-quality-baseline"),
        ),
        check_job_config=analyzer_job(s, session, processing_type, f"{s.training_pipeline_name}-baseline"),
        # A first baseline for a new model: nothing earlier to check against, and the new one is what registers.
        skip_check=True,
        register_new_baseline=True,
        model_package_group_name=s.model_package_group_name,
    )
    baselines = _registered_baselines(baseline) if s.data_quality_checks else {}

    estimator = Estimator(
        image_uri=training_image,
        instance_type=training_type,
        instance_count=training_count,
        output_path=f"s3://{s.artifacts_bucket}/{s.training_pipeline_name}/models",
        hyperparameters=STATIC_HYPERPARAMETERS,
        metric_definitions=_metric_definitions(dataset),
        enable_network_isolation=True,
        **in_vpc,
        base_job_name=f"{s.training_pipeline_name}-train",
        **common,
        **encryption(s.training.training_instance_type),
    )
    tuner = HyperparameterTuner(
        estimator=estimator,
        objective_metric_name=objective.metric_name,
        objective_type=objective.objective_type,
        hyperparameter_ranges=HYPERPARAMETER_RANGES,
        metric_definitions=_metric_definitions(dataset),
        strategy="Bayesian",
        max_jobs=s.training.tuning_max_jobs,
        max_parallel_jobs=s.training.tuning_max_parallel_jobs,
        # train.py reports the objective once, at the end; LightGBM's own early stopping ends each job instead.
        early_stopping_type="Off",
    )
    outputs = preprocess.properties.ProcessingOutputConfig.Outputs
    tune = TuningStep(
        name="TuneLightGBM",
        step_args=tuner.fit(
            inputs={
                channel: TrainingInput(s3_data=outputs[channel].S3Output.S3Uri, content_type="text/csv")
                for channel in ("train", "validation")
            }
        ),
    )
    best_model = tune.get_top_model_s3_uri(top_k=0, s3_bucket=s.artifacts_bucket, prefix=f"{s.training_pipeline_name}/models")

    evaluator = FrameworkProcessor(
        estimator_cls=SKLearn,
        framework_version=SKLEARN_VERSION,
        image_uri=training_image,
        command=["python3"],
        instance_type=processing_type,
        instance_count=1,
        base_job_name=f"{s.training_pipeline_name}-evaluate",
        network_config=isolated,
        **common,
        **encryption(s.training.processing_instance_type),
    )
    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluation_uri = _s3(s.artifacts_bucket, *run_prefix, "evaluation")
    evaluate = ProcessingStep(
        name="EvaluateModel",
        step_args=evaluator.run(
            code="evaluate.py",
            source_dir=str(scripts),
            inputs=[
                ProcessingInput(source=best_model, destination="/opt/ml/processing/model", input_name="model"),
                ProcessingInput(source=outputs["test"].S3Output.S3Uri, destination="/opt/ml/processing/test", input_name="test"),
                ProcessingInput(
                    source=outputs["holdout"].S3Output.S3Uri, destination="/opt/ml/processing/holdout", input_name="holdout"
                ),
            ],
            outputs=[
                ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation", destination=evaluation_uri)
            ],
        ),
        property_files=[report],
    )
    test_metric = JsonGet(step_name=evaluate.name, property_file=report, json_path=quality_gate.json_path)

    # A model package has no VpcConfig (CreateModelPackage API reference); the deployer's model is created in the VPC.
    model = Model(image_uri=inference_image, model_data=best_model, role=s.job_role_arn, sagemaker_session=session)
    register = ModelStep(
        name="RegisterModel",
        step_args=model.register(
            content_types=CONTENT_TYPES,
            response_types=CONTENT_TYPES,
            inference_instances=[s.endpoint_instance_type],
            transform_instances=[s.batch_prediction.instance_type],
            model_package_group_name=s.model_package_group_name,
            approval_status=approval_status,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(
                    s3_uri=Join(
                        on="/",
                        values=[
                            evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
                            "evaluation.json",
                        ],
                    ),
                    content_type="application/json",
                ),
                **baselines.get("metrics", {}),
            ),
            drift_check_baselines=baselines.get("drift_check"),
        ),
    )
    better = "at most" if quality_gate.direction == MIN else "at least"
    reject = FailStep(
        name="QualityGateFailed",
        error_message=Join(
            on=" ",
            values=[f"Model rejected: test {quality_gate.metric}", test_metric, f"must be {better}", threshold],
        ),
    )
    check_data = LambdaStep(
        name="CheckTrainingData",
        lambda_func=Lambda(function_arn=s.check_training_data_function_arn, session=session),
        inputs={"input_data_uri": input_data, "execution_id": ExecutionVariables.PIPELINE_EXECUTION_ID},
        outputs=[LambdaOutput(output_name=name, output_type=LambdaOutputTypeEnum.String) for name in ("status", "message")],
    )
    passes = ConditionLessThanOrEqualTo if quality_gate.direction == MIN else ConditionGreaterThanOrEqualTo
    gate = ConditionStep(
        name="QualityGate",
        # JsonGet is a documented left operand of conditions; the SDK's annotation leaves it out.
        conditions=[passes(left=test_metric, right=threshold)],  # type: ignore[arg-type]
        if_steps=[register],
        else_steps=[reject],
    )
    return Pipeline(
        name=s.training_pipeline_name,
        parameters=[
            input_data,
            processing_type,
            processing_count,
            training_type,
            training_count,
            training_image,
            inference_image,
            threshold,
            approval_status,
        ],
        steps=[
            check_data,
            ConditionStep(
                name="HasTrainingData",
                conditions=[ConditionEquals(left=check_data.properties.Outputs["status"], right="ready")],
                if_steps=[preprocess, baseline, tune, evaluate, gate] if baselines else [preprocess, tune, evaluate, gate],
                else_steps=[],
            ),
        ],
        sagemaker_session=session,
        # No SageMaker Experiments trial per execution: nothing reads one, and the role is not granted it.
        pipeline_experiment_config=None,
    )


def upload_dataset(settings: PipelineSettings, session: PipelineSession) -> str:
    """The dataset block as preprocessing reads it, under a key named by its content (what runs keeps its file)."""
    body = json.dumps(settings.dataset, indent=2, sort_keys=True)
    key = layout.dataset_file(settings.training_pipeline_name, hashlib.sha256(body.encode()).hexdigest())
    return session.upload_string_as_file_body(body, settings.artifacts_bucket, key)


def _metric_definitions(dataset: Dataset) -> list[dict[str, str | PipelineVariable]]:
    return [dict(definition) for definition in dataset.metric_definitions]


def _registered_baselines(baseline: QualityCheckStep) -> dict[str, Any]:
    """The package's data-quality metrics and drift-check baselines, both from the baseline step's outputs."""

    def source(uri: Any) -> MetricsSource:
        return MetricsSource(s3_uri=uri, content_type="application/json")

    properties = baseline.properties
    return {
        "metrics": {
            "model_data_statistics": source(properties.CalculatedBaselineStatistics),
            "model_data_constraints": source(properties.CalculatedBaselineConstraints),
        },
        "drift_check": DriftCheckBaselines(
            model_data_statistics=source(properties.BaselineUsedForDriftCheckStatistics),
            model_data_constraints=source(properties.BaselineUsedForDriftCheckConstraints),
        ),
    }
