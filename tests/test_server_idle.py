"""An idle server costs almost nothing: one Chromium tab resting on a page, nothing touched.

The server is started as README.md starts it (tests/_server.py), so what is measured is
what a user's server does: its file watcher, timers that rerun a page, and the work each
script run ends with. For each page of the app's navigation a tab is opened, left until
the page's script run has ended, and the server's CPU time (all its threads, from
/proc) is read over 20 s. The budget is 2 CPU-seconds per 20 s (a tenth of one core);
the figures go to test-artifacts/server-idle-cpu.json.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from _server import (ARTIFACTS, CHROMIUM_FLAGS, AppServer, app_pages, chromium_path, error_text, settled,
                     sidebar_pages)

WINDOW_S = 20.0
BUDGET_CPU_S = 2.0
REST_S = 3.0  # after the run ends: a page that reruns on a timer has done so by then
PAGES = app_pages()


@pytest.fixture(scope="module")
def server(test_model, tmp_path_factory):
    app = AppServer(tmp_path_factory.mktemp("idle") / "streamlit.log", env={"FACEMOOD_MODEL": str(test_model)})
    try:
        yield app.wait_healthy()
    finally:
        app.stop()


async def idle_cpu(server: AppServer, path: str) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                                   args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"{server.url}/{path}", timeout=300_000)
            await page.locator("h1").first.wait_for(timeout=300_000)
            await settled(page)
            await page.wait_for_timeout(REST_S * 1000)
            before = server.cpu_seconds()
            await page.wait_for_timeout(WINDOW_S * 1000)
            used = server.cpu_seconds() - before
            return {"cpu_s": round(used, 2), "window_s": WINDOW_S, "nav": await sidebar_pages(page),
                    "errors": await error_text(page)}
        finally:
            await browser.close()


@pytest.mark.parametrize("path,title", PAGES, ids=[title for _path, title in PAGES])
def test_an_idle_tab_costs_the_server_almost_no_cpu(server, path, title):
    figures = asyncio.run(idle_cpu(server, path))

    ARTIFACTS.mkdir(exist_ok=True)
    record = ARTIFACTS / "server-idle-cpu.json"
    known = json.loads(record.read_text()) if record.exists() else {}
    known[title] = figures
    record.write_text(json.dumps(known, indent=2))

    assert figures["nav"] == [t for _p, t in PAGES], figures
    assert not figures["errors"], figures
    assert figures["cpu_s"] < BUDGET_CPU_S, (
        f"an idle {title} tab cost the server {figures['cpu_s']} CPU-s in {WINDOW_S:.0f} s "
        f"(budget {BUDGET_CPU_S}):\n{server.tail()}")
