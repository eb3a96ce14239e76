"""Layer benchmarks: size unzipped and zipped, cold import time, time to build both pipeline definitions.

python benchmarks/layer_bench.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from layers.build_layer import LAMBDA_TARGET, build, local_target, size_bytes

LAMBDA_LIMIT_MB = 250
IMPORT = (
    "import sys, time; sys.path[:0] = [sys.argv[1], sys.argv[2]]; started = time.perf_counter();"
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
                [sys.executable, *flags, "-c", IMPORT, str(layer), str(handler_dir)],
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


def definition_build_seconds(runs: int = 3) -> list[float]:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-west-1")
    import boto3
    from conftest import REPO_ROOT, load_lambda, pipeline_settings
    from moto import mock_aws

    register = load_lambda("register_pipelines")
    sys.modules["settings"].BUNDLED_SCRIPTS = REPO_ROOT / "pipeline_scripts"
    settings = sys.modules["settings"].PipelineSettings.from_json(json.dumps(pipeline_settings()))
    timings = []
    with mock_aws():
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
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
