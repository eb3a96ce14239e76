"""Binary and multiclass data sets that ship with scikit-learn (no download), written as a user's raw CSVs would be.

Each gains what real files have: an id column, a categorical feature (numeric-coded ones written two ways), missing
values, a column the block does not name, and rows without a target.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def breast_cancer(path: Path, features: int = 8) -> tuple[Path, dict]:
    """569 tumours: diagnosis malignant (the positive class) or benign, a size band, some missing measurements."""
    data = load_breast_cancer()
    names = [name.replace(" ", "_") for name in data.feature_names[:features]]
    rng = np.random.default_rng(5)
    band = np.digitize(data.data[:, 0], [12, 16])
    rows = []
    for i, (values, label) in enumerate(zip(data.data[:, :features], data.target, strict=True)):
        fields = ["" if rng.random() < 0.03 else round(float(v), 5) for v in values]
        diagnosis = "" if i % 97 == 5 else ("malignant", "benign")[label]
        rows.append([f"p{i:04d}", *fields, ("small", "medium", "large")[band[i]], "note", diagnosis])
    header = ["patient_id", *names, "size_band", "comment", "diagnosis"]
    block = {
        "target": "diagnosis",
        "problem_type": "binary",
        "features": [*({"name": n, "type": "numeric"} for n in names), {"name": "size_band", "type": "categorical"}],
        "id_columns": ["patient_id"],
        "positive_class": "malignant",
    }
    return _write(path, header, rows), block


def digits(path: Path, features: int = 24) -> tuple[Path, dict]:
    """1,797 handwritten digits named zero to nine (classes from the data), the label first and columns shuffled."""
    data = load_digits()
    pixels = [f"pixel_{i}" for i in range(features)]
    ink = np.digitize(data.data.sum(axis=1), [250, 300])
    rows = []
    for i, (values, label) in enumerate(zip(data.data[:, 20 : 20 + features], data.target, strict=True)):
        band = f"{ink[i]}.0" if i % 2 else str(ink[i])
        rows.append([DIGIT_NAMES[label], band, *(int(v) for v in values)])
    block = {
        "target": "digit",
        "problem_type": "multiclass",
        "features": [*({"name": p, "type": "numeric"} for p in pixels), {"name": "ink", "type": "categorical"}],
    }
    return _write(path, ["digit", "ink", *pixels], rows), block
