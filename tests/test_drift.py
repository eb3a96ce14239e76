"""The built-in drift engine (pipeline_scripts/drift.py): baseline, comparison, data-capture parsing and its CLI."""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from abalone_data import HEADER, abalone_rows, write_csv
from conftest import REPO_ROOT, make_dry_run

SCRIPTS = REPO_ROOT / "pipeline_scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import drift
from dataset import Dataset

BLOCK = {
    "target": "rings",
    "problem_type": "regression",
    "features": [{"name": name, "type": "categorical" if name == "sex" else "numeric"} for name in HEADER[:-1]],
}
DATASET = Dataset.from_dict(BLOCK)
SHELL = HEADER.index("shell_weight")


def frame(n: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame(abalone_rows(n, seed), columns=HEADER)


def requests(n: int, seed: int) -> list[list[str]]:
    """Records as the endpoint receives them: the features' fields as text, no target."""
    return [[str(v) for v in row[:-1]] for row in abalone_rows(n, seed)]


@pytest.fixture(scope="module")
def baseline() -> dict:
    return drift.build_baseline(frame(3000, seed=1), DATASET)


def test_a_numeric_feature_is_binned_at_the_train_splits_quantiles_with_its_missing_share():
    data = frame(1000, seed=3)
    data["length"] = data["length"].astype(object)
    data.loc[:49, "length"] = None
    data.loc[50:59, "length"] = "n/a"
    described = drift.build_baseline(data, DATASET)
    assert described["format"] == "drift-baseline/1" and described["records"] == 1000
    length = described["features"][1]
    assert (length["name"], length["type"]) == ("length", "numeric")
    present = pd.to_numeric(data["length"], errors="coerce").dropna()
    assert length["edges"] == list(np.unique(np.quantile(present, np.arange(1, drift.BINS) / drift.BINS, method="inverted_cdf")))
    assert length["missing_share"] == 0.06
    bins = pd.cut(present, [-math.inf, *length["edges"], math.inf], right=True).value_counts(sort=False)
    assert length["proportions"] == list(bins / 1000) and len(bins) == drift.BINS
    assert math.isclose(sum(length["proportions"]) + length["missing_share"], 1)
    assert json.loads(json.dumps(described)) == described


def test_tied_values_merge_bin_edges_so_every_edge_is_unique():
    data = frame(500, seed=3)
    data["height"] = [0.1, 0.1, 0.1, 0.2, 0.3] * 100
    height = drift.build_baseline(data, DATASET)["features"][3]
    assert height["edges"] == [0.1, 0.2]
    assert height["proportions"] == [0.6, 0.2, 0.2]


def test_a_categorical_feature_counts_its_canonical_levels_and_its_missing_share():
    data = frame(8, seed=3)
    data["sex"] = ["M", " M ", "F", "2", "2.0", "", None, "F"]
    sex = drift.build_baseline(data, DATASET)["features"][0]
    assert sex == {
        "name": "sex",
        "type": "categorical",
        "frequencies": {"2": 0.25, "F": 0.25, "M": 0.25},
        "other_share": 0.0,
        "missing_share": 0.25,
    }


def test_the_training_data_must_hold_every_feature():
    with pytest.raises(drift.DriftError, match="no column 'sex'; it needs every feature"):
        drift.build_baseline(frame(10, seed=3).drop(columns="sex"), DATASET)


def test_an_identical_distribution_is_not_drift(baseline):
    report = drift.compare(baseline, requests(300, seed=2), DATASET)
    assert report["verdict"] == "no-drift" and report["drifted_features"] == []
    assert report["records"] == 300 and report["baseline_records"] == 3000
    assert all(f["test"] == "chi-square" and f["p_value_holm"] > 0.01 and not f["drifted"] for f in report["features"].values())


def test_a_mean_shift_of_one_feature_is_drift_of_that_feature(baseline):
    period = requests(300, seed=2)
    for record in period:
        record[SHELL] = str(float(record[SHELL]) + 0.05)
    report = drift.compare(baseline, period, DATASET)
    assert report["verdict"] == "drift" and report["drifted_features"] == ["shell_weight"]
    shell = report["features"]["shell_weight"]
    assert shell["p_value_holm"] < 1e-6 and shell["psi"] > 0.1 and shell["df"] == drift.BINS - 1


def test_a_change_in_the_category_mix_is_drift(baseline):
    period = [record for record in requests(2000, seed=2) if record[0] == "I"][:150] + requests(150, seed=4)
    report = drift.compare(baseline, period, DATASET)
    assert report["verdict"] == "drift" and "sex" in report["drifted_features"]
    assert report["features"]["sex"]["p_value"] < 1e-6


def test_unseen_categories_are_counted_named_and_tested_exactly(baseline):
    period = requests(200, seed=2)
    for record in period[:6]:
        record[0] = "X"
    period[6][0] = "unknown"
    report = drift.compare(baseline, period, DATASET)
    assert report["unseen"] == {"sex": 7}
    sex = report["features"]["sex"]
    assert sex["unseen"] == {"count": 7, "values": {"X": 6, "unknown": 1}}
    assert sex["test"] == "monte-carlo" and sex["drifted"] and report["verdict"] == "drift"


def test_the_monte_carlo_p_value_matches_the_exact_conditional_one():
    """Three records of a cell the baseline never had: P(all three in the period | margins) = C(100,3) / C(1100,3)."""
    exact = math.comb(100, 3) / math.comb(1100, 3)
    result = drift.homogeneity_test(np.array([0, 1000]), np.array([3, 97]), np.random.default_rng(0), draws=100_000)
    assert result["test"] == "monte-carlo" and abs(result["p_value"] - exact) < 0.0002


def test_a_missing_share_the_baseline_did_not_have_is_drift(baseline):
    period = requests(300, seed=2)
    for record in period[:60]:
        record[1] = ""
    report = drift.compare(baseline, period, DATASET)
    length = report["features"]["length"]
    assert length["missing_share"] == {"baseline": 0.0, "period": 0.2} and length["invalid"] == 0
    assert report["drifted_features"] == ["length"]


def test_too_few_records_are_insufficient_data_even_when_shifted(baseline):
    period = [["I", *record[1:]] for record in requests(49, seed=2)]
    report = drift.compare(baseline, period, DATASET)
    assert report["verdict"] == "insufficient-data" and report["drifted_features"] == []
    assert report["features"]["sex"]["p_value"] < 0.01
    empty = drift.compare(baseline, [], DATASET)
    assert empty["verdict"] == "insufficient-data" and empty["records"] == 0
    assert empty["features"]["length"] | {"type": None} == {
        "type": None,
        "invalid": 0,
        "missing_share": {"baseline": 0.0, "period": None},
        "test": None,
        "statistic": None,
        "df": None,
        "p_value": None,
        "psi": None,
        "p_value_holm": None,
        "drifted": False,
    }


def test_a_significant_but_small_shift_on_a_huge_period_is_ignored_below_the_effect_floor():
    big = drift.build_baseline(frame(20_000, seed=1), DATASET)
    period = requests(20_000, seed=2)
    for record in period:
        record[SHELL] = str(float(record[SHELL]) * 1.08)
    report = drift.compare(big, period, DATASET)
    shell = report["features"]["shell_weight"]
    assert shell["p_value_holm"] < 1e-6 and shell["psi"] < drift.MIN_EFFECT
    assert report["verdict"] == "no-drift"
    assert drift.compare(big, period, DATASET, min_effect=0.0)["drifted_features"] == ["shell_weight"]


def test_records_with_the_wrong_number_of_fields_are_counted_not_compared(baseline):
    period = [*requests(60, seed=2), ["M", "0.5"], []]
    report = drift.compare(baseline, period, DATASET)
    assert (report["records"], report["malformed_records"]) == (60, 2)


def test_holm_adjusts_in_rank_order_and_never_decreases():
    assert drift.holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert drift.holm({"a": 0.5, "b": 0.9}) == {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize("x", [0.01, 0.7, 3.84, 10.0, 45.0])
def test_the_chi_square_tail_matches_its_closed_forms(x):
    assert drift.chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-10)
    assert drift.chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-10)
    assert drift.chi2_sf(x, 4) == pytest.approx(math.exp(-x / 2) * (1 + x / 2), rel=1e-10)


