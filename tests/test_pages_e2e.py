"""Every page in Chromium, as a user sees it: nothing cut, hidden or glaring, and signs of work.

One server, started as README.md starts it (``tests/_server.py``); Debian's Chromium
(``/usr/bin/chromium``) driven by Playwright, headless; nothing is downloaded. The checks
read the page's DOM, not its pixels:

* text that does not fit is cut by the browser (an ellipsis), and then the element's
  ``scrollWidth`` exceeds its ``clientWidth``: download buttons, metric numbers;
* a table that hides columns scrolls sideways: its scroller's ``scrollWidth`` exceeds
  its ``clientWidth``;
* charts are SVG (Vega): their axis and legend labels are ``<text>`` elements that can
  be read, counted and measured;
* the figures are PNGs: their corners are transparent (no white box on a dark page);
* script runs are messages the page sends on its websocket (``BackMsg.rerun_script``):
  counted, they show whether a page reruns on a timer.

Screenshots of every page, 1280 and 390 px wide, light and dark, go to ``test-artifacts/``.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from _server import ARTIFACTS, CHROMIUM_FLAGS, AppServer, chromium_path, serving
from conftest import ROOT, require

FACES = ROOT.parent / "shared" / "data" / "faces"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
WAIT_S = 300          # TensorFlow's first import and the first analysis, on a busy two-core machine
TRAINING_S = 600      # a one-epoch training of the small model on 256 faces, in its own process
WIDTHS = (1280, 390)
THEMES = ("light", "dark")

IDLE_JS = """() => document.querySelector('[data-testid="stApp"]')
    ?.getAttribute('data-test-script-state') === 'notRunning'"""
# The visible elements a selector finds, and the text of those the browser cut: the text
# overflows the element or one of the boxes around it (up to ``levels`` up), which clips it
# (with an ellipsis) instead of growing.
CUT_JS = """([selector, levels]) => {
    const shown = [...document.querySelectorAll(selector)].filter(e => e.offsetParent !== null);
    const overflows = (e) => {
        for (let box = e, up = 0; box && up <= levels; box = box.parentElement, up++)
            if (box.scrollWidth > box.clientWidth + 1) return true;
        return false;
    };
    return {shown: shown.length, cut: shown.filter(overflows).map(e => e.innerText.trim())};
}"""
# Every data table (glide grid): how much wider its content is than what it shows.
TABLES_JS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')].map(frame => {
    const scroller = frame.querySelector('.dvn-scroller');
    return {hidden: scroller ? scroller.scrollWidth - scroller.clientWidth : null,
            headers: [...frame.querySelectorAll('[role="columnheader"]')].map(h => h.innerText.trim())};
})"""
# Every Vega chart's axis and legend labels, with their boxes (to see overlaps and cuts).
CHARTS_JS = """() => {
    // Vega hides a label that would overlap another by making it transparent: such labels are left out.
    const shown = (t) => parseFloat(getComputedStyle(t).opacity) > 0 && t.getAttribute('opacity') !== '0';
    const boxes = (root, selector) => [...root.querySelectorAll(selector)].filter(shown).map(t => {
        const b = t.getBoundingClientRect();
        return {text: t.textContent, top: b.top, bottom: b.bottom, left: b.left, right: b.right};
    });
    return [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map(chart => {
        const svg = chart.querySelector('svg');
        const box = svg ? svg.getBoundingClientRect() : null;
        return {axes: [...chart.querySelectorAll('g.role-axis')].map(axis => ({
                    labels: boxes(axis, 'g.role-axis-label text')})),
                legend: boxes(chart, 'g.role-legend-label text'),
                svg: box && {left: box.left, right: box.right, top: box.top, bottom: box.bottom},
                container: chart.getBoundingClientRect().right};
    });
}"""
# Records, from the page's start, whether these ever appeared: the analysis's progress bar,
# and the prompt for photos after photos were given.
WATCH_JS = """window.__seen = {progress: [], prompt_after_upload: false};
new MutationObserver(() => {
    for (const bar of document.querySelectorAll('[data-testid="stProgress"]')) {
        const text = bar.innerText.trim();
        if (text && !window.__seen.progress.includes(text)) window.__seen.progress.push(text);
    }
}).observe(document, {subtree: true, childList: true, characterData: true});"""


# --- helpers ----------------------------------------------------------------------------


