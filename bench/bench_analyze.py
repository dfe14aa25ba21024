"""Time EmotionRecognizer.analyze() against today's pipeline before issue 11, a seed-style
baseline and the `fer` package, in one run; and measure each one's face detection.

Photos: a 640x480 photo with one face and the 13-person group photo, from
../shared/data/faces. The pipelines, each in a process of its own (bench/analyze_worker.py):

* **facemood**: ``analyze()`` of this working tree;
* **before (2239a07)**: ``analyze()`` of commit 2239a07 (the Haar pipeline), from a git
  worktree the benchmark makes in /tmp;
* **seed-style baseline**: what the common FER2013 demos do: the Haar cascade with default
  settings on the full image, then ``model.predict`` once per face;
* **fer**: the `fer` package's ``FER().detect_emotions()`` (Haar cascade, mini-Xception),
  installed by the benchmark in its own virtual environment (bench/fer_env.py:
  bench/.fer-venv, never in requirements.txt; PyPI is needed once).

The first three use the same trained model, so only the pipeline differs. Timings go round
by round (each pipeline times a few runs in turn), so that other work on the machine weighs
on every pipeline alike. Detection: face-count error on faces.csv (23 photos) and precision
and recall at IoU 0.5 against boxes.csv (42 true faces).

    python bench/bench_analyze.py [--runs 40] [--rounds 4] [--only facemood,fer]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from emotion import load_image  # noqa: E402
from emotion.classifier import default_model_path  # noqa: E402
from emotion.detect import detection_scores  # noqa: E402
from fer_env import FER_VERSION, fer_python  # noqa: E402  (bench/fer_env.py: fer's own venv)

FACES = ROOT.parent / "shared" / "data" / "faces"
BEFORE = "2239a07"  # the last commit with the Haar photo pipeline and live.py's own pipeline
WORKTREE = Path(tempfile.gettempdir()) / f"facemood-{BEFORE}"


def before_tree() -> Path:
    """A checkout of commit BEFORE in /tmp (a git worktree; the working tree is not touched)."""
    if not (WORKTREE / "emotion" / "recognizer.py").is_file():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(WORKTREE), BEFORE],
                       check=True, capture_output=True)
    return WORKTREE


class Worker:
    """A pipeline in its own process (bench/analyze_worker.py)."""

    def __init__(self, name: str, python: Path, kind: str, root: Path, photos: list[Path]):
        self.name = name
        env = {**os.environ, "FACEMOOD_MODEL": str(default_model_path())}  # one model for all
        self.process = subprocess.Popen(
            [str(python), str(ROOT / "bench" / "analyze_worker.py"), kind, str(root), *map(str, photos)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.faces = self._reply()["faces"]
        self.wall: list[list[float]] = [[] for _ in photos]
        self.cpu: list[list[float]] = [[] for _ in photos]

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} pipeline stopped (run bench/analyze_worker.py by hand to see why)")
        return json.loads(line)

    def ask(self, command: dict) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def time(self, runs: int) -> None:
        for i, timing in enumerate(self.ask({"time": runs})["timings"]):
            self.wall[i] += timing["wall"]
            self.cpu[i] += timing["cpu"]

    def close(self) -> None:
        try:
            self.ask({"quit": True})
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        self.process.wait(timeout=30)


def truth() -> tuple[dict, dict]:
    with open(FACES / "faces.csv") as table:
        counts = {row["file"]: int(row["faces"]) for row in csv.DictReader(table)}
    boxes = {name: [] for name in counts}
    with open(FACES / "boxes.csv") as table:
        for row in csv.DictReader(table):
            boxes[row["file"]].append([int(row[k]) for k in "xywh"])
    return counts, boxes


def ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per photo and pipeline")
    parser.add_argument("--rounds", type=int, default=4, help="the runs are split over this many rounds")
    parser.add_argument("--only", help="comma-separated: facemood, before, seed, fer")
    args = parser.parse_args()
    if not FACES.is_dir():
        sys.exit(f"photos not found: {FACES} (the shared data belongs beside the repository)")

    one = cv2.resize(load_image(FACES / "deepface_img11.jpg"), (640, 480), interpolation=cv2.INTER_AREA)
    group = load_image(FACES / "aind_test_image_1.jpg")
    scratch = Path(tempfile.mkdtemp(prefix="bench-analyze-"))
    photos = []
    for name, rgb in (("one", one), ("group", group)):
        np.save(scratch / f"{name}.npy", rgb)
        photos.append(scratch / f"{name}.npy")

    wanted = set((args.only or "facemood,before,seed,fer").split(","))
    plan = [("facemood", "facemood analyze()", lambda: (Path(sys.executable), "facemood", ROOT)),
            ("before", f"before ({BEFORE}) analyze()", lambda: (Path(sys.executable), "facemood", before_tree())),
            ("seed", "seed-style baseline", lambda: (Path(sys.executable), "seed", ROOT)),
            ("fer", f"fer {FER_VERSION} detect_emotions()", lambda: (fer_python(), "fer", ROOT))]
    workers = []
    for key, name, where in plan:
        if key in wanted:
            print(f"starting {name}...", file=sys.stderr, flush=True)
            workers.append(Worker(name, *where(), photos))

    per_round = max(1, args.runs // args.rounds)
    for _ in range(args.rounds):
        for worker in workers:
            worker.time(per_round)

    counts, true = truth()
    paths = [str(FACES / name) for name in counts]
    quality = {}
    for worker in workers:
        found = worker.ask({"boxes": paths})["boxes"]
        scores = detection_scores({k: np.array(v, float).reshape(-1, 4) for k, v in found.items()},
                                  {k: np.array(v, float).reshape(-1, 4) for k, v in true.items()})
        scores["negative"] = len(found["NEG_fer_no-faces.jpg"])
        quality[worker.name] = scores
        worker.close()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{per_round * args.rounds} runs per photo and pipeline in {args.rounds} rounds; {os.cpu_count()} CPU cores; "
          f"load average {load:.1f} at the end (other work inflates wall times: compare within a run)")
    print(f"\n{'photo':<28}{'pipeline':<30}{'faces':>6}{'p50 ms':>9}{'p95 ms':>9}{'cpu ms':>9}{'vs fer':>8}")
    fer = next((w for w in workers if w.name.startswith("fer")), None)
    for i, photo in enumerate(["640x480, one face", f"group {group.shape[1]}x{group.shape[0]}, 13 people"]):
        for worker in workers:
            p50 = ms(worker.wall[i], 50)
            ratio = f"{ms(fer.wall[i], 50) / p50:>7.1f}x" if fer else ""
            print(f"{photo:<28}{worker.name:<30}{worker.faces[i]:>6}{p50:>9.1f}{ms(worker.wall[i], 95):>9.1f}"
                  f"{ms(worker.cpu[i], 50):>9.1f}{ratio}")
    print(f"\n{'detection on ../shared/data/faces':<36}{'count error':>12}{'negative':>9}{'precision':>10}"
          f"{'recall':>8}{'matched':>9}")
    for name, scores in quality.items():
        print(f"{name:<36}{scores['count_error']:>12}{scores['negative']:>9}{scores['precision']:>10.2f}"
              f"{scores['recall']:>8.2f}{scores['matched']:>5}/{scores['true']}")


if __name__ == "__main__":
    main()
