"""Metrics: thin wrappers over scikit-learn and SciPy with defined edge cases.

Every metric returns a plain float; undefined values (a single class for AUROC, a constant
prediction for Spearman) are NaN rather than an exception or a warning, so a small subset
(``--max-items``) still produces a report. ``best_threshold`` is ours: the decision threshold
on scores that maximises accuracy on a labelled split (the paper chooses the few-shot threshold
on the validation split).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats
from sklearn import metrics as skm


def _arr(x) -> np.ndarray:
    return np.asarray(x)


def accuracy(y_true, y_pred) -> float:
    y_true = _arr(y_true)
    return float(skm.accuracy_score(y_true, _arr(y_pred))) if len(y_true) else math.nan


def auroc(y_true, scores) -> float:
    y_true = _arr(y_true)
    if len(np.unique(y_true)) < 2:
        return math.nan
    return float(skm.roc_auc_score(y_true, _arr(scores)))


def mcc(y_true, y_pred) -> float:
    y_true = _arr(y_true)
    if not len(y_true):
        return math.nan
    return float(skm.matthews_corrcoef(y_true, _arr(y_pred)))


def f1(y_true, y_pred, average: str = "binary") -> float:
    y_true = _arr(y_true)
    if not len(y_true):
        return math.nan
    return float(skm.f1_score(y_true, _arr(y_pred), average=average, zero_division=0))


def spearman(x, y) -> float:
    x, y = _arr(x).astype(float), _arr(y).astype(float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y).statistic)


def pearson(x, y) -> float:
    x, y = _arr(x).astype(float), _arr(y).astype(float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.pearsonr(x, y).statistic)


def best_threshold(y_true, scores) -> float:
    """Threshold t maximising accuracy of ``scores >= t`` (ties: the midpoint of the widest
    best interval's neighbours, i.e. halfway between two consecutive distinct scores)."""
    y = _arr(y_true).astype(int)
    s = _arr(scores).astype(float)
    if not len(s):
        return 0.0
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s) - 1]  # last index of each score value
    tp = np.cumsum(y_sorted)[distinct]  # predicted positive = the top (idx+1) items
    n_pos_pred = distinct + 1
    fp = n_pos_pred - tp
    correct = tp + (len(y) - y.sum() - fp)
    all_negative = len(y) - y.sum()
    if all_negative >= correct.max():
        return float(s_sorted[0] + 1.0)
    i = int(np.argmax(correct))
    lo = s_sorted[distinct[i]]
    hi = s_sorted[distinct[i] + 1] if distinct[i] + 1 < len(s) else lo - 1.0
    return float((lo + hi) / 2)


def binary_report(y_true, scores, threshold: float) -> dict:
    pred = (_arr(scores) >= threshold).astype(int)
    return {"accuracy": accuracy(y_true, pred), "auroc": auroc(y_true, scores), "mcc": mcc(y_true, pred),
            "f1": f1(y_true, pred), "threshold": float(threshold)}


def multiclass_report(y_true, y_pred) -> dict:
    return {"accuracy": accuracy(y_true, y_pred), "macro_f1": f1(y_true, y_pred, "macro"), "mcc": mcc(y_true, y_pred)}


def regression_report(y_true, y_pred) -> dict:
    y_true, y_pred = _arr(y_true).astype(float), _arr(y_pred).astype(float)
    return {"spearman": spearman(y_pred, y_true), "pearson": pearson(y_pred, y_true),
            "mse": float(np.mean((y_true - y_pred) ** 2)) if len(y_true) else math.nan}


def majority_accuracy(y_train, y_test) -> float:
    """Accuracy of always predicting the most frequent training label (a floor for any model)."""
    vals, counts = np.unique(_arr(y_train), return_counts=True)
    return accuracy(y_test, np.full(len(y_test), vals[np.argmax(counts)]))