def rerun_messages(page) -> list[str]:
    """A list that fills with the kind of each script run the page asks for: "full" or
    "fragment" (a fragment's rerun, e.g. on its timer).

    Playwright's synchronous API hands on events only while one of its calls runs: wait with
    ``page.wait_for_timeout``, not ``time.sleep``, or the list does not fill."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    runs: list[str] = []

    def sent(payload):
        if isinstance(payload, str):
            return
        message = BackMsg()
        try:
            message.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - not a BackMsg: nothing to count
            return
        if message.WhichOneof("type") == "rerun_script":
            runs.append("fragment" if message.rerun_script.fragment_id else "full")

    page.on("websocket", lambda socket: socket.on("framesent", sent))
    return runs


def wait_idle(page, timeout: float = WAIT_S) -> None:
    page.wait_for_function(IDLE_JS, timeout=timeout * 1000)


def screenshot(page, name: str) -> Path:
    """The whole page (Streamlit scrolls inside its main block: the window grows to fit it)."""
    width = page.viewport_size["width"]
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": width, "height": min(max(height + 40, 800), 9000)})
    page.wait_for_timeout(1000)  # charts and images settle to the new size
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": width, "height": 900})
    return path


def wait_charts(page, count: int) -> None:
    """Until ``count`` charts are drawn (Vega draws after the script run, in the browser)."""
    page.wait_for_function("""(count) => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
        .filter(c => c.querySelector('g.role-axis-label text')).length >= count""", arg=count)


def cut_texts(page, selector: str, expected: int, levels: int = 3) -> list[str]:
    """The texts cut among the ``expected`` elements that ``selector`` finds (all of them must show)."""
    # A rerun redraws elements after the page looked idle: wait for them to show, then measure.
    try:
        page.wait_for_function(f"(args) => ({CUT_JS})(args).shown >= {expected}", arg=[selector, levels],
                               timeout=WAIT_S * 1000)
    except Exception:  # noqa: BLE001 - the assertion below says what was found instead
        pass
    found = page.evaluate(CUT_JS, [selector, levels])
    assert found["shown"] == expected, f"{selector}: {found['shown']} shown, {expected} expected"
    return found["cut"]


def overlapping(labels: list[dict]) -> list[tuple[str, str]]:
    """Pairs of axis labels whose boxes overlap (one written over the other)."""
    pairs = []
    for a, b in zip(labels, labels[1:]):
        vertical = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
        horizontal = min(a["right"], b["right"]) - max(a["left"], b["left"])
        if vertical > 1 and horizontal > 1:
            pairs.append((a["text"], b["text"]))
    return pairs


def png_corners_alpha(data: bytes) -> list[int]:
    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
        w, h = rgba.size
        return [rgba.getpixel(xy)[3] for xy in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))]


def open_page(browser, server, path: str, width: int = 1280, theme: str = "light", init: str | None = None):
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=theme)
    page = context.new_page()
    page.set_default_timeout(WAIT_S * 1000)
    if init:
        page.add_init_script(init)
    runs = rerun_messages(page)
    page.goto(f"{server.url}/{path}", timeout=WAIT_S * 1000)
    page.locator("h1").first.wait_for()
    return context, page, runs


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory, test_model):
    """The server's models folder (the shipped model, and a copy to compare it with), runs
    folder and a data folder for a short training."""
    root = tmp_path_factory.mktemp("pages-e2e")
    models = root / "models"
    models.mkdir()
    for name in ("facemood-vgg", "other"):
        shutil.copy(test_model, models / f"{name}.keras")
        shutil.copy(test_model.with_suffix(".json"), models / f"{name}.json")
    (root / "data").mkdir()
    return {"root": root, "models": models, "data": root / "data", "runs": root / "runs"}


@pytest.fixture(scope="module")
def server(folders):
    ARTIFACTS.mkdir(exist_ok=True)
    env = {"FACEMOOD_MODELS_DIR": str(folders["models"]), "FACEMOOD_RUNS_DIR": str(folders["runs"]),
           "FACEMOOD_MODEL": str(folders["models"] / "facemood-vgg.keras"),
           "FACEMOOD_DATA_DIRS": str(folders["data"])}
    with serving(AppServer(folders["root"] / "streamlit.log", env=env), "pages-e2e-server.log") as app:
        yield app


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


# --- Home ---------------------------------------------------------------------------------


def test_home_card_and_a_confusion_matrix_that_fits_a_phone(server, browser):
    for width in WIDTHS:
        context, page, _ = open_page(browser, server, "", width=width)
        try:
            page.get_by_role("heading", name="Model: facemood-vgg").wait_for()
            page.get_by_text("Confusion matrix (PrivateTest)").wait_for()
            wait_idle(page)
            assert not page.locator('[data-testid="stException"]').count()
            assert not cut_texts(page, '[data-testid="stMetricValue"] > div', 8), width
            wait_charts(page, 1)
            charts = page.evaluate(CHARTS_JS)
            heat = [c for c in charts if len(c["axes"]) == 2]
            assert len(heat) == 1, charts
            # Both axes name all seven emotions, no label over another, and the chart fits the page.
            for axis in heat[0]["axes"]:
                assert sorted(label["text"] for label in axis["labels"]) == sorted(LABELS), axis
            assert heat[0]["svg"]["right"] <= heat[0]["container"] + 1, heat[0]
            main = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                            return [m.scrollWidth, m.clientWidth]; }""")
            assert main[0] <= main[1], f"the Home page scrolls sideways at {width} px: {main}"
        finally:
            context.close()


