"""The API's browsable docs work in a real browser, under the Content-Security-Policy, from
this server's own files: every route is listed, and a token typed in answers a request."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from api.models import ApiToken
from tests.config.test_production_csp_browser import watch_console
from tests.e2e.conftest import page  # noqa: F401 (the fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_the_docs_list_every_route_and_try_one_with_a_token(
    page: Any,  # noqa: F811 (the fixture)
    live_server: Any,
    marketer: User,
) -> None:
    _token, text = ApiToken.objects.issue(marketer, "docs", ["contacts:read"])
    problems = watch_console(page)
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(live_server.url) else outside.append(request.url)
        ),
    )
    page.goto(f"{live_server.url}/api/v1/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/token" in [p.strip() for p in paths]

    # Authorize with the token, then run GET /api/v1/token from the page.
    page.click("button.authorize")
    page.fill(".auth-container input", text)
    page.click(".auth-btn-wrapper button.authorize")
    page.click("button.btn-done")
    page.locator(".opblock-get", has_text="/api/v1/token").first.click()
    page.click("button.try-out__btn")
    page.click("button.execute")
    page.wait_for_selector(".live-responses-table tbody .response-col_status")
    status = page.locator(".live-responses-table tbody .response-col_status").first.inner_text()
    assert status.strip() == "200"
    assert '"user": "mia"' in page.locator(".live-responses-table").inner_text()
    assert problems == []
    assert outside == []
