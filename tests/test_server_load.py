"""Several users at once on one server, in Chromium: a small version of bench/bench_load.py.

Three sessions upload a photo each at the same moment, each its own bytes (so no session
is served another's cached analysis) and its own file name; each must see its photo's
true face count (faces.csv), no exception and nobody else's photo. Then a session closes
its tab while the server analyses its photos: the server's threads come back to what
they were and the next session is served right. The figures go to
test-artifacts/server-load.json.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys

from _server import ARTIFACTS, ROOT

sys.path.insert(0, str(ROOT / "bench"))
import bench_load  # noqa: E402



def test_sessions_at_once_get_their_own_right_results_and_a_closed_tab_leaves_nothing(test_model, tmp_path):
    assert bench_load.MODEL == test_model
    report = asyncio.run(bench_load.bench(rounds=1, sessions=3, photos=1, log=tmp_path / "streamlit.log"))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "server-load.json").write_text(json.dumps(report, indent=2))

    (figures,) = report["rounds"]
    assert figures["results"] == 3, figures
    assert figures["wrong_counts"] == [], figures
    assert figures["errors"] == [] and figures["foreign"] == [], figures

    closed = report["close_mid_analysis"]
    assert closed["closed_while_analysing"], closed  # the tab really went away mid-analysis
    assert closed["server_alive"], closed
    assert closed["threads_after"] <= closed["threads_before"], closed
    follow = closed["next_session"]
    assert follow["results"] == 1 and follow["wrong_counts"] == [] and follow["errors"] == [], follow


def test_every_session_sends_its_own_bytes_of_the_same_pixels(faces_dir):
    from PIL import Image

    original = (faces_dir / "aind_obamas4.jpg").read_bytes()
    one, two = (bench_load.own_bytes(original, f"session {s}") for s in (1, 2))
    assert len({original, one, two}) == 3
    pixels = [Image.open(io.BytesIO(data)).convert("RGB").tobytes() for data in (original, one, two)]
    assert pixels[0] == pixels[1] == pixels[2]
