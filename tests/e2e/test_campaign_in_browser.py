"""A marketer builds, previews, tests and submits a campaign; an approver approves it from the
queue; the marketer's open page follows the counts to the end. All in Chromium."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from campaigns import tasks
from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging import tasks as messaging_tasks
from messaging.models import Message, ProviderAccount
from tests.conftest import own_test_number

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".pytest_cache" / "screenshots"
BODY = "Hi {{first_name|friend}}, our “spring” sale starts today"
MARKETERS_PHONE = "+447911123456"


def log_in(page: Any, base: str, user: User) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f"pw-{user.username}")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def second_page(page: Any) -> Iterator[Any]:
    """Another person's browser: a context of its own, so its own session cookie."""
    context = page.context.browser.new_context()
    other = context.new_page()
    other.set_default_timeout(15_000)
    yield other
    context.close()


def create_campaign(page: Any, base: str) -> Campaign:
    page.goto(f"{base}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Spring sale")
    page.select_option("#id_provider_account", label="sim")
    page.fill("#id_body", BODY)
    page.select_option("#id_groups_from", label="Newsletter")
    page.click("#id_groups_add")
    page.click("input[name=_continue]")
    page.wait_for_selector("#campaign-preview")
    return Campaign.objects.get(name="Spring sale")


def send_test_to_self(page: Any) -> str:
    page.click("a.test-send")
    page.check("input[name=number] >> nth=0")  # the marketer's own test number
    page.click("input[name=send]")
    return str(page.inner_text("#test-status"))


def submit(page: Any, base: str, campaign: Campaign) -> str:
    page.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/change/")
    page.click("a.transition-submit")
    page.click("input[name=confirm]")
    return str(page.inner_text("ul.messagelist"))


def test_marketer_and_approver_take_a_campaign_from_draft_to_completed(
    page: Any,
    second_page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    make_contacts(5, Group.objects.create(name="Newsletter"))
    own_test_number(marketer, MARKETERS_PHONE)
    base = live_server.url

    log_in(page, base, marketer)
    campaign = create_campaign(page, base)
    assert page.inner_text("#preview-sendable") == "5"
    assert page.inner_text("#preview-cost") == "0.15 GBP"  # 5 messages x 1 segment x 0.03
    assert page.inner_text("#preview-ucs2 mark >> nth=0") == "“"
    assert page.locator("#preview-samples tbody tr").count() == 3
    screenshot(page, "campaign-preview")

    assert send_test_to_self(page) == "Sent"
    screenshot(page, "campaign-test-send")
    assert "Pending approval" in submit(page, base, campaign)
    # The marketer leaves the campaign page open, watching its live counts.
    page.wait_for_selector("#live-counts")

    approving = second_page
    log_in(approving, base, approver)
    approving.goto(f"{base}/admin/campaigns/pendingapproval/")
    row = approving.locator("#result_list tbody tr", has_text="Spring sale")
    assert "0.15 GBP" in row.inner_text()
    assert row.locator("td.field-test_sent").inner_text().startswith("yes")
    screenshot(approving, "approval-queue")
    row.locator("button.approve-button").click()
    assert "approved" in approving.inner_text("ul.messagelist")
    assert approving.locator("#result_list", has_text="Spring sale").count() == 0

    # The test worker runs in sync mode, so approving ran the engine: the marketer's
    # page notices the change by itself and shows the final figures.
    page.wait_for_selector("#final-counts", timeout=20_000)
    assert page.inner_text("#live-status") == "Completed"
    assert page.inner_text("#count-sent") == "5"
    assert page.inner_text("#final-cost") == "0.15 GBP"

    tasks.tick()
    messaging_tasks.poll_statuses()  # delivery reports come in after the end
    page.reload()
    page.wait_for_selector("#live-counts")
    assert page.inner_text("#count-delivered") == "5"
    assert Message.objects.filter(campaign=campaign, status=Message.Status.DELIVERED).count() == 5
    history = page.inner_text("#transitions-group")
    for step in ("test", "submit", "approve", "start", "complete"):
        assert step in history
    screenshot(page, "campaign-live-counts")


def test_approver_rejects_from_the_queue_only_with_a_reason(
    page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="Newsletter")
    make_contacts(2, group)
    campaign = make_campaign(simulator, group, body=BODY)
    campaign.submit(by=marketer)
    base = live_server.url

    log_in(page, base, approver)
    page.goto(f"{base}/admin/campaigns/pendingapproval/")
    row = page.locator("#result_list tbody tr", has_text="Spring")
    reason = row.locator("input.reject-reason")
    row.locator("button.reject-button").click()  # no reason: the browser keeps the form back
    assert reason.evaluate("input => input.validity.valueMissing")
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.PENDING_APPROVAL
    reason.fill("Say which sale")
    row.locator("button.reject-button").click()
    assert "rejected" in page.inner_text("ul.messagelist")

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.rejection_reason == "Say which sale"
