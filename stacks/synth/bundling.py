"""Local (Docker-free) asset bundling with content hashes that do not depend on the checkout path."""

from __future__ import annotations

import hashlib
import importlib
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from layers.build_layer import Target, build, build_key

REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDAS = REPO_ROOT / "lambdas"
COMMON = LAMBDAS / "common"
PIPELINE_SCRIPTS = REPO_ROOT / "pipeline_scripts"
# Bundled with every function beside `common`: Powertools and its pure-Python dependencies, pinned in requirements.txt.
FUNCTION_PACKAGES = ("aws_lambda_powertools", "jmespath", "typing_extensions")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
# Never run: local bundling always succeeds, and synth must not need Docker.
NO_DOCKER = DockerImage.from_registry("local-bundling-only")


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def files_digest(files: Iterable[tuple[str, Path]]) -> str:
    """SHA-256 over (name, file) pairs, each a name that is the same in every checkout and the file's contents."""
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(f"{name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def content_hash(*roots: Path) -> str:
    """SHA-256 over paths relative to each root (prefixed with its name) and contents."""
    return files_digest(
        (f"{root.name}/{path.relative_to(root.parent if root.is_file() else root).as_posix()}", path)
        for root in roots
        for path in _files(root)
    )


def _copy(source: Path, output: Path) -> None:
    if source.is_file():
        shutil.copy2(source, output / source.name)
    else:
        shutil.copytree(source, output / source.name, ignore=IGNORED, dirs_exist_ok=True)


@jsii.implements(ILocalBundling)
class LocalBundler:
    def __init__(self, fill: Callable[[Path], object]) -> None:
        self._fill = fill

    def try_bundle(self, output_dir: str, *args, **options) -> bool:
        self._fill(Path(output_dir))
        return True


def _local_code(source: Path, asset_hash: str, fill: Callable[[Path], object]) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(source),
        asset_hash=asset_hash,
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(image=NO_DOCKER, local=LocalBundler(fill)),
    )


def installed_path(module: str) -> Path:
    """The installed package directory, or module file, of a pure-Python dependency pinned in requirements.txt."""
    path = Path(str(importlib.import_module(module).__file__)).resolve()
    return path.parent if path.name == "__init__.py" else path


def _function_roots(name: str, with_pipeline_scripts: bool, packages: tuple[str, ...]) -> tuple[Path, tuple[Path, ...]]:
    source = LAMBDAS / name
    if not (source / "handler.py").is_file():
        raise FileNotFoundError(f"{source / 'handler.py'} does not exist; each Lambda lives in lambdas/<name>/handler.py")
    extras = (
        COMMON,
        *((PIPELINE_SCRIPTS,) if with_pipeline_scripts else ()),
        *(installed_path(p) for p in FUNCTION_PACKAGES + packages),
    )
    return source, extras


def bundle_function(name: str, output: Path, with_pipeline_scripts: bool = False, packages: tuple[str, ...] = ()) -> None:
    """Write the asset of lambdas/<name>/ to `output`: the handler's folder with its extras beside it."""
    source, extras = _function_roots(name, with_pipeline_scripts, packages)
    shutil.copytree(source, output, ignore=IGNORED, dirs_exist_ok=True)
    for extra in extras:
        _copy(extra, output)


def function_code(name: str, with_pipeline_scripts: bool = False, packages: tuple[str, ...] = ()) -> lambda_.Code:
    """lambdas/<name>/ with lambdas/common/, Powertools, pipeline_scripts/ if asked, and pinned `packages` beside the handler."""
    source, extras = _function_roots(name, with_pipeline_scripts, packages)
    return _local_code(
        source, content_hash(source, *extras), lambda output: bundle_function(name, output, with_pipeline_scripts, packages)
    )


def layer_code(target: Target) -> lambda_.Code:
    """The SageMaker SDK layer, built by layers/build_layer.py for `target` (cached between synths)."""
    return _local_code(REPO_ROOT / "layers" / "sagemaker_sdk", build_key(target), lambda output: build(target, output))
