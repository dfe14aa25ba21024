"""Classification figures for a set of predictions: accuracy, F1, confusion matrix."""

from __future__ import annotations

import numpy as np

from .labels import LABELS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = len(LABELS)) -> np.ndarray:
    """int64 (n, n), 7 x 7 for the emotions: row = true class, column = predicted class."""
    return np.bincount(np.asarray(y_true) * n + np.asarray(y_pred), minlength=n * n).reshape(n, n)


def classification_report(y_true: np.ndarray, probs: np.ndarray, labels=LABELS) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1 of (N, 7) probabilities (or of
    (N, K) for a personal model's K ``labels``)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(probs).argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    hits = np.diag(matrix).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.nan_to_num(hits / matrix.sum(axis=1))
        precision = np.nan_to_num(hits / matrix.sum(axis=0))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return {
        "n": int(len(y_true)),
        "accuracy": float(hits.sum() / max(len(y_true), 1)),
        "macro_f1": float(f1.mean()),
        "precision": dict(zip(labels, np.round(precision, 4).tolist())),
        "recall": dict(zip(labels, np.round(recall, 4).tolist())),
        "f1": dict(zip(labels, np.round(f1, 4).tolist())),
        "confusion_matrix": matrix.tolist(),
        "ece": calibration(y_true, probs)["ece"],
    }


def calibration(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> dict:
    """Expected calibration error of (N, 7) probabilities and its reliability bins.

    Faces are grouped by the confidence of their top class into ``bins`` equal-width
    bins; ECE is the face-weighted mean gap between each bin's confidence and accuracy
    (0: a 70 %-confident answer is right 70 % of the time).
    """
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = probs.argmax(axis=1) == np.asarray(y_true) if len(probs) else np.zeros(0, bool)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        if count:
            gap = abs(confidence[members].mean() - correct[members].mean())
            ece += gap * count / len(probs)
            rows.append({"low": b / bins, "high": (b + 1) / bins, "count": count,
                         "confidence": float(confidence[members].mean()),
                         "accuracy": float(correct[members].mean())})
    return {"ece": float(ece), "bins": rows}


def format_report(report: dict) -> str:
    """The report as plain text for a terminal."""
    lines = [f"faces: {report['n']}",
             f"accuracy: {report['accuracy']:.4f}",
             f"macro-F1: {report['macro_f1']:.4f}",
             *([f"calibration error (ECE): {report['ece']:.4f}"] if "ece" in report else []),
             "",
             f"{'class':<10}{'precision':>10}{'recall':>8}{'F1':>8}"]
    for label in LABELS:
        lines.append(f"{label:<10}{report['precision'][label]:>10.3f}"
                     f"{report['recall'][label]:>8.3f}{report['f1'][label]:>8.3f}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * 10 + "".join(f"{label[:7]:>8}" for label in LABELS)]
    for label, row in zip(LABELS, report["confusion_matrix"]):
        lines.append(f"{label:<10}" + "".join(f"{count:>8}" for count in row))
    return "\n".join(lines)