def test_a_baseline_of_other_features_or_format_is_refused(baseline):
    other = Dataset.from_dict({**BLOCK, "features": [{"name": "sex", "type": "numeric"}, *BLOCK["features"][1:]]})
    with pytest.raises(drift.DriftError, match=r"build the baseline again with this dataset"):
        drift.compare(baseline, [], other)
    with pytest.raises(drift.DriftError, match=r"format is 'x', not 'drift-baseline/1'"):
        drift.compare({**baseline, "format": "x"}, [], DATASET)
    with pytest.raises(drift.DriftError, match=r"the baseline's records = None is invalid"):
        drift.compare({k: v for k, v in baseline.items() if k != "records"}, [], DATASET)
    with pytest.raises(drift.DriftError, match=r"alpha = 1.5 is invalid"):
        drift.compare(baseline, [], DATASET, alpha=1.5)


def capture_line(body: str, encoding: str = "CSV", content_type: str = "text/csv") -> str:
    data = base64.b64encode(body.encode()).decode() if encoding == "BASE64" else body
    answer = {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT", "data": "9.5", "encoding": "CSV"}
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding},
                "endpointOutput": answer,
            },
            "eventMetadata": {"eventId": "e", "inferenceTime": "2026-12-03T10:00:00Z"},
            "eventVersion": "0",
        }
    )