# --- Image --------------------------------------------------------------------------------


def test_image_page_shows_progress_then_everything_uncut(server, browser):
    photos = [require(FACES / "deepface_couple.jpg"), require(FACES / "aind_obamas4.jpg")]
    context, page, _ = open_page(browser, server, "image", init=WATCH_JS)
    try:
        prompt = page.get_by_text("Upload photos or choose a sample to see the emotions on every face.")
        prompt.wait_for()
        wait_idle(page)
        page.locator('input[type="file"]').set_input_files([str(p) for p in photos])
        page.get_by_role("button", name="Results JSON").nth(1).wait_for()
        wait_idle(page)
        seen = page.evaluate("window.__seen")
        # While they were analysed, a progress bar said so, photo by photo; now it is gone, and so
        # is the prompt.
        assert any(re.match(r"Finding the faces and reading their emotions: .+ \(photo 1 of 2\)", text)
                   for text in seen["progress"]), seen
        assert not page.locator('[data-testid="stProgress"]').count()
        assert not prompt.count()
        assert not page.locator('[data-testid="stException"]').count()

        # Download buttons: the three, whole labels, for each photo.
        for label in ("Annotated PNG", "Results CSV", "Results JSON"):
            assert page.get_by_role("button", name=label).count() == 2
        assert not cut_texts(page, '[data-testid="stDownloadButton"] button p', 6), "download labels cut"
        # Results tables: all fourteen columns, none hidden.
        # The grid writes its header cells after it has drawn itself, a moment after the run.
        page.wait_for_function(f"() => ({TABLES_JS})().filter(t => t.headers.length).length >= 2")
        tables = page.evaluate(TABLES_JS)
        assert len(tables) == 2 and all(t["hidden"] is not None and t["hidden"] <= 1 for t in tables), tables
        assert all(t["headers"] == ["face", "label", "score", "x", "y", "w", "h", *LABELS] for t in tables), tables
        # Bar charts: every face's chart names all seven emotions, one under another.
        faces = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
        count = sum(int(caption.split(": ")[1].split()[0]) for caption in faces)
        wait_charts(page, count)
        charts = page.evaluate(CHARTS_JS)
        bars = [c for c in charts if any(sorted(l["text"] for l in a["labels"]) == sorted(LABELS)
                                         for a in c["axes"])]
        assert len(bars) == len(charts) == count >= 3, (faces, charts)
        for chart in bars:
            axis = next(a for a in chart["axes"] if len(a["labels"]) == len(LABELS))
            assert [l["text"] for l in axis["labels"]] == LABELS
            assert not overlapping(axis["labels"]), axis
    finally:
        context.close()


# --- Training -----------------------------------------------------------------------------


def test_training_compare_view_and_figures_for_both_themes(server, browser, folders):
    for theme in THEMES:
        context, page, runs = open_page(browser, server, "training", theme=theme)
        try:
            page.get_by_text("Misclassified PrivateTest faces").first.wait_for()
            wait_idle(page)
            # The figures: transparent around (no white box on a dark page). The script can be
            # idle before the browser has mounted the last image element: wait for it (a figure
            # that never comes still fails below).
            figures = '[data-testid="stImage"] img'
            page.wait_for_function(f"() => document.querySelectorAll('{figures}').length >= 3", timeout=30_000)
            sources = page.locator(figures).evaluate_all("imgs => imgs.map(i => i.src)")
            assert len(sources) == 3, sources  # curves, confusion, misclassified faces
            for source in sources:
                assert png_corners_alpha(page.request.get(source).body()) == [0, 0, 0, 0], source
            # Idle, the page reruns nothing on a timer (the list does count: the page's first run is in it).
            assert "full" in runs, runs
            before = len(runs)
            page.wait_for_timeout(6000)
            assert runs[before:] == [], runs
        finally:
            context.close()

    context, page, _ = open_page(browser, server, "training")
    try:
        page.get_by_text("Misclassified PrivateTest faces").first.wait_for()
        page.get_by_label("Compare with").click()
        page.get_by_role("option", name="other.keras").click()
        page.get_by_text("Misclassified PrivateTest faces").nth(1).wait_for()
        wait_idle(page)
        values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
        card = json.loads((folders["models"] / "other.json").read_text())
        private = f'{card["metrics"]["PrivateTest"]["accuracy"]:.1%}'  # both copies of the one model
        assert values.count(private) == 2, (private, values)
        assert not cut_texts(page, '[data-testid="stMetricValue"] > div', 8), "metric numbers cut (compare view)"
        assert not cut_texts(page, '[data-testid="stMetricLabel"] p', 8), "metric labels cut (compare view)"
        # The grid writes its header cells after it has drawn itself, a moment after the run.
        page.wait_for_function(f"() => ({TABLES_JS})().filter(t => t.headers.length).length >= 2")
        tables = page.evaluate(TABLES_JS)
        assert len(tables) == 2 and all(t["hidden"] is not None and t["hidden"] <= 1 for t in tables), tables
        screenshot(page, "pages-training-compare-1280-light")
    finally:
        context.close()


