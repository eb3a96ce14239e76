"""Local (Docker-free) asset bundling with content hashes that do not depend on the checkout path."""

from __future__ import annotations

import hashlib
import importlib
import shutil
from pathlib import Path
from typing import Callable

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from layers.build_layer import Target, build, build_key

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = REPO_ROOT / "lambdas"
PIPELINE_SCRIPTS = REPO_ROOT / "pipeline_scripts"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
# Never run: local bundling always succeeds, and synth must not need Docker.
NO_DOCKER = DockerImage.from_registry("local-bundling-only")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def content_hash(*roots: Path) -> str:
    """SHA-256 over relative paths and contents, so the hash is the same in every checkout."""
    digest = hashlib.sha256()
    for root in roots:
        for path in _files(root):
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class _LocalBundler:
    def __init__(self, fill: Callable[[Path], None]) -> None:
        self._fill = fill

    def try_bundle(self, output_dir: str, *args, **options) -> bool:
        self._fill(Path(output_dir))
        return True


def _local_code(source: Path, asset_hash: str, fill: Callable[[Path], None]) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(source), asset_hash=asset_hash, asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(image=NO_DOCKER, local=_LocalBundler(fill)),
    )


def package_dir(module: str) -> Path:
    """The installed directory of a pure-Python package pinned in requirements.txt (e.g. tzdata)."""
    return Path(importlib.import_module(module).__file__).resolve().parent


def function_code(name: str, with_pipeline_scripts: bool = False, packages: tuple[str, ...] = ()) -> lambda_.Code:
    """lambdas/<name>/, plus pipeline_scripts/ and pinned pure-Python `packages` beside the handler."""
    source = LAMBDAS / name
    if not (source / "handler.py").is_file():
        raise FileNotFoundError(f"{source / 'handler.py'} does not exist; each Lambda lives in lambdas/<name>/handler.py")
    extras = ((PIPELINE_SCRIPTS,) if with_pipeline_scripts else ()) + tuple(package_dir(p) for p in packages)
    roots = (source, *extras)

    def fill(output: Path) -> None:
        shutil.copytree(source, output, ignore=IGNORED, dirs_exist_ok=True)
        for extra in extras:
            shutil.copytree(extra, output / extra.name, ignore=IGNORED, dirs_exist_ok=True)

    return _local_code(source, content_hash(*roots), fill)


def layer_code(target: Target) -> lambda_.Code:
    """The SageMaker SDK layer, built by layers/build_layer.py for `target` (cached between synths)."""
    return _local_code(REPO_ROOT / "layers" / "sagemaker_sdk", build_key(target), lambda output: build(target, output))
