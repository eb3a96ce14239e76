"""Each pipeline script as a real process in a temporary tree laid out as SageMaker lays it out."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from abalone_data import BLOCK, HEADER, abalone_rows, write_csv
from conftest import REPO_ROOT, load_lambda, make_dry_run

SCRIPTS = REPO_ROOT / "pipeline_scripts"
# Enough for a model that learns, few enough for a fast suite.
ROUNDS = ("--num_boost_round", "150")


def run_script(script: str, base, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        env={"SM_BASE_DIR": str(base)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_dataset(base, block=None):
    """The dataset block where the training pipeline puts it for preprocessing."""
    path = base / "processing" / "dataset" / "dataset.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(BLOCK if block is None else block))
    return path


def preprocess(base, rows=None, header=True, run=run_script, block=None) -> subprocess.CompletedProcess:
    write_csv(base / "processing" / "input" / "abalone.csv", abalone_rows(600) if rows is None else rows, header)
    write_dataset(base, block)
    return run("preprocess.py", base)


@pytest.fixture
def in_process(monkeypatch, capsys):
    """A script's main() in this process, as SageMaker would start it (SM_BASE_DIR), for its error paths.

    The success paths run as real processes; the error paths only need main()'s exit code and stderr,
    and skip a Python start-up with pandas and LightGBM each.
    """

    def run(script: str, base, *args: str) -> subprocess.CompletedProcess:
        monkeypatch.setenv("SM_BASE_DIR", str(base))
        capsys.readouterr()
        code = _script_module(script.removesuffix(".py")).main(list(args))
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(script, code, captured.out, captured.err)

    return run


def train(base, *args: str) -> subprocess.CompletedProcess:
    for channel in ("train", "validation"):
        shutil.copytree(base / "processing" / channel, base / "input" / "data" / channel, dirs_exist_ok=True)
    return run_script("train.py", base, "train", *ROUNDS, *args)


def package_model(base) -> None:
    (base / "processing" / "model").mkdir(exist_ok=True)
    with tarfile.open(base / "processing" / "model" / "model.tar.gz", "w:gz") as tar:
        for item in (base / "model").iterdir():
            tar.add(item, arcname=item.name)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One preprocess -> train -> evaluate chain, shared by the tests that read its outputs."""
    base = tmp_path_factory.mktemp("opt_ml")
    results = {"preprocess": preprocess(base), "train": train(base)}
    package_model(base)
    results["evaluate"] = run_script("evaluate.py", base)
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
    return base, results


SEXES = ("F", "I", "M")


def test_preprocess_writes_headerless_splits_target_first_with_category_codes(trained):
    base, _ = trained
    counts = {}
    for split in ("train", "validation", "test"):
        table = np.loadtxt(base / "processing" / split / f"{split}.csv", delimiter=",", ndmin=2)
        assert table.shape[1] == 9, "the target, then the eight features in the block's order"
        assert set(np.unique(table[:, 1])) == {0.0, 1.0, 2.0}, "sex as the code of its level"
        counts[split] = len(table)
        spec = json.loads((base / "processing" / split / "features.json").read_text())
        assert spec == {
            "dataset": {**BLOCK, "id_columns": [], "positive_class": None, "classes": None},
            "categories": {"sex": list(SEXES)},
            "classes": None,
        }
    assert counts == {"train": 420, "validation": 90, "test": 90}
    report = json.loads((base / "processing" / "test" / "preprocessing.json").read_text())
    assert report == {"rows": counts, "rows_without_target_dropped": 0, "ignored_columns": {}}


def test_the_baseline_is_the_train_split_as_the_endpoint_receives_it(trained):
    """Raw records without the target and without a header, one per training row: what data capture records."""
    base, _ = trained
    lines = (base / "processing" / "baseline" / "baseline.csv").read_text().splitlines()
    train = np.loadtxt(base / "processing" / "train" / "train.csv", delimiter=",", ndmin=2)
    assert len(lines) == len(train) == 420
    records = [line.split(",") for line in lines]
    assert all(len(r) == 8 and r[0] in SEXES for r in records)
    assert [float(v) for v in records[0][1:]] == pytest.approx(list(train[0, 2:]))
    assert all(train[i, 1] == SEXES.index(r[0]) for i, r in enumerate(records))


def _records(table: np.ndarray) -> list[tuple]:
    """Request records (sex, then the measurements) of an encoded split, to compare with the sample's lines."""
    return [(SEXES[int(row[1])], *np.round(row[2:], 4)) for row in table]


def _sample_records(lines: list[str]) -> list[tuple]:
    return [(fields[0], *np.round([float(v) for v in fields[1:]], 4)) for fields in (line.split(",") for line in lines)]


