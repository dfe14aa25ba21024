"""The `fer` package (the peer we compare against) in a virtual environment of its own.

`fer` never enters requirements.txt. Its venv shares this project's TensorFlow,
OpenCV and pandas through a .pth file rather than downloading a second copy of
each, and gets `fer` itself (with the few small packages it imports) from PyPI.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

FER_VERSION = "25.10.3"
VENV = Path(__file__).resolve().parent / ".fer-venv"


def fer_python() -> Path:
    """The Python of the `fer` venv, made on first use (needs PyPI once)."""
    python = VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import fer"], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    site = next(VENV.glob("lib/python*/site-packages"))
    (site / "facemood-shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", f"fer=={FER_VERSION}", "tqdm",
                    "setuptools<81"], check=True)  # fer imports pkg_resources, gone in setuptools 81
    return python
