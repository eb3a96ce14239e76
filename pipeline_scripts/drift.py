"""The built-in drift engine: a baseline of the training split's feature distributions, and a period's captured
requests compared with it, with a verdict whose false-alarm rate does not depend on the period's traffic.

    python drift.py baseline --data train.csv --dataset dataset.json --out baseline.json
    python drift.py compare --baseline baseline.json --captured <dir> --dataset dataset.json --out report.json

`--dataset` is cdk.json's dataset block as JSON (what `make schema` drafts). `--data` is CSV with a header row
naming the features (other columns are ignored), or headerless records with the features in request order, as
preprocessing's baseline.csv holds them. `--captured` is a directory of SageMaker data-capture files (*.jsonl,
searched recursively). numpy, pandas and the standard library only: it runs in the project's images.

Cells. A numeric feature has BINS (5) bins between the train split's quintiles (fewer where ties merge edges;
each bin right-closed, the outer ones open) and a "missing" cell (empty or not a finite number). Quintiles, not
deciles: drift is mostly a smooth move of the whole distribution (a scale, an offset, a mix), which five cells
show with 4 degrees of freedom instead of 9, so a shift is caught in fewer requests (BENCHMARKS.md, "Drift
engine", measures both). A categorical feature has a cell per training level (after `canonical_value`, at most
MAX_LEVELS, the rarer ones folded into "other"), an "other" cell that also takes a period's unseen values, and a
"missing" cell.

The test, per feature: Pearson's chi-square test of homogeneity of the 2 x k table (baseline counts, period
counts). Not a goodness-of-fit test against the baseline's proportions as if they were exact: they are estimates
from n training records, and such a test's false-alarm rate grows with the period's m records (its statistic is
inflated by about 1 + m/n), which is the traffic dependence to avoid. The two-sample test holds its level at any
m. Where an expected count is below 5 (Cochran's rule: an unseen category, a rare level, a missing share, a
small period) the chi-square approximation is poor, so the p-value is a Monte-Carlo one of the same statistic
under the exact conditional null (tables with the observed margins, drawn multivariate-hypergeometric, DRAWS of
them, p = (1 + exceedances) / (DRAWS + 1), seeded so a report is reproducible). Merging sparse cells was
rejected: it would fold an unseen category into a seen one and hide exactly what a drift check should show.

The period's verdict: Holm's step-down correction across features holds the family-wise false-alarm rate at
`alpha` (any feature flagged iff the smallest p-value is below alpha / features, as with Bonferroni, but more
features flagged once one is). A feature drifts when its corrected p-value is at most `alpha` and its effect
size, the population stability index (PSI, with half a record added to each cell so an empty cell is defined),
is at least `min_effect`: on a large period a trivial shift is significant, and the effect floor ignores it.
Below `min_records` usable records the verdict is "insufficient-data": such a period has too little power for a
"no-drift" to mean anything.

Defaults: alpha 0.01, at most one false alarm in a hundred quiet periods whatever their traffic; min_effect 0.05,
half the 0.1 below which PSI is customarily read as "no significant change", above what sampling alone gives a
quiet period of 1,000 requests (under 0.02 on the abalone data) and below what the shifts to catch give;
min_records 50, ten records per quintile: fewer show only gross shifts, and their "no-drift" would reassure
falsely.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import io
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dataset import Dataset, DatasetError, canonical_value, is_number

BASELINE_FORMAT = "drift-baseline/1"
REPORT_FORMAT = "drift-report/1"
BINS = 5
MAX_LEVELS = 100
ALPHA = 0.01
MIN_EFFECT = 0.05
MIN_RECORDS = 50
DRAWS = 10_000
MIN_EXPECTED = 5.0
PSEUDOCOUNT = 0.5
# How many of a feature's unseen values the report names (the most frequent), besides counting them all.
UNSEEN_LISTED = 10


class DriftError(ValueError):
    """Bad input to the engine; the message names what is wrong and how to fix it."""


def _number(text: str) -> float | None:
    return float(text) if is_number(text) else None


def _numeric_cells(values: Sequence[str], edges: Sequence[float]) -> tuple[np.ndarray, int]:
    """Counts per bin, then missing (the last cell); and how many present values were not numbers."""
    numbers = [_number(v) for v in values]
    present = np.array([x for x in numbers if x is not None], dtype="float64")
    bins = np.bincount(np.searchsorted(np.asarray(edges, dtype="float64"), present, side="left"), minlength=len(edges) + 1)
    missing = len(values) - len(present)
    invalid = sum(1 for v, x in zip(values, numbers, strict=True) if x is None and v.strip())
    return np.append(bins, missing), invalid


def _categorical_cells(values: Sequence[str], levels: Sequence[str]) -> tuple[np.ndarray, Counter]:
    """Counts per level, then other, then missing; and the values that are not levels, with their counts."""
    seen = Counter(canonical_value(v) for v in values)
    missing = seen.pop("", 0)
    counts = [seen.pop(level, 0) for level in levels]
    return np.array([*counts, sum(seen.values()), missing]), seen


def build_baseline(frame: pd.DataFrame, dataset: Dataset) -> dict[str, Any]:
    """The train split's distribution per feature of the contract, as JSON: a frame with a column per feature."""
    absent = [name for name in dataset.feature_names if name not in frame.columns]
    if absent:
        raise DriftError(
            f"the training data has no column {absent[0]!r}; it needs every feature of the dataset "
            f"({', '.join(dataset.feature_names)})"
        )
    records = len(frame)
    if records == 0:
        raise DriftError("the training data has no records; build the baseline from the train split")
    features = []
    for feature in dataset.features:
        column = frame[feature.name]
        values = [str(v) for v in column.where(column.notna(), "").tolist()]
        if feature.type == "numeric":
            numbers = np.array([x for x in map(_number, values) if x is not None], dtype="float64")
            quantiles = np.quantile(numbers, np.arange(1, BINS) / BINS, method="inverted_cdf") if len(numbers) else []
            edges = [float(e) for e in np.unique(quantiles)]
            cells, _ = _numeric_cells(values, edges)
            features.append(
                {
                    "name": feature.name,
                    "type": "numeric",
                    "edges": edges,
                    "proportions": [int(c) / records for c in cells[:-1]],
                    "missing_share": int(cells[-1]) / records,
                }
            )
        else:
            seen = Counter(canonical_value(v) for v in values)
            missing = seen.pop("", 0)
            kept = sorted(seen.items(), key=lambda item: (-item[1], item[0]))[:MAX_LEVELS]
            features.append(
                {
                    "name": feature.name,
                    "type": "categorical",
                    "frequencies": {level: count / records for level, count in kept},
                    "other_share": (sum(seen.values()) - sum(count for _, count in kept)) / records,
                    "missing_share": missing / records,
                }
            )
    return {"format": BASELINE_FORMAT, "records": records, "features": features}


