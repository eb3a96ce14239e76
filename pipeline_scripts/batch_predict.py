"""Batch inference over files, as SageMaker batch transform does: <input>/<name> -> <output>/<name>.out.

Each input line is a record of the dataset's batch_input_columns (the id columns, then the features; no header,
though a first line naming the columns is skipped). Each output line is the record's id columns as given, then the
answer's prediction fields (inference.py): the layout batch transform writes with the dataset's
batch_data_processing filters, where the model receives the features alone and the answer is joined to the input
record. Transform jobs in the cloud send the same records through serve.py's /invocations; this runs the same
prediction function without a server, for local runs and benchmarks.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

from utf8_text import NotUtf8, read_utf8

from inference import Model, ModelError, PayloadError, read_csv


def score(model: Model, text: str) -> str:
    """The output lines of one input file's text."""
    dataset = model.dataset
    columns = read_csv(text, dataset.batch_input_columns, (*dataset.id_columns, *dataset.categorical_features))
    answers = model.format_csv(model.predict_columns(columns))
    if not dataset.id_columns:
        return answers
    ids = io.StringIO()
    keys = zip(*(columns[name] for name in dataset.id_columns), strict=True)
    csv.writer(ids, lineterminator="\n").writerows([value if isinstance(value, str) else "" for value in key] for key in keys)
    return "".join(f"{key},{answer}\n" for key, answer in zip(ids.getvalue().splitlines(), answers.splitlines(), strict=True))


def main(argv=None) -> int:
    base = Path(os.environ.get("SM_BASE_DIR", "/opt/ml"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=base / "model")
    parser.add_argument("--input-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        model = Model(args.model_dir)
    except ModelError as error:
        print(f"batch error: {error}", file=sys.stderr)
        return 1
    files = sorted(p for p in args.input_dir.rglob("*") if p.is_file())
    if not files:
        print(f"batch error: {args.input_dir} holds no input files", file=sys.stderr)
        return 1
    # Every file is scored before any output is written, so a bad file leaves no partial output behind.
    outputs = {}
    for path in files:
        try:
            lines = score(model, read_utf8(path))
        except PayloadError as error:
            print(f"batch error: {path}: {error}", file=sys.stderr)
            return 1
        except NotUtf8 as error:
            print(f"batch error: {error}", file=sys.stderr)
            return 1
        target = args.output_dir / path.relative_to(args.input_dir)
        outputs[target.with_name(target.name + ".out")] = lines
    for target, lines in outputs.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(lines)
    total = sum(lines.count("\n") for lines in outputs.values())
    print(f"predicted {total} rows from {len(files)} file(s) into {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
