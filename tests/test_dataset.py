"""The dataset contract: the block's validation, the quality-gate tables and the draft of `make schema`."""

from __future__ import annotations

import json
import re

import pytest

from pipeline_scripts import dataset as contract
from pipeline_scripts.dataset import Dataset, DatasetError, QualityGate


def block(**changes) -> dict:
    base = {
        "target": "y",
        "problem_type": "regression",
        "features": [{"name": "colour", "type": "categorical"}, {"name": "size", "type": "numeric"}],
    }
    return {**base, **changes}


def test_a_block_parses_and_round_trips_with_its_defaults():
    dataset = Dataset.from_dict(block())
    assert dataset.feature_names == dataset.captured_columns == ("colour", "size")
    assert dataset.categorical_features == ("colour",)
    assert dataset.id_columns == () and dataset.positive_class is None and dataset.classes is None
    assert dataset.to_dict() == {**block(), "id_columns": [], "positive_class": None, "classes": None}
    assert Dataset.from_dict(dataset.to_dict()) == dataset
    binary = Dataset.from_dict(block(problem_type="binary", positive_class="yes", id_columns=["key"]))
    assert Dataset.from_dict(json.loads(json.dumps(binary.to_dict()))) == binary


FEATURE = {"name": "size", "type": "numeric"}
BAD_BLOCKS = {
    "not an object": ([FEATURE], "dataset = [{'name': 'size', 'type': 'numeric'}] is invalid: must be an object with target, "),
    "no target": (
        {"problem_type": "regression", "features": [FEATURE], "targt": "y"},
        "dataset.target = None is invalid: is required; is 'targt' a misspelling of it?",
    ),
    "unknown key": (block(featurs=[]), "dataset.featurs = [] is invalid: unknown key; did you mean 'features'?"),
    "unknown key far from any": (block(owner="me"), "dataset.owner = 'me' is invalid: unknown key; expected target, "),
    "wrong problem type": (
        block(problem_type="classification"),
        "dataset.problem_type = 'classification' is invalid: must be one of regression, binary, multiclass",
    ),
    "no features": (
        block(features=[]),
        'dataset.features = [] is invalid: must be a non-empty list of {"name": ..., "type": ...}',
    ),
    "unknown type": (
        block(features=[FEATURE, FEATURE | {"name": "a"}, FEATURE | {"name": "b"}, {"name": "c", "type": "text"}]),
        "dataset.features[3].type = 'text' is invalid: must be one of numeric, categorical",
    ),
    "unknown feature key": (
        block(features=[FEATURE | {"kind": "numeric"}]),
        "dataset.features[0].kind = 'numeric' is invalid: unknown key; expected name, type",
    ),
    "duplicate feature": (
        block(features=[FEATURE, FEATURE]),
        "dataset.features[1].name = 'size' is invalid: duplicates dataset.features[0].name; every column has one role",
    ),
    "id column that is a feature": (
        block(id_columns=["size"]),
        "dataset.id_columns[0] = 'size' is invalid: duplicates dataset.features[1].name; every column has one role",
    ),
    "target among the features": (
        block(target="size"),
        "dataset.target = 'size' is invalid: is also dataset.features[1].name; the target is neither a feature nor an id column",
    ),
    "target among the id columns": (
        block(id_columns=["y"]),
        "dataset.target = 'y' is invalid: is also dataset.id_columns[0]; the target is neither a feature nor an id column",
    ),
    "empty name": (block(target=""), "dataset.target = '' is invalid: must be a column name: a non-empty string"),
    "comma in a name": (
        block(features=[{"name": "a,b", "type": "numeric"}]),
        "dataset.features[0].name = 'a,b' is invalid: must be a column name without commas or line breaks (it is a CSV field)",
    ),
    "newline in a name": (
        block(id_columns=["a\nb"]),
        "dataset.id_columns[0] = 'a\\nb' is invalid: must be a column name without commas or line breaks",
    ),
    "spaces around a name": (block(target=" y"), "dataset.target = ' y' is invalid: must be a column name without leading"),
    "name not a string": (block(features=[{"name": 3, "type": "numeric"}]), "dataset.features[0].name = 3 is invalid: must be"),
    "positive class of a regression": (
        block(positive_class="yes"),
        "dataset.positive_class = 'yes' is invalid: applies to binary datasets only; set it to null",
    ),
    "classes of a binary": (
        block(problem_type="binary", classes=["no", "yes"]),
        "dataset.classes = ['no', 'yes'] is invalid: applies to multiclass datasets only; set it to null",
    ),
    "positive class true": (
        block(problem_type="binary", positive_class=True),
        "dataset.positive_class = True is invalid: must be a label as the data writes it: a string or an integer",
    ),
    "one class": (
        block(problem_type="multiclass", classes=["a"]),
        "dataset.classes = ['a'] is invalid: must list at least two labels, or be null for the training data's own",
    ),
    "classes equal as numbers": (
        block(problem_type="multiclass", classes=[2, "2.0"]),
        "dataset.classes[1] = '2.0' is invalid: duplicates dataset.classes[0]",
    ),
    "multiclass ids without classes": (
        block(problem_type="multiclass", id_columns=["key"]),
        "dataset.classes = None is invalid: a multiclass dataset with id_columns lists its classes",
    ),
    "output filter too long": (
        block(id_columns=[f"key{n}" for n in range(25)]),
        "dataset.id_columns = ['key0', ",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BLOCKS))
