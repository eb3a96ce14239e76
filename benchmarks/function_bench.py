"""Size of each Lambda asset (handler, lambdas/common, Powertools and extras) and the cold import of its handler.

    python benchmarks/function_bench.py

Each asset is bundled exactly as synth bundles it; the import runs in a fresh interpreter without
bytecode (Lambda's /var/task is read-only, so every cold start compiles), median of five. The register
function's import needs the SageMaker SDK layer and is measured by layer_bench.py instead.
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from stacks.synth.bundling import bundle_function

# What a function bundles beyond its folder, common/ and Powertools (as its construct asks for it).
EXTRAS = {
    "resolve_batch_inputs": {"packages": ("tzdata",)},
    "register_pipelines": {"with_pipeline_scripts": True},
}
FUNCTIONS = {
    handler.parent.name: EXTRAS.get(handler.parent.name, {}) for handler in sorted((REPO_ROOT / "lambdas").glob("*/handler.py"))
}


def sizes(directory: Path) -> tuple[int, int]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(directory).as_posix())
    return sum(p.stat().st_size for p in files), buffer.getbuffer().nbytes


def cold_import(directory: Path) -> float:
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-B", "-c", "import handler"],
            cwd=directory,
            check=True,
            env={"AWS_DEFAULT_REGION": "eu-west-1", "PYTHONPATH": str(directory)},
        )
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    print("| function | unzipped | zipped | cold import of the handler, median of 5 |")
    print("| --- | --- | --- | --- |")
    for name, options in FUNCTIONS.items():
        with tempfile.TemporaryDirectory() as scratch:
            asset = Path(scratch) / name
            bundle_function(name, asset, **options)
            unzipped, zipped = sizes(asset)
            timing = f"{cold_import(asset):.2f} s" if name != "register_pipelines" else "(needs the layer)"
            print(f"| {name} | {unzipped / 1e6:.1f} MB | {zipped / 1e6:.1f} MB | {timing} |")


if __name__ == "__main__":
    main()