def test_the_holdout_is_test_records_as_the_endpoint_receives_them(trained):
    """What the system test sends the endpoint: raw records without the target or a header, from the test split."""
    base, _ = trained
    lines = (base / "processing" / "holdout" / "requests.csv").read_text().splitlines()
    assert all(len(line.split(",")) == 8 and line[0] in "FIM" for line in lines)
    test = np.loadtxt(base / "processing" / "test" / "test.csv", delimiter=",", ndmin=2)
    assert len(lines) == len(test) == 90, "a test split under 100 rows is sampled whole"
    assert sorted(_sample_records(lines)) == sorted(_records(test))


def test_the_holdout_is_drawn_at_random_from_the_seed(tmp_path, in_process):
    """Up to 100 of the test split's rows drawn at random: not its first rows in file order, the same for the same seed."""
    samples = {}
    for run in ("a", "b"):
        write_csv(tmp_path / run / "processing" / "input" / "abalone.csv", abalone_rows(1000))
        write_dataset(tmp_path / run)
        assert in_process("preprocess.py", tmp_path / run).returncode == 0
        samples[run] = (tmp_path / run / "processing" / "holdout" / "requests.csv").read_text().splitlines()
    test = _records(np.loadtxt(tmp_path / "a" / "processing" / "test" / "test.csv", delimiter=",", ndmin=2))
    drawn = _sample_records(samples["a"])
    assert len(test) == 150 and len(drawn) == len(set(drawn)) == 100 and set(drawn) <= set(test)
    assert sorted(drawn) != sorted(test[:100])
    assert samples["a"] == samples["b"]
    draw = _script_module("preprocess").holdout_indices
    rows = np.arange(150)
    assert list(draw(rows, 42)) == list(draw(rows[::-1], 42)) != list(draw(rows, 7))


def _serve_csv(server, body: str, content_type: str = "text/csv") -> str:
    """serve.py's answer to a client's POST /invocations with Content-Type and Accept text/csv (or another type)."""
    data = body.encode()
    environ = {
        "PATH_INFO": "/invocations",
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "HTTP_ACCEPT": content_type,
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
    }
    replies = []
    answer = b"".join(server(environ, lambda status, headers: replies.append(status))).decode()
    assert replies == ["200 OK"], answer
    return answer


def test_evaluation_writes_the_sample_the_system_test_reads_with_the_answers_the_server_gives(trained):
    """Beside the report: each sampled request and, exactly, what serve.py answers it, in the file the system test reads."""
    base, _ = trained
    checks = load_lambda("system_test").checks
    path = base / "processing" / "evaluation" / checks.SAMPLE_FILE
    pairs = checks.read_sample(path.read_text(), str(path))
    requests = (base / "processing" / "holdout" / "requests.csv").read_text().splitlines()
    assert [request for request, _ in pairs] == requests
    server = _script_module("serve").ModelServer(base / "model")
    assert [answer for _, answer in pairs] == [_serve_csv(server, request) for request in requests]
    assert all(re.fullmatch(r"\d+\.\d{6}\n", answer) for _, answer in pairs)


def test_evaluate_without_the_holdout_fails_clearly(tmp_path, trained, in_process):
    base, _ = trained
    for folder in ("model", "test"):
        shutil.copytree(base / "processing" / folder, tmp_path / "processing" / folder)
    result = in_process("evaluate.py", tmp_path)
    assert result.returncode == 1
    holdout = tmp_path / "processing" / "holdout" / "requests.csv"
    assert result.stderr.strip() == (
        f"evaluation error: {holdout} not found; expected the held-out sample preprocess.py writes, so run preprocessing first"
    )
    assert not (tmp_path / "processing" / "evaluation").exists(), "nothing half-written"
    holdout.parent.mkdir(parents=True)
    holdout.write_text("\n")
    result = in_process("evaluate.py", tmp_path)
    assert result.stderr.strip() == f"evaluation error: {holdout} holds no records; rerun preprocessing"


def test_columns_match_by_name_in_any_order_and_extra_columns_are_named_and_ignored(tmp_path, trained):
    base, _ = trained
    other = tmp_path / "opt_ml"
    order = [8, 3, 0, 1, 2, 4, 5, 6, 7]
    rows = [[row[i] for i in order] + ["note"] for row in abalone_rows(600)]
    assert preprocess(other, rows, header=[HEADER[i] for i in order] + ["comment"]).returncode == 0
    for split in ("train", "validation", "test"):
        assert (other / "processing" / split / f"{split}.csv").read_text() == (
            base / "processing" / split / f"{split}.csv"
        ).read_text()
    report = json.loads((other / "processing" / "test" / "preprocessing.json").read_text())
    assert report["ignored_columns"] == {str(other / "processing" / "input" / "abalone.csv"): ["comment"]}


