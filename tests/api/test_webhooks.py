"""Outgoing webhooks, event by event: each produced by its real source (a campaign sent
through the simulator, a reply through the provider's signed webhook, an opt-out by
staff, by reply and by import, a click on /r/<code>, a campaign's submit), delivered over
real HTTP to a receiver on loopback that checks every signature with the standardwebhooks
library. And nothing is read or written for events no active subscription asks for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api.models import WebhookDelivery, WebhookSubscription, interest
from api.outgoing import delivery
from campaigns import tasks as campaign_tasks
from campaigns.models import Campaign
from contacts.erasure import erase
from contacts.models import Channel, Contact, Group, OptOut
from messaging import tasks as messaging_tasks
from messaging.models import Link, Message, ProviderAccount
from tests.api.webhook_receiver import Receiver
from tests.conftest import phone
from tests.messaging.test_inbound_webhooks import SECRET as PROVIDER_SECRET
from tests.messaging.test_inbound_webhooks import URL as INBOUND_URL
from tests.messaging.test_inbound_webhooks import envelope, post, reply

pytestmark = pytest.mark.django_db

LINK_BASE = "https://hrl.example/"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"


@pytest.fixture(autouse=True)
def _fresh_interest() -> Iterator[None]:
    """Which event types are wanted is kept in memory per process: not across tests."""
    interest.forget()
    yield
    interest.forget()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as endpoint:
        yield endpoint


@pytest.fixture
def subscribe(receiver: Receiver) -> Callable[..., WebhookSubscription]:
    """subscribe(*event types): an active subscription of the receiver, its secret known
    to the receiver alone (as an integration keeps it)."""

    def make(*events: str, active: bool = True) -> WebhookSubscription:
        subscription, secret = WebhookSubscription.objects.create_with_secret(
            receiver.url, list(events), description="CRM", is_active=active
        )
        receiver.secrets.append(secret)
        return subscription

    return make


def sent_campaign(
    account: ProviderAccount, make_campaign: Callable[..., Campaign], group: Group, **kwargs: Any
) -> Campaign:
    """Submitted, approved and sent (the engine's task, as the worker runs it)."""
    campaign = make_campaign(account, group, **kwargs)
    campaign.submit(by=User.objects.get(username="mia"))
    campaign.approve(by=User.objects.create_user("arno-2", is_superuser=True))
    campaign_tasks.run_campaign(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def test_each_message_sent_and_delivered_reaches_the_subscriber_signed(
    receiver: Receiver,
    subscribe: Callable[..., WebhookSubscription],
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
) -> None:
    subscribe("message.sent", "message.delivered")
    group = Group.objects.create(name="Customers")
    contacts = make_contacts(3, group)
    campaign = sent_campaign(simulator, make_campaign, group)
    messaging_tasks.poll_statuses()  # the simulator's delivery reports

    assert delivery.deliver_due() == 6
    assert all(r.verified_with == receiver.secrets[0] for r in receiver.received)
    for kind, status in (("message.sent", "sent"), ("message.delivered", "delivered")):
        got = [r.payload for r in receiver.of_type(kind)]
        assert {p["data"]["phone"] for p in got} == {c.phone for c in contacts}
        assert {p["data"]["contact_id"] for p in got} == {c.pk for c in contacts}
        assert {(p["data"]["status"], p["data"]["campaign_id"]) for p in got} == {
            (status, campaign.pk)
        }
    first = receiver.received[0]
    assert first.headers["content-type"] == "application/json"
    assert re.fullmatch(r"msg_[0-9a-f]{32}", first.headers["webhook-id"])
    assert re.fullmatch(r"(v1,[A-Za-z0-9+/=]+)", first.headers["webhook-signature"])
    assert abs(int(first.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_message_refused_at_send_is_told_as_failed_with_its_error_code(
    receiver: Receiver,
    subscribe: Callable[..., WebhookSubscription],
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
) -> None:
    subscribe("message.failed")
    ProviderAccount.objects.filter(pk=simulator.pk).update(
        options={**simulator.options, "reject_rate": 1.0}
    )
    group = Group.objects.create(name="Customers")
    (contact,) = make_contacts(1, group)
    sent_campaign(ProviderAccount.objects.get(pk=simulator.pk), make_campaign, group)

    delivery.deliver_due()
    (failed,) = [r.payload["data"] for r in receiver.received]
    message = Message.objects.get(phone=contact.phone)
    assert (failed["message_id"], failed["status"]) == (message.pk, "failed")
    assert failed["error_code"] == message.error_code != ""
    assert receiver.received[0].verified_with is not None


def test_a_stop_reply_through_the_providers_webhook_is_told_as_inbound_and_as_an_opt_out(
    receiver: Receiver, subscribe: Callable[..., WebhookSubscription], client: Client
) -> None:
    subscribe("inbound.message", "opt_out")
    account = ProviderAccount(name="brates", backend=ProviderAccount.Backend.BULKSMSRATES)
    account.set_credentials({"api_key": "k", "api_secret": "s", "webhook_secret": PROVIDER_SECRET})
    account.save()
    contact = Contact.objects.create(phone=phone(1), first_name="Ann")
    assert f"/webhooks/bulksmsrates/{account.name}/" == INBOUND_URL

    answer = post(client, envelope("whatsapp.message", reply("STOP", sender=phone(1))))
    assert answer.status_code == 200
    delivery.deliver_due()

    (inbound,) = [r.payload["data"] for r in receiver.of_type("inbound.message")]
    assert (inbound["phone"], inbound["body"], inbound["channel"]) == (phone(1), "STOP", "whatsapp")
    assert (inbound["action"], inbound["contact_id"]) == ("opt_out", contact.pk)
    (opt_out,) = [r.payload["data"] for r in receiver.of_type("opt_out")]
    assert opt_out == opt_out | {
        "phone": phone(1),
        "channel": "whatsapp",
        "source": "reply",
        "contact_id": contact.pk,
    }


def test_opt_outs_added_by_staff_and_by_an_import_are_told(
    receiver: Receiver,
    subscribe: Callable[..., WebhookSubscription],
    make_user: Callable[..., User],
    client: Client,
    tmp_path: Path,
) -> None:
    subscribe("opt_out")
    contact = Contact.objects.create(phone=phone(2))
    client.force_login(make_user("mia", "Marketers"))
    client.post(f"/contacts/{contact.pk}/opt-outs/", {"channel": "sms", "change": "add"})
    stop_list = tmp_path / "stop.csv"
    stop_list.write_text(f"phone,channel\n{phone(3)},sms\n{phone(4)},whatsapp\n")
    call_command("import_opt_outs", str(stop_list), stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert OptOut.objects.count() == 3  # the staff's one, and the file's two
    delivery.deliver_due()
    told = {(d["phone"], d["channel"], d["source"]) for d in _data(receiver, "opt_out")}
    assert told == {
        (phone(2), "sms", "manual"),
        (phone(3), "sms", "import"),
        (phone(4), "whatsapp", "import"),
    }


def test_a_click_on_a_short_link_is_told_with_whose_message_it_was(
    receiver: Receiver,
    subscribe: Callable[..., WebhookSubscription],
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
    settings: Any,
    client: Client,
) -> None:
    settings.HERALD_LINK_BASE = LINK_BASE
    subscribe("link.clicked")
    group = Group.objects.create(name="Customers")
    (contact,) = make_contacts(1, group)
    body = "Hi {{first_name}}, sale today: https://shop.example.com/spring"
    campaign = sent_campaign(simulator, make_campaign, group, body=body)
    link = Link.objects.get()

    answer = client.get(f"/r/{link.code}", HTTP_USER_AGENT=PHONE_UA)
    assert answer.status_code == 302
    delivery.deliver_due()

    (clicked,) = _data(receiver, "link.clicked")
    assert clicked == clicked | {
        "link": link.code,
        "url": answer["Location"],
        "message_id": link.message_id,
        "campaign_id": campaign.pk,
        "contact_id": contact.pk,
        "phone": contact.phone,
        "device": "mobile",
    }


def test_a_campaigns_status_changes_are_told_with_who_moved_it(
    receiver: Receiver,
    subscribe: Callable[..., WebhookSubscription],
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
    marketer: User,
) -> None:
    subscribe("campaign.status_changed")
    group = Group.objects.create(name="Customers")
    make_contacts(1, group)
    campaign = make_campaign(simulator, group)
    campaign.submit(by=marketer)
    delivery.deliver_due()

    (moved,) = _data(receiver, "campaign.status_changed")
    assert moved == moved | {
        "campaign_id": campaign.pk,
        "name": "Spring",
        "from": "draft",
        "to": "pending_approval",
        "action": "submit",
        "by": "mia",
    }


def test_a_subscription_is_told_only_its_event_types_and_a_paused_one_nothing(
    receiver: Receiver,
    subscribe: Callable[..., WebhookSubscription],
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
) -> None:
    sent_only = subscribe("message.sent")
    paused = subscribe("message.sent", "campaign.status_changed", active=False)
    group = Group.objects.create(name="Customers")
    make_contacts(2, group)
    sent_campaign(simulator, make_campaign, group)
    messaging_tasks.poll_statuses()

    delivery.deliver_due()
    assert {r.event_type for r in receiver.received} == {"message.sent"}
    assert len(receiver.received) == 2
    assert not paused.deliveries.exists() and sent_only.deliveries.count() == 2


def test_nothing_is_read_or_written_for_events_nobody_subscribes_to(
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    subscribe: Callable[..., WebhookSubscription],
) -> None:
    """A status move reads no row back unless its event type is wanted: with no
    subscription, and with one to other events, it runs the very same statements."""
    contacts = make_contacts(3)

    def statements_of_a_move() -> list[str]:
        rows = [
            Message.objects.create(
                provider_account=locmem,
                phone=c.phone,
                body="Hi",
                client_ref=Message.new_client_ref(),
                status=Message.Status.SENT,
                sent_at=timezone.now(),
            )
            for c in contacts
        ]
        interest.wants("message.delivered")  # what the process knows, read beforehand
        with CaptureQueriesContext(connection) as queries:
            Message.objects.filter(pk__in=[m.pk for m in rows]).record_report(
                Message.Status.DELIVERED, timezone.now()
            )
        return [re.sub(r"\d+", "N", q["sql"]) for q in queries.captured_queries]

    nobody = statements_of_a_move()
    subscribe("inbound.message", "opt_out")
    interest.forget()
    others = statements_of_a_move()
    subscribe("message.delivered")
    interest.forget()
    wanted = statements_of_a_move()

    assert others == nobody
    assert not any("api_webhook" in sql for sql in nobody)
    assert wanted != nobody  # the test can tell: the rows read back, the subscribers looked up
    assert WebhookDelivery.objects.count() == 3


def test_an_erased_contact_is_not_sent_out_by_a_waiting_delivery(
    receiver: Receiver, subscribe: Callable[..., WebhookSubscription]
) -> None:
    subscribe("opt_out")
    contact = Contact.objects.create(phone=phone(5))
    OptOut.objects.add_by_staff(contact.phone, Channel.SMS)
    erase([contact.pk])

    assert delivery.deliver_due() == 0
    (row,) = WebhookDelivery.objects.all()
    assert (row.status, row.last_error) == ("failed", "its contact was erased")
    assert phone(5) not in row.payload and json.loads(row.payload) == {"erased": True}


def _data(receiver: Receiver, event_type: str) -> list[dict[str, Any]]:
    found = receiver.of_type(event_type)
    assert all(r.verified_with is not None for r in found), "a signature did not verify"
    return [r.payload["data"] for r in found]
