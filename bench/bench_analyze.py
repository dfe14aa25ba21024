"""Time EmotionRecognizer.analyze() against a seed-style baseline, in one run.

Photos: a 640x480 photo with one face and the 13-person group photo, from
../shared/data/faces. The baseline is what the common FER2013 demos do: the
Haar cascade with default settings on the full image, then ``model.predict``
once per face. Both use the same trained model, so only the pipeline differs.

    python bench/bench_analyze.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from emotion import EmotionRecognizer, load_image  # noqa: E402
from seed_baseline import seed_style  # noqa: E402

FACES = ROOT.parent / "shared" / "data" / "faces"


def timings(analyze, rgb, runs: int) -> tuple[list[float], int]:
    faces = len(analyze(rgb))  # warm-up: traces the graph, fills caches
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        analyze(rgb)
        seconds.append(time.perf_counter() - start)
    return seconds, faces


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    if not FACES.is_dir():
        sys.exit(f"photos not found: {FACES} (the shared data belongs beside the repository)")

    one = cv2.resize(load_image(FACES / "deepface_img11.jpg"), (640, 480), interpolation=cv2.INTER_AREA)
    group = load_image(FACES / "aind_test_image_1.jpg")
    recognizer = EmotionRecognizer()
    pipelines = {"facemood analyze()": recognizer.analyze_rgb,
                 "seed-style baseline": seed_style(recognizer.classifier.model)}

    print(f"model: {recognizer.classifier.name}; {args.runs} runs each; {os.cpu_count()} CPU cores")
    print(f"{'photo':<26}{'pipeline':<22}{'faces':>6}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}")
    for photo, rgb in [("640x480, one face", one),
                       (f"group {group.shape[1]}x{group.shape[0]}", group)]:
        for name, analyze in pipelines.items():
            seconds, faces = timings(analyze, rgb, args.runs)
            print(f"{photo:<26}{name:<22}{faces:>6}{percentile(seconds, 50):>9.1f}"
                  f"{percentile(seconds, 95):>9.1f}{statistics.mean(seconds) * 1000:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
