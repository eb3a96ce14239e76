"""The batch-prediction pipeline: resolve the latest Approved model and the day's data, then transform.

A day with no data or no approved model is not a failure: the execution succeeds without the
transform, and the resolve step's `message` output says why. A malformed input fails the resolve step.
Beside the transform, Model Monitor's analyzer checks the day's input against the package's data-quality
baseline and writes its report next to the predictions; a violation is reported, it does not fail the run.
The dataset's id columns lead each input record: the transform gives the model the features alone and
writes each record's ids before its answer (pipeline_scripts/dataset.py, batch_data_processing).
"""

from __future__ import annotations

from analyzer import analyzer_job, model_vpc_config
from sagemaker.lambda_helper import Lambda
from sagemaker.model import Model
from sagemaker.model_monitor.dataset_format import DatasetFormat
from sagemaker.transformer import Transformer
from sagemaker.utils import instance_supports_kms
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals, ConditionNot
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join
from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from sagemaker.workflow.steps import TransformStep

from common.contracts import PipelineSettings
from pipeline_scripts.dataset import Dataset

RESOLVED_OUTPUTS = (
    "status",
    "message",
    "model_package_arn",
    "image_uri",
    "model_data_url",
    "input_uri",
    "output_uri",
    "baseline_statistics_uri",
    "baseline_constraints_uri",
)
READY = "ready"


def build_batch_pipeline(settings: PipelineSettings, session: PipelineSession) -> Pipeline:
    s = settings
    dataset = Dataset.from_dict(s.dataset)
    input_prefix = ParameterString("InputPrefixUri", default_value=f"s3://{s.raw_data_bucket}/{s.batch_prediction.input_prefix}")
    output_prefix = ParameterString(
        "OutputPrefixUri", default_value=f"s3://{s.artifacts_bucket}/{s.batch_prediction.output_prefix}"
    )
    processing_date = ParameterString("ProcessingDate", default_value="")
    instance_type = ParameterString("TransformInstanceType", default_value=s.batch_prediction.instance_type)
    instance_count = ParameterInteger("TransformInstanceCount", default_value=s.batch_prediction.instance_count)

    resolve = LambdaStep(
        name="ResolveModelAndData",
        lambda_func=Lambda(function_arn=s.resolve_batch_inputs_function_arn, session=session),
        inputs={
            "model_package_group_name": s.model_package_group_name,
            "input_prefix_uri": input_prefix,
            "output_prefix_uri": output_prefix,
            "processing_date": processing_date,
            "timezone": s.timezone,
            "execution_id": ExecutionVariables.PIPELINE_EXECUTION_ID,
        },
        outputs=[LambdaOutput(output_name=name, output_type=LambdaOutputTypeEnum.String) for name in RESOLVED_OUTPUTS],
    )
    resolved = resolve.properties.Outputs

    # The image and model data of the resolved package: the SDK cannot create a model from a package ARN
    # that is only known at execution time.
    model = Model(
        image_uri=resolved["image_uri"],
        model_data=resolved["model_data_url"],
        role=s.job_role_arn,
        sagemaker_session=session,
        # The model server needs no network; the execution role creates isolated models alone, in the environment's
        # subnets when it has a VPC. The transform job runs in its model's VpcConfig (CreateTransformJob has none).
        enable_network_isolation=True,
        vpc_config=model_vpc_config(s),
    )
    create_model = ModelStep(name="CreateModel", step_args=model.create(instance_type=instance_type))
    transformer = Transformer(
        model_name=create_model.properties.ModelName,
        instance_type=instance_type,
        instance_count=instance_count,
        output_path=resolved["output_uri"],
        accept="text/csv",
        assemble_with="Line",
        strategy="MultiRecord",
        output_kms_key=s.kms_key_arn,
        sagemaker_session=session,
        volume_kms_key=s.kms_key_arn if instance_supports_kms(s.batch_prediction.instance_type) else None,
        base_transform_job_name=f"{s.batch_pipeline_name}-transform",
    )
    filters = dataset.batch_data_processing()
    transform = TransformStep(
        name="BatchTransform",
        step_args=transformer.transform(
            data=resolved["input_uri"],
            content_type="text/csv",
            split_type="Line",
            input_filter=filters["InputFilter"],
            join_source=filters["JoinSource"],
            output_filter=filters["OutputFilter"],
        ),
    )
    # The day's records against the baseline the package was trained with: the same headerless CSV records
    # the endpoint captures. fail_on_violation=False: a drifted day is scored and its report says so.
    check_input = QualityCheckStep(
        name="CheckInputDataQuality",
        quality_check_config=DataQualityCheckConfig(
            baseline_dataset=resolved["input_uri"],
            dataset_format=DatasetFormat.csv(header=False),
            output_s3_uri=Join(on="", values=[resolved["output_uri"], "data-quality"]),
        ),
        check_job_config=analyzer_job(s, session, s.training.processing_instance_type, f"{s.batch_pipeline_name}-input-check"),
        skip_check=False,
        fail_on_violation=False,
        register_new_baseline=False,
        supplied_baseline_statistics=resolved["baseline_statistics_uri"],
        supplied_baseline_constraints=resolved["baseline_constraints_uri"],
    )
    has_baseline = ConditionStep(
        name="HasBaseline",
        conditions=[ConditionNot(ConditionEquals(left=resolved["baseline_constraints_uri"], right=""))],
        if_steps=[check_input],
        else_steps=[],
    )
    # The analyzer compares whole records with the baseline's features: input that leads with ids is not checked.
    checks_input = s.data_quality_checks and not dataset.id_columns
    gate = ConditionStep(
        name="CheckModelAndData",
        conditions=[ConditionEquals(left=resolved["status"], right=READY)],
        if_steps=[create_model, transform, has_baseline] if checks_input else [create_model, transform],
        else_steps=[],
    )
    return Pipeline(
        name=s.batch_pipeline_name,
        parameters=[input_prefix, output_prefix, processing_date, instance_type, instance_count],
        steps=[resolve, gate],
        sagemaker_session=session,
        pipeline_experiment_config=None,
    )
