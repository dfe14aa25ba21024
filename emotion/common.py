"""Small helpers the whole library shares: an error as one line, and a file written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as a single line a user can read (no traceback): its message's first line,
    or its type's name when it has no message."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 epoch", "20 epochs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def write_atomically(path: str | Path, write: Callable[[Path], None], mode: int = 0o644) -> Path:
    """Write ``path`` through a temporary file in the same folder, then rename it over ``path``:
    a reader sees the old file or the new one, never half of one. ``write`` gets the temporary
    path. The file gets ``mode`` (a temporary file is private; these are shared artefacts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f"-{path.name}")
    os.close(handle)
    try:
        write(Path(temp))
        os.chmod(temp, mode)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path


def run_dir_for(out_path: str | Path, run_dir: str | Path | None = None) -> Path:
    """Where a training that writes ``out_path`` keeps its checkpoints: ``run_dir`` if given,
    else ``runs/<model stem>`` beside the models folder."""
    out_path = Path(out_path)
    return Path(run_dir) if run_dir else out_path.resolve().parent.parent / "runs" / out_path.stem
