"""FER+ crowd votes as soft targets (TrainConfig.crowd_votes): the votes read in our label
order, mixed into the training targets, and a wrong votes file told in one line."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SHARED_DATA, SLICE, require

FERPLUS_CSV = SHARED_DATA / "fer2013" / "fer2013new.csv"


@pytest.fixture(scope="session")
def ferplus_table():
    return pd.read_csv(require(FERPLUS_CSV))


@pytest.fixture(scope="session")
def ferplus_slice(fer2013, ferplus_table, tmp_path_factory):
    """The FER+ rows of the faces in ``fer2013_slice``, in its order."""
    rows = np.concatenate([np.flatnonzero(fer2013.usage == split)[:count] for split, count in SLICE])
    path = tmp_path_factory.mktemp("ferplus") / "fer2013new-slice.csv"
    ferplus_table.iloc[rows].to_csv(path, index=False)
    return path


def test_the_votes_come_in_our_label_order_as_shares(fer2013, ferplus_table):
    from emotion.data import load_crowd_votes
    from emotion.labels import LABELS

    shares = load_crowd_votes(FERPLUS_CSV, fer2013)
    assert shares.shape == (len(fer2013), 7) and shares.dtype == np.float32
    # Row 0's annotators: neutral 4, sadness 1, anger 3, disgust 2.
    expected = dict(zip(LABELS, [0.3, 0.2, 0.0, 0.0, 0.1, 0.0, 0.4]))
    np.testing.assert_allclose(shares[0], [expected[label] for label in LABELS], atol=1e-6)
    totals = shares.sum(axis=1)
    assert np.allclose(totals[totals > 0], 1.0)
    # Faces nobody gave one of the seven emotions (FER+'s "not a face" ones among them) have no share.
    nobody = ferplus_table[["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"]].sum(1) == 0
    assert nobody.sum() > 0 and (totals == 0).sum() == nobody.sum()


def test_a_run_trains_on_the_labels_mixed_with_the_crowds_shares(fer2013_slice, ferplus_slice, tmp_path):
    from emotion.data import load_crowd_votes, load_dataset
    from emotion.model import Augmentation
    from emotion.train import TrainConfig, _crowd_shares, _targets, train

    data = load_dataset(fer2013_slice)
    config = TrainConfig(architecture="small", width=8, epochs=1, augmentation=Augmentation.none(),
                         crowd_votes=str(ferplus_slice), crowd_weight=0.3, limit=200)
    result = train(data, config, tmp_path / "crowd.keras", run_dir=tmp_path / "run")
    assert result.card["training"]["config"]["crowd_votes"] == str(ferplus_slice)

    training = data.split("Training").head(200)
    crowd = _crowd_shares(data, config)
    np.testing.assert_array_equal(crowd, load_crowd_votes(ferplus_slice, data)[:200])
    targets = _targets(training, config, tmp_path / "run", crowd)
    one_hot = np.eye(7)[training.labels]
    voted = crowd.sum(1) > 0
    np.testing.assert_allclose(targets[voted], 0.7 * one_hot[voted] + 0.3 * crowd[voted], atol=1e-6)
    np.testing.assert_array_equal(targets[~voted], one_hot[~voted])
    assert (targets.argmax(1) == training.labels).all()  # class weights still follow the true label
    assert (targets != one_hot).any(axis=1).mean() > 0.5  # the crowd often disagrees a little


@pytest.mark.parametrize("votes, message", [
    ("missing", "crowd votes not found"),
    ("whole-file", "does not match fer2013-slice.csv row for row (35887 against 384 rows)"),
    ("no-columns", "lacks the FER+ vote column(s) anger, disgust"),
])
def test_a_wrong_votes_file_is_one_line(fer2013_slice, tmp_path, votes, message):
    path = {"missing": tmp_path / "none.csv", "whole-file": FERPLUS_CSV, "no-columns": fer2013_slice}[votes]
    config = tmp_path / "crowd.json"
    config.write_text(json.dumps({"architecture": "small", "width": 8, "epochs": 1, "crowd_votes": str(path)}))
    done = subprocess.run([sys.executable, "-m", "emotion", "train", "--data", fer2013_slice, "--config", config,
                           "--out", tmp_path / "crowd.keras", "--run-dir", tmp_path / "run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "crowd.keras").exists() and not (tmp_path / "run").exists()
