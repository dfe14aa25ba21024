"""One pipeline of bench/bench_analyze.py, in a process of its own (run by it, not by hand).

Each pipeline gets its own process, so that another version of this project (an older commit's
``emotion`` package) or another virtual environment (the ``fer`` package's) can be timed in
the same benchmark run. The worker loads its pipeline, then answers commands on stdin, one JSON
line each:

* ``{"time": RUNS}``: times RUNS analyses of each photo given at start; replies with the wall
  and CPU seconds of each;
* ``{"boxes": [path, ...]}``: the face boxes (x, y, w, h) found in each photo file;
* ``{"quit": true}``.

    python analyze_worker.py KIND ROOT PHOTO.npy...   (KIND: facemood, seed, fer)

``ROOT`` is the project folder whose ``emotion`` package is imported (for facemood, seed).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")


def load_pipeline(kind: str, root: str):
    """``(analyze(rgb) -> list, boxes(rgb) -> [[x, y, w, h], ...])`` for the pipeline named."""
    import numpy as np

    if kind == "fer":
        import cv2
        from fer.fer import FER

        detector = FER()

        def analyze(rgb):
            return detector.detect_emotions(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

        return analyze, lambda rgb: [list(map(int, face["box"])) for face in analyze(rgb)]

    sys.path.insert(0, root)
    from emotion import EmotionRecognizer

    recognizer = EmotionRecognizer()
    if kind == "facemood":
        return recognizer.analyze, lambda rgb: [list(face.box) for face in recognizer.analyze(rgb)]
    if kind == "seed":
        import cv2

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from seed_baseline import seed_style

        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

        def boxes(rgb):
            found = cascade.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
            return np.asarray(found, int).reshape(-1, 4).tolist()

        return seed_style(recognizer.classifier.model), boxes
    raise SystemExit(f"unknown pipeline {kind!r}")


def main() -> None:
    import numpy as np

    kind, root, photos = sys.argv[1], sys.argv[2], sys.argv[3:]
    images = [np.load(path) for path in photos]
    analyze, boxes = load_pipeline(kind, root)
    faces = [len(analyze(rgb)) for rgb in images]  # warm-up: traces graphs, fills caches
    print(json.dumps({"ready": True, "faces": faces}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if "time" in command:
            timings = []
            for rgb in images:
                wall, cpu = [], []
                for _ in range(command["time"]):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    analyze(rgb)
                    wall.append(time.perf_counter() - started)
                    cpu.append(time.process_time() - cpu_started)
                timings.append({"wall": wall, "cpu": cpu})
            print(json.dumps({"timings": timings}), flush=True)
        elif "boxes" in command:
            from PIL import Image, ImageOps

            found = {}
            for path in command["boxes"]:
                with Image.open(path) as im:
                    rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
                found[os.path.basename(path)] = boxes(rgb)
            print(json.dumps({"boxes": found}), flush=True)
        else:
            break


if __name__ == "__main__":
    main()
