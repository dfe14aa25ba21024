"""``python -m emotion``: predict, evaluate and train, and one-line errors on bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_predict_text_json_and_annotated_copies(faces_dir, tmp_path):
    couple, nobody = faces_dir / "deepface_couple.jpg", faces_dir / "NEG_fer_no-faces.jpg"
    text = run("predict", couple, nobody)
    assert text.returncode == 0, text.stderr
    assert "2 face(s)" in text.stdout and "no face found" in text.stdout
    assert text.stderr == ""

    out = run("predict", couple, nobody, "--json", "--annotate", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [entry["file"] for entry in report] == [str(couple), str(nobody)]
    assert len(report[0]["faces"]) == 2 and report[1]["faces"] == []
    face = report[0]["faces"][0]
    assert set(face) == {"box", "label", "score", "probs"} and len(face["probs"]) == 7
    written = Image.open(tmp_path / "out" / "deepface_couple-annotated.png")
    assert written.size == Image.open(couple).size


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"hello, this is text", "is not an image"),
])
def test_predict_bad_files_one_line_and_exit_1(tmp_path, faces_dir, content, message):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(content)
    result = run("predict", bad, faces_dir / "fer_justin.jpg")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "1 face(s)" in result.stdout, "the good photo is still analysed"


def test_missing_and_corrupt_model(tmp_path, faces_dir):
    photo = faces_dir / "fer_justin.jpg"
    missing = run("predict", photo, "--model", tmp_path / "nope.keras")
    assert missing.returncode == 1 and "model file not found" in missing.stderr
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    broken = run("predict", photo, "--model", corrupt)
    assert broken.returncode == 1 and broken.stderr.count("\n") == 1
    assert "Traceback" not in broken.stderr


def test_evaluate_prints_the_figures(tmp_path, fer2013):
    test = fer2013.split("PrivateTest").head(300)
    csv = tmp_path / "sample.csv"
    rows = [f"{label},{' '.join(map(str, image.ravel()))},PrivateTest"
            for image, label in zip(test.images, test.labels)]
    csv.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    text = run("evaluate", "--data", csv, "--split", "PrivateTest")
    assert text.returncode == 0, text.stderr
    for words in ("accuracy:", "macro-F1:", "confusion matrix", "happy"):
        assert words in text.stdout
    report = json.loads(run("evaluate", "--data", csv, "--split", "PrivateTest", "--json").stdout)
    assert report["n"] == 300 and 0.4 < report["accuracy"] <= 1
    assert np.array(report["confusion_matrix"]).sum() == 300
    empty = run("evaluate", "--data", csv, "--split", "PublicTest")
    assert empty.returncode == 1 and "no PublicTest faces" in empty.stderr
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("label,image\n1,2\n")
    bad = run("evaluate", "--data", wrong)
    assert bad.returncode == 1 and "lacks the column" in bad.stderr


def test_train_quick_run_writes_model_and_card(tmp_path, shared_data):
    from conftest import FER2013_CSV

    out = tmp_path / "models" / "quick.keras"
    result = run("train", "--data", FER2013_CSV, "--epochs", 1, "--limit", 256,
                 "--architecture", "small", "--out", out, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout and "saved" in result.stdout
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["epochs_run"] == 1 and card["data"]["train_faces"] == 256
    assert set(card["metrics"]) == {"Training", "PublicTest", "PrivateTest"}
    assert card["file_size_bytes"] == out.stat().st_size
    for figure in ("quick-curves.png", "quick-confusion.png"):  # written beside the model
        assert (out.parent / figure).read_bytes()[:4] == b"\x89PNG" and f"wrote {out.parent / figure}" in result.stdout

    bad = run("train", "--data", tmp_path / "nothing.csv", "--epochs", 1, "--out", out)
    assert bad.returncode == 1 and "dataset not found" in bad.stderr
