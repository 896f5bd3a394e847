"""The open campaign page follows its campaign without a reload: Scheduled, then Completed,
with its actions and history redrawn (never "Scheduled" on a completed campaign)."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from campaigns import tasks
from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging import tasks as messaging_tasks
from messaging.models import ProviderAccount
from tests.conftest import reschedule

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts"


def sign_in(page: Any, base: str, user: User) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f"pw-{user.username}")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Sign out")


def test_the_open_page_turns_from_scheduled_to_completed_without_a_reload(
    page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    base = live_server.url
    group = Group.objects.create(name="Customers")
    make_contacts(3, group)
    campaign = make_campaign(simulator, group)
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now() + timedelta(days=1))
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    assert campaign.status == Campaign.Status.SCHEDULED

    sign_in(page, base, marketer)
    page.goto(f"{base}/campaigns/{campaign.pk}/")
    status = page.locator("#campaign-status")
    expect(status.locator("[data-field=campaign_status]")).to_have_text("scheduled")
    expect(status.locator("button", has_text="Cancel campaign")).to_be_visible()
    expect(page.locator("#campaign-chart")).to_have_text("Nothing delivered yet.")
    page.evaluate("window.heraldNotReloaded = true")

    reschedule(campaign, timezone.now() - timedelta(minutes=1))  # its time has come
    tasks.tick()  # django-q runs inline in tests: started, sent and completed
    messaging_tasks.poll_statuses()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED

    expect(status.locator("[data-field=campaign_status]")).to_have_text("completed", timeout=15_000)
    expect(page.locator("#campaign-status-news")).to_have_text("The campaign is now completed.")
    assert "scheduled" not in status.inner_text().lower()
    expect(status.locator("button", has_text="Cancel campaign")).to_have_count(0)
    expect(status.locator("#operation-duplicate")).to_be_visible()
    history = page.locator("#campaign-history")
    expect(history.locator("td", has_text="complete").first).to_be_visible()
    expect(history.locator("td", has_text="start").first).to_be_visible()
    expect(page.locator("[data-field=status_label]").first).to_have_text("Completed")
    expect(page.locator("[data-count=delivered]").first).to_have_text("3", timeout=15_000)
    expect(page.locator("#campaign-chart")).to_contain_text("3 delivered between")
    expect(page.locator("#campaign-chart svg rect").first).to_be_attached()
    assert page.evaluate("window.heraldNotReloaded") is True
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "dashboard-campaign-live.png"), full_page=True)


def test_the_list_finds_a_draft_by_status_and_search_at_phone_width(
    page: Any,
    live_server: Any,
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
    marketer: User,
) -> None:
    base = live_server.url
    draft = make_campaign(simulator)
    for i in range(3):
        Campaign.objects.create(
            name=f"A rather long campaign name number {i}", provider_account=simulator, body="Hi"
        )
    sign_in(page, base, marketer)
    page.click("nav[aria-label=Main] >> text=Campaigns")
    page.click("nav[aria-label='By status'] >> text=Draft")
    page.fill("#campaign-q", "spr")
    page.click("form.campaign-search button")
    expect(page.locator("#campaign-table tbody tr")).to_have_count(1)
    page.click(f"text={draft.name}")
    page.wait_for_url(f"**/campaigns/{draft.pk}/")

    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{base}/campaigns/")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the campaign list is {overflow}px wider than a phone"
    page.screenshot(path=str(ARTEFACTS / "dashboard-phone-campaign-list.png"), full_page=True)
