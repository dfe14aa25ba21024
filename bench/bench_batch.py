"""Throughput of ``python -m emotion batch``: photos/s and video frames/s with 1 and 2 workers, the
local pool against Ray Data, the fixed cost of each (start-up: worker processes loading the model,
Ray starting), and peak memory on a long video. Not a test; prints the figures.

    .venv/bin/python bench/bench_batch.py [--copies 2] [--long 5]

Each figure comes from the command line as a user runs it (a fresh process each time). A run on
one file gives the fixed cost; the throughput is the extra files (or frames) over the extra time:
(N - 1) / (T_N - T_1).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


def batch(inputs, out: Path, *options) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "emotion", "batch", *map(str, inputs), "--out", str(out), *options],
                         cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode not in (0, 1):
        sys.exit(f"batch failed: {run.stderr[-2000:]}")
    return seconds


def peak_memory_mb(video: Path) -> tuple[float, int, float]:
    """Peak RSS (MB) of one process analysing ``video`` in-process, its frames and seconds."""
    code = ("import resource, sys, time, emotion.batch as b; t = time.perf_counter(); "
            "r = b.analyze([sys.argv[1]], workers=0); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, int(r.files.frames.sum()), "
            "time.perf_counter() - t)")
    run = subprocess.run([sys.executable, "-c", code, str(video)], cwd=ROOT, capture_output=True, text=True)
    mb, frames, seconds = run.stdout.split()[-3:]
    return float(mb), int(frames), float(seconds)


def looped(source: Path, target: Path, times: int) -> int:
    """``source`` played ``times`` times in a row, re-encoded: a long video."""
    import av

    frames = 0
    with av.open(str(target), "w") as out:
        encoder = None
        for _ in range(times):
            with av.open(str(source)) as src:
                stream = src.streams.video[0]
                if encoder is None:
                    encoder = out.add_stream("libx264", rate=stream.average_rate)
                    encoder.width, encoder.height, encoder.pix_fmt = stream.width, stream.height, "yuv420p"
                for frame in src.decode(stream):
                    out.mux(encoder.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"),
                                                                      format="rgb24")))
                    frames += 1
        out.mux(encoder.encode(None))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of the 23 photos (default 2: 46 photos)")
    parser.add_argument("--long", type=int, default=5, help="the long video: fer_woman2.mp4 this many times")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        photos = work / "photos"
        photos.mkdir()
        for copy in range(args.copies):
            for photo in sorted((DATA / "faces").glob("*.jpg")):
                shutil.copy(photo, photos / f"{copy}-{photo.name}")
        one_photo = sorted(photos.iterdir())[0]
        videos = work / "videos"
        videos.mkdir()
        clip = DATA / "video" / "fer_woman2.mp4"
        for copy in range(2):
            shutil.copy(clip, videos / f"{copy}-{clip.name}")
        clip_frames = 464
        n_photos = len(list(photos.iterdir()))

        from emotion.batch import LocalRay

        if not args.skip_ray:
            started = time.perf_counter()
            head = LocalRay()
            up = time.perf_counter() - started
            started = time.perf_counter()
            head.stop()
            print(f"Ray: a local head starts in {up:.1f} s and stops in {time.perf_counter() - started:.1f} s")

        rows = []
        for mode in ("pool", "ray"):
            if mode == "ray" and args.skip_ray:
                continue
            for workers in (1, 2):
                options = ["--workers", str(workers)] + (["--ray", "auto"] if mode == "ray" else [])
                fixed = batch([one_photo], work / "out", *options)
                all_photos = batch([photos], work / "out", *options)
                one_video = batch([videos / f"0-{clip.name}"], work / "out", *options)
                two_videos = batch([videos], work / "out", *options)
                photo_rate = (n_photos - 1) / max(all_photos - fixed, 1e-9)
                # one video's frames beyond the fixed cost; two videos side by side with 2 workers
                frame_rate = clip_frames / max(one_video - fixed, 1e-9)
                frame_rate_2 = 2 * clip_frames / max(two_videos - fixed, 1e-9)
                rows.append((mode, workers, fixed, all_photos, photo_rate, frame_rate, frame_rate_2))
                print(f"{mode:>4}, {workers} worker(s): fixed {fixed:.1f} s; {n_photos} photos {all_photos:.1f} s "
                      f"({photo_rate:.2f} photos/s); 1 video {frame_rate:.1f} frames/s, "
                      f"2 videos {frame_rate_2:.1f} frames/s", flush=True)

        long_video = work / "long.mp4"
        long_frames = looped(clip, long_video, args.long)
        short_mb, short_frames, _ = peak_memory_mb(clip)
        long_mb, frames, seconds = peak_memory_mb(long_video)
        print(f"peak memory, one process: {short_mb:.0f} MB on {short_frames} frames, {long_mb:.0f} MB on "
              f"{frames} frames of {long_frames} ({seconds:.0f} s, {frames / seconds:.1f} frames/s)")

        print("\n| run | workers | fixed cost (1 photo) | photos/s | video frames/s (1 video) | video frames/s (2 videos) |")
        print("|---|---:|---:|---:|---:|---:|")
        for mode, workers, fixed, _, photo_rate, frame_rate, frame_rate_2 in rows:
            name = "local pool" if mode == "pool" else "Ray Data (`--ray auto`)"
            print(f"| {name} | {workers} | {fixed:.1f} s | {photo_rate:.2f} | {frame_rate:.1f} | {frame_rate_2:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
