"""make bench runs in a clone: its benchmarks import what they need, and the scripts' benchmark says how to pass DATA."""

from __future__ import annotations

import importlib.util

from conftest import REPO_ROOT, make_dry_run


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scripts_benchmark_without_data_says_how_to_pass_it_and_lets_the_others_run(tmp_path, capsys):
    missing = tmp_path / "abalone.csv"
    assert _benchmark("pipeline_scripts_bench").main(["--data", str(missing)]) == 0
    assert capsys.readouterr().out == (
        f"pipeline scripts benchmark skipped: no data at {missing}; "
        "pass the UCI Abalone CSV with make bench DATA=path/to/abalone.csv (or --data)\n"
    )
    assert make_dry_run("bench", f"DATA={missing}")[-1].endswith(f"benchmarks/pipeline_scripts_bench.py --data '{missing}'")


def test_the_layer_benchmark_builds_its_settings_from_cdk_json_without_the_test_fixtures():
    """It called a settings helper conftest no longer has (and its import check lacked lambdas/ for `common`)."""
    settings = _benchmark("layer_bench").pipeline_settings()
    assert settings.training_pipeline_name.endswith("-training") and settings.training.tuning_max_jobs >= 1