def test_missing_values_are_kept_and_rows_without_a_target_are_dropped_and_counted(tmp_path, in_process):
    rows = abalone_rows(600)
    rows[0][0] = rows[1][2] = ""
    rows[2][-1] = rows[3][-1] = " "
    assert preprocess(tmp_path, rows, run=in_process).returncode == 0
    report = json.loads((tmp_path / "processing" / "test" / "preprocessing.json").read_text())
    assert report["rows_without_target_dropped"] == 2 and sum(report["rows"].values()) == 598
    splits = "".join((tmp_path / "processing" / s / f"{s}.csv").read_text() for s in ("train", "validation", "test"))
    assert splits.count(",,") == 2, "one missing category and one missing measurement, written as empty fields"


def test_categories_written_as_numbers_are_one_level_however_written(tmp_path, in_process):
    """`2` and `2.0` are one category (dataset.canonical_value), in training and in serving alike."""
    rows = abalone_rows(600)
    for i, row in enumerate(rows):
        row[0] = {"F": "1", "I": "2", "M": "3"}[row[0]] + (".0" if i % 2 else "")
    assert preprocess(tmp_path, rows, run=in_process).returncode == 0
    spec = json.loads((tmp_path / "processing" / "train" / "features.json").read_text())
    assert spec["categories"] == {"sex": ["1", "2", "3"]}
    baseline = (tmp_path / "processing" / "baseline" / "baseline.csv").read_text().splitlines()
    assert {line.split(",")[0] for line in baseline} == {"1", "2", "3"}


def _rows_with(change):
    rows = abalone_rows(50)
    change(rows)
    return rows


