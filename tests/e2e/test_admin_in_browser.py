"""A marketer and an approver take the demo campaign through the admin in Chromium."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from campaigns import tasks
from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging import tasks as messaging_tasks
from messaging.models import Message, ProviderAccount

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".pytest_cache" / "screenshots"


def log_in(page: Any, base: str, user: User) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f"pw-{user.username}")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def log_out(page: Any) -> None:
    page.click("#logout-form button")
    page.wait_for_selector("text=Logged out")


def press(page: Any, base: str, campaign: Campaign, button: str, note: str = "") -> str:
    page.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/change/")
    page.click(f"a.transition-{button}")
    if note:
        page.fill("#id_note", note)
    page.click("input[name=confirm]")
    return page.inner_text("ul.messagelist")


def test_campaign_goes_from_draft_to_delivered_through_the_admin(
    page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="Newsletter")
    make_contacts(5, group)
    campaign = make_campaign(simulator, group, body="Hi {{first_name}}, sale today")
    base = live_server.url

    log_in(page, base, marketer)
    assert "Pending approval" in press(page, base, campaign, "submit")
    assert page.locator("a.transition-approve").count() == 0  # marketers cannot approve
    log_out(page)

    log_in(page, base, approver)
    assert "Scheduled" in press(page, base, campaign, "approve", note="Go")
    # The test worker runs in sync mode, so the send already happened.
    page.reload()
    assert page.inner_text(".field-status .readonly") == "Completed"
    assert Message.objects.filter(campaign=campaign, status=Message.Status.SENT).count() == 5

    tasks.tick()  # the worker's minute tick collects delivery reports

    messaging_tasks.poll_statuses()
    page.reload()
    assert "Delivered: 5" in page.inner_text(".field-progress")
    history = page.inner_text("#transitions-group")
    for step in ("submit", "approve", "start", "complete"):
        assert step in history
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "campaign-completed.png"), full_page=True)
