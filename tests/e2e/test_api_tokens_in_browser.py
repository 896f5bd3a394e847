"""API tokens in Chromium: a marketer makes a token on the API tokens page, reads it off the
page once, and a program calling the API over real HTTP with it is let in; a reload does not
show it again; revoking it on the page (confirmed) shuts the program out."""

from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from playwright.sync_api import expect

from api.models import ApiToken
from audit.models import AuditEvent
from tests.e2e.test_dashboard_accessibility import assert_accessible
from tests.e2e.test_dashboard_walk import shot, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def api_status(base: str, token: str) -> int:
    """What GET /api/v1/token answers a program holding `token`, over real HTTP."""
    answer = requests.get(
        f"{base}/api/v1/token", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return answer.status_code


def test_a_token_made_in_the_page_works_once_read_and_stops_when_revoked(
    page: Any, live_server: Any, marketer: User
) -> None:
    base = live_server.url
    sign_in(page, base, marketer)
    page.click("nav >> text=API tokens")
    page.wait_for_url(f"{base}/api-tokens/")
    expect(page.locator("#id_expires_in_days")).to_have_value("90")
    page.fill("#id_name", "Shop checkout")
    page.check("input[name=scopes][value='contacts:read']")
    page.check("input[name=scopes][value='campaigns:read']")
    page.click("#create-token")

    page.wait_for_selector("#new-token")
    expect(page.locator("#new-token")).to_contain_text("it will not be shown again")
    expect(page.locator("#new-token button[data-copy]")).to_be_visible()  # the script ran
    text = page.input_value("#new-token-text")
    assert text.startswith("hrld_")
    assert text not in page.url
    assert_accessible(page, "a token just made")
    shot(page, "api-token-made")
    page.set_viewport_size({"width": 375, "height": 800})  # a phone: nothing pushes it wide
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shot(page, "api-token-made-phone")
    assert api_status(base, text) == 200
    row = page.locator("#token-table tbody tr").first
    expect(row).to_contain_text("Shop checkout")
    expect(row.locator(".token-state")).to_have_text("active")

    page.reload()
    expect(page.locator("#token-table")).to_contain_text("Shop checkout")
    expect(page.locator("#new-token")).to_have_count(0)
    assert text not in page.content()
    assert ApiToken.objects.count() == 1  # the reload made no second token

    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    row.locator("button", has_text="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("Revoked “Shop checkout”")
    assert asked and asked[0].startswith("Revoke “Shop checkout”?")
    expect(page.locator("#token-table .token-state").first).to_contain_text("revoked")
    assert api_status(base, text) == 401
    shot(page, "api-token-revoked")
    made, revoked = (
        AuditEvent.objects.filter(action=action, actor=marketer).count()
        for action in (AuditEvent.Action.API_TOKEN_CREATED, AuditEvent.Action.API_TOKEN_REVOKED)
    )
    assert (made, revoked) == (1, 1)


def test_dismissing_the_confirmation_keeps_the_token(
    page: Any, live_server: Any, marketer: User
) -> None:
    _, text = ApiToken.objects.issue(marketer, "CRM sync", ["contacts:read"], 30)
    base = live_server.url
    sign_in(page, base, marketer)
    page.goto(f"{base}/api-tokens/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("#token-table button", has_text="Revoke").click()
    page.wait_for_timeout(300)  # a submitted form would have left the page by now
    expect(page.locator("#token-table .token-state")).to_have_text("active")
    assert api_status(base, text) == 200