BAD_INPUTS = {
    "no target column": (
        lambda rows: [r.pop() for r in rows],
        HEADER[:-1],
        "abalone.csv: no column 'rings' in the header (" + ", ".join(HEADER[:-1]) + "); every file names the target "
        "and each feature of the dataset block in a header row: " + ", ".join(HEADER),
    ),
    "no header": (
        lambda rows: None,
        False,
        "abalone.csv: no columns 'sex', 'length', ",
    ),
    "header named twice": (lambda rows: None, [*HEADER[:-1], "sex"], "abalone.csv: the header names column 'sex' more than once"),
    # pandas padded a short row with empty fields and put its parser's multi-line error into the message.
    "one short row": (
        lambda rows: rows.__setitem__(10, rows[10][:3]),
        True,
        "abalone.csv: row 12 has 3 fields; the header has 9: " + ", ".join(HEADER),
    ),
    "one long row": (
        lambda rows: rows[3].append(1),
        True,
        "abalone.csv: row 5 has 10 fields; the header has 9: " + ", ".join(HEADER),
    ),
    "non-numeric": (
        lambda rows: rows[4].__setitem__(3, "tall"),
        True,
        "abalone.csv: row 6 column 'height': expected a finite number or an empty field (missing), got 'tall'",
    ),
    "infinite": (
        lambda rows: rows[2].__setitem__(4, "inf"),
        True,
        "abalone.csv: row 4 column 'whole_weight': expected a finite number or an empty field (missing), got 'inf'",
    ),
    "text target": (
        lambda rows: rows[7].__setitem__(8, "old"),
        True,
        "abalone.csv: row 9 column 'rings': expected a finite number, got 'old'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_preprocess_rejects_bad_input_with_one_clear_line_naming_the_file(tmp_path, case, in_process):
    change, header, message = BAD_INPUTS[case]
    result = preprocess(tmp_path, _rows_with(change), header=header, run=in_process)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    path = tmp_path / "processing" / "input" / "abalone.csv"
    assert result.stderr.startswith(f"preprocess error: {path}: "), result.stderr
    assert message.removeprefix("abalone.csv") in result.stderr, result.stderr


def test_preprocess_rejects_empty_file_and_missing_input_and_dataset(tmp_path, in_process):
    empty = tmp_path / "empty"
    (empty / "processing" / "input").mkdir(parents=True)
    (empty / "processing" / "input" / "abalone.csv").write_text("")
    write_dataset(empty)
    result = in_process("preprocess.py", empty)
    assert result.returncode == 1 and "abalone.csv: the file is empty; expected a header row naming sex, length" in result.stderr
    (tmp_path / "none" / "processing" / "input").mkdir(parents=True)
    write_dataset(tmp_path / "none")
    result = in_process("preprocess.py", tmp_path / "none")
    assert result.returncode == 1 and "no .csv files found" in result.stderr
    dataset = tmp_path / "none" / "processing" / "dataset" / "dataset.json"
    dataset.unlink()
    result = in_process("preprocess.py", tmp_path / "none")
    assert result.stderr == (
        f"preprocess error: {dataset} not found; expected the dataset block as JSON (cdk.json's context.mlops.dataset), "
        "which the training pipeline puts there\n"
    )
    dataset.write_text(json.dumps({**BLOCK, "problem_type": "ranking"}))
    result = in_process("preprocess.py", tmp_path / "none")
    assert result.stderr == (
        f"preprocess error: {dataset}: dataset.problem_type = 'ranking' is invalid: must be one of regression, binary, "
        "multiclass\n"
    )


def test_preprocess_refuses_fewer_rows_than_every_split_needs(tmp_path, in_process):
    """MIN_ROWS: enough train rows for LightGBM to split at the tuner's largest min_data_in_leaf, a non-trivial test set."""
    module = _script_module("preprocess")
    needed = module.minimum_rows(0.15, 0.15)
    sizes = module.split_sizes(needed, 0.15, 0.15)
    assert all(sizes[s] >= module.MIN_ROWS[s] for s in module.SPLITS)
    assert any(module.split_sizes(needed - 1, 0.15, 0.15)[s] < module.MIN_ROWS[s] for s in module.SPLITS)
    unlabelled = [[*row[:-1], ""] for row in abalone_rows(5)]
    cases = ((abalone_rows(3), 3, tmp_path / "three"), (abalone_rows(needed - 1) + unlabelled, needed - 1, tmp_path / "short"))
    for rows, labelled, base in cases:
        result = preprocess(base, rows, run=in_process)
        assert result.returncode == 1
        assert result.stderr == (
            f"preprocess error: {base / 'processing' / 'input' / 'abalone.csv'}: {labelled} rows with a target are too "
            "few to split into "
            f"train, validation and test; at least {needed} are needed at these fractions (120 to train on, 30 each to "
            "validate and test)\n"
        )
        assert not (base / "processing" / "train").exists()
    assert preprocess(tmp_path / "enough", abalone_rows(needed), run=in_process).returncode == 0


def test_cross_validation_folds_make_disjoint_test_splits_covering_every_row():
    split = _script_module("preprocess").split_indices
    tests = [split(1000, 0.15, 0.2, 42, fold=(k, 5)) for k in range(5)]
    assert sorted(np.concatenate([t["test"] for t in tests]).tolist()) == list(range(1000))
    for parts in tests:
        assert len(parts["test"]) == 200 and len(parts["validation"]) == 150 and len(parts["train"]) == 650
        assert not set(parts["test"]) & set(parts["train"]) and not set(parts["validation"]) & set(parts["train"])


def _script_module(name: str):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return __import__(name)


LATIN1 = "sex,length\nM,0.455\nF,0.53\nI,0.3 \xe9\n"


def test_preprocess_names_the_row_and_byte_of_non_utf8(tmp_path):
    module = _script_module("preprocess")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(LATIN1.encode("latin-1"))
    with pytest.raises(module.InputError) as error:
        module.read_raw_csv(latin1, module.Dataset.from_dict(BLOCK))
    offset = LATIN1.encode("latin-1").index(b"\xe9")
    assert str(error.value) == (
        f"{latin1}: row 4 (byte offset {offset}) is not UTF-8 (invalid continuation byte); save the file as UTF-8 text"
    )


def _corrupt(model_dir, tmp_path, name: str, content: bytes):
    broken = tmp_path / name.replace(".", "_")
    shutil.copytree(model_dir, broken)
    (broken / name).write_bytes(content)
    return broken


def _spec(**changes) -> bytes:
    spec = {"dataset": BLOCK, "categories": {"sex": ["F", "I", "M"]}, "classes": None}
    return json.dumps({**spec, **changes}).encode()


CORRUPT_ARTIFACTS = {
    "truncated model": ("model.txt", b"tree\nversion=v4\nnum_class=1\n", r"model\.txt is not a LightGBM model \(.+\); retrain"),
    "features not json": ("features.json", b"{dataset", r"features\.json is not a feature spec \(JSONDecodeError"),
    "features without categories": (
        "features.json",
        json.dumps({"dataset": BLOCK, "classes": None}).encode(),
        r"features\.json is not a feature spec: expected an object with exactly dataset, categories, classes",
    ),
    "categories of another feature": (
        "features.json",
        _spec(categories={"colour": ["red"]}),
        r"features\.json is not a feature spec: categories must list the levels of each categorical feature: \['sex'\]",
    ),
    "classes for a regression": (
        "features.json",
        _spec(classes=["a", "b"]),
        r"features\.json is not a feature spec: classes of a regression model must be null, got \['a', 'b'\]",
    ),
    "bad dataset block": (
        "features.json",
        _spec(dataset={**BLOCK, "target": ""}),
        r"features\.json is not a feature spec: dataset\.target = '' is invalid",
    ),
    "feature count differs": (
        "features.json",
        _spec(dataset={**BLOCK, "features": BLOCK["features"][:2]}),
        r"model\.txt expects 8 features but features\.json lists 2",
    ),
    "a binary spec for a regression model": (
        "features.json",
        _spec(dataset={**BLOCK, "problem_type": "binary"}, classes=["0", "1"]),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_ARTIFACTS))
def test_a_corrupt_model_artifact_is_named_and_the_server_answers_503(tmp_path, trained, case):
    name, content, message = CORRUPT_ARTIFACTS[case]
    broken = _corrupt(trained[0] / "model", tmp_path, name, content)
    if message is None:
        # LightGBM's file does not say binary from regression (one output each); the spec decides how it is answered.
        assert _script_module("inference").Model(broken).fields == ("probability", "label")
        return
    with pytest.raises(_script_module("inference").ModelError, match=message):
        _script_module("inference").Model(broken)
    server = _script_module("serve").ModelServer(broken)
    replies = []
    body = b"".join(server({"PATH_INFO": "/ping", "REQUEST_METHOD": "GET"}, lambda status, headers: replies.append(status)))
    assert replies == ["503 Service Unavailable"] and re.search(message, body.decode())


def test_evaluate_names_a_corrupt_archive(tmp_path, in_process):
    archive = tmp_path / "processing" / "model" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    result = in_process("evaluate.py", tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"evaluation error: {archive} is not a readable model.tar.gz ("
    ) and result.stderr.strip().endswith("rerun the training step")


def write_config(path, block=None, gate=None, environment=None):
    """A cdk.json with the mlops keys local_run reads: the dataset block, the project's gate, an environment's own."""
    dev = {"production": False, **({"training": {"quality_gate": environment}} if environment else {})}
    mlops = {
        "project_name": "local-run",
        "dataset": BLOCK if block is None else block,
        "quality_gate": gate or {"metric": "mse", "threshold": 6.0},
        "environments": {"dev": dev},
    }
    path.write_text(json.dumps({"app": "python3 app.py", "context": {"mlops": mlops}}))
    return path


def test_local_run_ends_a_failed_step_with_one_clear_line(tmp_path, capfd):
    local_run = _script_module("local_run")
    bad = write_csv(tmp_path / "abalone.csv", _rows_with(lambda rows: rows[9].__setitem__(1, "long")))
    config = write_config(tmp_path / "cdk.json")
    assert local_run.main(["--data", str(bad), "--config", str(config)]) == 1
    err = capfd.readouterr().err
    assert "preprocess error: " in err and "Traceback" not in err
    assert err.strip().endswith("local run failed: preprocess.py exited with 1; its error is printed above")
    with pytest.raises(SystemExit):
        local_run.main(["--data", str(tmp_path / "missing.csv")])
    assert "--data " + str(tmp_path / "missing.csv") + ": no such file" in capfd.readouterr().err
    write_config(config, gate={"metric": "auc", "threshold": 0.9})
    assert local_run.main(["--data", str(bad), "--config", str(config)]) == 1
    assert capfd.readouterr().err == (
        f"local run failed: {config}: cdk.json context 'mlops.quality_gate.metric' = 'auc' is invalid: a regression "
        "dataset is gated on one of mse, rmse, mae, r2\n"
    )


def test_train_prints_parsable_metrics_and_writes_the_model(trained):
    base, results = trained
    lines = results["train"].stdout.splitlines()
    assert any(re.fullmatch(r"validation:rmse=\d+\.\d{6}", line) for line in lines)
    assert any(re.fullmatch(r"train:mse=\d+\.\d{6}", line) for line in lines)
    assert sorted(p.name for p in (base / "model").iterdir()) == ["features.json", "model.txt"]


def test_train_takes_hyperparameters_from_file_and_command_line(tmp_path, trained):
    base, _ = trained
    shutil.copytree(base / "processing", tmp_path / "processing")
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"num_leaves": "5", "learning_rate": "0.2", "sagemaker_job": "x"}))
    result = train(tmp_path, "--learning_rate", "0.1")
    assert result.returncode == 0, result.stderr
    model = (tmp_path / "model" / "model.txt").read_text()
    assert "[num_leaves: 5]" in model and "[learning_rate: 0.1]" in model