def test_a_bad_block_is_one_error_naming_the_key_the_value_and_what_is_allowed(case):
    raw, message = BAD_BLOCKS[case]
    with pytest.raises(DatasetError) as error:
        Dataset.from_dict(raw)
    assert str(error.value).startswith(message)
    assert str(error.value).startswith(f"{error.value.key} = {error.value.value!r} is invalid: {error.value.allowed}")


def test_labels_are_canonical_so_numbers_written_two_ways_are_one():
    assert [contract.canonical_value(v) for v in ("2", "2.0", " 2e0 ", "+2", "2.50", "-0.0")] == ["2", "2", "2", "2", "2.5", "0"]
    # Text stays text; integers a float cannot hold exactly keep their digits, so two such codes never merge.
    assert [contract.canonical_value(v) for v in ("M", "nan", "inf", "1_0", "12345678901234567891")] == [
        "M",
        "nan",
        "inf",
        "1_0",
        "12345678901234567891",
    ]
    multiclass = Dataset.from_dict(block(problem_type="multiclass", classes=[10, "2.0", "b"]))
    assert multiclass.classes == ("10", "2", "b")
    assert contract.sorted_labels(["10", "2", "b", "a", "2"]) == ["2", "10", "a", "b"]


@pytest.mark.parametrize("problem_type", contract.PROBLEM_TYPES)
def test_every_problem_type_has_one_report_key_gate_metrics_and_a_tuner_objective(problem_type):
    assert contract.report_key(problem_type) == contract.REPORT_KEYS[problem_type]
    for metric, direction in contract.GATE_METRICS[problem_type].items():
        assert contract.metric_json_path(problem_type, metric) == f"{contract.REPORT_KEYS[problem_type]}.{metric}.value"
        assert direction in (contract.MIN, contract.MAX)
    objective = contract.tuner_objective(problem_type)
    assert objective.metric_name.startswith("validation:") and objective.objective_type in ("Minimize", "Maximize")
    # The objective is one of the metrics train.py prints, and its regex reads the line train.py prints for it.
    names = {d["Name"]: d["Regex"] for d in contract.metric_definitions(problem_type)}
    assert names[objective.metric_name] == objective.regex
    line = contract.metric_line("validation", objective.metric_name.split(":")[1], 0.1234567)
    assert re.search(objective.regex, f"noise\n{line}\n")[1] == "0.123457"


