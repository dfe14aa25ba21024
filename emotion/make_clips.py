"""``python -m emotion.make_clips``: make the shipped clips for the seven single-face sentences.

They go to ``audio_files/`` under the cache's own names, so the default voice
works on a fresh machine without network or espeak-ng. Exit code 1 when a clip
could not be made.
"""

from __future__ import annotations

import argparse
import sys

from .labels import LABELS
from .speech import AUDIO_DIR, SpeechUnavailable, cached_clip, sentence_for, synthesize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emotion.make_clips", description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="en")
    parser.add_argument("--out", default=str(AUDIO_DIR), help="folder for the clips (default: audio_files/)")
    parser.add_argument("--force", action="store_true", help="remake clips that already exist")
    args = parser.parse_args(argv)

    failed = 0
    for label in LABELS:
        text = sentence_for([label], args.lang)
        old = cached_clip(text, args.lang, args.out)
        if old is not None and args.force:
            old.path.unlink()
        try:
            clip = synthesize(text, args.lang, cache_dir=args.out)
        except SpeechUnavailable as error:
            print(f"{label}: {error}", file=sys.stderr)
            failed += 1
            continue
        print(f"{clip.path.name}  {clip.source}  {clip.path.stat().st_size} bytes")
        if clip.mime != "audio/mpeg":
            print(f"{label}: kept {clip.mime}; install lame or ffmpeg to ship MP3", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