def test_train_missing_channel_fails_clearly_and_records_the_reason(tmp_path, in_process):
    (tmp_path / "output").mkdir()
    result = in_process("train.py", tmp_path, "train")
    assert result.returncode == 1
    expected = f"training error: channel 'train' not found at {tmp_path / 'input' / 'data' / 'train'}"
    assert result.stderr.startswith(expected)
    assert (tmp_path / "output" / "failure").read_text().startswith(expected)


def _channels(base, target):
    """The trained fixture's train and validation channels in a fresh SageMaker-shaped tree with an output folder."""
    for channel in ("train", "validation"):
        shutil.copytree(base / "processing" / channel, target / "input" / "data" / channel)
    (target / "output").mkdir()
    return target / "input" / "data"


def _renamed_feature(spec_file):
    spec = json.loads(spec_file.read_text())
    spec["dataset"]["features"][1]["name"] = "girth"
    spec_file.write_text(json.dumps(spec))


FEATURE_SPEC_PROBLEMS = {
    "train without spec": (
        lambda data: (data / "train" / "features.json").unlink(),
        "channel 'train' has no features.json ({data}/train/features.json is missing); preprocessing writes it next to "
        "the CSVs, and serving cannot load a model without it",
    ),
    "validation without spec": (
        lambda data: (data / "validation" / "features.json").unlink(),
        "channel 'validation' has no features.json ({data}/validation/features.json is missing); preprocessing writes it "
        "next to the CSVs, and serving cannot load a model without it",
    ),
    "specs differ": (
        lambda data: _renamed_feature(data / "validation" / "features.json"),
        "{data}/validation/features.json lists other features than {data}/train/features.json; give both channels the "
        "output of one preprocessing run",
    ),
}


