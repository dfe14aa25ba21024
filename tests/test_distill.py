"""Distillation (TrainConfig.teacher): a student trained on the true labels mixed with the
shipped model's probabilities, one epoch on a slice of real FER2013."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT


def test_a_student_trains_one_epoch_on_the_teachers_soft_targets(fer2013_slice, test_model, tmp_path):
    from emotion.classifier import EmotionClassifier
    from emotion.data import load_dataset
    from emotion.model import Augmentation
    from emotion.train import TrainConfig, _targets, train

    data = load_dataset(fer2013_slice)
    config = TrainConfig(architecture="small", width=8, epochs=1, augmentation=Augmentation.none(),
                         teacher=str(test_model), distill_weight=0.5, distill_temperature=2.0)
    result = train(data, config, tmp_path / "student.keras", run_dir=tmp_path / "run")
    assert result.card["training"]["config"]["teacher"] == str(test_model)
    student = EmotionClassifier.load(result.model_path)
    assert student.predict_proba(data.split("PrivateTest").images).shape == (64, 7)

    # The targets: the true label's half plus half the teacher's softened probabilities,
    # which were computed once and kept for a resumed run.
    training = data.split("Training")
    kept = np.load(tmp_path / "run" / "teacher.npz")["probs"]
    np.testing.assert_allclose(kept, EmotionClassifier.load(test_model).predict_proba(training.images), atol=1e-5)
    targets = _targets(training, config, tmp_path / "run")
    soft = kept.astype(np.float64) ** 0.5
    soft /= soft.sum(1, keepdims=True)
    expected = 0.5 * np.eye(7)[training.labels] + 0.5 * soft
    np.testing.assert_allclose(targets, expected, atol=1e-5)
    assert (targets.argmax(1) == training.labels).all()  # class weights still follow the true label


def test_a_missing_teacher_is_one_line(fer2013_slice, tmp_path):
    config = tmp_path / "student.json"
    config.write_text(json.dumps({"architecture": "small", "width": 8, "epochs": 1,
                                  "teacher": str(tmp_path / "no-such-teacher.keras")}))
    done = subprocess.run([sys.executable, "-m", "emotion", "train", "--data", fer2013_slice, "--config", config,
                           "--out", tmp_path / "student.keras", "--run-dir", tmp_path / "run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "teacher model not found" in done.stderr
    assert not (tmp_path / "student.keras").exists()


def test_an_ensemble_of_teachers_gives_its_averaged_probabilities(fer2013_slice, test_model, tmp_path):
    from emotion.classifier import EmotionClassifier
    from emotion.data import load_dataset
    from emotion.model import Augmentation
    from emotion.train import TrainConfig, _targets, train

    data = load_dataset(fer2013_slice)
    training = data.split("Training")
    small = TrainConfig(architecture="small", width=8, epochs=1, augmentation=Augmentation.none())
    other = train(data, small, tmp_path / "other.keras", run_dir=tmp_path / "other-run").model_path
    teachers = [str(test_model), str(other)]
    config = TrainConfig(architecture="small", width=8, epochs=1, teacher=teachers, distill_weight=1.0)

    targets = _targets(training, config, tmp_path / "run")
    each = [EmotionClassifier.load(path).predict_proba(training.images) for path in teachers]
    assert not np.allclose(each[0], each[1], atol=0.05)  # two different teachers
    np.testing.assert_allclose(targets, (each[0] + each[1]) / 2, atol=1e-5)

    # The kept probabilities belong to this ensemble: one teacher alone is computed afresh.
    alone = _targets(training, TrainConfig(teacher=str(test_model), distill_weight=1.0), tmp_path / "run")
    np.testing.assert_allclose(alone, each[0], atol=1e-5)

    missing = TrainConfig(teacher=[str(test_model), str(tmp_path / "gone.keras")])
    with pytest.raises(ValueError, match="teacher model not found: .*gone.keras"):
        _targets(training, missing, tmp_path / "run")
