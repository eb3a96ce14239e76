"""Builds the SageMaker SDK Lambda layer without Docker: pip for the Lambda target, then trimmed.

Two phases, so that synth stays offline:
  download  (set-up, needs PyPI)   wheels for each target into .cache/wheels/<target>/
  build     (synth, offline)       install from those wheels, trim, check the size budget

    python -m layers.build_layer download            # the Lambda target and the local interpreter
    python -m layers.build_layer build --target local --output /tmp/layer

The build is cached under .cache/layers/<key>/, keyed by the requirements, this file and the
target, so a warm synth copies (hard-links) the finished layer instead of reinstalling it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

LAYER_DIR = Path(__file__).resolve().parent / "sagemaker_sdk"
REQUIREMENTS = LAYER_DIR / "requirements.txt"
CACHE = Path(__file__).resolve().parent.parent / ".cache"
BUDGET_MB = 120

# botocore service models the pipeline code needs; the SDK also loads `emr` on import and `scheduler` on upsert,
# and the registration asks `cloudformation` whether its stack is rolling back. The layer's botocore shadows
# the runtime's (layers come first on sys.path), so a model left out here is missing for the function too.
BOTOCORE_SERVICES = frozenset(
    {
        "cloudformation",
        "sagemaker",
        "sagemaker-runtime",
        "sagemaker-featurestore-runtime",
        "sagemaker-metrics",
        "s3",
        "sts",
        "iam",
        "lambda",
        "ecr",
        "logs",
        "emr",
        "scheduler",
    }
)
# Installed as dependencies of the SDK but never imported when defining and upserting pipelines
# (local mode, model serving, remote functions); the layer import test proves it.
UNUSED_PACKAGES = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "h11",
        "anyio",
        "click",
        "annotated_doc",
        "docker",
        "graphene",
        "graphql",
        "graphql_relay",
        "omegaconf",
        "opentelemetry",
        "mock",
        "psutil",
        "pathos",
        "dill",
        "multiprocess",
        "_multiprocess",
        "ppft",
        "pp",
        "pox",
        "tqdm",
        "bin",
    }
)
# Parts of numpy and PyYAML that only building, typing or the optional C loader use.
UNUSED_PATHS = ("numpy/f2py", "numpy/_pyinstaller", "numpy/_core/include", "numpy/random/_examples")
UNUSED_DIR_NAMES = frozenset({"tests", "__pycache__"})
UNUSED_SUFFIXES = (".pyi", ".pyc", ".pyx", ".pxd", ".c", ".h")


class LayerError(Exception):
    """The layer cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    """Python version and CPU architecture the layer's compiled wheels must match."""

    python_version: str
    architecture: str

    @property
    def key(self) -> str:
        return f"cp{self.python_version.replace('.', '')}-{self.architecture}"

    @property
    def machine(self) -> str:
        return {"arm64": "aarch64", "x86_64": "x86_64"}[self.architecture]

    def pip_args(self) -> list[str]:
        abi = f"cp{self.python_version.replace('.', '')}"
        platforms = [f"manylinux_2_{v}_{self.machine}" for v in (28, 27, 24, 17)] + [f"manylinux2014_{self.machine}"]
        args = [
            "--only-binary",
            ":all:",
            "--python-version",
            self.python_version,
            "--implementation",
            "cp",
            "--abi",
            abi,
            "--abi",
            "abi3",
            "--abi",
            "none",
        ]
        for name in platforms:
            args += ["--platform", name]
        return args


# The functions that use the layer run on this runtime and architecture (Amazon Linux 2023, glibc 2.34).
LAMBDA_TARGET = Target(python_version="3.14", architecture="arm64")


def local_target() -> Target:
    machine = platform.machine()
    return Target(
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        architecture="arm64" if machine in ("aarch64", "arm64") else machine,
    )


def wheelhouse(target: Target) -> Path:
    return CACHE / "wheels" / target.key


def build_key(target: Target) -> str:
    digest = hashlib.sha256()
    for part in (REQUIREMENTS.read_bytes(), Path(__file__).read_bytes(), target.key.encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "is ignored" not in line]
        raise LayerError(f"pip {args[0]} failed:\n" + "\n".join(errors[-20:]))


def download(target: Target) -> Path:
    """Fetch every pinned wheel for `target` (the one step that needs the network)."""
    destination = wheelhouse(target)
    destination.mkdir(parents=True, exist_ok=True)
    _pip("download", "--no-deps", "--dest", str(destination), "--requirement", str(REQUIREMENTS), *target.pip_args())
    return destination


