"""The app's Streamlit server, started exactly as README.md starts it, for the browser tests.

README command 1 ends in ``.venv/bin/streamlit run app.py``, run from the project's
folder: the server then reads the project's ``.streamlit/config.toml`` as every user's
does. The tests take that command from README.md itself and only add
``--server.port`` (a free port), so a change to the README or the config is what the
tests run too. Variables of the caller's shell that would change the app
(``FACEMOOD_*``, ``STREAMLIT_*``) are left out; a test gives its own in ``env``.

The server's CPU time, peak memory and thread count are read from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--mute-audio",
]
ARTIFACTS = ROOT / "test-artifacts"  # logs and screenshots a person looks at after a run
STARTUP_S = 300  # a fresh server on a busy two-core machine
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def readme_command() -> list[str]:
    """The words of README command 1 that start the server (``.venv/bin/streamlit run app.py``)."""
    text = README.read_text()
    found = re.search(r"^# 1\..*\n(.+)$", text, re.MULTILINE)
    if not found:
        pytest.fail("README.md has no command 1 (the line after '# 1.' in its code block)", pytrace=False)
    words = shlex.split(found.group(1).split("&&")[-1])
    if len(words) < 3 or Path(words[0]).name != "streamlit" or words[1] != "run":
        pytest.fail(f"README command 1 does not end in `streamlit run APP`: {found.group(1)}", pytrace=False)
    return words


def server_command(port: int) -> list[str]:
    """README's command with ``--server.port``. Its ``.venv/bin/streamlit`` is used where it exists;
    otherwise (tests run from another environment) the same program, the Streamlit of this Python."""
    program, *args = readme_command()
    executable = ROOT / program
    prefix = [str(executable)] if executable.is_file() else [sys.executable, "-m", "streamlit"]
    return [*prefix, *args, "--server.port", str(port)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_status(pid: int, field: str) -> int:
    """A number from ``/proc/<pid>/status`` (``Threads``, ``VmRSS``/``VmHWM`` in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


class AppServer:
    """``streamlit run app.py`` as README.md runs it, on a free port; its log goes to ``log``."""

    def __init__(self, log: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = server_command(self.port)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("FACEMOOD_", "STREAMLIT_"))}
        clean.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self.log = log
        self._log_file = open(log, "w")
        self.process = subprocess.Popen(self.command, cwd=ROOT, env={**clean, **(env or {})},
                                        stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_healthy(self, timeout: float = STARTUP_S) -> "AppServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the Streamlit server exited ({self.process.returncode}):\n{self.tail()}",
                            pytrace=False)
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=5) as reply:
                    if reply.read().strip() == b"ok":
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"the Streamlit server did not answer in {timeout:.0f} s:\n{self.tail()}", pytrace=False)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return proc_status(self.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """The most memory the server has held at once since it started (the kernel's high-water mark)."""
        return proc_status(self.pid, "VmHWM") / 1024

    def threads(self) -> int:
        """The server's thread count, taken just after it served a static file.

        The web server serves files from a pool of worker threads (anyio's) that retires
        its idle workers only when it is next used: without this request, workers left
        idle by the pages a test opened would count as leaked threads.
        """
        try:
            with urllib.request.urlopen(f"{self.url}/", timeout=5) as reply:
                reply.read()
        except OSError:
            pass
        return proc_status(self.pid, "Threads")

    def settled_threads(self, timeout: float = 90.0, steady: float = 6.0) -> int:
        """The thread count once it has not changed for ``steady`` seconds (closed sessions
        and streams let go of their threads a little after the browser has gone)."""
        deadline = time.monotonic() + timeout
        last, since = self.threads(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(1)
            now = self.threads()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= steady:
                break
        return last

    def tail(self, lines: int = 40) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        self._log_file.close()


@contextlib.contextmanager
def serving(app: AppServer, log_name: str):
    """``app`` once healthy; stopped afterwards, its log kept as test-artifacts/``log_name``."""
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield app.wait_healthy()
    finally:
        app.stop()
        (ARTIFACTS / log_name).write_text(app.log.read_text(errors="replace"))


def chromium_path() -> str:
    """Debian's Chromium, which Playwright drives (no browser is downloaded)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium; "
                    ".ci/run does this)", pytrace=False)
    return str(CHROMIUM)


# --- the app in a browser (Playwright's async API: several sessions at the same moment) --------

APP_STATE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
    return app ? app.getAttribute('data-test-script-state') : null; }"""
# What an exception looks like on a page: its traceback, or its class name (ImportError, NotFoundError).
EXCEPTION_TEXT = re.compile(r"Traceback|\b\w*Error\b")


def app_pages() -> list[tuple[str, str]]:
    """``(url path, title)`` of every page of the app's own navigation (``pages/_common.PAGES``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pages._common import PAGES

    return [("" if index == 0 else Path(path).stem, title) for index, (path, title, _icon) in enumerate(PAGES)]


async def settled(page, timeout: float = STARTUP_S, quiet: float = 2.0) -> None:
    """Wait until the page's script run has ended and stayed ended for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    since = None
    while time.monotonic() < deadline:
        if await page.evaluate(APP_STATE_JS) == "notRunning":
            since = since or time.monotonic()
            if time.monotonic() - since >= quiet:
                return
        else:
            since = None
        await page.wait_for_timeout(250)
    raise AssertionError(f"{page.url} still running after {timeout:.0f} s")


async def sidebar_pages(page) -> list[str]:
    """The page titles the sidebar's navigation lists, in order."""
    texts = await page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    return [text.strip().splitlines()[-1].strip() for text in texts if text.strip()]


async def error_text(page) -> list[str]:
    """Exceptions the page shows (an uncaught one, a failed import, a raw error name), if any."""
    shown = await page.locator('[data-testid="stException"]').all_inner_texts()
    body = await page.locator('[data-testid="stMain"]').inner_text()
    return [text[:300] for text in shown] + EXCEPTION_TEXT.findall(body)
