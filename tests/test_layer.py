"""The SageMaker SDK layer: trimmed but complete, built for its target, within its size budget."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from layers import build_layer
from layers.build_layer import LAMBDA_TARGET, LayerError, Target, build, check_budget, local_target

ELF_MACHINES = {"arm64": 183, "x86_64": 62}


@pytest.fixture(scope="module")
def local_layer(tmp_path_factory) -> Path:
    return build(local_target(), tmp_path_factory.mktemp("layer-local")) / "python"


@pytest.fixture(scope="module")
def lambda_layer(tmp_path_factory) -> Path:
    return build(LAMBDA_TARGET, tmp_path_factory.mktemp("layer-lambda")) / "python"


def test_lambda_build_holds_only_binaries_for_the_lambda_target(lambda_layer):
    compiled = [p for p in lambda_layer.rglob("*") if p.is_file() and (p.suffix == ".so" or ".so." in p.name)]
    assert compiled, "expected compiled extensions (numpy, pandas, pydantic-core)"
    abi = f"cpython-{LAMBDA_TARGET.python_version.replace('.', '')}-{LAMBDA_TARGET.machine}-linux-gnu"
    for path in compiled:
        header = path.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", path
        assert int.from_bytes(header[18:20], "little") == ELF_MACHINES[LAMBDA_TARGET.architecture], path
        if ".cpython-" in path.name:
            assert abi in path.name, path
    version = LAMBDA_TARGET.python_version.replace(".", "")
    tag = re.compile(
        rf"^Tag: (py3|py2|py{version}|cp\d+)-(none|abi3|cp{version})-"
        rf"(any|manylinux\w*_{LAMBDA_TARGET.machine})$"
    )
    for wheel in lambda_layer.glob("*.dist-info/WHEEL"):
        tags = [line for line in wheel.read_text().splitlines() if line.startswith("Tag: ")]
        assert tags and all(tag.match(line) for line in tags), (wheel, tags)


def test_layer_is_trimmed_and_within_budget(lambda_layer):
    assert check_budget(lambda_layer) <= build_layer.BUDGET_MB
    assert not [p for p in lambda_layer.rglob("tests") if p.is_dir()]
    models = {p.name for p in (lambda_layer / "botocore" / "data").iterdir() if p.is_dir()}
    assert models == set(build_layer.BOTOCORE_SERVICES)
    assert not any((lambda_layer / name).exists() for name in build_layer.UNUSED_PACKAGES)
    assert not list(lambda_layer.glob("fastapi-*.dist-info")), "metadata of a removed package would claim it is installed"


def test_over_budget_names_the_largest_packages(lambda_layer):
    with pytest.raises(LayerError) as error:
        check_budget(lambda_layer, budget_mb=10)
    message = str(error.value)
    assert re.match(r"layer is \d+\.\d MB unzipped, over its 10 MB budget; largest packages: ", message)
    assert "numpy.libs" in message and "pandas" in message


def test_missing_wheels_say_how_to_fetch_them(tmp_path):
    target = Target(python_version="3.99", architecture="arm64")
    with pytest.raises(LayerError) as error:
        build_layer.install(target, tmp_path)
    assert str(error.value) == (
        f"no wheels for layer target cp399-arm64 in {build_layer.wheelhouse(target)}; run `make setup` "
        "(python -m layers.build_layer download) once with network access"
    )


def test_a_concurrent_identical_build_is_taken_not_an_error(tmp_path, monkeypatch):
    """Two test workers may build the same cold layer at once; the second rename finds the first one's copy."""
    monkeypatch.setattr(build_layer, "CACHE", tmp_path)
    target = local_target()
    cached = tmp_path / "layers" / f"{target.key}-{build_layer.build_key(target)[:16]}"

    def install_while_another_finishes(target, staging):
        (staging / "python").mkdir()
        (cached / "python").mkdir(parents=True)
        (cached / "python" / "theirs.py").write_text("")

    monkeypatch.setattr(build_layer, "install", install_while_another_finishes)
    output = build(target, tmp_path / "out")
    assert (output / "python" / "theirs.py").exists()
    assert [p.name for p in cached.parent.iterdir()] == [cached.name], "the losing copy is removed"