def trim(site: Path) -> None:
    """Remove what a Lambda defining pipelines never loads."""
    for name in UNUSED_PACKAGES:
        for path in (site / name, site / f"{name}.py"):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    for relative in UNUSED_PATHS:
        shutil.rmtree(site / relative, ignore_errors=True)
    for dist_info in site.glob("*.dist-info"):
        record = dist_info / "RECORD"
        tops = {line.split("/")[0].split(",")[0] for line in record.read_text().splitlines()} if record.is_file() else set()
        tops = {t for t in tops if t and not t.endswith(".dist-info") and t != ".."}
        if tops and not any((site / t).exists() for t in tops):
            shutil.rmtree(dist_info)
    models = site / "botocore" / "data"
    for entry in models.iterdir():
        if entry.is_dir() and entry.name not in BOTOCORE_SERVICES:
            shutil.rmtree(entry)
    for path in sorted(site.rglob("*"), reverse=True):
        if path.is_dir() and path.name in UNUSED_DIR_NAMES:
            shutil.rmtree(path)
        elif path.is_file() and (path.suffix in UNUSED_SUFFIXES or path.name.startswith("_yaml.cpython")):
            path.unlink()


def size_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def largest_packages(site: Path, count: int = 5) -> list[tuple[str, float]]:
    sizes = [(entry.name, size_bytes(entry) if entry.is_dir() else entry.stat().st_size) for entry in site.iterdir()]
    return [(name, round(size / 1e6, 1)) for name, size in sorted(sizes, key=lambda s: -s[1])[:count]]


def check_budget(site: Path, budget_mb: float = BUDGET_MB) -> float:
    size_mb = size_bytes(site) / 1e6
    if size_mb > budget_mb:
        largest = ", ".join(f"{name} {mb} MB" for name, mb in largest_packages(site))
        raise LayerError(
            f"layer is {size_mb:.1f} MB unzipped, over its {budget_mb} MB budget; largest packages: {largest}. "
            "Trim them in layers/build_layer.py or pin smaller versions in layers/sagemaker_sdk/requirements.txt"
        )
    return size_mb


def install(target: Target, output: Path) -> None:
    """Install the pinned wheels for `target` into output/python, offline, then trim and check the size."""
    wheels = wheelhouse(target)
    if not wheels.is_dir() or not any(wheels.glob("*.whl")):
        raise LayerError(
            f"no wheels for layer target {target.key} in {wheels}; run `make setup` "
            f"(python -m layers.build_layer download) once with network access"
        )
    site = output / "python"
    _pip(
        "install",
        "--no-index",
        "--find-links",
        str(wheels),
        "--no-deps",
        "--no-compile",
        "--target",
        str(site),
        "--requirement",
        str(REQUIREMENTS),
        *target.pip_args(),
    )
    trim(site)
    check_budget(site)


def _link_tree(source: Path, destination: Path) -> None:
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, destination, copy_function=link, dirs_exist_ok=True)


def build(target: Target, output: Path) -> Path:
    """Put the layer for `target` into `output`, from the cache when an identical build exists."""
    cached = CACHE / "layers" / f"{target.key}-{build_key(target)[:16]}"
    if not (cached / "python").is_dir():
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.key}-", dir=cached.parent))
        try:
            install(target, staging)
            try:
                staging.rename(cached)
            except OSError:
                # A concurrent build (another test worker) renamed its identical copy first.
                if not (cached / "python").is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)
    _link_tree(cached, output)
    return output


def _targets(names: list[str]) -> list[Target]:
    known = {"lambda": LAMBDA_TARGET, "local": local_target()}
    return [known[name] for name in names]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="fetch wheels (needs PyPI)")
    fetch.add_argument("--target", action="append", choices=("lambda", "local"))
    make = commands.add_parser("build", help="build the layer offline from downloaded wheels")
    make.add_argument("--target", choices=("lambda", "local"), default="lambda")
    make.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            for target in _targets(args.target or ["lambda", "local"]):
                print(f"wheels for {target.key}: {download(target)}")
        else:
            (target,) = _targets([args.target])
            site = build(target, args.output) / "python"
            print(f"layer {target.key}: {size_bytes(site) / 1e6:.1f} MB unzipped in {site}")
    except LayerError as error:
        print(f"layer error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
