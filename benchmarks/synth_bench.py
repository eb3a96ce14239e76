"""Warm synth time of the whole app next to a one-bucket CDK app, both through the pinned CDK CLI.

    python benchmarks/synth_bench.py [--with-tests]

The ratio is what counts: the same machine, CLI and Python synthesize both, each once to warm up
(caches, layer build) and then five times; the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
ONE_BUCKET_APP = """
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
app = App()
s3.Bucket(Stack(app, "OneBucket"), "Bucket")
app.synth()
"""


def synth_seconds(app_command: str, cwd: Path, outdir: Path, runs: int = 5) -> list[float]:
    env = {
        **os.environ,
        "PATH": f"{REPO_ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "true",
    }
    command = [str(CDK), "synth", "--quiet", "--app", app_command, "--output", str(outdir)]
    timings = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
        if attempt:
            timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-tests", action="store_true", help="also time the whole test suite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "one_bucket.py").write_text(ONE_BUCKET_APP)
        whole = synth_seconds(f"{sys.executable} app.py", REPO_ROOT, scratch / "whole")
        baseline = synth_seconds(f"{sys.executable} one_bucket.py", scratch, scratch / "baseline")
    result = {
        "whole_app_warm_synth_seconds_median": round(statistics.median(whole), 2),
        "one_bucket_app_warm_synth_seconds_median": round(statistics.median(baseline), 2),
        "ratio": round(statistics.median(whole) / statistics.median(baseline), 2),
    }
    if args.with_tests:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=REPO_ROOT, check=True, capture_output=True
        )
        result["test_suite_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
