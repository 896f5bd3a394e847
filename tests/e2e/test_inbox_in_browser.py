"""The inbox in Chromium: the menu's unread badge leads to the conversations; a possible
opt-out is confirmed; a question is answered (the engine sends the answer through the
simulator) and marked handled, and the badge is gone."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from campaigns.models import Campaign
from contacts.models import Channel, Contact, OptOut
from messaging.inbound import Incoming, receive, send_due_replies
from messaging.models import InboundMessage, Message, ProviderAccount
from tests.conftest import phone
from tests.e2e.test_dashboard_walk import shot, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def badge(page: Any) -> str:
    found = page.locator("#inbox-unread")
    return " ".join(found.text_content().split()) if found.count() else ""


def test_a_marketer_follows_the_badge_confirms_an_opt_out_answers_and_clears_the_inbox(
    page: Any, live_server: Any, marketer: User, simulator: ProviderAccount
) -> None:
    ann = Contact.objects.create(phone=phone(1), first_name="Ann")
    spring = Campaign.objects.create(
        name="Spring", provider_account=simulator, body="Hi", created_by=marketer
    )
    Message.objects.create(
        provider_account=simulator,
        campaign=spring,
        contact=ann,
        phone=ann.phone,
        body="Spring sale: 20% off",
        client_ref=Message.new_client_ref(),
        status=Message.Status.DELIVERED,
        sent_at=timezone.now() - timedelta(hours=1),
    )
    ago = timezone.now() - timedelta(minutes=5)
    receive(simulator, Incoming(Channel.SMS, ann.phone, "Is it on Sunday too?", received_at=ago))
    receive(simulator, Incoming(Channel.SMS, phone(2), "please stop texting me"))
    base = live_server.url

    sign_in(page, base, marketer)
    assert badge(page) == "2 unread"
    page.click("#nav-inbox")
    page.wait_for_url("**/inbox/")
    shot(page, "inbox")
    rows = page.locator("#inbox-table tbody tr")
    assert rows.count() == 2
    assert "possible opt-out" in rows.nth(0).inner_text()
    assert "re: Spring" in rows.nth(1).inner_text()

    rows.nth(0).locator("a").click()
    page.wait_for_selector("text=Confirm opt-out")
    assert badge(page) == "1 unread"  # this conversation is read now
    page.click("button:has-text('Confirm opt-out')")
    page.wait_for_selector("text=Opted out of SMS")
    assert OptOut.objects.get(phone=phone(2)).source == OptOut.Source.REPLY

    page.click("text=Back to the inbox")
    page.locator("#inbox-table").get_by_role("link", name="Ann", exact=True).click()
    page.wait_for_selector("#answer-form")
    shot(page, "inbox-conversation")
    assert badge(page) == ""
    thread = page.inner_text("#thread")
    assert thread.index("Spring sale: 20% off") < thread.index("Is it on Sunday too?")
    page.fill("#id_body", "Yes, from 10 to 4.")
    page.click("#answer-form button[type=submit]")
    page.wait_for_selector("text=Answer queued by SMS")
    answer = Message.objects.get(in_reply_to__isnull=False)
    assert (answer.body, answer.phone, answer.campaign_id) == (
        "Yes, from 10 to 4.",
        ann.phone,
        None,
    )
    send_due_replies()  # what the worker does (in tests the queued task may have done it)
    answer.refresh_from_db()
    assert answer.status in (Message.Status.SENT, Message.Status.DELIVERED)
    page.reload()
    assert "Yes, from 10 to 4." in page.inner_text("#thread")

    page.click("#mark-handled button")
    page.wait_for_selector("text=1 reply marked handled.")
    assert page.locator("#handled-note").inner_text().startswith(f"Handled by {marketer}")
    assert not InboundMessage.objects.filter(handled_at__isnull=True).exists()
    page.click("text=Back to the inbox")
    assert badge(page) == ""
    assert "unhandled" not in page.inner_text("#inbox-table")