def test_the_tables_are_the_ones_the_gates_and_sagemaker_know():
    assert contract.GATE_METRICS == {
        "regression": {"mse": "min", "rmse": "min", "mae": "min", "r2": "max"},
        "binary": {"auc": "max", "accuracy": "max", "f1": "max", "logloss": "min"},
        "multiclass": {"accuracy": "max", "weighted_f1": "max", "logloss": "min"},
    }
    assert contract.REPORT_KEYS == {
        "regression": "regression_metrics",
        "binary": "binary_classification_metrics",
        "multiclass": "multiclass_classification_metrics",
    }
    objectives = [contract.tuner_objective(p) for p in contract.PROBLEM_TYPES]
    assert [(o.metric_name, o.objective_type) for o in objectives] == [
        ("validation:rmse", "Minimize"),
        ("validation:logloss", "Minimize"),
        ("validation:logloss", "Minimize"),
    ]
    with pytest.raises(DatasetError, match=r"^metric = 'auc' is invalid: regression metrics are mse, rmse, mae, r2$"):
        contract.metric_json_path("regression", "auc")
    with pytest.raises(DatasetError, match=r"^problem_type = 'ranking' is invalid: must be one of regression"):
        contract.tuner_objective("ranking")


def test_a_quality_gate_passes_on_the_better_side_of_its_threshold():
    error = QualityGate.from_dict({"metric": "mse", "threshold": 6}, "regression")
    assert (error.direction, error.json_path, error.to_dict()) == (
        "min",
        "regression_metrics.mse.value",
        {"metric": "mse", "threshold": 6.0},
    )
    assert error.passed(6.0) and error.passed(4.6) and not error.passed(6.01)
    auc = QualityGate.from_dict({"metric": "auc", "threshold": 0.9}, "binary")
    assert auc.passed(0.9) and auc.passed(0.97) and not auc.passed(0.89)
    assert QualityGate.from_dict({"metric": "r2", "threshold": -0.5}, "regression").passed(0.1)


BAD_GATES = [
    (
        {"metric": "mse", "threshold": 6},
        "binary",
        "training.quality_gate.metric = 'mse' is invalid: a binary dataset is gated on one of auc, accuracy, f1, logloss",
    ),
    (
        {"metric": "accuracy", "threshold": 90},
        "multiclass",
        "training.quality_gate.threshold = 90 is invalid: accuracy lies between 0 and 1",
    ),
    ({"metric": "mae", "threshold": -1}, "regression", "training.quality_gate.threshold = -1 is invalid: mae is never negative"),
    (
        {"metric": "mse", "threshold": True},
        "regression",
        "training.quality_gate.threshold = True is invalid: must be a finite number",
    ),
    (
        {"metric": "mse", "threshold": float("nan")},
        "regression",
        "training.quality_gate.threshold = nan is invalid: must be a finite",
    ),
    ({"metric": "mse"}, "regression", "training.quality_gate.threshold = None is invalid: is required"),
    (
        {"metric": "mse", "threshold": 6, "treshold": 5},
        "regression",
        "training.quality_gate.treshold = 5 is invalid: unknown key; did you mean 'threshold'?",
    ),
    (6.0, "regression", "training.quality_gate = 6.0 is invalid: must be an object with metric, threshold"),
]


@pytest.mark.parametrize(("raw", "problem_type", "message"), BAD_GATES)
def test_a_bad_quality_gate_is_named(raw, problem_type, message):
    with pytest.raises(DatasetError) as error:
        QualityGate.from_dict(raw, problem_type)
    assert str(error.value).startswith(message)


