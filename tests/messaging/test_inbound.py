"""A reply handled once: stored, attributed, acted on (opt-out, opt-in, HELP), at every door."""

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEvent
from campaigns.models import Campaign
from contacts.models import Channel, Contact, ErasedNumber, OptOut, erasure_hash
from contacts.phones import redact
from messaging import counts
from messaging.inbound import (
    Incoming,
    UnusableInbound,
    confirm_opt_out,
    poll_accounts,
    receive,
    send_due_replies,
)
from messaging.models import InboundMessage, Message, ProviderAccount
from tests.conftest import phone

pytestmark = pytest.mark.django_db
A = InboundMessage.Action


def sms(body: str, i: int = 1, **fields: Any) -> Incoming:
    return Incoming(channel=Channel.SMS, phone=phone(i), body=body, **fields)


def sent_message(
    account: ProviderAccount, contact: Contact, campaign: Campaign | None, ago: timedelta
) -> Message:
    message = Message.objects.create(
        provider_account=account,
        campaign=campaign,
        contact=contact,
        phone=contact.phone,
        body="Hi",
        client_ref=Message.new_client_ref(),
        status=Message.Status.DELIVERED,
        sent_at=timezone.now() - ago,
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - ago)
    return message


def test_a_stop_reply_opts_out_with_the_reply_as_evidence_and_is_audited(
    simulator: ProviderAccount, make_contacts: Callable[..., list[Contact]]
) -> None:
    (contact,) = make_contacts(1, start=1)
    outcome = receive(simulator, sms("Stop!", provider_message_id="in-1"))
    assert (outcome.stored, outcome.duplicate, outcome.action) == (True, False, "opt_out")
    assert outcome.contact == contact.pk
    entry = OptOut.objects.get(phone=phone(1))
    assert (entry.channel, entry.source) == (Channel.SMS, OptOut.Source.REPLY)
    reply = outcome.inbound
    reply.refresh_from_db()
    assert (reply.opt_out, reply.keyword, reply.language) == (entry, "STOP", "en")
    event = AuditEvent.objects.get(action=AuditEvent.Action.OPT_OUT_ADDED)
    assert event.detail == {
        "channel": "sms",
        "number": redact(phone(1)),
        "source": "reply",
        "reply": reply.pk,
        "keyword": "STOP",
        "language": "en",
    }
    assert not OptOut.objects.filter(channel=Channel.WHATSAPP).exists()


def test_stopall_opts_out_of_every_channel(simulator: ProviderAccount) -> None:
    receive(simulator, sms("STOPALL"))
    assert set(OptOut.objects.values_list("channel", flat=True)) == {"sms", "whatsapp"}


def test_a_whatsapp_stop_opts_out_of_whatsapp_only(simulator: ProviderAccount) -> None:
    receive(simulator, Incoming(channel=Channel.WHATSAPP, phone=phone(1), body="Baja"))
    assert list(OptOut.objects.values_list("channel", "source")) == [("whatsapp", "reply")]


def test_start_undoes_only_an_opt_out_that_came_from_a_reply(simulator: ProviderAccount) -> None:
    receive(simulator, sms("stop", 1))
    assert receive(simulator, sms("START", 1)).action == "opt_in"
    assert not OptOut.objects.filter(phone=phone(1)).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.OPT_OUT_REMOVED).count() == 1

    for i, source in ((2, OptOut.Source.MANUAL), (3, OptOut.Source.IMPORT), (4, "provider")):
        OptOut.objects.create(phone=phone(i), channel=Channel.SMS, source=source)
        outcome = receive(simulator, sms("unstop", i))
        assert outcome.action == "none"
        assert "a reply does not undo it" in outcome.inbound.note
        assert OptOut.objects.filter(phone=phone(i)).exists()
    assert receive(simulator, sms("yes", 5)).inbound.note == "was not opted out"