def _baseline_cells(feature: dict[str, Any], records: int) -> np.ndarray:
    """The baseline's counts per cell, in the order of _numeric_cells / _categorical_cells (shares x records, exact)."""
    if feature["type"] == "numeric":
        shares = [*feature["proportions"], feature["missing_share"]]
    else:
        shares = [*feature["frequencies"].values(), feature["other_share"], feature["missing_share"]]
    counts = np.rint(np.asarray(shares, dtype="float64") * records).astype("int64")
    if counts.sum() != records or (counts < 0).any():
        raise DriftError(
            f"baseline feature {feature['name']!r}: its shares do not add up to its {records} records; "
            "build the baseline again with `drift.py baseline`"
        )
    return counts


def _check_baseline(baseline: Any, dataset: Dataset) -> None:
    if not isinstance(baseline, dict) or baseline.get("format") != BASELINE_FORMAT:
        found = baseline.get("format") if isinstance(baseline, dict) else type(baseline).__name__
        raise DriftError(f"the baseline's format is {found!r}, not {BASELINE_FORMAT!r}; build it with `drift.py baseline`")
    records = baseline.get("records")
    if isinstance(records, bool) or not isinstance(records, int) or records < 1:
        raise DriftError(
            f"the baseline's records = {records!r} is invalid: a count of at least 1; build it with `drift.py baseline`"
        )
    contract = [(f.name, f.type) for f in dataset.features]
    described = [(f.get("name"), f.get("type")) for f in baseline.get("features", [])]
    if described != contract:
        raise DriftError(
            f"the baseline describes the features {described} but the dataset has {contract}; "
            "build the baseline again with this dataset (or pass the dataset it was built with)"
        )


