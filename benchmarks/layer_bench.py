"""Layer benchmarks: size unzipped and zipped, cold import time, time to build both pipeline definitions.

python benchmarks/layer_bench.py
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = REPO_ROOT / "lambdas"
sys.path[:0] = [str(REPO_ROOT), str(LAMBDAS), str(LAMBDAS / "register_pipelines")]

from layers.build_layer import LAMBDA_TARGET, build, local_target, size_bytes

REGION, ACCOUNT = "eu-west-1", "123456789012"
LAMBDA_LIMIT_MB = 250
# The layer, the handler's folder and lambdas/ (its asset bundles common/ beside the handler).
IMPORT = (
    "import sys, time; sys.path[:0] = sys.argv[1:4]; started = time.perf_counter();"
    "import training_pipeline, batch_pipeline; print(time.perf_counter() - started)"
)


def zipped_mb(root: Path) -> float:
    with tempfile.TemporaryFile() as archive:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(root.parent))
        archive.seek(0, os.SEEK_END)
        return archive.tell() / 1e6


def cold_import_seconds(layer: Path, bytecode: bool, runs: int = 5) -> list[float]:
    """Fresh processes; without bytecode (-B) each one compiles, as on Lambda, whose /opt is read-only."""
    handler_dir = REPO_ROOT / "lambdas" / "register_pipelines"
    env = {"PATH": os.environ["PATH"], "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "HOME": tempfile.gettempdir()}
    flags = ["-I", "-S"] if bytecode else ["-I", "-S", "-B"]
    return [
        float(
            subprocess.run(
                [sys.executable, *flags, "-c", IMPORT, str(layer), str(handler_dir), str(LAMBDAS)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(runs)
    ]


def pipeline_settings():
    """The first environment of cdk.json with made-up resource names: what the stack would give register_pipelines."""
    from common.contracts import PipelineSettings
    from stacks.synth.config import load_config

    config = load_config(json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["mlops"])
    env, prefix = config.environments[0], f"{config.project_name}-{config.environments[0].name}"
    role = f"arn:aws:iam::{ACCOUNT}:role/{prefix}"
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{prefix}"
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{prefix}"
    # The stacks import lambdas.common, the handler common: its own copy of the contracts reads them as JSON does.
    values = dict(
        region=REGION,
        pipeline_definition_role_arn=f"{role}-definition",
        pipeline_execution_role_arn=f"{role}-execution",
        job_role_arn=f"{role}-job",
        kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-1111-2222-3333-444455556666",
        raw_data_bucket="raw",
        features_bucket="features",
        artifacts_bucket="artifacts",
        raw_data_prefix=env.storage.raw_data_prefix,
        training_pipeline_name=f"{prefix}-training",
        batch_pipeline_name=f"{prefix}-batch-prediction",
        model_package_group_name=prefix,
        training_image_uri=f"{image}-training:bench",
        inference_image_uri=f"{image}-inference:bench",
        resolve_batch_inputs_function_arn=f"{function}-resolve-batch-inputs",
        check_training_data_function_arn=f"{function}-check-training-data",
        endpoint_instance_type=env.endpoint.instance_type,
        timezone=env.schedules.timezone,
        dataset=config.dataset.to_dict(),
        training=env.training.to_dict(),
        batch_prediction=env.batch_prediction.to_dict(),
        data_quality_checks=env.monitoring.enabled,
    )
    return PipelineSettings.from_mapping(values, "benchmark settings")


def definition_build_seconds(runs: int = 3) -> list[float]:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
    import boto3
    import handler as register
    from moto import mock_aws

    import bundled_scripts

    bundled_scripts.BUNDLED_SCRIPTS = REPO_ROOT / "pipeline_scripts"
    logging.getLogger("sagemaker").setLevel(logging.ERROR)  # the SDK warns for each step it builds
    settings = pipeline_settings()
    timings = []
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=settings.artifacts_bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        for _ in range(runs):
            started = time.perf_counter()
            for pipeline in register.build_pipelines(settings).values():
                pipeline.definition()
            timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        lambda_site = build(LAMBDA_TARGET, Path(scratch) / "lambda") / "python"
        local_site = build(local_target(), Path(scratch) / "local") / "python"
        unzipped, zipped = size_bytes(lambda_site) / 1e6, zipped_mb(lambda_site)
        compiling = cold_import_seconds(local_site, bytecode=False)
        cached = cold_import_seconds(local_site, bytecode=True)
    definitions = definition_build_seconds()
    print(
        json.dumps(
            {
                "layer_target": LAMBDA_TARGET.key,
                "unzipped_mb": round(unzipped, 1),
                "zipped_mb": round(zipped, 1),
                "share_of_250_mb_lambda_limit": f"{unzipped / LAMBDA_LIMIT_MB:.0%}",
                "cold_import_seconds_no_bytecode_median_of_5": round(statistics.median(compiling), 2),
                "cold_import_seconds_with_bytecode_median_of_5": round(statistics.median(cached), 2),
                "build_both_definitions_seconds_median_of_3": round(statistics.median(definitions), 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
