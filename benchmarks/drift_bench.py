"""Benchmark of the built-in drift engine (pipeline_scripts/drift.py) on the real abalone data.

    python benchmarks/drift_bench.py [--data path/to/abalone.csv] [--trials 2000]    (make bench DATA=...)

The data is the UCI Abalone CSV with its header row; --data defaults to ../shared/data/abalone.csv. Without
it the benchmark says how to pass it and exits 0, so the other benchmarks of `make bench` still run.

Method: the rows are shuffled (seed 42) and split 70/30, as preprocessing gives training 70%; the baseline is
built from the 70%, and every period is drawn from the other 30% (1,253 rows), with the engine's defaults.
- Quiet periods: 100 requests drawn without replacement; 1,000 and 10,000 resampled with replacement.
  Resampling one pool of 1,253 rows makes a large period a copy of the pool, whose own sampling difference from
  the baseline a test cannot tell from drift; so these are also run with the PSI floor off (significance only)
  and from an independent scheme: baseline and period both drawn with replacement from all 4,177 rows.
- Detection: periods of 300 requests (without replacement) with shell_weight scaled by 1.15, by 1.05 (a small
  shift, no target), or with the sex mix changed so that half the period's records are infants (I); the first
  also with 100 requests, and with deciles (10 bins) instead of the engine's quintiles.
- The system test's held-out requests: preprocess.py run on the data, the baseline from its baseline.csv, its
  holdout/requests.csv compared as a period.
- The rule it replaces, approximated: any feature's L-infinity distance between the baseline's and the period's
  distribution (empirical CDF for numbers, shares for categories) at 0.1 or more.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "pipeline_scripts"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "abalone.csv"
sys.path.insert(0, str(SCRIPTS))

import drift
from dataset import Dataset

SEED = 42
TRAIN_SHARE = 0.7


def _dataset() -> Dataset:
    return Dataset.from_dict(json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["mlops"]["dataset"])


def _rate(hits: int, trials: int) -> str:
    return f"{100 * hits / trials:.2f}% ({hits}/{trials})"


class Bench:
    def __init__(self, data: Path, trials: int) -> None:
        self.dataset = _dataset()
        frame = drift.read_training_csv(data, self.dataset)
        self.frame, self.rows = frame, frame.to_numpy(dtype=object)
        self.order = order = np.random.default_rng(SEED).permutation(len(self.rows))
        cut = round(len(order) * TRAIN_SHARE)
        self.train, self.rest = self.rows[order[:cut]], self.rows[order[cut:]]
        self.baseline = drift.build_baseline(frame.iloc[order[:cut]], self.dataset)
        self.trials = trials
        self.rng = np.random.default_rng(SEED)

    def draw(self, pool: np.ndarray, size: int, replace: bool) -> np.ndarray:
        return pool[self.rng.choice(len(pool), size=size, replace=replace)]

    def verdicts(self, periods, baseline=None, **settings) -> list[str]:
        return [
            drift.compare(baseline or self.baseline, period.tolist(), self.dataset, **settings)["verdict"] for period in periods
        ]

    def false_alarms(self, size: int, replace: bool, trials: int, **settings) -> str:
        verdicts = self.verdicts((self.draw(self.rest, size, replace) for _ in range(trials)), **settings)
        return _rate(verdicts.count("drift"), trials)

    def independent_false_alarms(self, size: int, trials: int, **settings) -> str:
        names = list(self.dataset.feature_names)
        hits = 0
        for _ in range(trials):
            baseline = drift.build_baseline(
                pd.DataFrame(self.draw(self.rows, len(self.train), True), columns=names), self.dataset
            )
            hits += self.verdicts([self.draw(self.rows, size, True)], baseline, **settings)[0] == "drift"
        return _rate(hits, trials)

    def detection(self, shift, size: int = 300) -> str:
        verdicts = self.verdicts(shift(self.draw(self.rest, size, False)) for _ in range(self.trials // 2))
        return _rate(verdicts.count("drift"), self.trials // 2)

    def with_bins(self, bins: int, measure):
        """A figure measured with a baseline of `bins` bins per numeric feature instead of drift.BINS."""
        default, drift.BINS = drift.BINS, bins
        kept, self.baseline = self.baseline, drift.build_baseline(self.frame.iloc[self.order[: len(self.train)]], self.dataset)
        try:
            return measure()
        finally:
            drift.BINS, self.baseline = default, kept

    def scaled(self, factor: float):
        column = self.dataset.feature_names.index("shell_weight")

        def shift(period: np.ndarray) -> np.ndarray:
            period = period.copy()
            period[:, column] = [repr(round(float(v) * factor, 4)) for v in period[:, column]]
            return period

        return shift

    def infants_half(self, period: np.ndarray) -> np.ndarray:
        column = self.dataset.feature_names.index("sex")
        infants = self.rest[self.rest[:, column] == "I"]
        others = self.rest[self.rest[:, column] != "I"]
        half = len(period) // 2
        return np.concatenate([self.draw(infants, half, False), self.draw(others, len(period) - half, False)])

    def old_rule(self, size: int, trials: int) -> str:
        """Any feature's L-infinity distance from the baseline's distribution at 0.1 or more."""
        hits = 0
        for _ in range(trials):
            period = self.draw(self.rest, size, False)
            distances = []
            for i, feature in enumerate(self.dataset.features):
                if feature.type == "numeric":
                    train = np.sort(self.train[:, i].astype(float))
                    values = np.sort(period[:, i].astype(float))
                    grid = np.concatenate([train, values])
                    cdf = lambda sample, grid=grid: np.searchsorted(sample, grid, side="right") / len(sample)  # noqa: E731
                    distances.append(np.abs(cdf(train) - cdf(values)).max())
                else:
                    levels = set(self.train[:, i]) | set(period[:, i])
                    distances.append(max(abs(np.mean(self.train[:, i] == v) - np.mean(period[:, i] == v)) for v in levels))
            hits += max(distances) >= 0.1
        return _rate(hits, trials)

    def seconds_per_period(self, size: int, repeats: int = 15) -> float:
        periods = [self.draw(self.rest, size, True).tolist() for _ in range(repeats)]
        times = []
        for period in periods:
            started = time.perf_counter()
            drift.compare(self.baseline, period, self.dataset)
            times.append(time.perf_counter() - started)
        return statistics.median(times)


def holdout_verdict(data: Path, dataset: Dataset) -> dict:
    """preprocess.py's own baseline.csv and holdout/requests.csv, as the pipeline writes them."""
    with tempfile.TemporaryDirectory() as work:
        inputs, outputs = Path(work, "input"), Path(work, "output")
        inputs.mkdir()
        (inputs / "abalone.csv").write_bytes(data.read_bytes())
        command = [sys.executable, str(SCRIPTS / "preprocess.py"), "--input-dir", str(inputs), "--output-dir", str(outputs)]
        subprocess.run(command, check=True, capture_output=True)
        baseline = drift.build_baseline(drift.read_training_csv(outputs / "baseline" / "baseline.csv", dataset), dataset)
        requests = drift.read_training_csv(outputs / "holdout" / "requests.csv", dataset)
    report = drift.compare(baseline, requests.to_numpy(dtype=object).tolist(), dataset)
    smallest = min(report["features"].items(), key=lambda item: item[1]["p_value"])
    return {
        "records": report["records"],
        "verdict": report["verdict"],
        "smallest_p": (smallest[0], round(smallest[1]["p_value"], 4)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--trials", type=int, default=2000, help="quiet periods of 100 requests (fewer for larger periods)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(
            f"drift benchmark skipped: no data at {args.data}; "
            "pass the UCI Abalone CSV with make bench DATA=path/to/abalone.csv (or --data)"
        )
        return 0
    bench = Bench(args.data, args.trials)
    large = max(100, args.trials // 4)
    figures = {
        "baseline_records": bench.baseline["records"],
        "pool_records": len(bench.rest),
        "settings": drift.compare(bench.baseline, [], bench.dataset)["settings"],
        "false_alarms_100": bench.false_alarms(100, False, args.trials),
        "false_alarms_1000_resampled": bench.false_alarms(1000, True, large),
        "false_alarms_10000_resampled": bench.false_alarms(10_000, True, large),
        "false_alarms_1000_resampled_no_psi_floor": bench.false_alarms(1000, True, large, min_effect=0.0),
        "false_alarms_10000_resampled_no_psi_floor": bench.false_alarms(10_000, True, large, min_effect=0.0),
        "false_alarms_independent_100": bench.independent_false_alarms(100, large),
        "false_alarms_independent_1000": bench.independent_false_alarms(1000, large),
        "false_alarms_independent_10000": bench.independent_false_alarms(10_000, large),
        "false_alarms_independent_1000_no_psi_floor": bench.independent_false_alarms(1000, large, min_effect=0.0),
        "false_alarms_independent_10000_no_psi_floor": bench.independent_false_alarms(10_000, large, min_effect=0.0),
        "detection_300_shell_weight_x1.15": bench.detection(bench.scaled(1.15)),
        "detection_300_shell_weight_x1.05": bench.detection(bench.scaled(1.05)),
        "detection_300_half_infants": bench.detection(bench.infants_half),
        "detection_100_shell_weight_x1.15": bench.detection(bench.scaled(1.15), 100),
        "detection_300_shell_weight_x1.15_deciles": bench.with_bins(10, lambda: bench.detection(bench.scaled(1.15))),
        "old_rule_false_alarms_100": bench.old_rule(100, large),
        "holdout": holdout_verdict(args.data, bench.dataset),
        "seconds_per_period": {size: round(bench.seconds_per_period(size), 4) for size in (100, 1000, 10_000)},
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