def test_prediction_fields_and_the_batch_layout_per_problem_type():
    features = [{"name": n, "type": "numeric"} for n in ("a", "b", "c")]
    regression = Dataset.from_dict(block(features=features))
    assert regression.prediction_fields() == ("value",)
    assert regression.batch_input_columns == ("a", "b", "c")
    assert regression.batch_data_processing() == {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$"}
    binary = Dataset.from_dict(block(problem_type="binary", features=features, id_columns=["key", "day"]))
    assert binary.batch_input_columns == ("key", "day", "a", "b", "c")
    assert binary.batch_output_columns() == ("key", "day", "probability", "label")
    # The joined CSV row is key, day, a, b, c, probability, label: the filter keeps columns 0, 1, 5 and 6.
    assert binary.batch_data_processing() == {"InputFilter": "$[2:]", "JoinSource": "Input", "OutputFilter": "$[0,1,5,6]"}
    multiclass = Dataset.from_dict(
        block(problem_type="multiclass", features=features, id_columns=["key"], classes=["x", "y", "z"])
    )
    assert multiclass.batch_output_columns() == ("key", "probability_x", "probability_y", "probability_z", "label")
    assert multiclass.batch_data_processing()["OutputFilter"] == "$[0,4,5,6,7]"
    inferred = Dataset.from_dict(block(problem_type="multiclass", features=features))
    assert inferred.prediction_fields(["p", "q"]) == ("probability_p", "probability_q", "label")
    with pytest.raises(DatasetError, match="pass the model's classes"):
        inferred.prediction_fields()


def _draft(header, rows, target=None) -> dict:
    return contract.draft(header, rows, target).to_dict()


def test_the_draft_infers_types_ids_and_the_problem_type():
    header = ["order_id", "colour", "size", "code", "y"]
    rows = [[str(i), c, f"{i / 7:.3f}", str(i % 3), str(i % 17 + 0.5)] for i, c in enumerate(["red", "blue", ""] * 10)]
    drafted = _draft(header, rows)
    assert drafted == {
        "target": "y",
        "problem_type": "regression",
        "features": [
            {"name": "colour", "type": "categorical"},
            {"name": "size", "type": "numeric"},
            {"name": "code", "type": "numeric"},
        ],
        "id_columns": ["order_id"],
        "positive_class": None,
        "classes": None,
    }
    zero_one = [[r[0], r[1], r[2], r[3], str(i % 2) + ".0"] for i, r in enumerate(rows)]
    assert _draft(header, zero_one)["problem_type"] == "binary" and _draft(header, zero_one)["positive_class"] is None
    words = [[*r[:4], "yes" if i % 4 == 0 else "no"] for i, r in enumerate(rows)]
    assert (_draft(header, words)["problem_type"], _draft(header, words)["positive_class"]) == ("binary", "yes")
    digits = [[*r[:4], str(i % 5)] for i, r in enumerate(rows)]
    assert (_draft(header, digits)["problem_type"], _draft(header, digits)["classes"]) == (
        "multiclass",
        ["0", "1", "2", "3", "4"],
    )
    no_ids = _draft(header[1:], [r[1:] for r in digits])
    assert (no_ids["problem_type"], no_ids["classes"]) == ("multiclass", None)
    assert _draft(header, rows, target="code")["problem_type"] == "multiclass"


def test_the_draft_names_a_target_that_is_not_a_column():
    with pytest.raises(DatasetError, match=r"^target = 'price' is invalid: is not a column of the header \(a, b\)$"):
        contract.draft(["a", "b"], [["1", "2"]], "price")
    with pytest.raises(DatasetError, match=r"^target = 'b' is invalid: has no values in the data"):
        contract.draft(["a", "b"], [["1", ""]])


def test_make_schema_prints_the_block_and_what_to_review(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("\ufeffwidth,kind,label\n" + "".join(f"{i}.5,{'ab'[i % 2]},{'ny'[i % 3 == 0]}\n" for i in range(30)))
    assert contract.main(["--data", str(data)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "target": "label",
        "problem_type": "binary",
        "features": [{"name": "width", "type": "numeric"}, {"name": "kind", "type": "categorical"}],
        "id_columns": [],
        "positive_class": "y",
        "classes": None,
    }
    assert "context.mlops.dataset" in err and "training.quality_gate to one of auc, accuracy, f1, logloss" in err
    data.write_text("a,,b\n1,2,3\n")
    assert contract.main(["--data", str(data)]) == 1
    assert capsys.readouterr().err == (
        f"schema error: {data}: dataset.features[1].name = '' is invalid: must be a column name: a non-empty string\n"
    )
    data.write_bytes(b"a,b\n\xff,1\n")
    assert contract.main(["--data", str(data)]) == 1
    assert capsys.readouterr().err.startswith(f"schema error: {data}: cannot read it as UTF-8 text")


def test_binary_labels_are_positive_negative_or_unknown_by_the_block():
    known = Dataset.from_dict(block(problem_type="binary"))
    assert [known.is_positive(label) for label in ("1", "TRUE", "0", "False", "yes")] == [True, True, False, False, None]
    named = Dataset.from_dict(block(problem_type="binary", positive_class="yes"))
    assert [named.is_positive(label) for label in ("yes", "no", "1")] == [True, False, False]
