"""Headless Chromium for the browser tests, and the session's real NocoDB.

Debian's `chromium` and `chromium-driver` (scripts/ensure-chromium installs them as root);
without them the tests skip, saying so. Every test here is marked `browser`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# The integration suite's server fixtures, shared rather than copied (one NocoDB per session
# per directory: a browser-only run starts its own).
from tests.integration.conftest import clean_table, nocodb  # noqa: F401

HERE = Path(__file__).resolve().parent
FAILURE_SCREENSHOT = Path(tempfile.gettempdir()) / "nocodb-guard-browser-failure.png"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container: the sandbox needs user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything in this directory `browser` (so `-m "not browser"` works)."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def browser(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium (own profile, so no state leaks between tests).

    When the test fails, what the browser showed last is saved to FAILURE_SCREENSHOT.
    """
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(
            "Chromium is not installed and could not be: run scripts/ensure-chromium as root "
            "(apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(60)
    failures = request.session.testsfailed
    try:
        yield chrome
        if request.session.testsfailed > failures:
            chrome.save_screenshot(str(FAILURE_SCREENSHOT))
    finally:
        chrome.quit()
