"""The whole local pipeline for a binary and a multiclass dataset, through the scripts' own command lines, and the
classification inputs preprocessing refuses."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import test_pipeline_scripts as scripts
from conftest import REPO_ROOT, load_lambda
from sklearn_data import DIGIT_NAMES, breast_cancer, digits

SCRIPTS = REPO_ROOT / "pipeline_scripts"
ROUNDS, write_config, write_dataset = scripts.ROUNDS, scripts.write_config, scripts.write_dataset
_script_module, _serve_csv = scripts._script_module, scripts._serve_csv
# The same fixture, used here too.
in_process = scripts.in_process
GATES = {"binary": {"metric": "auc", "threshold": 0.9}, "multiclass": {"metric": "accuracy", "threshold": 0.8}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """make local-run's runner as a process, once per problem type, with its tree kept."""
    results = {}
    for problem_type, make in (("binary", breast_cancer), ("multiclass", digits)):
        folder = tmp_path_factory.mktemp(problem_type)
        data, block = make(folder / "data.csv")
        config = write_config(folder / "cdk.json", block, GATES[problem_type])
        workdir = folder / "run"
        command = [sys.executable, str(SCRIPTS / "local_run.py"), "--data", str(data), "--config", str(config)]
        result = subprocess.run([*command, "--workdir", str(workdir), "--", *ROUNDS], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        results[problem_type] = workdir, json.loads(result.stdout), block
    return results


def _test_targets(workdir) -> np.ndarray:
    return np.loadtxt(workdir / "processing" / "test" / "test.csv", delimiter=",", ndmin=2, usecols=0).ravel()


def _json_get(report: dict, path: str):
    for key in path.split("."):
        report = report[key]
    return report


@pytest.mark.parametrize("problem_type", ["binary", "multiclass"])
def test_the_report_has_every_gate_metric_where_the_gate_reads_it_and_a_confusion_matrix(runs, problem_type):
    contract = _script_module("dataset")
    workdir, summary, _ = runs[problem_type]
    report = json.loads((workdir / "processing" / "evaluation" / "evaluation.json").read_text())
    for metric in contract.GATE_METRICS[problem_type]:
        assert isinstance(_json_get(report, contract.metric_json_path(problem_type, metric)), float), metric
    classes = json.loads((workdir / "model" / "features.json").read_text())["classes"]
    matrix = report[contract.REPORT_KEYS[problem_type]]["confusion_matrix"]
    assert list(matrix) == classes and all(list(row) == classes for row in matrix.values())
    actual = _test_targets(workdir).astype(int)
    # SageMaker's orientation: each actual label maps to the counts of the labels predicted for it.
    assert [sum(row.values()) for row in matrix.values()] == np.bincount(actual, minlength=len(classes)).tolist()
    gate = summary["quality_gate"]
    assert gate == {
        **GATES[problem_type],
        "value": _json_get(report, contract.metric_json_path(problem_type, gate["metric"])),
        "passed": True,
    }


def test_binary_answers_the_positive_probability_and_the_label_with_ids_in_batch(runs):
    workdir, summary, _ = runs["binary"]
    spec = json.loads((workdir / "model" / "features.json").read_text())
    assert spec["classes"] == ["benign", "malignant"] and spec["categories"] == {"size_band": ["large", "medium", "small"]}
    assert summary["preprocessing"]["rows_without_target_dropped"] == 6
    assert list(summary["preprocessing"]["ignored_columns"].values()) == [["comment"]], "the id column is not ignored"
    assert summary["batch_output_columns"] == ["patient_id", "probability", "label"]
    lines = (workdir / "transform" / "output" / "new-data.csv.out").read_text().splitlines()
    assert len(lines) == summary["batch_input_rows"] == 569
    for number, line in enumerate(lines):
        key, probability, label = line.split(",")
        assert key == f"p{number:04d}" and label == ("malignant" if float(probability) >= 0.5 else "benign")
    model = (workdir / "model" / "model.txt").read_text()
    assert "objective=binary" in model and "[categorical_feature: 8]" in model


def test_multiclass_answers_every_class_probability_in_class_order_and_the_label(runs):
    workdir, summary, _ = runs["multiclass"]
    spec = json.loads((workdir / "model" / "features.json").read_text())
    assert spec["classes"] == sorted(DIGIT_NAMES), "classes null: the sorted labels of the data"
    assert spec["categories"] == {"ink": ["0", "1", "2"]}, "'1' and '1.0' are one level"
    assert summary["batch_output_columns"] == [*(f"probability_{c}" for c in sorted(DIGIT_NAMES)), "label"]
    rows = [line.split(",") for line in (workdir / "transform" / "output" / "new-data.csv.out").read_text().splitlines()]
    assert len(rows) == 1797 and all(len(row) == 11 for row in rows)
    probabilities = np.array([[float(v) for v in row[:-1]] for row in rows])
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert [row[-1] for row in rows] == [spec["classes"][i] for i in probabilities.argmax(axis=1)]
    assert "objective=multiclass num_class:10" in (workdir / "model" / "model.txt").read_text()


@pytest.mark.parametrize("problem_type", ["binary", "multiclass"])
def test_the_sample_holds_the_answers_the_server_gives_and_the_system_test_accepts(runs, problem_type):
    workdir, _, _ = runs[problem_type]
    checks = load_lambda("system_test").checks
    path = workdir / "processing" / "evaluation" / checks.SAMPLE_FILE
    pairs = checks.read_sample(path.read_text(), str(path))
    server = _script_module("serve").ModelServer(workdir / "model")
    for request, answer in pairs:
        served = _serve_csv(server, request)
        assert served == answer and checks.answers_match(answer, served)
        assert re.fullmatch(r"(\d\.\d{6},)+[a-z]+\n", answer)


def _serve_json(server, body: dict) -> dict:
    return json.loads(_serve_csv(server, json.dumps(body), "application/json"))


def test_an_unseen_category_is_scored_as_unknown_like_a_missing_one(runs):
    workdir, _, block = runs["binary"]
    server = _script_module("serve").ModelServer(workdir / "model")
    names = [f["name"] for f in block["features"]]
    record = dict(zip(names, [13.0, 20.0, 85.0, 550.0, 0.1, 0.1, 0.08, 0.05, "giant"], strict=True))
    unseen = _serve_json(server, {"instances": [record]})["predictions"]
    missing = _serve_json(server, {"instances": [{**record, "size_band": None}]})["predictions"]
    assert unseen == missing and set(unseen[0]) == {"probability", "label"} and unseen[0]["label"] in ("benign", "malignant")
    assert _serve_csv(server, "13,20,85,550,0.1,0.1,0.08,0.05,giant\n") == _serve_csv(server, "13,20,85,550,0.1,0.1,0.08,0.05,\n")


def _labelled(path, labels) -> None:
    """Rows of one feature x and a label y."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["x", "y"])
    writer.writerows([i % 17, label] for i, label in enumerate(labels))
    path.write_text(out.getvalue())


BLOCK = {"target": "y", "features": [{"name": "x", "type": "numeric"}]}
LABEL_PROBLEMS = {
    "binary label the block does not know": (
        {"problem_type": "binary"},
        ["0", "1"] * 150 + ["maybe"],
        "row 302 column 'y': binary label 'maybe' is not one the dataset block knows: with positive_class null the "
        "labels are 0/1 or true/false; set dataset.positive_class to the positive label",
    ),
    "third binary label": (
        {"problem_type": "binary", "positive_class": "yes"},
        ["yes", "no"] * 150 + ["perhaps"],
        "row 302 column 'y': label 'perhaps' is a third label besides the positive class 'yes' and 'no'; a binary "
        "dataset has two",
    ),
    "one class in the data": (
        {"problem_type": "binary", "positive_class": "yes"},
        ["yes"] * 300,
        "the data holds one class only ('yes', 300 rows): a binary model learns from rows of at least two; check the "
        "target column 'y'",
    ),
    "one class in the train split": (
        {"problem_type": "multiclass"},
        ["a"] * 300,
        "the train split holds one class only ('a', 210 rows): a multiclass model learns from rows of at least two; "
        "check the target column 'y'",
    ),
    "label outside the classes": (
        {"problem_type": "multiclass", "classes": ["a", "b", "c"]},
        ["a", "b", "c"] * 100 + ["d"],
        "row 302 column 'y': label 'd' is not one of the dataset block's classes (a, b, c); add it to dataset.classes "
        "or fix the row",
    ),
    "label with a comma": (
        {"problem_type": "multiclass"},
        ["a", "b", "c"] * 100 + ["c,d"],
        "row 302 column 'y': label 'c,d' holds a comma or line break; a label is a field of the CSV answer, so rename it",
    ),
}


@pytest.mark.parametrize("case", sorted(LABEL_PROBLEMS))
def test_preprocess_names_the_row_and_value_of_a_label_the_contract_does_not_know(tmp_path, in_process, case):
    changes, labels, message = LABEL_PROBLEMS[case]
    path = tmp_path / "processing" / "input" / "labels.csv"
    _labelled(path, labels)
    write_dataset(tmp_path, {**BLOCK, **changes})
    result = in_process("preprocess.py", tmp_path)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    where = "" if message.startswith("the ") else f"{path}: "
    assert result.stderr == f"preprocess error: {where}{message}\n"
    assert not (tmp_path / "processing" / "train").exists()


def test_binary_labels_of_any_spelling_and_classes_given_in_order(tmp_path, in_process):
    """0/1 and true/false in any case, numbers in any notation; multiclass keeps the block's class order."""
    _labelled(tmp_path / "b" / "processing" / "input" / "labels.csv", ["TRUE", "false", "True", "False"] * 60)
    write_dataset(tmp_path / "b", {**BLOCK, "problem_type": "binary"})
    assert in_process("preprocess.py", tmp_path / "b").returncode == 0
    spec = json.loads((tmp_path / "b" / "processing" / "train" / "features.json").read_text())
    assert spec["classes"] == ["false", "TRUE"], "each side spelled as the data spells it most often (first seen on a tie)"
    _labelled(tmp_path / "m" / "processing" / "input" / "labels.csv", ["3.0", "1", "2"] * 80)
    write_dataset(tmp_path / "m", {**BLOCK, "problem_type": "multiclass", "classes": [3, 2, 1]})
    assert in_process("preprocess.py", tmp_path / "m").returncode == 0
    spec = json.loads((tmp_path / "m" / "processing" / "train" / "features.json").read_text())
    assert spec["classes"] == ["3", "2", "1"]
    target = np.loadtxt(tmp_path / "m" / "processing" / "train" / "train.csv", delimiter=",", usecols=0)
    assert set(target.tolist()) == {0.0, 1.0, 2.0}
