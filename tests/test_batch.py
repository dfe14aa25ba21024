"""``python -m emotion batch`` on a folder of real photos, a real clip and broken files, through the
local pool of worker processes and through a local Ray instance (2 CPUs) started here: the faces
and labels ``predict`` gives, one row per frame and face for the clip, bad files in the errors
table, ``--resume`` and Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emotion.batch import LocalRay, read_results
from conftest import ROOT, SHARED_DATA, as_in_a_terminal, require
from tests.test_app import downloads, image_page

PHOTOS = ("aind_gus.jpg", "deepface_couple.jpg", "NEG_fer_no-faces.jpg", "deepface_img1.jpg")
CLIP_FRAMES = 20
BROKEN = {"text.jpg": "not an image", "trunc.jpg": "truncated", "cut.mp4": "damaged"}


def cli(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def cut_clip(source: Path, target: Path, frames: int) -> None:
    """The first ``frames`` frames of a real clip, re-encoded (a short clip keeps the test quick)."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        stream = src.streams.video[0]
        encoder = out.add_stream("libx264", rate=stream.average_rate)
        encoder.width, encoder.height, encoder.pix_fmt = stream.width, stream.height, "yuv420p"
        for index, frame in enumerate(src.decode(stream)):
            if index == frames:
                break
            out.mux(encoder.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")))
        out.mux(encoder.encode(None))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Real photos (one in a subfolder), a 20-frame real clip, and broken files."""
    faces = require(SHARED_DATA / "faces")
    video = require(SHARED_DATA / "video" / "fer_test.mp4")
    folder = tmp_path_factory.mktemp("archive")
    (folder / "sub").mkdir()
    for name in PHOTOS:
        shutil.copy(faces / name, folder / ("sub" if name == PHOTOS[-1] else "") / name)
    cut_clip(video, folder / "clip.mp4", CLIP_FRAMES)
    (folder / "text.jpg").write_text("this is not a photo\n")
    (folder / "trunc.jpg").write_bytes((faces / PHOTOS[0]).read_bytes()[:6000])
    data = video.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 3])
    (folder / "notes.txt").write_text("not looked at: not a photo or video name\n")
    return folder


def photo_paths(archive: Path) -> list[Path]:
    return [archive / ("sub" if name == PHOTOS[-1] else "") / name for name in PHOTOS]


@pytest.fixture(scope="module")
def predicted(archive) -> dict:
    """What ``python -m emotion predict --json`` says of each photo."""
    run = cli("predict", "--json", *photo_paths(archive))
    assert run.returncode == 0, run.stderr
    return {Path(item["file"]).name: item["faces"] for item in json.loads(run.stdout)}


@pytest.fixture(scope="module")
def pool_run(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool") / "results.parquet"
    run = cli("batch", archive, "--out", out, "--workers", 2, "--csv")
    return run, out


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance with 2 CPUs for this module (its start is slow), stopped at the end."""
    head = LocalRay(num_cpus=2)
    try:
        yield head.address
    finally:
        head.stop()
    assert head.process.poll() is not None


def by_name(table: pd.DataFrame) -> dict:
    return {Path(name).name: rows for name, rows in table.groupby("file")}


def check_photos_match_predict(result, predicted) -> None:
    faces = by_name(result.faces)
    for name, expected in predicted.items():
        rows = faces.get(name, pd.DataFrame(columns=result.faces.columns))
        assert len(rows) == len(expected), name
        for (_, row), face in zip(rows.iterrows(), expected):
            assert [row.x, row.y, row.w, row.h] == face["box"], name
            assert row.label == face["label"], name
            assert row.score == pytest.approx(face["score"], abs=2e-3), name
            assert pd.isna(row.frame) and pd.isna(row.track_id)
    files = result.files.set_index(result.files["file"].map(lambda f: Path(f).name))
    for name, expected in predicted.items():
        assert files.loc[name, "faces"] == len(expected)
        assert pd.isna(files.loc[name, "error"])


def check_clip(result) -> None:
    clip = by_name(result.faces)["clip.mp4"]
    assert sorted(clip["frame"].unique()) == list(range(CLIP_FRAMES))  # every frame has its row(s)
    assert not clip.duplicated(["frame", "track_id"]).any()            # one row per frame and face
    with_face = clip[clip["label"].notna()]
    assert with_face["frame"].nunique() >= CLIP_FRAMES // 2            # the real face is found and followed
    assert with_face["track_id"].notna().all()
    assert clip.groupby("frame")["time_s"].first().is_monotonic_increasing
    row = result.files[result.files["file"].str.endswith("clip.mp4")].iloc[0]
    assert row.frames == CLIP_FRAMES and row.faces >= 1 and row.dominant in clip["label"].values


def check_errors(result) -> None:
    errors = by_name(result.errors)
    assert set(errors) == set(BROKEN)
    for name, words in BROKEN.items():
        reason = errors[name]["error"].iloc[0]
        assert words in reason and "\n" not in reason and name in reason
    assert "notes.txt" not in " ".join(result.files["file"])
    assert result.faces["model"].eq("facemood-vgg").all()
    assert result.faces["model_sha256"].str.fullmatch("[0-9a-f]{64}").all()


def test_pool_gives_predicts_faces_one_row_per_frame_and_face_and_the_errors(pool_run, predicted):
    run, out = pool_run
    assert run.returncode == 1, run.stderr  # some files could not be analysed
    assert "Traceback" not in run.stderr
    for name in BROKEN:
        assert any(line.startswith("error: ") and name in line for line in run.stderr.splitlines())
    result = read_results(out)
    assert len(result.files) == len(PHOTOS) + 1 + len(BROKEN)
    check_photos_match_predict(result, predicted)
    check_clip(result)
    check_errors(result)
    # --csv: the same tables beside the Parquet folder
    faces_csv = pd.read_csv(out.with_suffix(".csv"))
    files_csv = pd.read_csv(out.parent / "results-files.csv")
    assert len(faces_csv) == len(result.faces) and len(files_csv) == len(result.files)


def test_resume_does_not_redo_finished_files(pool_run, archive, tmp_path):
    _, first = pool_run
    out = tmp_path / "results.parquet"
    shutil.copytree(first, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    refused = cli("batch", archive, "--out", out, "--workers", 1)
    assert refused.returncode == 1 and "--resume" in refused.stderr and "Traceback" not in refused.stderr
    extra = tmp_path / "extra.jpg"
    shutil.copy(require(SHARED_DATA / "faces" / "fer_justin.jpg"), extra)
    run = cli("batch", archive, extra, "--out", out, "--workers", 1, "--resume")
    assert run.returncode == 1, run.stderr  # the first run's bad files are still in the output
    assert "1/1 files" in run.stderr and "Traceback" not in run.stderr  # only the new photo was analysed
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    assert {name: after[name] for name in before} == before  # old parts untouched
    new_parts = [out / name for name in after if name not in before]
    new_rows = pd.concat([pd.read_parquet(part) for part in new_parts])
    assert set(new_rows["file"]) == {str(extra)}
    result = read_results(out)
    assert not result.files["file"].duplicated().any()
    assert len(result.files) == len(PHOTOS) + 1 + len(BROKEN) + 1


def test_ray_gives_the_same_rows_as_the_pool(pool_run, archive, ray_address, predicted, tmp_path):
    out = tmp_path / "ray.parquet"
    run = cli("batch", archive, "--out", out, "--ray", ray_address, "--workers", 2)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    result = read_results(out)
    check_photos_match_predict(result, predicted)
    check_clip(result)
    check_errors(result)
    keys = ["file", "frame", "track_id", "x", "y", "w", "h", "label"]
    pool = read_results(pool_run[1])
    ours = result.faces.sort_values(keys, na_position="first").reset_index(drop=True)
    theirs = pool.faces.sort_values(keys, na_position="first").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours[keys], theirs[keys])
    assert (ours["score"] - theirs["score"]).abs().max() < 2e-3


@pytest.mark.parametrize("mode", ["pool", "ray"])
def test_ctrl_c_leaves_a_valid_partial_output(tmp_path, mode, request):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it) while a long video
    and many photos are analysed: the command ends at once with the finished files written."""
    options = ["--ray", request.getfixturevalue("ray_address")] if mode == "ray" else []
    folder = tmp_path / "many"
    folder.mkdir()
    shutil.copy(require(SHARED_DATA / "video" / "fer_woman2.mp4"), folder / "a-long.mp4")  # taken first
    for index in range(4):
        for photo in sorted((SHARED_DATA / "faces").glob("*.jpg")):
            shutil.copy(photo, folder / f"{index}-{photo.name}")
    total = len(list(folder.iterdir()))
    out = tmp_path / "results.parquet"
    process = subprocess.Popen([sys.executable, "-m", "emotion", "batch", str(folder), "--out", str(out), "--workers", "2",
                                *options],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=as_in_a_terminal)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*.parquet")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, "finished before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    result = read_results(out)  # every part file is a valid Parquet file
    assert 1 <= len(result.files) < total
    if mode == "pool":  # stopped half way: not written (Ray may hand the video out later)
        assert not result.files["file"].str.endswith("a-long.mp4").any()
    assert set(result.faces["file"]) <= set(result.files["file"])
    assert result.files["error"].isna().all()


def test_library_call_on_photos_held_in_memory(archive, predicted):
    """The Image page's way: ``(name, bytes)`` pairs analysed in this process."""
    import emotion.batch

    inputs = [(path.name, path.read_bytes()) for path in photo_paths(archive)]
    inputs.append(("text.jpg", b"not a photo"))
    seen = []
    result = emotion.batch.analyze(inputs, workers=0, progress=seen.append)
    check_photos_match_predict(result, predicted)
    assert list(result.errors["file"]) == ["text.jpg"]
    assert [p.done for p in seen] == list(range(1, len(inputs) + 1)) and seen[-1].total == len(inputs)


