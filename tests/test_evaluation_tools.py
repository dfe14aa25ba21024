"""Model evaluation beyond accuracy: calibration, test-time averaging and realistic shifts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotion.metrics import calibration
from emotion.shifts import SHIFTS, TTA_OFFSETS, shift_report, tta_proba


def test_calibration_of_known_probabilities():
    # 100 faces at 90 % confidence of which 90 are right: perfectly calibrated.
    probs = np.full((100, 7), 0.1 / 6)
    probs[:, 0] = 0.9
    labels = np.array([0] * 90 + [1] * 10)
    result = calibration(labels, probs)
    assert result["ece"] == pytest.approx(0.0, abs=1e-9)
    assert [(b["count"], round(b["accuracy"], 2)) for b in result["bins"]] == [(100, 0.9)]
    # The same answers all wrong: the gap is the whole confidence.
    assert calibration(np.ones(100, int), probs)["ece"] == pytest.approx(0.9)


def test_every_shift_keeps_shape_and_changes_the_faces(fer2013):
    faces = fer2013.split("PublicTest").images[:16]
    for name, shift in SHIFTS.items():
        shifted = shift(faces)
        assert shifted.shape == faces.shape and shifted.dtype == np.uint8, name
        if name != "clean":
            assert np.abs(shifted.astype(int) - faces).mean() > 0.5, f"{name} did nothing"
    darker = SHIFTS["darker (gamma 1.6)"](faces)
    assert darker.mean() < faces.mean() < SHIFTS["brighter (gamma 0.6)"](faces).mean()


def test_tta_averages_views_and_shift_report_scores_the_shipped_model(fer2013, test_model):
    from emotion import EmotionClassifier

    classifier = EmotionClassifier.load(test_model)
    part = fer2013.split("PublicTest").head(300)
    probs = tta_proba(classifier, part.images)
    assert probs.shape == (300, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert not np.allclose(probs, classifier.predict_proba_batched(part.images))  # more than one view
    report = shift_report(classifier, part.images, part.labels,
                          shifts={k: SHIFTS[k] for k in ("clean", "blur (sigma 1)")})
    assert set(report) == {"clean", "blur (sigma 1)"}
    assert 0.5 < report["clean"]["accuracy"] <= 1.0  # the shipped model is far above chance (14 %)
    assert len(TTA_OFFSETS) == 5


def test_cli_evaluate_with_tta_shifts_and_reliability_plot(tmp_path, fer2013_slice):
    from test_cli import run

    plot = tmp_path / "reliability.png"
    result = run("evaluate", "--data", fer2013_slice, "--split", "PrivateTest", "--tta", "--shifts",
                 "--reliability", plot, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tta"] and report["n"] == 64 and 0 <= report["ece"] <= 1
    assert set(SHIFTS) | {"our detector's crop"} == set(report["shifts"])
    crop = report["shifts"]["our detector's crop"]
    assert 0 < crop["found"] <= 1 and 0 <= crop["accuracy_of_found"] <= 1
    assert plot.read_bytes()[:4] == b"\x89PNG"
