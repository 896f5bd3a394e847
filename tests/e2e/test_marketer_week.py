"""A marketer's and an approver's week, in Chromium, without the admin.

The marketer saves a draft, leaves, finds it again by its status and by its name, edits
it, duplicates it, sends a test from its page and submits it; the approver reads the
rendered samples and rejects it with a reason; the marketer reads the reason on home,
edits and resubmits; the approver approves. The open campaign page turns to Sending and
then Completed without a reload as the engine starts and sends it, and a contact search
leads to a contact's page listing the message just sent. Screenshots go to
tests/artefacts/.
"""

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from campaigns import tasks
from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging import tasks as messaging_tasks
from messaging.models import Message, ProviderAccount
from tests.conftest import own_test_number, reschedule
from tests.e2e.test_dashboard_walk import shot, sign_in, sign_out

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

S = Campaign.Status
NAME = "Winter offer"
FIRST_BODY = "Hi {{first_name}}, our winter offer is on"
EDITED_BODY = "Hi {{first_name}}, our winter offer ends Sunday"
REASON = "Say which Sunday: give the date"
FINAL_BODY = "Hi {{first_name}}, our winter offer ends Sunday 13 December"


def status_on_page(page: Any) -> Any:
    return page.locator("[data-field=campaign_status]").first


def save_a_scheduled_draft(page: Any, base: str, account: ProviderAccount) -> Campaign:
    """The builder: a draft for tomorrow noon (London), so approving schedules it."""
    page.click("nav >> text=New campaign")
    page.fill("#id_name", NAME)
    page.select_option("#id_provider_account", str(account.pk))
    page.fill("#id_body", FIRST_BODY)
    page.check("label.choice:has-text('Newsletter') input")
    tomorrow = timezone.now().astimezone(ZoneInfo("Europe/London")) + timedelta(days=1)
    page.fill("#id_scheduled_at_0", tomorrow.strftime("%Y-%m-%d"))
    page.fill("#id_scheduled_at_1", "12:00")
    expect(page.locator("#preview-sendable")).to_have_text("5", timeout=10_000)
    page.click("button[value=save]")
    page.wait_for_selector("[data-field=campaign_status]")
    campaign = Campaign.objects.get(name=NAME)
    assert campaign.status == S.DRAFT and campaign.scheduled_at is not None
    return campaign


