"""Generated abalone-shaped data with a learnable signal, so tests never need the real data set."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HEADER = ["sex", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight", "rings"]
# cdk.json's dataset block for these columns.
BLOCK = {
    "target": "rings",
    "problem_type": "regression",
    "features": [{"name": "sex", "type": "categorical"}, *({"name": name, "type": "numeric"} for name in HEADER[1:-1])],
}


def abalone_rows(n: int, seed: int = 7) -> list[list]:
    rng = np.random.default_rng(seed)
    length = rng.uniform(0.1, 0.8, n)
    diameter = length * 0.8 + rng.normal(0, 0.01, n)
    height = length * 0.27 + rng.normal(0, 0.01, n)
    whole = 2.2 * length**3 + rng.normal(0, 0.02, n)
    shell = 0.3 * whole + rng.normal(0, 0.01, n)
    sex = np.where(length < 0.35, "I", rng.choice(["M", "F"], n))
    rings = np.clip(np.round(3 + 30 * shell + (sex != "I") * 1.5 + rng.normal(0, 1.0, n)), 1, 29)
    return [
        [s, round(ln, 3), round(d, 3), round(h, 3), round(w, 4), round(w * 0.43, 4), round(w * 0.22, 4), round(sw, 4), float(r)]
        for s, ln, d, h, w, sw, r in zip(sex, length, diameter, height, whole, shell, rings, strict=True)
    ]


def write_csv(path: Path, rows: list[list], header: bool | list[str] = True) -> Path:
    """The rows under HEADER, another header, or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        if header:
            writer.writerow(HEADER if header is True else header)
        writer.writerows(rows)
    return path
