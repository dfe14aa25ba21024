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
                # Beyond the fixed cost; on a busy machine the difference can vanish in the noise (None).
                rate = lambda count, seconds: count / (seconds - fixed) if seconds > fixed else None  # noqa: E731
                rows.append((mode, workers, fixed, rate(n_photos - 1, all_photos), rate(clip_frames, one_video),
                             rate(2 * clip_frames, two_videos), n_photos / all_photos,
                             2 * clip_frames / two_videos))
                print(f"{mode:>4}, {workers} worker(s), wall seconds: 1 photo {fixed:.1f}, {n_photos} photos "
                      f"{all_photos:.1f}, 1 video ({clip_frames} frames) {one_video:.1f}, 2 videos {two_videos:.1f}",
                      flush=True)

        long_video = work / "long.mp4"
        long_frames = looped(clip, long_video, args.long)
        short_mb, short_frames, _ = peak_memory_mb(clip)
        long_mb, frames, seconds = peak_memory_mb(long_video)
        print(f"peak memory, one process: {short_mb:.0f} MB on {short_frames} frames, {long_mb:.0f} MB on "
              f"{frames} frames of {long_frames} ({seconds:.0f} s, {frames / seconds:.1f} frames/s)")

        show = lambda value: "n/a" if value is None else f"{value:.2f}"  # noqa: E731
        print(f"\n| run | workers | fixed cost (1 photo) | photos/s beyond it | frames/s beyond it, 1 video | "
              f"2 videos | {n_photos} photos/s end to end | 2 videos, frames/s end to end |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for mode, workers, fixed, photo_rate, frame_rate, frame_rate_2, photos_all, frames_all in rows:
            name = "local pool" if mode == "pool" else "Ray Data (`--ray auto`)"
            print(f"| {name} | {workers} | {fixed:.1f} s | {show(photo_rate)} | {show(frame_rate)} | "
                  f"{show(frame_rate_2)} | {photos_all:.2f} | {frames_all:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