def test_image_page_shows_many_photos_as_one_table_with_one_download(media, predicted, app_model):
    """More than a handful of photos on the Image page go through the batch code: one table, one
    CSV and one Parquet download for all, the same faces and labels as predict."""
    faces = require(SHARED_DATA / "faces")
    names = [*PHOTOS, "deepface_img2.jpg", "deepface_img3.jpg"]
    files = [(name, (faces / name).read_bytes(), "image/jpeg") for name in names]
    files.append(("broken.jpg", b"not a photo", "image/jpeg"))
    at = image_page()
    at.file_uploader(key="photos").set_value(files).run()
    assert not at.exception, at.exception
    assert not at.image  # no photo one by one
    assert any(f"{len(files)} photos" in header.value for header in at.subheader)
    assert [e.value for e in at.error] == ["broken.jpg is not an image file (or a format we cannot read)"]
    table = pd.read_csv(io.BytesIO(downloads(at, media, "All results CSV")[0]))
    parquet = pd.read_parquet(io.BytesIO(downloads(at, media, "All results Parquet")[0]))
    assert len(table) == len(parquet) and set(table["file"]) <= set(names)
    for name, expected in predicted.items():
        rows = table[table["file"] == name]
        assert list(rows["label"]) == [face["label"] for face in expected], name
        assert [list(r) for r in rows[["x", "y", "w", "h"]].values] == [face["box"] for face in expected]


def test_every_kth_frame_of_a_video(archive):
    """``every=K``: only every K-th frame is analysed, each row keeping the frame's own number."""
    import emotion.batch

    result = emotion.batch.analyze([archive / "clip.mp4"], workers=0, every=5)
    assert sorted(result.faces["frame"].unique()) == [0, 5, 10, 15]
    assert result.files["frames"].iloc[0] == 4
    with pytest.raises(emotion.batch.BatchError, match="every"):
        emotion.batch.analyze([archive / "clip.mp4"], workers=0, every=0)