@pytest.mark.parametrize("case", sorted(FEATURE_SPEC_PROBLEMS))
def test_train_refuses_a_channel_whose_feature_spec_serving_could_not_use(tmp_path, trained, in_process, case):
    change, message = FEATURE_SPEC_PROBLEMS[case]
    data = _channels(trained[0], tmp_path)
    change(data)
    result = in_process("train.py", tmp_path, "train")
    expected = "training error: " + message.format(data=data)
    assert (result.returncode, result.stderr) == (1, expected + "\n")
    assert (tmp_path / "output" / "failure").read_text() == expected
    assert not (tmp_path / "model").exists()


def _edit_lines(path, change):
    lines = path.read_text().splitlines()
    change(lines)
    path.write_text("\n".join(lines) + "\n")


CHANNEL_PROBLEMS = {
    "nan target": (
        lambda data: _edit_lines(data / "train" / "train.csv", lambda lines: lines.__setitem__(6, "nan" + lines[6][4:])),
        "{data}/train/train.csv: row 7 column 1: 'nan' is not a finite number; expected numbers (a feature may be "
        "empty), the target first and no header",
    ),
    "text": (
        lambda data: _edit_lines(data / "validation" / "validation.csv", lambda lines: lines.__setitem__(0, "x" + lines[0])),
        "{data}/validation/validation.csv: row 1 column 1: 'x{first}' is not a finite number; expected numbers (a "
        "feature may be empty), the target first and no header",
    ),
    "short row": (
        lambda data: _edit_lines(data / "train" / "train.csv", lambda lines: lines.__setitem__(3, "1,2,3")),
        "{data}/train/train.csv: row 4 has 3 fields, the rows before it 9",
    ),
    "empty file": (
        lambda data: (data / "validation" / "validation.csv").write_text("\n"),
        "{data}/validation/validation.csv: the file is empty",
    ),
    "too few train rows": (
        lambda data: _edit_lines(data / "train" / "train.csv", lambda lines: lines.__delitem__(slice(39, None))),
        "channel 'train' has 39 rows; LightGBM needs at least 2 x min_data_in_leaf = 40 to split, so give it more rows or "
        "a smaller --min_data_in_leaf",
    ),
}


@pytest.mark.parametrize("case", sorted(CHANNEL_PROBLEMS))
def test_train_names_the_row_and_column_of_a_bad_channel_value(tmp_path, trained, in_process, case):
    """NaN trained silently (an MSE of nan), and numpy counted rows from 0."""
    change, message = CHANNEL_PROBLEMS[case]
    data = _channels(trained[0], tmp_path)
    first = (data / "validation" / "validation.csv").read_text().splitlines()[0].split(",")[0]
    change(data)
    result = in_process("train.py", tmp_path, "train")
    expected = "training error: " + message.format(data=data, first=first)
    assert (result.returncode, result.stderr) == (1, expected + "\n")
    assert (tmp_path / "output" / "failure").read_text() == expected


BAD_HYPERPARAMETERS = [
    (("--num_leaves", "1"), "hyperparameter num_leaves = 1 is invalid: LightGBM requires num_leaves > 1"),
    (("--bagging_fraction", "2"), "hyperparameter bagging_fraction = 2.0 is invalid: LightGBM requires bagging_fraction <= 1.0"),
    (("--min_data_in_leaf", "-1"), "hyperparameter min_data_in_leaf = -1 is invalid: LightGBM requires min_data_in_leaf >= 0"),
    (("--num_leaves", "many"), "hyperparameters: argument --num_leaves: invalid int value: 'many'"),
    (("--learning_rate", "nan"), "hyperparameters: argument --learning_rate: 'nan' is not a finite number"),
    (("--num_boost_round", "0"), "hyperparameters: argument --num_boost_round: '0' is not an integer of at least 1"),
    (("--max_depth", "3"), "hyperparameters: unrecognized arguments: --max_depth 3"),
]


