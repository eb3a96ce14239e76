"""Batch inference over files, as SageMaker batch transform does: <input>/<name> -> <output>/<name>.out.

Transform jobs in the cloud send the same files through serve.py's /invocations; this runs the same
prediction function without a server, for local runs and benchmarks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from utf8_text import NotUtf8, read_utf8

from inference import Model, ModelError, PayloadError, format_csv, parse_csv


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
    header = ",".join(model.raw_columns)
    files = sorted(p for p in args.input_dir.rglob("*") if p.is_file())
    if not files:
        print(f"batch error: {args.input_dir} holds no input files", file=sys.stderr)
        return 1
    # Every file is scored before any output is written, so a bad file leaves no partial output behind.
    outputs = {}
    for path in files:
        try:
            predictions = model.predict_records(parse_csv(read_utf8(path), header))
        except PayloadError as error:
            print(f"batch error: {path}: {error}", file=sys.stderr)
            return 1
        except NotUtf8 as error:
            print(f"batch error: {error}", file=sys.stderr)
            return 1
        target = args.output_dir / path.relative_to(args.input_dir)
        outputs[target.with_name(target.name + ".out")] = predictions
    for target, predictions in outputs.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(format_csv(predictions))
    total = sum(len(predictions) for predictions in outputs.values())
    print(f"predicted {total} rows from {len(files)} file(s) into {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
