"""Model quality metrics in SageMaker's model-quality report shape ("Model quality metrics", SageMaker Developer Guide).

One definition for training's metric lines (dataset.TRAINING_METRICS) and evaluation's report, whose gate metrics
(dataset.GATE_METRICS) the training pipeline's quality gate reads. Each metric is {"value": ...}; the regression ones
also carry the standard deviation of the per-record errors. A confusion matrix maps each actual label to the counts of
the labels predicted for it. A metric the data cannot define (AUC of a test set holding one class) is "NaN", as
SageMaker writes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as sk

from dataset import REPORT_KEYS
from inference import THRESHOLD


def _value(value: float, deviation: float | None = None) -> dict:
    metric = {"value": float(value) if math.isfinite(value) else "NaN"}
    if deviation is not None:
        metric["standard_deviation"] = float(deviation)
    return metric


def _confusion(actual: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> dict:
    counts = sk.confusion_matrix(actual, predicted, labels=range(len(classes)))
    return {a: {p: int(counts[i, j]) for j, p in enumerate(classes)} for i, a in enumerate(classes)}


def regression(actual: np.ndarray, predicted: np.ndarray) -> dict:
    errors = predicted - actual
    squared, absolute = errors**2, np.abs(errors)
    total = float(np.sum((actual - actual.mean()) ** 2))
    mse = float(squared.mean())
    return {
        "mse": _value(mse, squared.std()),
        "rmse": _value(mse**0.5),
        "mae": _value(absolute.mean(), absolute.std()),
        "r2": _value(1.0 - float(squared.sum()) / total if total > 0 else 0.0),
    }


def binary(actual: np.ndarray, probability: np.ndarray, classes: Sequence[str]) -> dict:
    """`actual` 0/1 (1 the positive class, classes[1]); `probability` the positive class's."""
    actual = actual.astype(int)
    predicted = (probability >= THRESHOLD).astype(int)
    (tn, fp), (fn, tp) = sk.confusion_matrix(actual, predicted, labels=[0, 1])

    def rate(part: int, whole: int) -> float:
        return part / whole if whole else math.nan

    auc = sk.roc_auc_score(actual, probability) if len(set(actual.tolist())) == 2 else math.nan
    return {
        "confusion_matrix": _confusion(actual, predicted, classes),
        "accuracy": _value(sk.accuracy_score(actual, predicted)),
        "precision": _value(rate(tp, tp + fp)),
        "recall": _value(rate(tp, tp + fn)),
        "f1": _value(sk.f1_score(actual, predicted, zero_division=0)),
        "auc": _value(auc),
        "logloss": _value(sk.log_loss(actual, probability, labels=[0, 1])),
        "true_positive_rate": _value(rate(tp, tp + fn)),
        "true_negative_rate": _value(rate(tn, tn + fp)),
        "false_positive_rate": _value(rate(fp, tn + fp)),
        "false_negative_rate": _value(rate(fn, tp + fn)),
    }


def multiclass(actual: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> dict:
    """`actual` the class index; `probabilities` one row per record, a column per class in class order."""
    actual = actual.astype(int)
    predicted = np.argmax(probabilities, axis=1)
    labels = list(range(len(classes)))

    def weighted(score) -> dict:
        return _value(score(actual, predicted, labels=labels, average="weighted", zero_division=0))

    return {
        "confusion_matrix": _confusion(actual, predicted, classes),
        "accuracy": _value(sk.accuracy_score(actual, predicted)),
        "weighted_precision": weighted(sk.precision_score),
        "weighted_recall": weighted(sk.recall_score),
        "weighted_f1": weighted(sk.f1_score),
        "logloss": _value(sk.log_loss(actual, probabilities, labels=labels)),
    }


def report(problem_type: str, actual: np.ndarray, predicted: np.ndarray, classes: Sequence[str] | None) -> dict:
    """{<report key>: {<metric>: {"value": ...}, ...}} for the problem type."""
    if problem_type == "regression":
        values = regression(actual, predicted)
    elif problem_type == "binary":
        values = binary(actual, predicted, classes)
    else:
        values = multiclass(actual, predicted, classes)
    return {REPORT_KEYS[problem_type]: values}
