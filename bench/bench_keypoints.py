"""What facial keypoints cost: per face (KeypointModel.locate, all faces in one batch) and per
webcam frame (the live pipeline with the "Show facial keypoints" toggle off and on).

Frames are those of bench_live.py (640x480: one face from the video clip, four as a 2x2 grid,
the 13-person group photo). Per case: p50 and p95 wall time, frames per second (1 / mean) and
CPU time per call (p50, all threads), which is steadier on a busy machine.

    python bench/bench_keypoints.py [--frames 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench_live import DATA, SIZE, timings, video_frames  # noqa: E402
from emotion import EmotionClassifier, EmotionRecognizer, load_image  # noqa: E402
from emotion.keypoints import shared_model  # noqa: E402
from emotion.live import LiveSession, LiveSettings  # noqa: E402


def live(classifier, min_face: float, keypoints: bool):
    session = LiveSession(classifier, LiveSettings(min_face=min_face, keypoints=keypoints))

    def analyze(rgb):
        session.process(rgb)
        return session.stats.snapshot().faces
    return analyze


def per_face(model, grey: np.ndarray, boxes: np.ndarray, runs: int) -> tuple[float, float]:
    """p50 wall and CPU milliseconds of one locate() call on these boxes."""
    model.locate(grey, boxes)  # traces the graph for this batch size
    wall, cpu = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        model.locate(grey, boxes)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return float(np.median(wall) * 1000), float(np.median(cpu) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    classifier = EmotionClassifier.load()
    model = shared_model()
    load = os.getloadavg()[0]
    print(f"keypoint model: {model.path.name}; {os.cpu_count()} CPU cores; load average {load:.1f}")

    group = load_image(DATA / "faces" / "aind_test_image_1.jpg")
    boxes = np.array([r.box for r in EmotionRecognizer(classifier).analyze_rgb(group)], float)
    grey = cv2.cvtColor(group, cv2.COLOR_RGB2GRAY)
    print(f"\n{'faces in one call':<20}{'p50 ms':>8}{'cpu p50 ms':>12}{'cpu ms/face':>13}")
    for count in (1, 4, len(boxes)):
        wall, cpu = per_face(model, grey, boxes[:count], max(20, args.frames // 2))
        print(f"{count:<20}{wall:>8.2f}{cpu:>12.2f}{cpu / count:>13.2f}", flush=True)

    frames = video_frames(args.frames + 5)
    grid = [np.vstack([np.hstack([cv2.resize(f, (320, 240))] * 2)] * 2) for f in frames]
    crowd = [cv2.resize(group, SIZE, interpolation=cv2.INTER_AREA)] * (args.frames // 2 + 5)
    print(f"\n{'640x480 frames':<24}{'keypoints':<11}{'faces':>6}{'p50 ms':>8}{'p95 ms':>8}{'fps':>7}{'cpu p50':>9}")
    for name, sequence, min_face in (("one face", frames, 0.15), ("four faces (2x2 grid)", grid, 0.1),
                                     ("13 faces (group photo)", crowd, 0.03)):
        for keypoints in (False, True):
            result = timings(live(classifier, min_face, keypoints), sequence)
            print(f"{name:<24}{'on' if keypoints else 'off':<11}{result['faces']:>6.1f}{result['p50']:>8.1f}"
                  f"{result['p95']:>8.1f}{result['fps']:>7.1f}{result['cpu_p50']:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