def chi2_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square with df degrees of freedom: the regularized upper incomplete gamma
    Q(df/2, statistic/2), by its series below a + 1 and Lentz's continued fraction above (Numerical Recipes 6.2)."""
    if statistic <= 0:
        return 1.0
    a, x = df / 2, statistic / 2
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        n = 0
        while abs(term) > abs(total) * 1e-15 and n < 10_000:
            n += 1
            term *= x / (a + n)
            total += term
        return max(0.0, 1 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return min(1.0, h * math.exp(log_front))


def _pearson(baseline: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Pearson's X^2 of 2 x k tables: each row of baseline counts against the same row of period counts."""
    baseline, period = np.atleast_2d(baseline).astype("float64"), np.atleast_2d(period).astype("float64")
    n, m = baseline.sum(axis=1, keepdims=True), period.sum(axis=1, keepdims=True)
    totals = baseline + period
    share = totals / (n + m)
    expected_b, expected_p = share * n, share * m
    return (((baseline - expected_b) ** 2 / expected_b) + ((period - expected_p) ** 2 / expected_p)).sum(axis=1)


def homogeneity_test(baseline: np.ndarray, period: np.ndarray, rng: np.random.Generator, draws: int = DRAWS) -> dict:
    """Chi-square test that the period's cells come from the baseline's distribution (both being samples of it)."""
    keep = (baseline + period) > 0
    baseline, period = baseline[keep], period[keep]
    df = len(baseline) - 1
    if df < 1 or period.sum() == 0:
        return {"test": None, "statistic": 0.0, "df": max(df, 0), "p_value": 1.0}
    statistic = float(_pearson(baseline, period)[0])
    totals = baseline + period
    smallest = (totals * min(baseline.sum(), period.sum()) / totals.sum()).min()
    if smallest >= MIN_EXPECTED:
        return {"test": "chi-square", "statistic": statistic, "df": df, "p_value": chi2_sf(statistic, df)}
    simulated = rng.multivariate_hypergeometric(totals, int(period.sum()), size=draws)
    exceed = int((_pearson(totals - simulated, simulated) >= statistic * (1 - 1e-9)).sum())
    return {"test": "monte-carlo", "statistic": statistic, "df": df, "p_value": (1 + exceed) / (draws + 1)}


def psi(baseline: np.ndarray, period: np.ndarray) -> float:
    """Population stability index, sum of (p - q) ln(p / q), over the cells either side has, half a record added to each."""
    keep = (baseline + period) > 0
    q = (baseline[keep] + PSEUDOCOUNT) / (baseline[keep].sum() + PSEUDOCOUNT * keep.sum())
    p = (period[keep] + PSEUDOCOUNT) / (period[keep].sum() + PSEUDOCOUNT * keep.sum())
    return float(((p - q) * np.log(p / q)).sum())


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values: the k-th smallest of F times (F - k + 1), never below an earlier one, at most 1."""
    adjusted, running = {}, 0.0
    for rank, (name, p) in enumerate(sorted(p_values.items(), key=lambda item: item[1])):
        running = max(running, min(1.0, (len(p_values) - rank) * p))
        adjusted[name] = running
    return adjusted


def _settings(alpha: float, min_effect: float, min_records: int, draws: int) -> dict[str, Any]:
    if not 0 < alpha < 1:
        raise DriftError(f"alpha = {alpha!r} is invalid: the family-wise false-alarm rate lies strictly between 0 and 1")
    if not min_effect >= 0:
        raise DriftError(f"min_effect = {min_effect!r} is invalid: a PSI floor is 0 or more")
    if isinstance(min_records, bool) or not isinstance(min_records, int) or min_records < 1:
        raise DriftError(f"min_records = {min_records!r} is invalid: must be an integer of at least 1")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 100:
        raise DriftError(f"draws = {draws!r} is invalid: the Monte-Carlo test needs an integer of at least 100")
    return {"alpha": alpha, "correction": "holm", "effect": "psi", "min_effect": min_effect, "min_records": min_records}


def compare(
    baseline: dict[str, Any],
    records: Iterable[Sequence[str]],
    dataset: Dataset,
    *,
    alpha: float = ALPHA,
    min_effect: float = MIN_EFFECT,
    min_records: int = MIN_RECORDS,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, Any]:
    """A period's records (each the features' fields in request order, as strings) against the baseline."""
    settings = _settings(alpha, min_effect, min_records, draws)
    _check_baseline(baseline, dataset)
    width = len(dataset.features)
    rows, malformed = [], 0
    for record in records:
        if len(record) == width:
            rows.append(record)
        else:
            malformed += 1
    columns = [[row[i] for row in rows] for i in range(width)]
    n, m = int(baseline["records"]), len(rows)
    rng = np.random.default_rng(seed)
    features: dict[str, dict[str, Any]] = {}
    for described, values in zip(baseline["features"], columns, strict=True):
        expected = _baseline_cells(described, n)
        entry: dict[str, Any] = {"type": described["type"]}
        if described["type"] == "numeric":
            observed, invalid = _numeric_cells(values, described["edges"])
            entry["invalid"] = invalid
        else:
            observed, unseen = _categorical_cells(values, list(described["frequencies"]))
            entry["unseen"] = {"count": sum(unseen.values()), "values": dict(unseen.most_common(UNSEEN_LISTED))}
        entry["missing_share"] = {"baseline": described["missing_share"], "period": int(observed[-1]) / m if m else None}
        if m:
            entry.update(homogeneity_test(expected, observed, rng, draws))
            entry["psi"] = psi(expected, observed)
        else:
            entry.update({"test": None, "statistic": None, "df": None, "p_value": None, "psi": None})
        features[described["name"]] = entry
    adjusted = holm({name: f["p_value"] for name, f in features.items() if f["p_value"] is not None})
    for name, entry in features.items():
        entry["p_value_holm"] = adjusted.get(name)
        entry["drifted"] = bool(
            m >= min_records and adjusted.get(name, 1.0) <= alpha and entry["psi"] is not None and entry["psi"] >= min_effect
        )
    drifted = [name for name, entry in features.items() if entry["drifted"]]
    verdict = "insufficient-data" if m < min_records else "drift" if drifted else "no-drift"
    return {
        "format": REPORT_FORMAT,
        "verdict": verdict,
        "records": m,
        "malformed_records": malformed,
        "baseline_records": n,
        "drifted_features": drifted,
        "unseen": {name: f["unseen"]["count"] for name, f in features.items() if "unseen" in f},
        "settings": settings,
        "features": features,
    }


# --- Data capture -----------------------------------------------------------------------------------------
# One JSON object per line: captureData.endpointInput = {observedContentType, mode, data, encoding}, with the
# request body in `data`, "CSV" as is or "BASE64" encoded ("Capture data from real-time endpoint", SageMaker
# Developer Guide; a content type not listed in CaptureContentTypeHeader is captured BASE64, "CaptureContentTypeHeader",
# SageMaker API Reference). A CSV body may hold several records, one a line.


def read_capture(directory: Path) -> tuple[list[list[str]], dict[str, Any]]:
    """The request records of every *.jsonl file under `directory`, and what was read and skipped (never raises on a line)."""
    if not directory.is_dir():
        raise DriftError(f"{directory} is not a directory; pass the folder the period's data-capture files were copied to")
    records: list[list[str]] = []
    files = sorted(directory.rglob("*.jsonl"))
    skipped: Counter = Counter()
    lines = 0
    for path in files:
        with path.open("rb") as stream:
            for raw in stream:
                if not raw.strip():
                    continue
                lines += 1
                body, reason = _request_body(raw)
                if body is None:
                    skipped[reason] += 1
                    continue
                records.extend(row for row in csv.reader(io.StringIO(body, newline="")) if any(f.strip() for f in row))
    return records, {"files": len(files), "lines": lines, "skipped_lines": sum(skipped.values()), "skipped": dict(skipped)}


def _request_body(raw: bytes) -> tuple[str | None, str]:
    try:
        captured = json.loads(raw)["captureData"]["endpointInput"]
        data, encoding = captured["data"], str(captured.get("encoding", "")).upper()
        if not isinstance(data, str):
            raise TypeError(data)
    except (ValueError, KeyError, TypeError):
        return None, "not a data-capture record"
    content_type = str(captured.get("observedContentType", "text/csv")).split(";")[0].strip().lower()
    if content_type != "text/csv":
        return None, f"content type {content_type or 'none'}, not text/csv"
    try:
        if encoding == "BASE64":
            return base64.b64decode(data, validate=True).decode("utf-8"), ""
        if encoding == "CSV":
            return data, ""
    except (binascii.Error, ValueError):
        return None, "BASE64 data that does not decode to UTF-8 text"
    return None, f"encoding {encoding or 'none'}, not CSV or BASE64"


# --- Command line -----------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DriftError(f"{path}: cannot read {what} as JSON ({error})") from None


def _dataset(path: Path) -> Dataset:
    try:
        return Dataset.from_dict(_read_json(path, "the dataset block"))
    except DatasetError as error:
        raise DriftError(f"{path}: {error}") from None


def read_training_csv(path: Path, dataset: Dataset) -> pd.DataFrame:
    """A frame of strings, one column per feature: from a header row naming them, or headerless records in request order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DriftError(f"{path}: cannot read it as UTF-8 text ({error})") from None
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if any(f.strip() for f in row)]
    if not rows:
        raise DriftError(f"{path} is empty; pass the train split's records")
    names = dataset.feature_names
    header = [f.strip() for f in rows[0]]
    if set(names) <= set(header):
        index = [header.index(name) for name in names]
        body = rows[1:]
        wrong = next((i for i, row in enumerate(body, 2) if len(row) != len(header)), None)
        if wrong is not None:
            raise DriftError(
                f"{path}: row {wrong} has {len(body[wrong - 2])} fields but the header row has {len(header)}; "
                "every row needs a field per column"
            )
        return pd.DataFrame([[row[i] for i in index] for row in body], columns=list(names), dtype=str)
    wrong = next((i for i, row in enumerate(rows, 1) if len(row) != len(names)), None)
    if wrong is not None:
        raise DriftError(
            f"{path}: row {wrong} has {len(rows[wrong - 1])} fields; a file without a header row names the features "
            f"in order ({', '.join(names)}), and one with a header row names each of them"
        )
    return pd.DataFrame(rows, columns=list(names), dtype=str)