@pytest.mark.parametrize(("args", "message"), BAD_HYPERPARAMETERS, ids=[" ".join(a) for a, _ in BAD_HYPERPARAMETERS])
def test_a_hyperparameter_lightgbm_or_the_parser_refuses_is_one_line_and_the_failure_reason(
    tmp_path, trained, monkeypatch, capfd, args, message
):
    """LightGBM's C++ code prints its own '[LightGBM] [Fatal]' line first; stderr (file descriptor 2) keeps only ours."""
    _channels(trained[0], tmp_path)
    monkeypatch.setenv("SM_BASE_DIR", str(tmp_path))
    capfd.readouterr()
    assert _script_module("train").main(["train", *args]) == 1
    assert capfd.readouterr().err == f"training error: {message}\n"
    assert (tmp_path / "output" / "failure").read_text() == f"training error: {message}"
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{num_leaves", "is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); SageMaker"),
        ('["num_leaves"]', "must hold a JSON object of hyperparameters, got list"),
    ],
)
def test_a_hyperparameters_file_that_is_not_a_json_object_is_named(tmp_path, trained, in_process, content, message):
    _channels(trained[0], tmp_path)
    (tmp_path / "input" / "config").mkdir()
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text(content)
    result = in_process("train.py", tmp_path, "train")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"training error: {tmp_path / 'input' / 'config' / 'hyperparameters.json'} {message}")


def test_evaluation_report_has_registry_shape_and_beats_the_mean(trained):
    base, _ = trained
    report = json.loads((base / "processing" / "evaluation" / "evaluation.json").read_text())
    assert set(report) == {"regression_metrics", "preprocessing"}
    assert report["preprocessing"]["rows"] == {"train": 420, "validation": 90, "test": 90}
    metrics = report["regression_metrics"]
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    assert set(metrics["mse"]) == {"value", "standard_deviation"}
    train_target = np.loadtxt(base / "processing" / "train" / "train.csv", delimiter=",")[:, 0]
    test_target = np.loadtxt(base / "processing" / "test" / "test.csv", delimiter=",")[:, 0]
    baseline = float(np.mean((test_target - train_target.mean()) ** 2))
    assert metrics["mse"]["value"] < 0.5 * baseline
    assert metrics["rmse"]["value"] == pytest.approx(metrics["mse"]["value"] ** 0.5)
    assert 0.5 < metrics["r2"]["value"] <= 1


def test_evaluate_without_model_fails_clearly(tmp_path, in_process):
    result = in_process("evaluate.py", tmp_path)
    assert result.returncode == 1
    archive = tmp_path / "processing" / "model" / "model.tar.gz"
    assert result.stderr.strip() == f"evaluation error: {archive} not found; expected the training job's model.tar.gz"


def test_batch_predict_writes_one_prediction_per_row(tmp_path, trained):
    base, _ = trained
    rows = [r[:-1] for r in abalone_rows(25, seed=3)]
    write_csv(tmp_path / "in" / "day.csv", rows, header=False)
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "batch_predict.py"),
            "--model-dir",
            str(base / "model"),
            "--input-dir",
            str(tmp_path / "in"),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    predictions = np.loadtxt(tmp_path / "out" / "day.csv.out")
    assert predictions.shape == (25,) and np.all((predictions > 0) & (predictions < 30))


def test_batch_predict_and_training_name_the_row_and_byte_of_non_utf8(tmp_path, trained, in_process):
    base, _ = trained
    day = tmp_path / "in" / "day.csv"
    day.parent.mkdir()
    write_csv(tmp_path / "in" / "a-good-one.csv", [r[:-1] for r in abalone_rows(5)], header=False)
    records = b"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15\nF,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21\n"
    day.write_bytes(records + b"I,0.3,0.2,0.1,0.2,0.1,0.05,0.06 \xe9\n")
    args = ("--model-dir", str(base / "model"), "--input-dir", str(day.parent), "--output-dir", str(tmp_path / "out"))
    result = in_process("batch_predict.py", base, *args)
    offset = day.read_bytes().index(b"\xe9")
    assert (result.returncode, result.stderr) == (
        1,
        f"batch error: {day}: row 3 (byte offset {offset}) is not UTF-8 (invalid continuation byte); "
        "save the file as UTF-8 text\n",
    )
    assert not (tmp_path / "out").exists(), "nothing is written when a file cannot be scored"
    channels = tmp_path / "opt_ml"
    for channel in ("train", "validation"):
        shutil.copytree(base / "processing" / channel, channels / "input" / "data" / channel)
    train_csv = channels / "input" / "data" / "train" / "train.csv"
    lines = train_csv.read_bytes().splitlines(keepends=True)
    train_csv.write_bytes(b"".join(lines[:4]) + b"\xff" + b"".join(lines[4:]))
    result = in_process("train.py", channels, "train")
    assert (result.returncode, result.stderr) == (
        1,
        f"training error: {train_csv}: row 5 (byte offset {len(b''.join(lines[:4]))}) is not UTF-8 (invalid start byte); "
        "save the file as UTF-8 text\n",
    )


