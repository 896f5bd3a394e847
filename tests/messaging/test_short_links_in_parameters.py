"""Short links in WhatsApp template parameters (issue 20): a template campaign sends its
approved template with parameters, not a free text, and every URL a recipient gets in
them goes as their own `/r/<code>`, counted like a link of the text.

Runs on SQLite and PostgreSQL alike (DATABASE_URL).
"""

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

import messaging
from campaigns.models import Campaign, MessageTemplate
from campaigns.preview import estimate
from campaigns.segments import Segment
from campaigns.sending import materialise, run_campaign
from campaigns.testsend import send_test
from contacts.models import Contact, Group, OptOut
from messaging import counts
from messaging.models import Link, Message, ProviderAccount
from tests.conftest import own_test_number, phone
from tests.messaging.test_short_links import draw_only_taken_codes, sending

pytestmark = pytest.mark.django_db
BASE = "https://hrl.example/"
SHORT = re.compile(r"https://hrl\.example/r/([A-Za-z0-9_-]{8})")
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def offer(i: int) -> str:
    return f"https://shop.example.com/offer/{i}?ref=wa"


@pytest.fixture(autouse=True)
def _links_on(settings: Any) -> None:
    settings.HERALD_LINK_BASE = BASE


@pytest.fixture
def group(db: Any) -> Group:
    """Four contacts, each with an offer of their own; the last one opted out."""
    group = Group.objects.create(name="Customers")
    for i in range(4):
        contact = Contact.objects.create(
            phone=phone(i), first_name=f"Name{i}", attributes={"offer": offer(i)}
        )
        contact.groups.add(group)
    OptOut.objects.create(phone=phone(3), channel="whatsapp")
    return group


def template_campaign(
    make_campaign: Callable[..., Campaign],
    account: ProviderAccount,
    group: Group,
    body: str = "Hi {{first_name}}, your offer is waiting",
    parameters: tuple[str, ...] = ("first_name", "offer"),
) -> Campaign:
    template = MessageTemplate.objects.create(
        name=f"wa {MessageTemplate.objects.count()}",
        channel="whatsapp",
        body=body,
        whatsapp_template_id="offer_1",
        whatsapp_parameters=list(parameters),
    )
    campaign = make_campaign(account, group, body="")
    campaign.channel, campaign.template = "whatsapp", template
    campaign.save()
    return campaign


