import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def page(transactional_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh Chromium page. Function-scoped on purpose: Playwright's sync API runs an
    event loop in this thread, which must start only after the test database is set up
    (and is why the ORM calls around it need DJANGO_ALLOW_ASYNC_UNSAFE)."""
    if not shutil.which(CHROMIUM):
        if os.environ.get("HERALD_REQUIRE_BROWSER"):
            pytest.fail(f"HERALD_REQUIRE_BROWSER is set but there is no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}: run `make browser`")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()
        # While Playwright's loop runs, the ORM in this thread gets connections of its
        # own; close them here, or PostgreSQL cannot drop the test database.
        connections.close_all()
