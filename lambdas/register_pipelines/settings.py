"""Everything the pipeline definitions need: one JSON object the stack writes and this module validates.

The stack passes the same object as the custom resource's `Settings` property (so a rollback rebuilds
the pipelines from the previous properties) and as the function's SETTINGS variable (for direct
invocations).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# The asset bundles pipeline_scripts/ beside this file.
BUNDLED_SCRIPTS = Path(__file__).resolve().parent / "pipeline_scripts"
TYPES = {"str": str, "int": int, "float": (int, float)}


class SettingsError(ValueError):
    """Missing or malformed settings; names the key and who writes it."""


@dataclass(frozen=True)
class PipelineSettings:
    region: str
    pipeline_definition_role_arn: str
    pipeline_execution_role_arn: str
    job_role_arn: str
    kms_key_arn: str
    raw_data_bucket: str
    features_bucket: str
    artifacts_bucket: str
    raw_data_prefix: str
    batch_input_prefix: str
    batch_output_prefix: str
    training_pipeline_name: str
    batch_pipeline_name: str
    model_package_group_name: str
    training_image_uri: str
    inference_image_uri: str
    resolve_batch_inputs_function_arn: str
    processing_instance_type: str
    processing_instance_count: int
    training_instance_type: str
    training_instance_count: int
    tuning_max_jobs: int
    tuning_max_parallel_jobs: int
    mse_threshold: float
    model_approval_status: str
    endpoint_instance_type: str
    transform_instance_type: str
    transform_instance_count: int
    processing_timezone: str

    @classmethod
    def from_json(cls, text: Any, source: str = "SETTINGS") -> "PipelineSettings":
        try:
            values = json.loads(text) if isinstance(text, str) else None
        except json.JSONDecodeError as error:
            raise SettingsError(f"{source} is not valid JSON ({error}); the pipelines stack writes it, so redeploy it") from None
        if not isinstance(values, dict):
            raise SettingsError(f"{source} must be a JSON object written by the pipelines stack; redeploy it")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"{source} has unknown key(s) {', '.join(unknown)}; this function and its stack differ, redeploy both")
        for field in fields(cls):
            value = values.get(field.name)
            expected = TYPES[str(field.type)]
            if value is None or value == "" or isinstance(value, bool) or not isinstance(value, expected):
                raise SettingsError(f"{source}.{field.name} = {value!r} must be a non-empty {field.type}; "
                                    "the pipelines stack writes it, so redeploy it")
        # JSON (and CloudFormation) write 6.0 as 6: a float setting takes either.
        return cls(**{f.name: float(values[f.name]) if f.type == "float" else values[f.name] for f in fields(cls)})


def scripts_dir() -> Path:
    """pipeline_scripts/ beside this file, where the asset bundles it (read at call time, so tests can point it elsewhere)."""
    if not (BUNDLED_SCRIPTS / "preprocess.py").is_file():
        raise SettingsError(f"pipeline scripts not found in {BUNDLED_SCRIPTS}; the Lambda asset bundles pipeline_scripts/ there")
    return BUNDLED_SCRIPTS
