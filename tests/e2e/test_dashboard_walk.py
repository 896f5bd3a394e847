"""The dashboard walk in Chromium: build, preview, test, submit; approve; watch it finish.

Screenshots of every page go to tests/artefacts/ (not committed) to be looked at.
"""

import re
from collections.abc import Callable
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
from tests.conftest import own_test_number

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts"


def shot(page: Any, name: str) -> None:
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"dashboard-{name}.png"), full_page=True)


def sign_in(page: Any, base: str, user: User) -> None:
    page.goto(f"{base}/")
    page.wait_for_url("**/accounts/login/**")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f"pw-{user.username}")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Sign out")


def sign_out(page: Any) -> None:
    page.click("form.signout button")
    page.wait_for_url("**/accounts/login/**")


def test_marketer_builds_approver_approves_and_it_completes(
    page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    base = live_server.url
    newsletter = Group.objects.create(name="Newsletter")
    make_contacts(5, newsletter)
    own_test_number(marketer, "+447911123456")

    sign_in(page, base, marketer)
    shot(page, "home-marketer")
    page.click("text=New campaign")
    page.fill("#id_name", "Autumn sale")
    page.select_option("#id_provider_account", str(simulator.pk))
    page.fill("#id_body", "Hi {{first_name|there}}, autumn sale today")
    page.check("label.choice:has-text('Newsletter') input")
    # The live preview counts the audience and prices it as the marketer types.
    expect(page.locator("#preview-sendable")).to_have_text("5", timeout=10_000)
    assert "Hi Name0, autumn sale today" in page.inner_text("#preview-samples")
    shot(page, "builder")

    page.click("button[value=test]")
    page.check("input[name=number] >> nth=0")  # the marketer's own test number
    page.click("text=Send test")
    assert "sent" in page.inner_text("[role=status]")
    shot(page, "test-send")
    campaign = Campaign.objects.get(name="Autumn sale")
    assert campaign.test_sent_at is not None

    page.goto(f"{base}/campaigns/{campaign.pk}/edit/")
    page.click("button[value=submit]")
    page.wait_for_url(f"**/campaigns/{campaign.pk}/")
    assert "Pending approval" in page.inner_text("main")
    shot(page, "campaign-submitted")
    sign_out(page)

    sign_in(page, base, approver)
    page.click("text=Approval queue")
    assert "Autumn sale" in page.inner_text("main")
    shot(page, "approvals")
    page.click("button[aria-label='Approve Autumn sale']")
    page.wait_for_selector(".messages")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED  # django-q runs inline in tests
    tasks.tick()
    messaging_tasks.poll_statuses()

    page.goto(f"{base}/campaigns/{campaign.pk}/")
    expect(page.locator("[data-field=percent_done]").first).to_have_text(
        re.compile(r"^\s*100(\.0+)?\s*$"), timeout=15_000
    )
    # The counters update themselves (every few seconds) as the delivery reports come in.
    expect(page.locator("[data-count=delivered]").first).to_have_text("5", timeout=15_000)
    assert "Completed" in page.inner_text("main")
    assert "5 delivered" in page.inner_text("main")  # the chart's text summary
    shot(page, "campaign-completed")
    page.goto(f"{base}/")
    shot(page, "home-approver")
    # At a phone's width the pages reflow instead of scrolling sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("home", "/"), ("campaign", f"/campaigns/{campaign.pk}/")):
        page.goto(f"{base}{path}")
        shot(page, f"phone-{name}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone"
    page.set_viewport_size({"width": 1280, "height": 800})
    page.click("text=Reports")
    shot(page, "reports")


def test_pause_and_resume_from_the_campaign_page(
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
    campaign.submit(by=marketer)
    # Approved and started, its messages not built yet: what a worker picks up next.
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.SENDING, approved_by=approver, started_at=timezone.now()
    )

    sign_in(page, base, marketer)
    page.goto(f"{base}/campaigns/{campaign.pk}/")
    page.fill("#note-pause", "Typo in the link")
    page.click("form.action-form button:has-text('Pause')")
    page.wait_for_selector(".messages")
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.PAUSED
    assert "Paused" in page.inner_text("main")
    shot(page, "campaign-paused")

    page.click("form.action-form button:has-text('Resume')")
    page.wait_for_selector(".messages")
    resumed = Campaign.objects.get(pk=campaign.pk)
    assert resumed.status == Campaign.Status.COMPLETED  # the wake-up ran the engine inline
    assert resumed.messages.count() == 3
    page.goto(f"{base}/contacts/")
    shot(page, "contacts")