@pytest.fixture
def built(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> Campaign:
    campaign = sending(template_campaign(make_campaign, locmem, group), marketer, approver)
    materialise(campaign)
    return campaign


def code_in(text: str) -> str:
    found = SHORT.fullmatch(text)
    assert found, text
    return found[1]


def queued(campaign: Campaign) -> list[Message]:
    return list(campaign.messages.filter(status=Message.Status.PENDING).order_by("contact_id"))


def test_a_parameters_url_becomes_each_recipients_own_short_link(built: Campaign) -> None:
    messages = queued(built)
    assert len(messages) == 3
    codes = []
    for i, message in enumerate(messages):
        first_name, link = message.template_params
        assert first_name == f"Name{i}"
        code = code_in(link)
        codes.append(code)
        row = Link.objects.get(code=code)
        assert row.message_id == message.pk and row.clicks == 0
        assert row.url.startswith(offer(i) + "&")
        query = parse_qs(urlsplit(row.url).query)
        assert query["utm_source"] == ["whatsapp"] and query["utm_campaign"] == ["spring"]
        assert message.body == f"Hi Name{i}, your offer is waiting"
    assert len(set(codes)) == 3
    assert Link.objects.count() == 3
    skipped = built.messages.get(status=Message.Status.SKIPPED)
    assert skipped.template_params == ["Name3", offer(3)]  # never sent: as written, no link
    assert not Link.objects.filter(message=skipped).exists()


def test_the_sent_parameters_carry_the_short_link_and_its_click_counts(
    built: Campaign, marketer: User, client: Client
) -> None:
    messaging.outbox.clear()
    run_campaign(built)
    sent = sorted(messaging.outbox, key=lambda m: m.contact_id)
    assert len(sent) == 3
    assert all(SHORT.fullmatch(m.template_params[1]) for m in sent)
    first = sent[0]
    code = code_in(first.template_params[1])
    answer = Client().get(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA)
    assert answer.status_code == 302 and answer["Location"].startswith(offer(0) + "&utm_")
    Client().get(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA)
    assert Link.objects.get(code=code).clicks == 2
    assert counts.click_counts([built.pk])[built.pk] == {"unique": 1, "total": 2}
    # Counted the same everywhere: segments, the per-recipient CSV, the campaign page.
    clicked = Segment(name="s", rules=[f"clicked {built.pk}"]).contacts()
    assert list(clicked.values_list("pk", flat=True)) == [first.contact_id]
    client.force_login(marketer)
    export = client.get(f"/campaigns/{built.pk}/export.csv").getvalue().decode().splitlines()
    assert export[0].endswith(",clicked")
    clicked_lines = [line for line in export[1:] if not line.endswith(",")]
    assert len(clicked_lines) == 1 and clicked_lines[0].startswith(first.phone)
    page = client.get(f"/campaigns/{built.pk}/").content.decode()
    figures = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Unique clicks 1" in figures and "Clicks in all 2" in figures


def test_a_url_in_both_the_text_and_a_parameter_is_one_link(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> None:
    """The text is Herald's copy of the template: it shows the link the recipient got."""
    campaign = template_campaign(
        make_campaign, locmem, group, body="Your offer: {{offer}}", parameters=("offer",)
    )
    materialise(sending(campaign, marketer, approver))
    messages = queued(campaign)
    for message in messages:
        (link,) = message.template_params
        code = code_in(link)
        assert message.body == f"Your offer: {link}"
        assert list(Link.objects.filter(message=message).values_list("code", flat=True)) == [code]
    assert Link.objects.count() == 3


def test_the_preview_shows_the_short_link_in_the_parameters_too(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount, group: Group
) -> None:
    from campaigns.content import Content

    campaign = template_campaign(
        make_campaign, locmem, group, body="Your offer: {{offer}}", parameters=("offer",)
    )
    figures = estimate(campaign)
    assert figures.samples[0].body == f"Your offer: {BASE}r/xxxxxxxx"
    content = Content.of(campaign)
    sent = content.sent(content.render({"offer": offer(0)}))
    assert sent.parameters == (f"{BASE}r/xxxxxxxx",)


def test_a_test_send_gets_a_working_link_in_its_parameters(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount, group: Group, marketer: User
) -> None:
    campaign = template_campaign(make_campaign, locmem, group)
    own_test_number(marketer, "+447911123456")
    message = send_test(campaign, "+447911123456", by=marketer)
    code = code_in(message.template_params[1])
    assert Link.objects.get(code=code).message_id == message.pk
    answer = Client().get(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA)
    assert answer.status_code == 302 and answer["Location"].startswith(offer(0))
    assert Link.objects.get(code=code).clicks == 1
    assert counts.click_counts([campaign.pk])[campaign.pk] == {"unique": 0, "total": 0}


def test_parameters_go_as_written_when_links_are_left_alone(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> None:
    campaign = template_campaign(make_campaign, locmem, group)
    Campaign.objects.filter(pk=campaign.pk).update(track_links=False)
    campaign.refresh_from_db()
    materialise(sending(campaign, marketer, approver))
    assert [m.template_params[1] for m in queued(campaign)] == [offer(i) for i in range(3)]
    assert not Link.objects.exists()


def test_a_code_already_taken_is_drawn_again_in_the_parameters(
    built: Campaign,
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = draw_only_taken_codes(monkeypatch)
    campaign = sending(template_campaign(make_campaign, locmem, group), marketer, approver)
    materialise(campaign)
    mine = queued(campaign)
    codes = [code_in(m.template_params[1]) for m in mine]
    assert len(set(codes)) == 3 and not set(codes) & set(taken)
    for message, code in zip(mine, codes, strict=True):
        assert Link.objects.get(code=code).message_id == message.pk


def test_a_test_won_by_clicks_counts_the_links_in_the_parameters(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> None:
    from campaigns import variants
    from campaigns.models import ABMode, WinnerBy
    from tests.campaigns.test_ab_variants import deliver_all
    from tests.campaigns.test_ab_variants import sending as approved

    for i in range(4, 40):
        contact = Contact.objects.create(
            phone=phone(i), first_name=f"Name{i}", attributes={"offer": offer(i)}
        )
        contact.groups.add(group)
    campaign = template_campaign(make_campaign, locmem, group)
    # No text has a URL: the links are in each recipient's "offer" parameter.
    Campaign.objects.filter(pk=campaign.pk).update(
        variant_bodies=["Hello {{first_name}}, an offer for you"],
        ab_mode=ABMode.TEST,
        ab_test_share=50,
        ab_test_hours=1,
        ab_winner_by=WinnerBy.CLICKS,
    )
    campaign.refresh_from_db()
    campaign.full_clean(exclude=["created_by"])  # refused before: "No variant has a link"
    campaign = approved(campaign, marketer, approver)
    run_campaign(campaign)
    test_share = list(campaign.messages.exclude(status=Message.Status.SKIPPED))
    assert {m.variant for m in test_share} == {"A", "B"}
    deliver_all(campaign)
    for message in [m for m in test_share if m.variant == "B"][:2]:
        Client().get(f"/r/{code_in(message.template_params[1])}", HTTP_USER_AGENT=PHONE_UA)
    Campaign.objects.filter(pk=campaign.pk).update(ab_test_ends_at=timezone.now())
    assert variants.decide_due() == [campaign.pk]
    campaign.refresh_from_db()
    assert campaign.ab_winner == "B"
    assert campaign.ab_decision["variants"]["B"]["clicks"]["unique"] == 2
