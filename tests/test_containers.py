"""The two Dockerfiles: lint clean, identical pinned libraries, and entry points that exist."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO_ROOT

CONTAINERS = REPO_ROOT / "containers"
DOCKERFILES = {name: CONTAINERS / name / "Dockerfile" for name in ("training", "inference")}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def pins() -> dict[str, str]:
    lines = (CONTAINERS / "constraints.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_is_clean(name):
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILES[name])], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "")


BASE = re.compile(r"public\.ecr\.aws/docker/library/python:(\d+)\.(\d+)\.(\d+)-slim-bookworm@sha256:[0-9a-f]{64}")


def base_image(dockerfile: Path) -> str:
    (base,) = [args for op, args in instructions(dockerfile) if op == "FROM"]
    return base


def test_both_images_share_one_digest_pinned_base_with_the_tarfile_fixes():
    """evaluate.py extracts the model with tarfile's filter="data", whose bypasses (CVE-2025-4517 and others) are fixed
    from CPython 3.12.11 and 3.13.4; a digest, unlike a tag, cannot move to other bytes."""
    bases = {base_image(dockerfile) for dockerfile in DOCKERFILES.values()}
    assert len(bases) == 1
    match = BASE.fullmatch(bases.pop())
    assert match, "FROM must be public.ecr.aws/docker/library/python:X.Y.Z-slim-bookworm@sha256:<index digest>"
    version = tuple(int(part) for part in match.groups())
    assert version >= {(3, 12): (3, 12, 11)}.get(version[:2], (3, 13, 4)), version


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_copied_files_exist(name):
    steps = instructions(DOCKERFILES[name])
    for op, args in steps:
        if op == "COPY":
            *sources, _ = args.split()
            assert sources and all((REPO_ROOT / s).exists() for s in sources), args


def test_the_build_script_logs_in_to_the_registry_the_base_images_come_from():
    """The base-image pulls are authenticated, not anonymous on CodeBuild's shared IP addresses; ECR Public issues
    its tokens in us-east-1 only."""
    script = (CONTAINERS / "build_images.sh").read_text()
    logins = re.findall(r"^aws ecr-public get-login-password --region us-east-1 \| docker login .* (\S+)$", script, re.M)
    for dockerfile in DOCKERFILES.values():
        assert base_image(dockerfile).split("/")[0] in logins, dockerfile
    assert script.index("ecr-public get-login-password") < script.index("docker build")


def test_both_images_install_the_same_pinned_libraries():
    installs = {}
    for name, dockerfile in DOCKERFILES.items():
        steps = instructions(dockerfile)
        installs[name] = [args for op, args in steps if op == "RUN" and "pip install" in args] + [
            args for op, args in steps if op == "COPY" and "constraints.txt" in args
        ]
    assert installs["training"] == installs["inference"]
    assert installs["training"] == [
        "pip install --no-cache-dir -r /tmp/pins/requirements.txt && rm -rf /tmp/pins",
        "containers/requirements.txt containers/constraints.txt /tmp/pins/",
    ]
    requirements = [line for line in (CONTAINERS / "requirements.txt").read_text().splitlines() if line and line[0].isalpha()]
    assert requirements and all(r in pins() for r in requirements)


def test_local_tests_run_the_pinned_versions():
    """The tests train and serve with the very versions the images install."""
    for package, version in pins().items():
        assert metadata.version(package) == version, package


def test_training_entry_point_is_the_training_script():
    steps = dict(instructions(DOCKERFILES["training"]))
    assert json.loads(steps["ENTRYPOINT"]) == ["python3", "/opt/program/train.py"]
    assert ("COPY", "pipeline_scripts/ /opt/program/") in instructions(DOCKERFILES["training"])


def test_inference_image_serves_as_non_root_with_serve_on_path():
    steps = instructions(DOCKERFILES["inference"])
    served = ("dataset.py", "features.py", "inference.py", "serve.py")
    assert ("COPY", " ".join(f"pipeline_scripts/{name}" for name in served) + " /opt/program/") in steps
    run = " ".join(args for op, args in steps if op == "RUN")
    assert "ln -s /opt/program/serve.py /opt/program/serve" in run
    assert 'PATH="/opt/program:${PATH}"' in dict(steps)["ENV"]
    assert dict(steps)["USER"] != "root" and dict(steps)["EXPOSE"] == "8080"
    assert (REPO_ROOT / "pipeline_scripts" / "serve.py").read_text().startswith("#!/usr/bin/env python3\n")


def _local_imports(script: Path) -> set[str]:
    """The pipeline scripts a script imports (top-level `import x` and `from x import ...`)."""
    names = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {name for name in names if (script.parent / f"{name}.py").is_file()}


def test_the_inference_image_copies_every_script_the_server_imports():
    """serve.py imports inference, which imports features and dataset: a module left out fails only at start-up."""
    copied = {
        Path(source).name
        for op, args in instructions(DOCKERFILES["inference"])
        if op == "COPY"
        for source in args.split()[:-1]
        if source.startswith("pipeline_scripts/")
    }
    needed, todo = set(), ["serve"]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += _local_imports(REPO_ROOT / "pipeline_scripts" / f"{name}.py")
    assert {f"{name}.py" for name in needed} <= copied, sorted(needed)
