"""The inbox: conversations by number with their flags and unread counts, filters kept in
links and pages, a conversation's thread, answering (SMS any time, WhatsApp free text only
inside the 24 h window, else an approved template), marking handled, confirming a possible
opt-out, the menu's badge, and who may do each."""

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from campaigns.models import Campaign, MessageTemplate
from contacts.models import Channel, Contact, OptOut
from contacts.phones import redact
from dashboard import inbox
from messaging.inbound import Incoming, receive, send_due_replies
from messaging.models import InboundMessage, Message, ProviderAccount
from tests.conftest import phone

pytestmark = pytest.mark.django_db
CONVERSATIONS = inbox.CONVERSATIONS_PER_PAGE


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def granted(user: User, *codenames: str) -> User:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # permissions are cached on the object


@pytest.fixture
def answerer(marketer: User) -> User:
    """Marketers and approvers may answer (campaigns 0015_reply_roles)."""
    return marketer


@pytest.fixture
def reader(make_user: Callable[..., User]) -> User:
    """Sees the inbox, may not act on it."""
    return granted(make_user("rita"), "view_inboundmessage", "view_contact", "view_message")


def reply(
    account: ProviderAccount,
    i: int,
    body: str,
    *,
    channel: str = Channel.SMS,
    ago: timedelta = timedelta(0),
    sender: str = "",
) -> InboundMessage:
    """A reply as a gateway hands it over: stored, attributed and acted on by the core."""
    incoming = Incoming(
        channel=channel,
        phone=sender or phone(i),
        body=body,
        received_at=timezone.now() - ago,
    )
    return receive(account, incoming).inbound


