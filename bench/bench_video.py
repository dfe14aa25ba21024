"""Frames per second and memory of ``python -m emotion video`` (emotion.video.analyse_video).

A synthetic 720p video (default 10 minutes at 25 fps) is made with PyAV: the real face clip
../shared/data/video/fer_woman2.mp4, looped, moving over a 1280x720 background. Then, each in
a fresh process (so that one's memory does not count for the other), the real clip
fer_test.mp4 and the long video are analysed as the CLI does (annotated MP4 and CSV written).
Printed per video: frames, wall seconds, frames per second, the process's CPU seconds, its
memory once the first frame was done (model loaded), the most it held while the frames went
by (sampled with each progress report), and its peak (``ru_maxrss``).

    python bench/bench_video.py [--seconds 600] [--every 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLIP = ROOT.parent / "shared" / "data" / "video" / "fer_woman2.mp4"
REAL = ROOT.parent / "shared" / "data" / "video" / "fer_test.mp4"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def synthetic_video(path: Path, frames: int, width: int = 1280, height: int = 720, fps: int = 25,
                    clip: Path = CLIP) -> Path:
    """``frames`` frames of ``clip`` (looped) moving over a grey background, as H.264 MP4;
    made frame by frame, so a long one costs no memory either."""
    import av
    import numpy as np

    from emotion.video import read_frames

    source = [f.rgb for f in read_frames(clip, every=4)]  # a few dozen small frames, looped
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        canvas = np.full((height, width, 3), 96, np.uint8)
        for index in range(frames):
            picture = source[index % len(source)]
            h, w = picture.shape[:2]
            h, w = min(h, height), min(w, width)
            # Across and back, once every 8 seconds: the tracker has something to follow.
            phase = abs((index / (8 * fps)) % 2 - 1)
            x, y = int(phase * (width - w)), int((1 - phase) * (height - h))
            frame = canvas.copy()
            frame[y:y + h, x:x + w] = picture[:h, :w]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def worker(video: str, out: str, csv_path: str, every: int) -> dict:
    """Analyse one video in this process; the figures as a dict."""
    from emotion.classifier import EmotionClassifier
    from emotion.video import analyse_video

    classifier = EmotionClassifier.load()
    samples: list[tuple[int, int]] = []  # (frames done, resident bytes)
    # A long run can be followed (and read if stopped): a line every 20 s beside the output.
    trace = open(f"{out}.progress.jsonl", "w", buffering=1)
    traced = [0.0]

    def progress(step):
        samples.append((step.done, rss_bytes()))
        if step.elapsed_s - traced[0] >= 20 or step.done == step.total:
            traced[0] = step.elapsed_s
            trace.write(json.dumps({"done": step.done, "total": step.total, "seconds": round(step.elapsed_s, 1),
                                    "cpu_seconds": round(time.process_time() - cpu, 1),
                                    "rss_mb": round(samples[-1][1] / 2**20)}) + "\n")

    began, cpu = time.perf_counter(), time.process_time()
    summary = analyse_video(video, out, csv_path, classifier=classifier, every=every, progress=progress,
                            progress_every_s=0.5)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    trace.close()
    first = samples[0][1]
    # The most it had held by the end of each tenth of the frames: flat once warmed up.
    tenths = [max((r for done, r in samples if done <= summary.frames * k / 10), default=first)
              for k in range(1, 11)]
    return {"video": Path(video).name, "frames": summary.frames, "analysed": summary.analysed,
            "size": f"{summary.width}x{summary.height}", "seconds": round(seconds, 1),
            "frames_per_second": round(summary.frames / seconds, 1), "cpu_seconds": round(cpu, 1),
            "rss_first_frame_mb": round(first / 2**20), "rss_max_mb": round(max(r for _, r in samples) / 2**20),
            "growth_mb": round((max(r for _, r in samples) - first) / 2**20),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_by_tenth_mb": [round(r / 2**20) for r in tenths], "samples": len(samples),
            "out_mb": round(Path(out).stat().st_size / 2**20, 1)}


def run_worker(video: Path, folder: Path, every: int = 1) -> dict:
    """:func:`worker` in a fresh Python process."""
    command = [sys.executable, __file__, "--worker", str(video), str(folder / f"{video.stem}-out.mp4"),
               str(folder / f"{video.stem}.csv"), str(every)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"worker failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="length of the synthetic video")
    parser.add_argument("--every", type=int, default=1, help="analyse every K-th frame (as --every)")
    parser.add_argument("--keep", help="make the videos in this folder and keep them")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-video-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        print(json.dumps(run_worker(REAL, folder, args.every)), flush=True)
        long = folder / f"synthetic-720p-{args.seconds:g}s.mp4"
        began = time.perf_counter()
        synthetic_video(long, round(args.seconds * 25))
        print(f"made {long.name} ({long.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - began:.0f} s",
              flush=True)
        print(json.dumps(run_worker(long, folder, args.every)), flush=True)
    finally:
        if not args.keep:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