def test_a_training_reruns_on_a_timer_only_while_it_runs(server, browser, folders, fer2013_slice):
    data = shutil.copy(fer2013_slice, folders["data"] / "slice.csv")
    context, page, runs = open_page(browser, server, "training")
    try:
        page.get_by_role("tab", name="Train a model").click()
        for role, name, value in (("textbox", "Path of a FER2013 CSV", str(data)), ("spinbutton", "Epochs", "1"),
                                  ("textbox", "Model name", "e2e-quick")):
            field = page.get_by_role(role, name=name, exact=role == "spinbutton")
            field.fill(value)
            field.press("Enter")
            wait_idle(page)
        page.get_by_role("button", name="Start training").click()
        page.get_by_role("button", name="Stop").wait_for()
        # While it runs, the progress is redrawn on a timer (a fragment's reruns), once the page's
        # full run after Start has ended...
        started = time.monotonic()
        while time.monotonic() - started < WAIT_S and runs.count("fragment") < 3:
            page.wait_for_timeout(500)
        assert runs.count("fragment") >= 3, runs
        # ...with both live charts' legends whole: every series named, nothing cut or outside.
        page.get_by_text("Training e2e-quick").wait_for()
        legends = []
        deadline = time.monotonic() + TRAINING_S
        while time.monotonic() < deadline and not page.get_by_text("Training e2e-quick:").count():
            drawn = [c for c in page.evaluate(CHARTS_JS) if c["legend"]]
            if len(drawn) == 2 and all(len(c["legend"]) == 3 for c in drawn):
                legends = drawn
                if page.get_by_text(re.compile(r"^epoch 1/1 · batch")).count():  # lines on the charts
                    screenshot(page, "pages-training-live-1280-light")
                    break
            page.wait_for_timeout(500)
        assert len(legends) == 2, legends
        for chart in legends:
            names = [label["text"] for label in chart["legend"]]
            assert sorted(names) == sorted(["within epoch", "training", "validation"]), names
            assert all(label["right"] <= chart["svg"]["right"] + 1 for label in chart["legend"]), chart
        # When it ends, the page says how it went, and the timer stops.
        page.get_by_text("Training e2e-quick:").first.wait_for(timeout=TRAINING_S * 1000)
        wait_idle(page)
        page.wait_for_timeout(3000)
        before = len(runs)
        page.wait_for_timeout(6000)
        assert runs[before:] == [], runs
        assert not page.locator('[data-testid="stException"]').count()
    finally:
        context.close()


# --- screenshots --------------------------------------------------------------------------


def test_screenshots_of_every_page(server, browser):
    """Every page at 1280 and 390 px, light and dark, into test-artifacts/ (to be looked at);
    at 390 px no page scrolls sideways."""
    photo = require(FACES / "deepface_couple.jpg")
    taken = []
    for width in WIDTHS:
        for theme in THEMES:
            for path, name in (("", "home"), ("image", "image"), ("training", "training"), ("webcam", "webcam")):
                context, page, _ = open_page(browser, server, path, width=width, theme=theme)
                try:
                    if name == "home":
                        wait_charts(page, 1)
                    if name == "image":
                        page.locator('input[type="file"]').set_input_files(str(photo))
                        page.get_by_role("button", name="Results JSON").wait_for()
                        wait_charts(page, 2)
                    if name == "training":
                        page.get_by_text("Misclassified PrivateTest faces").first.wait_for()
                    wait_idle(page)
                    assert not page.locator('[data-testid="stException"]').count(), (name, width, theme)
                    main = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                                    return [m.scrollWidth, m.clientWidth]; }""")
                    assert main[0] <= main[1], f"{name} scrolls sideways at {width} px ({theme}): {main}"
                    taken.append(screenshot(page, f"pages-{name}-{width}-{theme}").name)
                finally:
                    context.close()
    (ARTIFACTS / "pages-e2e-screenshots.json").write_text(json.dumps(taken, indent=2) + "\n")
    assert len(taken) == 16