def sent(account: ProviderAccount, contact: Contact, campaign: Campaign, **fields: Any) -> Message:
    return Message.objects.create(
        provider_account=account,
        campaign=campaign,
        contact=contact,
        phone=contact.phone,
        body="Spring sale: 20% off",
        client_ref=Message.new_client_ref(),
        status=fields.pop("status", Message.Status.DELIVERED),
        sent_at=timezone.now() - timedelta(hours=1),
        **fields,
    )


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def rows(html: str) -> list[str]:
    """The inbox's rows, each as its plain text."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    found = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in found]


def token_of(html: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', html)
    assert found, "the answer form carries a one-time token"
    return found.group(1)


# --- the list -----------------------------------------------------------------------------


def test_the_inbox_lists_one_row_per_number_newest_activity_first_with_names_and_flags(
    simulator: ProviderAccount, marketer: User, make_contacts: Callable[..., list[Contact]]
) -> None:
    ann, _bob = make_contacts(2, start=1)
    Contact.objects.filter(pk=ann.pk).update(first_name="Ann", last_name="Lee")
    reply(simulator, 1, "Is the sale on Sunday too?", ago=timedelta(hours=3))
    reply(simulator, 1, "please stop texting me", ago=timedelta(hours=2))
    reply(simulator, 9, "STOP", ago=timedelta(hours=1))  # no contact has this number
    reply(simulator, 2, "HELP")

    response = signed_in(marketer).get("/inbox/")

    assert response.status_code == 200
    shown = rows(response.content.decode())
    assert len(shown) == 3
    assert shown[0].startswith("Name2 " + phone(2)) and "HELP" in shown[0]
    assert shown[1].startswith("Unknown number " + phone(9)) and "opt-out" in shown[1]
    assert shown[2].startswith("Ann Lee " + phone(1))
    assert "please stop texting me" in shown[2] and "possible opt-out" in shown[2]
    assert "2 unread of 2" in shown[2] and "unhandled" in shown[2]


def test_a_long_reply_is_cut_in_the_list_and_whole_in_its_conversation(
    simulator: ProviderAccount, marketer: User
) -> None:
    long = "word " * 100
    first = reply(simulator, 1, long)
    client = signed_in(marketer)
    (row,) = rows(client.get("/inbox/").content.decode())
    assert "…" in row and len(row) < 300
    assert long.strip() in " ".join(client.get(f"/inbox/{first.pk}/").content.decode().split())


def test_the_inbox_filters_by_campaign_opt_outs_possible_opt_outs_and_unhandled(
    simulator: ProviderAccount,
    marketer: User,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
) -> None:
    contacts = make_contacts(4, start=1)
    spring = make_campaign(simulator)
    for contact in contacts[:2]:
        sent(simulator, contact, spring)
    reply(simulator, 1, "Love it")  # put down to Spring
    reply(simulator, 2, "STOP")  # Spring, an opt-out
    reply(simulator, 3, "remove me from your list")  # a possible opt-out
    handled = reply(simulator, 4, "Thanks")
    InboundMessage.objects.filter(pk=handled.pk).update(handled_at=timezone.now())
    client = signed_in(marketer)

    def numbers(query: str) -> set[str]:
        html = client.get(f"/inbox/?{query}").content.decode()
        return {found for found in re.findall(r"\+44\d+", " ".join(rows(html)))}

    assert numbers(f"campaign={spring.pk}") == {phone(1), phone(2)}
    assert numbers("opt_outs=1") == {phone(2)}
    assert numbers("possible=1") == {phone(3)}
    assert numbers("unhandled=1") == {phone(1), phone(2), phone(3)}
    assert numbers(f"campaign={spring.pk}&opt_outs=1") == {phone(2)}
    page = client.get("/inbox/").content.decode()
    assert f'<option value="{spring.pk}">Spring</option>' in page  # it has replies
    assert numbers("campaign=abc") == {phone(i) for i in range(1, 5)}  # nonsense: ignored


def test_pages_of_conversations_keep_the_filters_and_never_repeat_a_number(
    simulator: ProviderAccount, marketer: User
) -> None:
    total = CONVERSATIONS * 2 + 3
    for i in range(total):
        reply(simulator, i, f"Question {i}", ago=timedelta(minutes=total - i))
    # The newest number writes again, further down too: one conversation, on the first page.
    reply(simulator, total - 1, "And another thing", ago=timedelta(hours=5))
    client = signed_in(marketer)
    seen: list[str] = []
    url = "/inbox/?unhandled=1"
    for _ in range(5):
        html = client.get(url).content.decode()
        seen += [re.findall(r"\+44\d+", row)[0] for row in rows(html)]
        older = re.search(r'href="(\?[^"]*older=\d+[^"]*)" rel="next"', html)
        if older is None:
            break
        link = older.group(1).replace("&amp;", "&")
        assert "unhandled=1" in link
        url = "/inbox/" + link
    assert seen == [phone(i) for i in reversed(range(total))]
    assert "Newest conversations" in html


def test_a_page_is_a_few_queries_whatever_its_size(
    simulator: ProviderAccount, marketer: User, make_contacts: Callable[..., list[Contact]]
) -> None:
    make_contacts(CONVERSATIONS, start=0)
    for i in range(CONVERSATIONS + 5):
        reply(simulator, i, "Hi", ago=timedelta(minutes=i))
        reply(simulator, i, "Hello?", ago=timedelta(minutes=i, seconds=30))
    client = signed_in(marketer)
    client.get("/inbox/")  # the session and the user, once
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/inbox/")
    assert len(rows(response.content.decode())) == CONVERSATIONS
    grouped = [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"]]
    assert len(grouped) == 1  # the figures of the page's numbers, all at once
    assert len(queries.captured_queries) <= 12


def test_the_menu_shows_the_unread_count_until_the_conversation_is_opened(
    simulator: ProviderAccount, marketer: User
) -> None:
    first = reply(simulator, 1, "Hello?")
    reply(simulator, 1, "Anyone?")
    client = signed_in(marketer)
    home = client.get("/").content.decode()
    assert re.search(r'id="inbox-unread">2<', home)
    client.get(f"/inbox/{first.pk}/")
    assert 'id="inbox-unread"' not in client.get("/").content.decode()
    assert not InboundMessage.objects.filter(read_at__isnull=True).exists()


# --- a conversation -----------------------------------------------------------------------


def test_a_conversation_shows_their_replies_and_our_messages_oldest_first_with_statuses(
    simulator: ProviderAccount,
    answerer: User,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
) -> None:
    (contact,) = make_contacts(1, start=1)
    spring = make_campaign(simulator)
    ours = sent(simulator, contact, spring)
    Message.objects.filter(pk=ours.pk).update(created_at=timezone.now() - timedelta(hours=2))
    first = reply(simulator, 1, "Is it on Sunday?", ago=timedelta(hours=1))
    client = signed_in(answerer)
    page = client.get(f"/inbox/{first.pk}/").content.decode()
    thread = page.split('id="thread"', 1)[1]
    assert thread.index("Spring sale: 20% off") < thread.index("Is it on Sunday?")
    assert 'data-status="delivered"' in thread and "re: Spring" in thread
    assert "Conversation with Name1" in page
    assert phone(1) not in client.get(f"/inbox/{first.pk}/").request["PATH_INFO"]


def test_an_unknown_numbers_thread_shows_our_answers_to_it(
    simulator: ProviderAccount, answerer: User
) -> None:
    first = reply(simulator, 7, "Who is this?")
    client = signed_in(answerer)
    token = token_of(client.get(f"/inbox/{first.pk}/").content.decode())
    client.post(
        f"/inbox/{first.pk}/reply/",
        {"answering": first.pk, "body": "Herald shop, hello!", "form_token": token},
    )
    page = client.get(f"/inbox/{first.pk}/").content.decode()
    assert "Unknown number" in page and "Herald shop, hello!" in page


def test_a_missing_conversation_is_404(marketer: User) -> None:
    assert signed_in(marketer).get("/inbox/999/").status_code == 404


# --- answering ----------------------------------------------------------------------------


def test_an_sms_answer_is_queued_through_the_engine_and_sent_by_the_simulator(
    simulator: ProviderAccount, answerer: User, make_contacts: Callable[..., list[Contact]]
) -> None:
    (contact,) = make_contacts(1, start=1)
    first = reply(simulator, 1, "Is it on Sunday?", ago=timedelta(days=3))
    client = signed_in(answerer)
    token = token_of(client.get(f"/inbox/{first.pk}/").content.decode())
    data = {"answering": first.pk, "body": "Yes, 10 to 4.", "form_token": token}

    response = client.post(f"/inbox/{first.pk}/reply/", data)

    assert response.status_code == 302 and response["Location"] == f"/inbox/{first.pk}/"
    answer = Message.objects.get()
    assert (answer.in_reply_to, answer.contact, answer.campaign) == (first, contact, None)
    assert (answer.body, answer.channel, answer.status) == ("Yes, 10 to 4.", "sms", "pending")
    assert send_due_replies() == 1
    answer.refresh_from_db()
    assert answer.status == Message.Status.SENT
    assert "Answer queued by SMS" in texts(response)[-1]
    event = AuditEvent.objects.get(action=AuditEvent.Action.INBOX_REPLY)
    assert event.actor == answerer and event.detail == {
        "reply": first.pk,
        "message": answer.pk,
        "channel": "sms",
        "number": redact(phone(1)),
        "template": "",
    }


def test_posting_one_page_twice_sends_one_answer(
    simulator: ProviderAccount, answerer: User
) -> None:
    first = reply(simulator, 1, "Hi")
    client = signed_in(answerer)
    token = token_of(client.get(f"/inbox/{first.pk}/").content.decode())
    data = {"answering": first.pk, "body": "Hello!", "form_token": token}
    client.post(f"/inbox/{first.pk}/reply/", data)
    again = client.post(f"/inbox/{first.pk}/reply/", data)
    assert Message.objects.count() == 1
    assert "already sent from this page" in texts(again)[-1]
    fresh = token_of(client.get(f"/inbox/{first.pk}/").content.decode())
    client.post(f"/inbox/{first.pk}/reply/", {**data, "form_token": fresh})
    assert Message.objects.count() == 2  # a new page is a new answer


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "Write an answer first: it is empty."),
        ("   ", "Write an answer first: it is empty."),
        ("x" * 1601, "The answer is 1601 characters long: at most 1600 fit."),
    ],
)
def test_an_empty_or_too_long_answer_is_refused_and_what_was_typed_is_kept(
    simulator: ProviderAccount, answerer: User, body: str, error: str
) -> None:
    first = reply(simulator, 1, "Hi")
    client = signed_in(answerer)
    token = token_of(client.get(f"/inbox/{first.pk}/").content.decode())
    data = {"answering": first.pk, "body": body, "form_token": token}
    response = client.post(f"/inbox/{first.pk}/reply/", data)
    assert response.status_code == 400
    page = response.content.decode()
    assert error in page and body.strip()[:50] in page
    assert not Message.objects.exists()


def test_whatsapp_free_text_goes_inside_the_24_hour_window(
    simulator: ProviderAccount, answerer: User
) -> None:
    first = reply(simulator, 1, "Hola", channel=Channel.WHATSAPP, ago=timedelta(hours=23))
    client = signed_in(answerer)
    page = client.get(f"/inbox/{first.pk}/").content.decode()
    assert "the 24-hour window is open" in page
    data = {"answering": first.pk, "body": "Hola!", "form_token": token_of(page)}
    client.post(f"/inbox/{first.pk}/reply/", data)
    answer = Message.objects.get()
    assert (answer.channel, answer.template_id, answer.body) == ("whatsapp", "", "Hola!")


def test_outside_the_window_whatsapp_needs_an_approved_template_with_its_parameters(
    simulator: ProviderAccount, answerer: User, make_contacts: Callable[..., list[Contact]]
) -> None:
    make_contacts(1, start=1)
    template = MessageTemplate.objects.create(
        name="Follow-up",
        channel=Channel.WHATSAPP,
        body="Hi {{first_name}}, thanks for writing.",
        whatsapp_template_id="follow_up_v2",
        whatsapp_parameters=["first_name"],
    )
    MessageTemplate.objects.create(name="SMS only", body="Hi")  # not a WhatsApp template
    first = reply(simulator, 1, "Hola", channel=Channel.WHATSAPP, ago=timedelta(hours=25))
    client = signed_in(answerer)
    page = client.get(f"/inbox/{first.pk}/").content.decode()
    assert "the 24-hour window is shut" in page and "SMS only" not in page
    assert 'name="body"' not in page
    data = {"answering": first.pk, "body": "Free text", "form_token": token_of(page)}

    refused = client.post(f"/inbox/{first.pk}/reply/", data)

    assert refused.status_code == 400
    assert "The 24-hour WhatsApp window is shut: choose an approved template" in (
        refused.content.decode()
    )
    assert not Message.objects.exists()
    client.post(f"/inbox/{first.pk}/reply/", {**data, "template": template.pk})
    answer = Message.objects.get()
    assert (answer.template_id, answer.template_params) == ("follow_up_v2", ["Name1"])
    assert answer.body == "Hi Name1, thanks for writing."


def test_the_gateways_own_list_of_open_conversations_decides_when_it_has_one(
    make_account: Callable[..., ProviderAccount], answerer: User, gateway: Any
) -> None:
    account = make_account("bulksmsrates")
    first = reply(account, 1, "Hola", channel=Channel.WHATSAPP, ago=timedelta(hours=1))
    # Our records say open; the fake gateway lists no open conversation: it knows best.
    page = signed_in(answerer).get(f"/inbox/{first.pk}/").content.decode()
    assert "the 24-hour window is shut" in page


def test_a_sender_that_is_no_number_cannot_be_answered(
    simulator: ProviderAccount, answerer: User
) -> None:
    first = reply(simulator, 0, "Your code is 1234", sender="BANK")
    client = signed_in(answerer)
    page = client.get(f"/inbox/{first.pk}/").content.decode()
    assert "cannot be answered" in page and 'id="answer-form"' not in page
    response = client.post(f"/inbox/{first.pk}/reply/", {"answering": first.pk, "body": "Hi"})
    assert "cannot be answered" in texts(response)[-1]
    assert not Message.objects.exists()


def test_an_answer_to_a_reply_of_another_thread_is_refused(
    simulator: ProviderAccount, answerer: User
) -> None:
    mine, theirs = reply(simulator, 1, "Hi"), reply(simulator, 2, "Hello")
    response = signed_in(answerer).post(
        f"/inbox/{mine.pk}/reply/", {"answering": theirs.pk, "body": "Hi"}
    )
    assert "not part of this conversation" in texts(response)[-1]
    assert not Message.objects.exists()


# --- handled and opt-outs -----------------------------------------------------------------


def test_mark_handled_stamps_who_and_when_on_what_the_page_showed_only(
    simulator: ProviderAccount, answerer: User
) -> None:
    first = reply(simulator, 1, "Hi", ago=timedelta(minutes=5))
    second = reply(simulator, 1, "Hello?", ago=timedelta(minutes=4))
    client = signed_in(answerer)
    page = client.get(f"/inbox/{first.pk}/").content.decode()
    assert f'name="through" value="{second.pk}"' in page
    later = reply(simulator, 1, "Still there?")  # came after the page was drawn

    response = client.post(f"/inbox/{first.pk}/handled/", {"through": second.pk})

    assert "2 replies marked handled." in texts(response)[-1]
    handled = InboundMessage.objects.filter(handled_at__isnull=False)
    assert set(handled) == {first, second}
    assert {r.handled_by for r in handled} == {answerer}
    assert InboundMessage.objects.get(pk=later.pk).handled_at is None
    again = client.post(f"/inbox/{first.pk}/handled/", {"through": second.pk})
    assert "handled already" in texts(again)[-1]
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.REPLIES_HANDLED)
    assert event.actor == answerer
    assert event.detail == {"count": 2, "through": second.pk, "number": redact(phone(1))}


def test_confirming_a_possible_opt_out_opts_the_number_out_once_audited(
    simulator: ProviderAccount, answerer: User
) -> None:
    first = reply(simulator, 1, "please stop texting me")
    client = signed_in(answerer)
    page = client.get(f"/inbox/{first.pk}/").content.decode()
    assert "Confirm opt-out" in page

    response = client.post(f"/inbox/{first.pk}/confirm-opt-out/")

    assert "Opted out of SMS" in texts(response)[-1]
    entry = OptOut.objects.get(phone=phone(1))
    assert (entry.channel, entry.source) == ("sms", OptOut.Source.REPLY)
    event = AuditEvent.objects.get(action=AuditEvent.Action.OPT_OUT_ADDED)
    assert event.actor == answerer
    first.refresh_from_db()
    assert (first.action, first.possible_opt_out, first.handled_by) == ("opt_out", False, answerer)
    again = client.post(f"/inbox/{first.pk}/confirm-opt-out/")
    assert "Already confirmed" in texts(again)[-1]
    assert OptOut.objects.count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.OPT_OUT_ADDED).count() == 1
    assert "Confirm opt-out" not in client.get(f"/inbox/{first.pk}/").content.decode()


def test_confirming_a_reply_that_is_no_possible_opt_out_changes_nothing(
    simulator: ProviderAccount, answerer: User
) -> None:
    first = reply(simulator, 1, "Love it")
    response = signed_in(answerer).post(f"/inbox/{first.pk}/confirm-opt-out/")
    assert "not flagged as a possible opt-out" in texts(response)[-1]
    assert not OptOut.objects.exists()


# --- who may ------------------------------------------------------------------------------


def test_reading_the_inbox_needs_replies_contacts_and_messages_and_acting_reply_inbound(
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
    reader: User,
    make_user: Callable[..., User],
) -> None:
    first = reply(simulator, 1, "please stop texting me")
    for refused in (make_user("stan"), granted(make_user("cy"), "view_contact", "view_message")):
        client = signed_in(refused)
        assert client.get("/inbox/").status_code == 403
        assert client.get(f"/inbox/{first.pk}/").status_code == 403
        assert 'id="nav-inbox"' not in client.get("/").content.decode()
    for user in (marketer, approver):  # both roles may answer
        page = signed_in(user).get(f"/inbox/{first.pk}/").content.decode()
        assert "Confirm opt-out" in page and 'id="answer-form"' in page
    client = signed_in(reader)
    assert client.get("/inbox/").status_code == 200
    page = client.get(f"/inbox/{first.pk}/").content.decode()
    assert "Confirm opt-out" not in page and 'id="answer-form"' not in page
    assert 'id="mark-handled"' not in page
    for action in ("reply", "handled", "confirm-opt-out"):
        post = client.post(f"/inbox/{first.pk}/{action}/", {"body": "x", "through": first.pk})
        assert post.status_code == 403
    assert not Message.objects.exists() and not OptOut.objects.exists()
    assert InboundMessage.objects.get().handled_at is None


def test_signed_out_visitors_are_sent_to_sign_in_and_actions_are_post_only(
    simulator: ProviderAccount, answerer: User
) -> None:
    first = reply(simulator, 1, "Hi")
    assert Client().get("/inbox/")["Location"].startswith("/accounts/login/")
    client = signed_in(answerer)
    for action in ("reply", "handled", "confirm-opt-out"):
        assert client.get(f"/inbox/{first.pk}/{action}/").status_code == 405


def test_actions_need_the_csrf_token(simulator: ProviderAccount, answerer: User) -> None:
    first = reply(simulator, 1, "please stop texting me")
    client = Client(enforce_csrf_checks=True)
    client.force_login(answerer)
    assert client.post(f"/inbox/{first.pk}/confirm-opt-out/").status_code == 403
    assert client.post(f"/inbox/{first.pk}/handled/", {"through": first.pk}).status_code == 403
    assert not OptOut.objects.exists()


# --- the campaign page and the reports ----------------------------------------------------


def spring_with_replies(
    account: ProviderAccount,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
) -> Campaign:
    """Spring, sending: 4 delivered and 1 sent of 5; 2 replies, one an opt-out."""
    contacts = make_contacts(5, start=1)
    spring = make_campaign(account)
    Campaign.objects.filter(pk=spring.pk).update(
        status=Campaign.Status.SENDING, started_at=timezone.now() - timedelta(hours=2)
    )
    for contact in contacts[:4]:
        sent(account, contact, spring)
    sent(account, contacts[4], spring, status=Message.Status.SENT)
    reply(account, 1, "Love it")
    reply(account, 2, "STOP")
    reply(account, 9, "Who is this?")  # nobody's: put down to no campaign
    spring.refresh_from_db()
    return spring


def test_the_campaign_page_shows_replies_and_opt_outs_with_rates_and_a_link_to_them(
    simulator: ProviderAccount,
    marketer: User,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
) -> None:
    spring = spring_with_replies(simulator, make_contacts, make_campaign)
    page = signed_in(marketer).get(f"/campaigns/{spring.pk}/").content.decode()
    shown = page.split('id="campaign-replies">')[1].split("</dl>")[0]
    figures = " ".join(re.sub(r"<[^>]+>", "", shown).split())
    assert figures == (
        "Replies 2: 50.0% of 4 delivered, 40.0% of 5 sent "
        "Opt-outs by reply 1: 25.0% of 4 delivered, 20.0% of 5 sent"
    )
    assert f'href="/inbox/?campaign={spring.pk}"' in page


def test_the_reports_show_replies_and_opt_outs_per_campaign_and_in_the_csv(
    simulator: ProviderAccount,
    marketer: User,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
) -> None:
    spring = spring_with_replies(simulator, make_contacts, make_campaign)
    client = signed_in(marketer)
    page = client.get("/reports/").content.decode()
    row = " ".join(re.sub(r"<[^>]+>", " ", page.split('<th scope="row">Spring</th>')[1]).split())
    assert "2 replies to Spring 50.0% 1 25.0%" in row.split("</tr>")[0]
    assert f'href="/inbox/?campaign={spring.pk}"' in page
    text = client.get("/reports/", {"format": "csv"}).getvalue().decode()
    header, line = text.splitlines()[:2]
    assert header.endswith(
        "replies,reply_rate,opt_outs,opt_out_rate,unique_clicks,clicks,click_through_rate"
    )
    assert line.endswith("2,0.5000,1,0.2500,0,0,0.0000")
