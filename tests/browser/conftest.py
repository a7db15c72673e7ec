"""Fixtures for tests in a real browser: a Jupyter server, Chromium, notebook pages.

    @pytest.mark.browser
    @pytest.mark.parametrize("jupyter_server", ["lab", "notebook"], indirect=True)
    def test_x(open_notebook):
        nb = open_notebook("x.ipynb", make_notebook("1 + 1"))
        nb.run_all().wait()
        nb.wait_text("2")

`jupyter_server` is JupyterLab unless parametrized; `open_notebook(name, nb=None, *,
kernel=True)` opens a notebook in a new page of the test's browser context and returns a
`jupyter_pages.NotebookPage`. Tests marked `browser` are skipped only when
/usr/bin/chromium is missing. Screenshots go to test-artifacts/browser/ (one per open
page also when a test fails).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from jupyter_pages import (
    CHROMIUM,
    JupyterServer,
    NotebookOpener,
    artifact_name,
    launch_browser,
    start_server,
)
from playwright.sync_api import Browser, BrowserContext, sync_playwright


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a real Jupyter server in Chromium (needs /usr/bin/chromium)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("RXNB_REQUIRE_BROWSER"):  # CI installs chromium: never skip there
        raise pytest.UsageError(f"RXNB_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (apt-get install -y chromium)")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Let fixtures see whether their test failed (for failure screenshots).
    report = yield
    if report.failed:
        item.stash[_failed] = True
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture
def jupyter_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JupyterServer]:
    """A fresh `jupyter lab` (default) or `jupyter notebook` (param "notebook")."""
    flavor = getattr(request, "param", "lab")
    server = start_server(flavor, tmp_path / f"jupyter-{flavor}")
    yield server
    server.stop()


@pytest.fixture
def open_notebook(
    request: pytest.FixtureRequest, browser_context: BrowserContext, jupyter_server: JupyterServer
) -> Iterator[NotebookOpener]:
    """`open_notebook(name, nb=None, *, kernel=True)` -> NotebookPage, in a new page."""
    opener = NotebookOpener(browser_context, jupyter_server, artifact_name(request.node.name))
    yield opener
    if request.node.stash.get(_failed, False):
        opener.screenshot_all("failure")
