"""Time the live frame pipeline (emotion.live) against a seed-style baseline, in one run.

Frames are 640x480, as a webcam gives them:

* one face: the first frames of ../shared/data/video/fer_woman2.mp4, resized;
* four faces: the same frames as a 2x2 grid (four moving faces);
* thirteen faces: the group photo ../shared/data/faces/aind_test_image_1.jpg, resized.

The baseline is what the usual FER2013 webcam demos do on every frame: OpenCV's Haar
cascade with default settings on the full frame, then ``model.predict`` once per
face, no tracking. Both use the same trained model. Per frame: p50 and p95 wall time,
the mean, frames per second (1 / mean) and the CPU time (p50, all threads), which
shows how much of the wall time was waiting for a CPU busy with other work.

If the browser test has run (tests/test_webcam_e2e.py), the frames per second it
reached end to end are printed too, from test-artifacts/webcam-e2e.json.

    python bench/bench_live.py [--frames 150] [--model FILE.keras]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from emotion import EmotionClassifier, load_image  # noqa: E402
from emotion.live import LiveSession, LiveSettings  # noqa: E402
from seed_baseline import seed_style  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
E2E_FIGURES = ROOT / "test-artifacts" / "webcam-e2e.json"
SIZE = (640, 480)


def video_frames(count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(DATA / "video" / "fer_woman2.mp4"))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), SIZE, interpolation=cv2.INTER_AREA))
    return frames


def live(classifier, min_face: float, flip_average: bool = False, **options):
    session = LiveSession(classifier, LiveSettings(min_face=min_face), flip_average=flip_average, **options)

    def analyze(rgb):
        session.process(rgb)
        return session.stats.snapshot().faces
    return analyze


def timings(analyze, frames: list[np.ndarray], warm_up: int = 5) -> dict:
    for frame in frames[:warm_up]:  # traces the graph, fills caches, finds the faces
        analyze(frame)
    wall, cpu, faces = [], [], []
    for frame in frames[warm_up:]:
        started, cpu_started = time.perf_counter(), time.process_time()
        faces.append(len(analyze(frame)))
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    wall_ms, cpu_ms = np.array(wall) * 1000, np.array(cpu) * 1000
    return {"faces": float(np.mean(faces)), "p50": float(np.percentile(wall_ms, 50)),
            "p95": float(np.percentile(wall_ms, 95)), "mean": float(wall_ms.mean()),
            "fps": 1000 / float(wall_ms.mean()), "cpu_p50": float(np.percentile(cpu_ms, 50)),
            "frames": len(wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per pipeline (one face)")
    parser.add_argument("--model", help="the .keras model (default: the app's)")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"data not found: {DATA} (the shared data belongs beside the repository)")

    classifier = EmotionClassifier.load(args.model)
    frames = video_frames(args.frames + 5)
    grid = [np.vstack([np.hstack([cv2.resize(f, (320, 240))] * 2)] * 2) for f in frames]
    group = [cv2.resize(load_image(DATA / "faces" / "aind_test_image_1.jpg"), SIZE, interpolation=cv2.INTER_AREA)]

    cases = [
        ("one face", frames, [("facemood live", live(classifier, 0.15)),
                              ("facemood live, flip-avg", live(classifier, 0.15, flip_average=True)),
                              ("seed-style baseline", seed_style(classifier.model))]),
        ("four faces (2x2 grid)", grid, [("facemood live", live(classifier, 0.1)),
                                         ("seed-style baseline", seed_style(classifier.model))]),
        ("13 faces (group photo)", group * (args.frames // 3 + 5),
         [("facemood live", live(classifier, 0.03)),
          ("facemood live, all read", live(classifier, 0.03, max_reads=100)),
          ("seed-style baseline", seed_style(classifier.model))]),
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model: {classifier.name}; 640x480 frames; {os.cpu_count()} CPU cores; load average {load:.1f} "
          "(other work on the machine inflates wall times; compare the two pipelines within a run)")
    print(f"{'frames':<24}{'pipeline':<26}{'faces':>6}{'p50 ms':>8}{'p95 ms':>8}{'mean ms':>9}{'fps':>7}"
          f"{'cpu p50':>9}")
    for name, sequence, pipelines in cases:
        for label, analyze in pipelines:
            count = len(sequence) if label.startswith("facemood") else min(len(sequence), 45)
            result = timings(analyze, sequence[:count])
            print(f"{name:<24}{label:<26}{result['faces']:>6.1f}{result['p50']:>8.1f}{result['p95']:>8.1f}"
                  f"{result['mean']:>9.1f}{result['fps']:>7.1f}{result['cpu_p50']:>9.1f}", flush=True)

    if E2E_FIGURES.is_file():
        figures = json.loads(E2E_FIGURES.read_text())
        print(f"\nEnd to end in Chromium (tests/test_webcam_e2e.py, {figures.get('camera_fps')} fps camera): "
              f"{figures.get('annotated_fps')} annotated frames per second made by the server, "
              f"{figures.get('browser_fps')} frames per second shown by the browser, "
              f"{figures.get('analysis_ms_per_frame')} ms of analysis per frame.")
    else:
        print(f"\n(no end-to-end figures: run tests/test_webcam_e2e.py to make {E2E_FIGURES.name})")


if __name__ == "__main__":
    main()