def test_capture_files_give_their_csv_and_base64_bodies_records_and_count_what_they_skip(tmp_path):
    hour = tmp_path / "AllTraffic" / "2026" / "12" / "03" / "10"
    hour.mkdir(parents=True)
    (hour / "a.jsonl").write_text(
        capture_line("M,0.5,0.4,0.1,0.6,0.2,0.1,0.2\n")
        + "\n"
        + capture_line("F,0.4,0.3,0.1,0.5,0.2,0.1,0.15\nI,0.2,0.15,0.05,0.1,0.04,0.02,0.03", "BASE64")
        + "\n{not json\n"
        + capture_line('{"instances": []}', "JSON", "application/json")
        + "\n"
    )
    (hour / "b.jsonl").write_text(capture_line("I,0.3,0.2,0.07,0.2,0.08,0.04,0.06\r\n\r\n") + "\n")
    (hour / "notes.txt").write_text("not capture data")
    records, capture = drift.read_capture(tmp_path)
    assert records == [
        ["M", "0.5", "0.4", "0.1", "0.6", "0.2", "0.1", "0.2"],
        ["F", "0.4", "0.3", "0.1", "0.5", "0.2", "0.1", "0.15"],
        ["I", "0.2", "0.15", "0.05", "0.1", "0.04", "0.02", "0.03"],
        ["I", "0.3", "0.2", "0.07", "0.2", "0.08", "0.04", "0.06"],
    ]
    assert capture == {
        "files": 2,
        "lines": 5,
        "skipped_lines": 2,
        "skipped": {"not a data-capture record": 1, "content type application/json, not text/csv": 1},
    }


def test_an_empty_capture_directory_has_no_records_and_a_missing_one_is_an_error(tmp_path):
    assert drift.read_capture(tmp_path) == ([], {"files": 0, "lines": 0, "skipped_lines": 0, "skipped": {}})
    with pytest.raises(drift.DriftError, match="is not a directory; pass the folder"):
        drift.read_capture(tmp_path / "absent")


def test_training_csv_is_read_with_a_header_or_as_headerless_records(tmp_path):
    rows = abalone_rows(5, seed=3)
    with_header = drift.read_training_csv(write_csv(tmp_path / "a.csv", rows), DATASET)
    headerless = drift.read_training_csv(write_csv(tmp_path / "b.csv", [r[:-1] for r in rows], header=False), DATASET)
    assert list(with_header.columns) == list(DATASET.feature_names)
    assert with_header.equals(headerless)
    write_csv(tmp_path / "c.csv", [r[:-2] for r in rows], header=False)
    with pytest.raises(drift.DriftError, match=r"c.csv: row 1 has 7 fields; a file without a header row names the features"):
        drift.read_training_csv(tmp_path / "c.csv", DATASET)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "drift.py"), *args], capture_output=True, text=True, timeout=120)


def test_the_command_line_builds_a_baseline_and_reports_a_period_of_captured_requests(tmp_path):
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps(BLOCK))
    train = write_csv(tmp_path / "train.csv", abalone_rows(2000, seed=1))
    built = run_cli("baseline", "--data", str(train), "--dataset", str(dataset), "--out", str(tmp_path / "baseline.json"))
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["records"] == 2000
    captured = tmp_path / "captured"
    captured.mkdir()
    period = requests(200, seed=2)
    for record in period[:100]:
        record[0] = "I"
    lines = [capture_line(",".join(record) + "\n", "BASE64" if i % 2 else "CSV") for i, record in enumerate(period)]
    (captured / "part.jsonl").write_text("\n".join([*lines, "garbage"]) + "\n")
    common = ("--baseline", str(tmp_path / "baseline.json"), "--dataset", str(dataset))
    compared = run_cli("compare", *common, "--captured", str(captured), "--out", str(tmp_path / "report.json"))
    assert compared.returncode == 0, compared.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert json.loads(compared.stdout) == {"verdict": "drift", "records": 200, "drifted_features": ["sex"], "unseen": {"sex": 0}}
    assert report["capture"]["skipped"] == {"not a data-capture record": 1} and report["verdict"] == "drift"
    empty = tmp_path / "empty"
    empty.mkdir()
    quiet = run_cli("compare", *common, "--captured", str(empty), "--out", str(tmp_path / "empty.json"))
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["verdict"] == "insufficient-data"


def test_the_command_line_names_bad_input_in_one_line(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({**BLOCK, "problem_type": "ranking"}))
    result = run_cli(
        "baseline", "--data", str(tmp_path / "x.csv"), "--dataset", str(tmp_path / "dataset.json"), "--out", str(tmp_path / "b")
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("drift error: ") and "dataset.problem_type = 'ranking' is invalid" in result.stderr


def test_make_bench_runs_the_drift_benchmark_which_without_data_says_how_to_pass_it(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("drift_bench", REPO_ROOT / "benchmarks" / "drift_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    missing = tmp_path / "abalone.csv"
    assert bench.main(["--data", str(missing)]) == 0
    assert capsys.readouterr().out == (
        f"drift benchmark skipped: no data at {missing}; "
        "pass the UCI Abalone CSV with make bench DATA=path/to/abalone.csv (or --data)\n"
    )
    assert any(
        line.endswith(f"benchmarks/drift_bench.py --data '{missing}'") for line in make_dry_run("bench", f"DATA={missing}")
    )