def test_an_erased_number_is_not_put_back_on_a_list_in_clear(simulator: ProviderAccount) -> None:
    ErasedNumber.objects.create(phone_hash=erasure_hash(phone(1)))
    outcome = receive(simulator, sms("STOP"))
    assert outcome.action == "opt_out"
    assert not OptOut.objects.exists()


def test_help_is_answered_once_a_day_through_the_engine(
    simulator: ProviderAccount,
    make_contacts: Callable[..., list[Contact]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_contacts(1, start=1)
    with django_capture_on_commit_callbacks(execute=True):
        first = receive(simulator, sms("HELP"))
    second = receive(simulator, sms("info"))
    assert (first.action, second.action) == ("help", "help")
    answer = Message.objects.get()
    assert answer.in_reply_to == first.inbound
    assert answer.campaign is None and answer.body.startswith("Thanks for your message")
    assert second.inbound.note == "answered already in the last day"
    # The answer is queued once the reply commits (django-q runs tasks inline in tests).
    answer.refresh_from_db()
    assert answer.status in (Message.Status.SENT, Message.Status.DELIVERED)
    assert answer.provider_message_id == f"sim-{answer.client_ref}"

    # A day later it is answered again.
    a_day_ago = timezone.now() - timedelta(days=1, minutes=1)
    InboundMessage.objects.update(received_at=a_day_ago)
    receive(simulator, sms("HELP"))
    assert Message.objects.count() == 2


@override_settings(HERALD_HELP_REPLY="Call 0113 496 0000 or reply STOP.")
def test_the_help_answer_is_configurable_and_per_language(simulator: ProviderAccount) -> None:
    receive(simulator, sms("help", 1))
    assert Message.objects.get().body == "Call 0113 496 0000 or reply STOP."
    from messaging.models import Keyword

    keyword = Keyword.objects.get(word="AIDE")
    keyword.reply = "Répondez STOP pour ne plus rien recevoir."
    keyword.save()
    receive(simulator, sms("aide", 2))
    assert Message.objects.get(phone=phone(2)).body.startswith("Répondez STOP")


@override_settings(HERALD_RETRY_WAIT_SECONDS=60)
def test_a_reply_refused_by_the_account_waits_and_goes_later(
    simulator: ProviderAccount, django_capture_on_commit_callbacks: Any
) -> None:
    ProviderAccount.objects.filter(pk=simulator.pk).update(options={"account_error": "no credit"})
    with django_capture_on_commit_callbacks(execute=True):
        receive(simulator, sms("HELP"))
    answer = Message.objects.get()
    assert answer.status == Message.Status.PENDING and answer.error_code == "ACCOUNT_REFUSED"
    assert answer.next_attempt_at > timezone.now()
    ProviderAccount.objects.filter(pk=simulator.pk).update(options={})
    Message.objects.filter(pk=answer.pk).update(next_attempt_at=timezone.now())
    assert send_due_replies() == 1
    answer.refresh_from_db()
    assert answer.status == Message.Status.SENT


def test_a_possible_opt_out_waits_for_a_person_to_confirm(
    simulator: ProviderAccount, make_user: Callable[..., Any]
) -> None:
    outcome = receive(simulator, sms("please stop texting me"))
    assert (outcome.action, outcome.inbound.possible_opt_out) == ("none", True)
    assert not OptOut.objects.exists()
    staff = make_user("mia", "Marketers")
    assert confirm_opt_out(outcome.inbound, by=staff) is True
    reply = InboundMessage.objects.get()
    assert (reply.action, reply.possible_opt_out, reply.handled_by) == ("opt_out", False, staff)
    assert OptOut.objects.get().source == OptOut.Source.REPLY
    assert AuditEvent.objects.get(action=AuditEvent.Action.OPT_OUT_ADDED).actor == staff
    assert confirm_opt_out(reply, by=staff) is False  # twice changes nothing


def test_a_reply_is_stored_once_per_provider_id(simulator: ProviderAccount) -> None:
    first = receive(simulator, sms("STOP", provider_message_id="abc"))
    again = receive(simulator, sms("START", provider_message_id="abc"))
    assert (again.stored, again.duplicate, again.action) == (False, True, "opt_out")
    assert again.inbound.pk == first.inbound.pk
    assert InboundMessage.objects.count() == 1
    assert OptOut.objects.count() == 1
    # Another account may use the same id for its own message.
    other = ProviderAccount.objects.create(name="sim2", backend="simulator")
    assert receive(other, sms("hi", provider_message_id="abc")).stored


def test_an_unknown_number_is_kept_and_a_non_number_sender_too(simulator: ProviderAccount) -> None:
    unknown = receive(simulator, sms("Who is this?", 7))
    assert unknown.stored and unknown.contact is None
    assert unknown.inbound.phone == phone(7)
    short_code = receive(simulator, Incoming(channel="sms", phone="VODAFONE", body="STOP"))
    assert short_code.inbound.phone == "VODAFONE" and short_code.action == "none"
    assert not OptOut.objects.exists()
    with pytest.raises(UnusableInbound):
        receive(simulator, Incoming(channel="sms", phone="  ", body="hi"))
    with pytest.raises(UnusableInbound):
        receive(simulator, Incoming(channel="fax", phone=phone(1), body="hi"))


def test_digits_without_a_plus_are_read_as_international(simulator: ProviderAccount) -> None:
    outcome = receive(simulator, Incoming(channel="sms", phone=phone(1)[1:], body="hello"))
    assert outcome.inbound.phone == phone(1)


def test_a_reply_is_put_down_to_the_last_campaign_that_messaged_the_contact(
    simulator: ProviderAccount,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
) -> None:
    (contact,) = make_contacts(1, start=1)
    older, newer = make_campaign(simulator), make_campaign(simulator)
    sent_message(simulator, contact, older, timedelta(days=3))
    last = sent_message(simulator, contact, newer, timedelta(hours=2))
    reply = receive(simulator, sms("Is it still on?")).inbound
    assert (reply.campaign, reply.answers) == (newer, last)

    with override_settings(HERALD_REPLY_ATTRIBUTION_DAYS=1):
        Message.objects.filter(pk=last.pk).delete()
        counts.recount([newer.pk])  # deleted behind the engine's back
        assert receive(simulator, sms("and now?")).inbound.campaign is None


def test_a_message_sent_after_the_reply_does_not_claim_it(
    simulator: ProviderAccount,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
) -> None:
    (contact,) = make_contacts(1, start=1)
    campaign = make_campaign(simulator)
    sent_message(simulator, contact, campaign, timedelta(minutes=5))
    earlier = timezone.now() - timedelta(hours=1)
    assert receive(simulator, sms("late reply", received_at=earlier)).inbound.campaign is None


@override_settings(HERALD_INBOUND_BODY_MAX_CHARS=100)
def test_bodies_of_any_size_and_script_are_stored_safely(simulator: ProviderAccount) -> None:
    long = receive(simulator, sms("退订" + "é" * 500)).inbound
    long.refresh_from_db()
    assert (len(long.body), long.body_truncated) == (100, True)
    assert long.action == "none"  # "退订ééé…" is one word, not the keyword
    odd = receive(simulator, sms("a\x00b\ud800c 👍 مرحبا")).inbound
    odd.refresh_from_db()
    assert odd.body == "ab\ufffdc 👍 مرحبا" and not odd.body_truncated


def test_numbers_and_bodies_never_reach_the_log(
    simulator: ProviderAccount, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="messaging.inbound")
    receive(simulator, sms("STOP secret words", provider_message_id="x1"))
    receive(simulator, sms("STOP secret words", provider_message_id="x1"))
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "secret words" not in text and phone(1) not in text and phone(1)[1:] not in text
    assert redact(phone(1)) in text


# -- the CLI ------------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("inbound", *args, stdout=out)
    return out.getvalue()


def test_inbound_record_prints_what_it_did_as_json(
    simulator: ProviderAccount, make_contacts: Callable[..., list[Contact]]
) -> None:
    (contact,) = make_contacts(1, start=1)
    args = ("record", "--provider", "sim", "--from", phone(1), "--json")
    first = json.loads(run(*args, "--body", "Stopp", "--id", "p-1"))
    assert first == {
        "stored": True,
        "duplicate": False,
        "action": "opt_out",
        "contact": contact.pk,
        "reply": first["reply"],
        "campaign": None,
        "possible_opt_out": False,
    }
    again = json.loads(run(*args, "--body", "Stopp", "--id", "p-1"))
    assert (again["stored"], again["duplicate"], again["reply"]) == (False, True, first["reply"])
    assert json.loads(run(*args, "--body", "START"))["action"] == "opt_in"
    assert json.loads(run(*args, "--body", "HELP"))["action"] == "help"
    whatsapp = json.loads(run(*args, "--body", "hello", "--channel", "whatsapp"))
    assert whatsapp["action"] == "none"
    assert InboundMessage.objects.get(pk=whatsapp["reply"]).channel == "whatsapp"


def test_inbound_record_in_words_and_its_errors(simulator: ProviderAccount) -> None:
    said = run("record", "--provider", "sim", "--from", phone(2), "--body", "remove me please")
    assert said.startswith("reply ") and "an unknown number: none" in said
    assert "possible opt-out" in said
    with pytest.raises(CommandError, match="no provider account named 'nope'"):
        run("record", "--provider", "nope", "--from", phone(2), "--body", "x")
    with pytest.raises(CommandError, match="not recorded: no sender"):
        run("record", "--provider", "sim", "--from", " ", "--body", "x")


def test_inbound_list_shows_the_newest_first_redacted_and_in_full_as_json(
    simulator: ProviderAccount,
) -> None:
    assert run("list").strip() == "No replies."
    receive(simulator, sms("first", 1))
    receive(simulator, sms("STOP", 2, provider_message_id="m2"))
    text = run("list")
    lines = text.strip().splitlines()
    assert '"STOP"' in lines[0] and '"first"' in lines[1]
    assert phone(1) not in text and redact(phone(1)) in text
    listed = json.loads(run("list", "--json"))
    assert [r["body"] for r in listed] == ["STOP", "first"]
    assert listed[0]["from"] == phone(2) and listed[0]["action"] == "opt_out"
    assert listed[0]["provider_message_id"] == "m2" and listed[0]["handled"] is False
    assert len(json.loads(run("list", "--json", "--limit", "1"))) == 1


# -- the simulator's replies --------------------------------------------------------------------


def test_the_simulator_answers_delivered_messages_once(
    simulator: ProviderAccount, make_contacts: Callable[..., list[Contact]]
) -> None:
    ProviderAccount.objects.filter(pk=simulator.pk).update(
        options={"delivery_delay": 0, "seed": "tests", "reply_rate": 1.0}
    )
    contacts = make_contacts(5)
    for contact in contacts:
        sent_message(simulator, contact, None, timedelta(minutes=5))
    assert poll_accounts() == {"sim": 5}
    assert poll_accounts() == {"sim": 0}
    replies = InboundMessage.objects.all()
    assert {r.contact_id for r in replies} == {c.pk for c in contacts}
    assert all(r.provider_message_id.startswith("sim-reply-") for r in replies)
    simulator.refresh_from_db()
    # Past every message (a HELP among the replies queues an answer: passed over too).
    last = Message.objects.order_by("-pk").values_list("pk", flat=True)[0]
    assert simulator.inbound_cursor["after"] == last


def test_the_simulator_is_quiet_without_a_reply_rate(simulator: ProviderAccount) -> None:
    assert poll_accounts() == {"sim": 0}
