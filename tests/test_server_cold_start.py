"""Many people opening the app at the same moment on a freshly started server.

A fresh Streamlit server with a ``pages/`` folder beside app.py starts in its legacy
pages-folder mode; the first visits to a deep link (/image) used to run the page file
without app.py, list every file of ``pages/`` in the sidebar, and race on a rerun done
while a module was being imported (``ImportError: cannot import name '_common' from
'pages'``). Here eight browser sessions open pages at once, as soon as the server
answers, and each must show its page with the app's own navigation and no exception.
"""

from __future__ import annotations

import asyncio

import pytest

from _server import ARTIFACTS, CHROMIUM_FLAGS, AppServer, app_pages, chromium_path, error_text, settled, sidebar_pages

PAGES = app_pages()
TITLES = [title for _path, title in PAGES]
PATHS = [path for path, _title in PAGES]
SESSIONS = 8


@pytest.fixture
def fresh_server(test_model, tmp_path):
    app = AppServer(tmp_path / "streamlit.log", env={"FACEMOOD_MODEL": str(test_model)})
    try:
        yield app.wait_healthy()
    finally:
        app.stop()


async def open_at_once(server: AppServer, paths: list[str]) -> list[dict]:
    """Open every path in its own browser context (its own session) at the same moment."""
    from playwright.async_api import async_playwright

    async def visit(browser, index: int, path: str) -> dict:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        try:
            await page.goto(f"{server.url}/{path}", timeout=300_000)
            await settled(page)
            return {"path": path, "nav": await sidebar_pages(page), "errors": await error_text(page),
                    "heading": (await page.locator("h1").first.inner_text(timeout=30_000)).strip(),
                    "url": page.url}
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"cold-start-failed-{index}.png"))
            raise
        finally:
            await context.close()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                                   args=CHROMIUM_FLAGS)
        try:
            return await asyncio.gather(*(visit(browser, i, path) for i, path in enumerate(paths)))
        finally:
            await browser.close()


@pytest.mark.parametrize("paths", [
    ["image"] * SESSIONS,
    [PATHS[i % len(PATHS)] for i in range(SESSIONS)],
], ids=["all-on-image", "every-page"])
def test_sessions_opening_pages_at_once_on_a_fresh_server_all_work(fresh_server, paths):
    pages = asyncio.run(open_at_once(fresh_server, paths))

    headings = {}
    for seen in pages:
        assert seen["nav"] == TITLES, f"{seen}\n{fresh_server.tail()}"
        assert not seen["errors"], f"{seen}\n{fresh_server.tail()}"
        assert seen["url"].rstrip("/").endswith(seen["path"]), seen  # still on the page it opened
        headings.setdefault(seen["path"], set()).add(seen["heading"])
    # Every session on the same page shows that page (one heading per page), pages differ.
    assert all(len(found) == 1 for found in headings.values()), headings
    assert len({heading for found in headings.values() for heading in found}) == len(headings), headings
    assert "Traceback" not in fresh_server.tail(200)
