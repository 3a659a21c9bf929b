"""The uploader's whole path in a real browser: the public form, the guard, the public gallery.

A visitor opens the form in Chromium, chooses the politician, attaches a picture and
submits, twice: a new photo of Grace Hopper (approvable) and a cat. One `nocodb-guard
sweep` later, the campaign's public gallery shows Grace Hopper's picture and nothing else,
and the cat's row is gone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import requests
from selenium.webdriver.chrome.webdriver import WebDriver

from nocodb_guard import samples
from tests.browser import visitor
from tests.demo_references import install_demo_references
from tests.integration.conftest import DevServer
from tests.integration.guard_process import (
    CAT,
    GRACE,
    grace_variant,
    guard_env,
    sweep_json,
)

SCREENSHOT = Path(tempfile.gettempdir()) / "nocodb-guard-browser-gallery.png"


def test_a_visitor_uploads_through_the_form_and_only_the_approved_picture_is_shown(
    clean_table: DevServer, browser: WebDriver, tmp_path: Path
) -> None:
    grace = tmp_path / "grace.jpg"
    grace.write_bytes(grace_variant())
    cat = tmp_path / "chelsea.png"
    cat.write_bytes(samples.chelsea_png())
    dashboard = f"{clean_table.url}/dashboard/#/nc"
    form = f"{dashboard}/form/{clean_table.form_uuid}"

    visitor.submit_form(browser, form, GRACE, "browser: grace", grace)
    visitor.submit_form(browser, form, CAT.politician, "browser: cat", cat)
    rows = {row["Title"]: row for row in clean_table.rows()}
    [grace_file] = rows["browser: grace"]["Photo"]
    [cat_file] = rows["browser: cat"]["Photo"]
    references = install_demo_references(tmp_path / "references")
    env = guard_env(clean_table, tmp_path / "state", references)
    code, report = sweep_json(clean_table, env)

    assert code == 0, report
    approved = clean_table.row(rows["browser: grace"]["Id"])
    assert approved is not None
    assert approved["Status"] == "approved"
    assert clean_table.row(rows["browser: cat"]["Id"]) is None
    anonymous = requests.get(f"{clean_table.url}/{cat_file['path']}", timeout=30)
    assert anonymous.status_code != 200
    cards = visitor.gallery_cards(browser, f"{dashboard}/gallery/{clean_table.gallery_uuid}")
    browser.save_screenshot(str(SCREENSHOT))
    [card] = cards
    assert "browser: grace" in card.text
    stored_name = Path(grace_file["path"]).name
    assert any(stored_name in source for source in visitor.picture_sources(card)), SCREENSHOT
