"""The Video page in Chromium, as a user meets it: upload a real clip, press Analyse, watch the
progress with the time left, then play the annotated video, download it and the CSV, and see
each face's emotions over time; a file that is not a video gets one line. The server and the
browser are those of tests/test_pages_e2e.py (README's command 1, Debian's Chromium).
Screenshots at 1280 and 390 px, light and dark, go to ``test-artifacts/``."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from conftest import SHARED_DATA, require
from emotion.video import probe, read_frames
from test_pages_e2e import (WATCH_JS, browser, folders, open_page, png_corners_alpha,  # noqa: F401 - fixtures
                            screenshot, server, wait_idle)

CLIP = SHARED_DATA / "video" / "fer_test.mp4"
CLIP_FRAMES = 115
ANALYSE = "Analyse the video"


def upload_and_analyse(page, path) -> None:
    page.get_by_text("Upload a video to see the emotions on every face").wait_for()
    wait_idle(page)
    page.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_role("button", name=ANALYSE).click()


def sideways(page) -> list[int]:
    return page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                    return [m.scrollWidth, m.clientWidth]; }""")


def test_a_clip_analysed_played_downloaded_and_charted(server, browser, tmp_path):  # noqa: F811 - fixtures
    """Light: the plain analysis, checked in full. Dark: with the emoji overlay on, which covers
    the face in the downloaded video where the light one shows it."""
    clip = require(CLIP)
    videos = {}
    for theme in ("light", "dark"):
        context, page, _ = open_page(browser, server, "video", theme=theme, init=WATCH_JS)
        try:
            if theme == "dark":
                page.get_by_text("Emoji overlay").click()
            upload_and_analyse(page, clip)
            page.get_by_role("button", name="Results CSV").wait_for()
            wait_idle(page)
            assert not page.locator('[data-testid="stException"]').count()
            assert not page.locator('[data-testid="stProgress"]').count()  # gone once done
            if theme == "light":
                # While it ran, the bar counted the frames and said how long was left.
                seen = page.evaluate("window.__seen")["progress"]
                assert any(re.fullmatch(r"Analysing fer_test\.mp4: frame \d+ of 115 \(\d+%\), \d+:\d\d left", text)
                           for text in seen), seen
                check_results(page, tmp_path)
            videos[theme] = download(page, "Annotated video (MP4)", tmp_path / theme)
            if theme == "dark":
                table = download(page, "Results CSV", tmp_path / theme)
            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(500)
                assert sideways(page)[0] <= sideways(page)[1], f"the Video page scrolls sideways at {width} px"
                screenshot(page, f"video-page-{width}-{theme}")
        finally:
            context.close()
    # Frame 60 (the face labelled and still): the emoji changes the face box's pixels, little else.
    rows = pd.read_csv(table)
    x, y, w, h = rows.loc[rows["frame"] == 60, ["x", "y", "w", "h"]].astype(int).iloc[0]
    plain, emoji = (next(f.rgb for f in read_frames(videos[theme]) if f.index == 60) for theme in ("light", "dark"))
    changed = abs(plain.astype(int) - emoji).max(axis=2) > 60
    assert changed[y:y + h, x:x + w].mean() > 0.3 and changed.mean() < 1.5 * changed[y:y + h, x:x + w].sum() / changed.size


def download(page, button: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with page.expect_download() as started:
        page.get_by_role("button", name=button).click()
    path = folder / started.value.suggested_filename
    started.value.save_as(path)
    return path


def check_results(page, tmp_path) -> None:
    # The annotated video plays in the browser: H.264 that Chromium decodes, as long as the clip.
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 1; }")
    duration = page.evaluate("() => document.querySelector('video').duration")
    assert 4.4 <= duration <= 4.8, duration
    assert page.evaluate("() => document.querySelector('video').error") is None
    # The downloads: the video with every frame, the CSV with a row per frame (one face).
    with page.expect_download() as download:
        page.get_by_role("button", name="Annotated video (MP4)").click()
    video = tmp_path / download.value.suggested_filename
    download.value.save_as(video)
    assert video.name == "fer_test-facemood.mp4"
    assert probe(video).frames == CLIP_FRAMES and sum(1 for _ in read_frames(video)) == CLIP_FRAMES
    with page.expect_download() as download:
        page.get_by_role("button", name="Results CSV").click()
    rows = pd.read_csv(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert list(rows["frame"]) == list(range(CLIP_FRAMES))
    assert rows["face_id"].dropna().astype(int).unique().tolist() == [1]
    # The chart of the face's emotions is a transparent PNG (no white box on a dark page), and
    # the table names the face and what it mostly showed.
    figure = page.locator('[data-testid="stImage"] img').first
    assert png_corners_alpha(page.request.get(figure.get_attribute("src")).body()) == [0, 0, 0, 0]
    page.get_by_text("Each face's emotions over time").wait_for()
    headers = """() => [...document.querySelectorAll('[data-testid="stDataFrame"] [role="columnheader"]')]
        .map(h => h.innerText.trim()).join(',')"""
    page.wait_for_function(f"() => ({headers})() === 'face,from (s),to (s),frames,mostly,share'")


def test_a_file_that_is_not_a_video_gets_one_line(server, browser, tmp_path):  # noqa: F811 - fixtures
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are notes, not a video\n")
    context, page, _ = open_page(browser, server, "video")
    try:
        upload_and_analyse(page, fake)
        alert = page.locator('[data-testid="stAlert"]').filter(has_text="notes.mp4")
        alert.wait_for()
        wait_idle(page)
        text = alert.locator('[data-testid="stMarkdownContainer"]').inner_text().strip()  # without the icon
        assert text.startswith("notes.mp4: not a video file") and "\n" not in text, text
        assert not page.locator('[data-testid="stException"]').count()
        assert not page.locator("video").count()
        # Another upload after it is analysed as usual.
        page.locator('input[type="file"]').set_input_files(str(require(CLIP)))
        page.get_by_role("button", name=ANALYSE).click()
        page.get_by_role("button", name="Results CSV").wait_for()
        assert not alert.count()
    finally:
        context.close()