def _write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("baseline", help="the train split's distributions")
    build.add_argument("--data", type=Path, required=True, help="the train split's records (CSV)")
    build.add_argument("--dataset", type=Path, required=True, help="cdk.json's dataset block, as a JSON file")
    build.add_argument("--out", type=Path, required=True)
    check = commands.add_parser("compare", help="a period's captured requests against the baseline")
    check.add_argument("--baseline", type=Path, required=True)
    check.add_argument("--captured", type=Path, required=True, help="a directory of data-capture *.jsonl files")
    check.add_argument("--dataset", type=Path, required=True)
    check.add_argument("--out", type=Path, required=True)
    check.add_argument("--alpha", type=float, default=ALPHA)
    check.add_argument("--min-effect", type=float, default=MIN_EFFECT)
    check.add_argument("--min-records", type=int, default=MIN_RECORDS)
    args = parser.parse_args(argv)
    try:
        dataset = _dataset(args.dataset)
        if args.command == "baseline":
            baseline = build_baseline(read_training_csv(args.data, dataset), dataset)
            _write(args.out, baseline)
            print(json.dumps({"baseline": str(args.out), "records": baseline["records"]}))
            return 0
        records, capture = read_capture(args.captured)
        report = compare(
            _read_json(args.baseline, "the baseline"),
            records,
            dataset,
            alpha=args.alpha,
            min_effect=args.min_effect,
            min_records=args.min_records,
        )
    except DriftError as error:
        print(f"drift error: {error}", file=sys.stderr)
        return 1
    report["capture"] = capture
    _write(args.out, report)
    print(json.dumps({key: report[key] for key in ("verdict", "records", "drifted_features", "unseen")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
