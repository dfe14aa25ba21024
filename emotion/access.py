"""Who may do what when the app is shared: training on or off or behind a password, which
folders training data may come from, names that cannot leave their folder, upload sizes.

The app (a Streamlit server anyone on the network may open) reads an :class:`AccessPolicy`
from its settings; the command line is the local user's own and is not restricted::

    policy = AccessPolicy.from_settings({"training": "password", "password": "..."}, os.environ)
    if policy.training == "password" and policy.check_password(typed): ...
    path = policy.data_path("../shared/data/fer2013/fer2013.csv.gz")   # or PathRefused

Settings (a mapping, e.g. the ``[access]`` table of Streamlit's secrets, wins over the
environment, key by key):

=============  =======================  ==============================================
key            environment              meaning
=============  =======================  ==============================================
``training``   ``FACEMOOD_TRAINING``    ``on`` (default), ``off`` or ``password``
``password``   ``FACEMOOD_PASSWORD``    the password; alone it implies ``password``
``data_dirs``  ``FACEMOOD_DATA_DIRS``   folders training data may be read from (a list,
                                        or one string separated by ``os.pathsep``);
                                        set but empty: none (uploads only)
=============  =======================  ==============================================

Anything unclear fails closed: an unknown ``training`` value, or ``password`` without a
password, turns training off (and :attr:`AccessPolicy.problem` says why, for the log).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .data import DEFAULT_DATASET, default_dataset_path
from .imageio import MAX_PIXELS

MODES = ("on", "off", "password")
ENV = {"training": "FACEMOOD_TRAINING", "password": "FACEMOOD_PASSWORD", "data_dirs": "FACEMOOD_DATA_DIRS"}

# The largest upload the app takes, in MiB (Streamlit's server.maxUploadSize, which the
# project's .streamlit/config.toml sets to this). It is the largest photo the app accepts
# (MAX_PIXELS) stored uncompressed as 24-bit RGB, the biggest form a photo normally takes;
# FER2013's Kaggle CSV gzipped (90 MiB) fits too, its plain 287 MB form does not.
MAX_UPLOAD_MB = math.ceil((MAX_PIXELS * 3 + 1024) / 2**20)

# Names are file names in the models and runs folders: one path component, no control
# characters, no leading dot or dash (hidden files, options), short enough for any file system.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_PATH_CHARS = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Per process: a session's unlocked state stays valid while the password is unchanged.
_UNLOCK_KEY = secrets.token_bytes(32)


class PathRefused(ValueError):
    """A data path outside the allowed folders (or not usable); the message is one line and
    the same whether or not the path exists."""


def check_name(name: str, kind: str = "model", suffix: str = "") -> str:
    """``name`` as a safe file name stem (surrounding spaces and ``suffix`` dropped), or
    ValueError saying why in one line. The result has no path separator, no ``..``, no
    control character and at most 64 characters, so ``folder / (name + suffix)`` is always
    directly inside ``folder``."""
    if not isinstance(name, str):
        raise ValueError(f"a {kind} name must be text")
    name = name.strip()
    if suffix and name.endswith(suffix):
        name = name[: -len(suffix)]
    if not NAME_PATTERN.fullmatch(name):
        shown = _CONTROL.sub("?", name)
        shown = shown if len(shown) <= 40 else shown[:40] + "…"
        raise ValueError(f"{shown!r} cannot be a {kind} name: use letters, digits, '-', '_' "
                         f"or '.', starting with a letter or digit (at most 64)")
    return name


def display_name(name: str, limit: int = 100) -> str:
    """A name a browser sent (an upload's file name) fit to show in a message: its last path
    component, control characters removed, at most ``limit`` characters."""
    text = _CONTROL.sub("", str(name)).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return text[:limit] or "upload"


# Personal datasets made by the Capture page, the capture command and the dataset creator
# (git-ignored); training may read them like the shared data.
DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"


def default_data_dirs() -> tuple[Path, ...]:
    """The folders a local run reads training data from: the project's shared data folder
    (``../shared/data``), the folder of the default dataset (``$FACEMOOD_DATA``) and the
    project's own ``datasets/``."""
    return (DEFAULT_DATASET.parent.parent, default_dataset_path().parent, DATASETS_DIR)


def _split_dirs(value) -> tuple[Path, ...]:
    if isinstance(value, str):
        value = value.split(os.pathsep)
    return tuple(Path(os.path.abspath(os.path.expanduser(str(v).strip()))) for v in value if str(v).strip())


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class AccessPolicy:
    """What visitors of the app may do. Build it with :meth:`from_settings`."""

    training: str = "on"                        # one of MODES
    password: str = field(default="", repr=False)
    data_dirs: tuple[Path, ...] = ()            # absolute; training data must lie inside one
    problem: str = ""                           # a settings mistake, for the server's log

    @classmethod
    def from_settings(cls, settings: Mapping | None = None, environ: Mapping | None = None) -> "AccessPolicy":
        """The policy from ``settings`` (e.g. ``st.secrets["access"]``), then ``environ``."""
        settings = settings or {}
        environ = os.environ if environ is None else environ

        def get(key):
            if key in settings:
                return settings[key], f"the access secret {key!r}"
            if ENV[key] in environ:
                return environ[ENV[key]], f"${ENV[key]}"
            return None, ""

        password, _ = get("password")
        password = "" if password is None else str(password)
        value, source = get("training")
        problem = ""
        if value is None or (isinstance(value, str) and not value.strip()):
            training = "password" if password else "on"
        elif isinstance(value, bool):
            training = "on" if value else "off"
        elif str(value).strip().lower() in MODES:
            training = str(value).strip().lower()
        else:
            training, problem = "off", f"{source} is not one of {', '.join(MODES)}; training is off"
        if training == "password" and not password:
            training, problem = "off", "training is set to need a password but none is set; training is off"

        dirs, dirs_source = get("data_dirs")
        try:
            data_dirs = default_data_dirs() if dirs is None else _split_dirs(dirs)
        except TypeError:
            data_dirs, problem = (), problem or f"{dirs_source} is not a list of folders; no data folder is allowed"
        unique = list(dict.fromkeys(str(Path(os.path.abspath(d))) for d in data_dirs))
        outermost = tuple(Path(d) for d in unique if not any(o != d and _within(d, o) for o in unique))
        return cls(training=training, password=password, data_dirs=outermost, problem=problem)

    # --- training --------------------------------------------------------------------

    def check_password(self, attempt: str) -> bool:
        """Whether ``attempt`` is the password; constant-time, never true without one."""
        if self.training != "password" or not self.password or not isinstance(attempt, str):
            return False
        digest = lambda text: hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()  # noqa: E731
        return hmac.compare_digest(digest(attempt), digest(self.password))

    def unlock_token(self) -> str:
        """What a session keeps once unlocked: valid in this process while the password is
        unchanged, and useless to anyone who reads it (it is not the password)."""
        return hmac.new(_UNLOCK_KEY, self.password.encode("utf-8", "surrogatepass"), "sha256").hexdigest()

    def may_train(self, token: str | None = None) -> bool:
        """Whether a session holding ``token`` (from :meth:`unlock_token`, or None) may train."""
        if self.training == "on":
            return True
        if self.training == "password" and self.password and isinstance(token, str):
            return hmac.compare_digest(token, self.unlock_token())
        return False

    # --- data paths ------------------------------------------------------------------

    def refusal(self) -> str:
        """The one line said for every refused path (so it tells nothing about the path)."""
        if not self.data_dirs:
            return "Training data cannot be read from a path on this server: upload a FER2013 CSV instead."
        return ("Only data inside the allowed folders can be used: "
                + ", ".join(str(d) for d in self.data_dirs) + ".")

    def data_path(self, text: str | os.PathLike) -> Path:
        """The real path of a dataset a visitor typed, or :class:`PathRefused`.

        Relative paths are taken from the working folder. The path, with ``..`` taken
        literally, must lie in an allowed folder before the file system is asked anything,
        so nothing is learnt about other paths; then, with every symlink resolved, it must
        still lie in (the real path of) an allowed folder, and be a file or a folder if it
        exists (a missing one is left to the dataset reader to report).
        """
        text = os.fspath(text).strip() if isinstance(text, (str, os.PathLike)) else ""
        if not text or len(text) > MAX_PATH_CHARS or _CONTROL.search(text):
            raise PathRefused(self.refusal())
        if text == "~" or text.startswith("~/"):
            text = os.path.expanduser(text)
        literal = os.path.normpath(os.path.join(os.getcwd(), text))
        if not any(_within(literal, str(root)) for root in self.data_dirs):
            raise PathRefused(self.refusal())
        try:
            real = os.path.realpath(os.path.join(os.getcwd(), text))
            real_roots = [os.path.realpath(root) for root in self.data_dirs]
        except (OSError, ValueError):
            raise PathRefused(self.refusal()) from None
        if not any(_within(real, root) for root in real_roots):
            raise PathRefused(self.refusal())
        path = Path(real)
        try:  # a pipe or a device would hang or flood the reader; missing is the reader's to say
            odd = path.exists() and not (path.is_file() or path.is_dir())
        except (OSError, ValueError):
            odd = True
        if odd:
            raise PathRefused(f"{text} is neither a file nor a folder.")
        return path