def test_local_runner_chains_every_step_prints_one_report_and_keeps_its_workdir(tmp_path, capfd):
    """stdout is the summary alone (evaluate printed its report first), gated as the environment's pipeline gates."""
    data = write_csv(tmp_path / "abalone.csv", abalone_rows(800, seed=11))
    config = write_config(tmp_path / "cdk.json", environment={"metric": "mae", "threshold": 0.01})
    workdir = tmp_path / "run"
    capfd.readouterr()
    assert (
        _script_module("local_run").main(["--data", str(data), "--workdir", str(workdir), "--config", str(config), "--", *ROUNDS])
        == 0
    )
    summary = json.loads(capfd.readouterr().out)
    mae = summary["regression_metrics"]["mae"]["value"]
    assert summary["quality_gate"] == {"metric": "mae", "value": mae, "threshold": 0.01, "passed": False}
    assert summary["regression_metrics"]["mse"]["value"] < summary["constant_baseline"]["value"]
    assert summary["batch_predictions"] == summary["batch_input_rows"] == 800
    assert summary["batch_output_columns"] == ["value"] and re.fullmatch(r"\d+\.\d{6}", summary["batch_output_first_row"])
    assert set(summary["seconds"]) == {"preprocess", "train", "evaluate", "batch_inference"}
    assert sorted(p.name for p in (workdir / "model").iterdir()) == ["features.json", "model.txt"]
    assert (workdir / "processing" / "evaluation" / "evaluation.json").is_file()


def test_make_local_run_passes_workdir_to_the_runner_and_make_schema_drafts_the_block():
    assert make_dry_run("local-run", "DATA=data.csv", "WORKDIR=run 1")[-1].endswith(
        "pipeline_scripts/local_run.py --data 'data.csv' --workdir 'run 1'"
    )
    assert make_dry_run("schema", "DATA=my data.csv")[-1].endswith("pipeline_scripts/dataset.py --data 'my data.csv'")
    assert make_dry_run("schema", "DATA=d.csv", "TARGET=y")[-1].endswith(
        "pipeline_scripts/dataset.py --data 'd.csv' --target 'y'"
    )


def _with(rows: list[str], index: int, line: str) -> str:
    return "\n".join([*rows[:index], line, *rows[index + 1 :]]) + "\n"


def test_a_long_body_through_pandas_and_short_ones_through_the_csv_module_are_read_alike(trained):
    """Past SMALL_BODY_LINES pandas' C parser reads the body: the same answers, and the same errors by record."""
    inference = _script_module("inference")
    model = inference.Model(trained[0] / "model")
    rows = [",".join(map(str, row[:-1])) for row in abalone_rows(2 * inference.SMALL_BODY_LINES, seed=5)]
    rows[3] = ",".join(["", *rows[3].split(",")[1:4], "", *rows[3].split(",")[5:]])
    rows[7] = '"M",' + rows[7].split(",", 1)[1]

    def answer(body: str) -> str:
        return model.format_csv(model.predict_columns(model.read_csv(body)))

    assert answer("\n".join(rows) + "\n") == "".join(answer(row + "\n") for row in rows)
    assert answer(",".join(model.columns) + "\n" + "\n".join(rows)) == answer("\n".join(rows))
    fields = rows[9].split(",")
    for index, line, message in (
        (70, ",".join(fields[:5]), "record 71: expected 8 fields (sex,length,"),
        (0, rows[0] + ",1", "record 1: expected 8 fields (sex,length,"),
        (80, ",".join([*fields[:3], "x", *fields[4:]]), "record 81: height must be a number, got 'x'"),
        (90, ",".join([*fields[:3], "nan", *fields[4:]]), "record 91: height must be a number, got 'nan'"),
    ):
        for body in (_with(rows, index, line), line + "\n"):
            number = index + 1 if len(body) > len(line) + 1 else 1
            with pytest.raises(
                inference.PayloadError, match=re.escape(message.replace(f"record {index + 1}", f"record {number}"))
            ):
                answer(body)