def find_it_again(page: Any, base: str, campaign: Campaign) -> None:
    """From home: the campaign list's Draft filter, then a search by name."""
    page.goto(f"{base}/")
    page.click("nav >> text=Campaigns")
    page.click(".status-filters >> text=Draft")
    page.wait_for_url(re.compile(r"status=draft"))
    expect(page.locator("#campaign-table")).to_contain_text(NAME)
    shot(page, "week-list-drafts")
    page.goto(f"{base}/campaigns/")
    page.fill("#campaign-q", "winter")
    page.click("form.campaign-search button")
    page.wait_for_url(re.compile(r"q=winter"))
    rows = page.locator("#campaign-table tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator(f"a:has-text('{NAME}')").click()
    page.wait_for_url(f"**/campaigns/{campaign.pk}/")


def edit_duplicate_and_test(page: Any, base: str, campaign: Campaign) -> None:
    page.click("#operation-edit")
    page.fill("#id_body", EDITED_BODY)
    page.click("button[value=save]")
    page.wait_for_url(f"**/campaigns/{campaign.pk}/")
    assert Campaign.objects.get(pk=campaign.pk).body == EDITED_BODY

    page.click("#operation-duplicate")
    copy = Campaign.objects.get(name=f"{NAME} (copy)")
    page.wait_for_url(f"**/campaigns/{copy.pk}/")
    assert copy.status == S.DRAFT and copy.body == EDITED_BODY
    assert set(copy.groups.all()) == set(campaign.groups.all())
    shot(page, "week-duplicate")

    page.goto(f"{base}/campaigns/{campaign.pk}/")
    page.click("#operation-test")
    page.check("input[name=number] >> nth=0")  # the marketer's own test number
    page.click("button:has-text('Send test')")
    expect(page.locator("[role=status]")).to_contain_text("sent")
    assert "our winter offer ends Sunday" in page.inner_text("blockquote.sample")
    assert Campaign.objects.get(pk=campaign.pk).test_sent_at is not None
    shot(page, "week-test-sent")


def submit_from_its_page(page: Any, base: str, campaign: Campaign) -> None:
    page.goto(f"{base}/campaigns/{campaign.pk}/")
    page.click("form.action-form button:has-text('Submit for approval')")
    expect(status_on_page(page)).to_have_text("pending approval")
    assert Campaign.objects.get(pk=campaign.pk).status == S.PENDING_APPROVAL


def reject_with_a_reason(page: Any, campaign: Campaign) -> None:
    page.click("nav >> text=Approval queue")
    samples = page.locator(f"#samples-{campaign.pk}")
    expect(samples).to_contain_text("Hi Name0, our winter offer ends Sunday")
    assert "{{" not in samples.inner_text()  # rendered, never the raw template
    expect(page.locator(f"#test-{campaign.pk}")).to_contain_text("Sent by mia")
    shot(page, "week-approval-queue")
    page.fill(f"#reason-{campaign.pk}", REASON)
    page.click(f"form:has(#reason-{campaign.pk}) button:has-text('Reject')")
    page.wait_for_selector(".messages")
    rejected = Campaign.objects.get(pk=campaign.pk)
    assert rejected.status == S.DRAFT and rejected.rejection_reason == REASON


def read_the_reason_edit_and_resubmit(page: Any, campaign: Campaign) -> None:
    reason = page.locator("#rejected")
    expect(reason).to_contain_text(REASON)
    shot(page, "week-home-rejected")
    reason.locator("text=Edit it").click()
    page.wait_for_url(f"**/campaigns/{campaign.pk}/edit/")
    page.fill("#id_body", FINAL_BODY)
    page.click("button[value=submit]")
    page.wait_for_url(f"**/campaigns/{campaign.pk}/")
    assert Campaign.objects.get(pk=campaign.pk).status == S.PENDING_APPROVAL


def approve(page: Any, campaign: Campaign) -> None:
    page.click("nav >> text=Approval queue")
    expect(page.locator(f"#samples-{campaign.pk}")).to_contain_text("ends Sunday 13 December")
    page.click(f"button[aria-label='Approve {NAME}']")
    page.wait_for_selector(".messages")
    assert Campaign.objects.get(pk=campaign.pk).status == S.SCHEDULED  # tomorrow, noon


def watch_it_send_without_reload(page: Any, base: str, campaign: Campaign) -> None:
    """Noon comes (the clock moved on to the schedule); a worker's run takes two steps,
    start then send, taken here one at a time so the page can be seen between them."""
    page.goto(f"{base}/campaigns/{campaign.pk}/")
    expect(status_on_page(page)).to_have_text("scheduled")
    page.evaluate("window.__notReloaded = true")

    reschedule(Campaign.objects.get(pk=campaign.pk), timezone.now())
    assert Campaign.objects.get(pk=campaign.pk).start()
    expect(status_on_page(page)).to_have_text("sending", timeout=15_000)
    shot(page, "week-sending")
    tasks.run_campaign(campaign.pk)
    messaging_tasks.poll_statuses()
    expect(status_on_page(page)).to_have_text("completed", timeout=15_000)
    expect(page.locator("[data-count=delivered]").first).to_have_text("5", timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True  # the same page, redrawn in place
    shot(page, "week-completed")


def find_the_contact_and_its_message(page: Any, base: str, campaign: Campaign) -> None:
    page.click("nav >> text=Contacts")
    page.fill("#contact-q", "07911 200000")  # Name0's number, typed the national way
    page.click("form[role=search] button")
    page.locator("#contact-results a:has-text('Name0')").click()
    messages = page.locator("#contact-messages")
    expect(messages).to_contain_text(NAME)
    row = messages.locator(f"tr:has-text('{NAME}')")
    expect(row).to_contain_text("Delivered")
    row.locator(f"a:has-text('{NAME}')").click()
    page.wait_for_url(f"**/campaigns/{campaign.pk}/")
    shot(page, "week-contact-to-campaign")


def test_a_week_of_campaign_work_in_the_dashboard(
    page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    base = live_server.url
    make_contacts(5, Group.objects.create(name="Newsletter"))
    own_test_number(marketer, "+447911123456")

    sign_in(page, base, marketer)
    campaign = save_a_scheduled_draft(page, base, simulator)
    find_it_again(page, base, campaign)
    edit_duplicate_and_test(page, base, campaign)
    submit_from_its_page(page, base, campaign)
    sign_out(page)

    sign_in(page, base, approver)
    reject_with_a_reason(page, campaign)
    sign_out(page)

    sign_in(page, base, marketer)
    read_the_reason_edit_and_resubmit(page, campaign)
    sign_out(page)

    sign_in(page, base, approver)
    approve(page, campaign)
    sign_out(page)

    sign_in(page, base, marketer)
    watch_it_send_without_reload(page, base, campaign)
    sent = Message.objects.filter(campaign=campaign, is_test=False)
    assert sent.count() == 5 and not sent.exclude(status=Message.Status.DELIVERED).exists()
    find_the_contact_and_its_message(page, base, campaign)
