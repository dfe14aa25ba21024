"""``python -m emotion.make_clips``: make the shipped clips, so the default voice works offline.

Two sets go to ``audio_files/``: the seven single-face sentences under the cache's own
names (the best voice available: Google's when online, else espeak-ng), and the
built-in voice's word clips in ``audio_files/words/`` (always espeak-ng, so that the
words of a composed sentence share one voice). Needs espeak-ng and lame (Debian:
``apt-get install espeak-ng lame``). Exit code 1 when a clip could not be made.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .labels import LABELS
from .speech import (AUDIO_DIR, PHRASES, VOCABULARY, SpeechUnavailable, cached_clip, espeak_engine, gtts_engine,
                     sentence_for, synthesize, word_clip_path)


def make_sentences(out: Path, lang: str, force: bool) -> int:
    failed = 0
    for label in LABELS:
        text = sentence_for([label], lang)
        old = cached_clip(text, lang, out)
        if old is not None and force:
            old.path.unlink()
        try:
            # Not the built-in voice: a shipped sentence made of word clips would hide a missing voice.
            clip = synthesize(text, lang, cache_dir=out, engines=[("gtts", gtts_engine), ("offline", espeak_engine)])
        except SpeechUnavailable as error:
            print(f"{label}: {error}", file=sys.stderr)
            failed += 1
            continue
        print(f"{clip.path.name}  {clip.source}  {clip.path.stat().st_size} bytes")
        if clip.mime != "audio/mpeg":
            print(f"{label}: kept {clip.mime}; install lame or ffmpeg to ship MP3", file=sys.stderr)
    return failed


def make_words(words_dir: Path, force: bool) -> int:
    failed = 0
    words_dir.mkdir(parents=True, exist_ok=True)
    for phrase in (*VOCABULARY, *PHRASES):
        path = word_clip_path(phrase, words_dir)
        if path.is_file() and not force:
            continue
        with tempfile.TemporaryDirectory(dir=words_dir, prefix=".tmp-") as work:
            try:
                made = espeak_engine(phrase, "en", Path(work), 30.0)
            except (SpeechUnavailable, OSError) as error:
                print(f"{phrase}: {error}", file=sys.stderr)
                failed += 1
                continue
            if made.suffix != ".mp3":
                print(f"{phrase}: no MP3 encoder; install lame", file=sys.stderr)
                failed += 1
                continue
            made.replace(path)  # same folder: atomic, never a half clip under the real name
        print(f"words/{path.name}  {path.stat().st_size} bytes")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emotion.make_clips", description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="en", help="language of the sentence clips (the word clips are English)")
    parser.add_argument("--out", default=str(AUDIO_DIR), help="folder for the clips (default: audio_files/)")
    parser.add_argument("--force", action="store_true", help="remake clips that already exist")
    args = parser.parse_args(argv)
    out = Path(args.out)
    failed = make_sentences(out, args.lang, args.force) + make_words(out / "words", args.force)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
