"""Everything the pipeline definitions need, read from the environment variables the stack sets."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

# The asset bundles pipeline_scripts/ beside this file; tests point PIPELINE_SCRIPTS_DIR at the repository's.
BUNDLED_SCRIPTS = Path(__file__).resolve().parent / "pipeline_scripts"


class SettingsError(RuntimeError):
    """A missing or malformed environment variable; names it and who sets it."""


@dataclass(frozen=True)
class PipelineSettings:
    region: str
    role_arn: str
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
    scripts_dir: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "PipelineSettings":
        values = {}
        for field in fields(cls):
            if field.name == "scripts_dir":
                values["scripts_dir"] = Path(environ.get("PIPELINE_SCRIPTS_DIR", BUNDLED_SCRIPTS))
                continue
            name = "AWS_REGION" if field.name == "region" else field.name.upper()
            raw = environ.get(name, "")
            if not raw:
                raise SettingsError(f"environment variable {name} is missing or empty; the stack sets it, so redeploy it or set it when running locally")
            try:
                values[field.name] = {"int": int, "float": float}.get(field.type, str)(raw)
            except ValueError:
                raise SettingsError(f"environment variable {name}={raw!r} is not a valid {field.type}") from None
        settings = cls(**values)
        if not (settings.scripts_dir / "preprocess.py").is_file():
            raise SettingsError(f"pipeline scripts not found in {settings.scripts_dir}; the Lambda asset bundles pipeline_scripts/ there")
        return settings
