"""Pipeline definitions as one execution sees them: placeholders made concrete, steps as the requests SageMaker makes."""

from __future__ import annotations

import re

from aws_strict import ACCOUNT, REGION

EXECUTION_ID = "a1b2c3d4e5f6"

STEP_OPERATIONS = {
    "Processing": ("CreateProcessingJob", "ProcessingJobName", "DescribeProcessingJob"),
    "Tuning": ("CreateHyperParameterTuningJob", "HyperParameterTuningJobName", "DescribeHyperParameterTuningJob"),
    "Transform": ("CreateTransformJob", "TransformJobName", "DescribeTransformJob"),
    "Model": ("CreateModel", "ModelName", "DescribeModel"),
    "RegisterModel": ("CreateModelPackage", None, "DescribeModelPackage"),
    # A QualityCheck step runs Model Monitor's analyzer as a processing job; its arguments are that job's request.
    "QualityCheck": ("CreateProcessingJob", "ProcessingJobName", "DescribeProcessingJob"),
}


class Definition:
    """One pipeline definition with its placeholders made concrete, as one execution would see them."""

    def __init__(self, definition: dict, settings) -> None:
        self.settings = settings
        self.parameters = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
        self.steps: dict[str, dict] = {}
        self._flatten(definition["Steps"])

    def _flatten(self, steps: list[dict]) -> None:
        for step in steps:
            self.steps[step["Name"]] = step
            self._flatten(step.get("Arguments", {}).get("IfSteps", []) + step.get("Arguments", {}).get("ElseSteps", []))

    def job_name(self, step: str, limit: int = 63) -> str:
        return f"pipelines-{EXECUTION_ID}-{re.sub('[^A-Za-z0-9]', '', step)}"[:limit]

    def get(self, path: str):
        s = self.settings
        if path.startswith("Parameters."):
            return self.parameters[path.split(".", 1)[1]]
        if path == "Execution.PipelineExecutionId":
            return EXECUTION_ID
        output = re.fullmatch(r"Steps\.([\w-]+)\.ProcessingOutputConfig\.Outputs\['(\w+)'\]\.S3Output\.S3Uri", path)
        if output:
            outputs = self.steps[output[1]]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            return self.concrete(next(o for o in outputs if o["OutputName"] == output[2])["S3Output"]["S3Uri"])
        if re.fullmatch(r"Steps\.[\w-]+\.TrainingJobSummaries\[0\]\.TrainingJobName", path):
            return f"{self.job_name('TuneLightGBM')}-001-0a1b2c3d"
        if re.fullmatch(r"Steps\.[\w-]+\.ModelName", path):
            return self.job_name(path.split(".")[1])
        baseline = re.fullmatch(r"Steps\.([\w-]+)\.(CalculatedBaseline|BaselineUsedForDriftCheck)(Statistics|Constraints)", path)
        if baseline:
            # The analyzer writes statistics.json and constraints.json to the check's output path.
            (output,) = self.steps[baseline[1]]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            return f"{self.concrete(output['S3Output']['S3Uri'])}/{baseline[3].lower()}.json"
        lambda_output = re.fullmatch(r"Steps\.[\w-]+\.OutputParameters\['(\w+)'\]", path)
        if lambda_output:
            return {
                "image_uri": s.inference_image_uri,
                "status": "ready",
                "message": "ready",
                "model_data_url": f"s3://{s.artifacts_bucket}/{s.training_pipeline_name}/models/job/output/model.tar.gz",
                "model_package_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{s.model_package_group_name}/1",
                "input_uri": f"s3://{s.raw_data_bucket}/{s.batch_prediction.input_prefix}2026-11-23/",
                "output_uri": f"s3://{s.artifacts_bucket}/{s.batch_prediction.output_prefix}2026-11-23/",
            }[lambda_output[1]]
        raise AssertionError(f"no concrete value for {path}; teach Definition.get what SageMaker resolves it to")

    def concrete(self, value):
        if isinstance(value, list):
            return [self.concrete(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Get"}:
            return self.get(value["Get"])
        if set(value) == {"Std:Join"}:
            return value["Std:Join"]["On"].join(str(self.concrete(v)) for v in value["Std:Join"]["Values"])
        return {k: self.concrete(v) for k, v in value.items()}

    def requests(self) -> list[tuple[str, str, dict]]:
        """(step, operation, request) for every step that SageMaker turns into an API call."""
        result = []
        for name, step in self.steps.items():
            if step["Type"] not in STEP_OPERATIONS:
                continue
            operation, name_member, _ = STEP_OPERATIONS[step["Type"]]
            request = self.concrete(step["Arguments"])
            if name_member:
                request[name_member] = self.job_name(name, 32 if step["Type"] == "Tuning" else 63)
            result.append((name, operation, request))
        return result
