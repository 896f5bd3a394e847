"""Short links and click counting (issue 20): each URL of a campaign's text becomes a
per-recipient `/r/<code>` on HERALD_LINK_BASE, and following it counts a click.

Runs on SQLite and PostgreSQL alike (DATABASE_URL).
"""

import base64
import os
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.preview import estimate
from campaigns.sending import CODE_POOL, materialise, run_campaign
from campaigns.testsend import send_test
from contacts.erasure import erase
from contacts.models import Contact, Group, OptOut
from messaging import counts
from messaging.links import CODE_BYTES, find_urls, new_codes, with_utm
from messaging.models import Click, Link, Message, ProviderAccount
from messaging.privacy import purge_content
from tests.conftest import own_test_number

pytestmark = pytest.mark.django_db
BASE = "https://hrl.example/"
LONG = "https://shop.example.com/spring/sale?ref=newsletter&items=" + "x" * 120
SHORT = re.compile(r"https://hrl\.example/r/([A-Za-z0-9_-]{8})")
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
DESKTOP_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
PREVIEWERS = [
    "WhatsApp/2.23.20.0 A",
    "facebookexternalhit/1.1 Facebot Twitterbot/1.0",  # iMessage calls itself this
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


@pytest.fixture(autouse=True)
def _links_on(settings: Any) -> None:
    settings.HERALD_LINK_BASE = BASE


def sending(campaign: Campaign, marketer: User, approver: User) -> Campaign:
    campaign.submit(by=marketer)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.SENDING, approved_by=approver, started_at=timezone.now()
    )
    campaign.refresh_from_db()
    return campaign


@pytest.fixture
def group(make_contacts: Callable[..., list[Contact]]) -> Group:
    group = Group.objects.create(name="Customers")
    contacts = make_contacts(4, group)
    OptOut.objects.create(phone=contacts[3].phone)
    return group


@pytest.fixture
def built(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> Campaign:
    campaign = make_campaign(locmem, group, body=f"Hi {{{{first_name}}}}, sale on: {LONG}. Bye")
    campaign = sending(campaign, marketer, approver)
    materialise(campaign)
    return campaign


def draw_only_taken_codes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operating system's randomness, replayed: from now on the build's draw of a pool
    of codes gives back only codes in use (48 random bits make that rare, never
    impossible). The codes in use, sorted."""
    taken = sorted(Link.objects.values_list("code", flat=True))
    repeated = b"".join(base64.urlsafe_b64decode(code) for code in taken)
    real = os.urandom

    def replayed(size: int) -> bytes:
        if size == CODE_BYTES * CODE_POOL:
            return (repeated * CODE_POOL)[:size]
        return real(size)

    monkeypatch.setattr(os, "urandom", replayed)
    return taken


def code_of(message: Message) -> str:
    found = SHORT.search(message.body)
    assert found, message.body
    return found[1]


def test_each_recipient_gets_a_short_link_of_their_own(built: Campaign) -> None:
    queued = list(built.messages.filter(status=Message.Status.PENDING).order_by("pk"))
    assert len(queued) == 3
    codes = [code_of(m) for m in queued]
    assert len(set(codes)) == 3
    for message, code in zip(queued, codes, strict=True):
        assert LONG not in message.body
        assert message.body.endswith(f"sale on: {BASE}r/{code}. Bye")
        link = Link.objects.get(code=code)
        assert link.message_id == message.pk and link.clicks == 0
        query = parse_qs(urlsplit(link.url).query)
        assert link.url.startswith(LONG + "&")
        assert query["utm_source"] == ["sms"] and query["utm_campaign"] == ["spring"]
    # Segments and cost are the short text's: the long URL alone would take two parts.
    assert {m.segments for m in queued} == {1}
    skipped = built.messages.get(status=Message.Status.SKIPPED)
    assert not Link.objects.filter(message=skipped).exists()
    assert Link.objects.count() == 3


def test_the_preview_counts_the_short_link_not_the_long_url(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount, group: Group, settings: Any
) -> None:
    campaign = make_campaign(locmem, group, body=f"Hi {{{{first_name}}}}, sale on: {LONG}")
    figures = estimate(campaign)
    assert figures.segments == 3  # three queued, one part each
    assert figures.samples[0].body == f"Hi Name0, sale on: {BASE}r/xxxxxxxx"
    settings.HERALD_LINK_BASE = ""
    figures = estimate(campaign)
    assert figures.segments == 6 and LONG in figures.samples[0].body


def test_links_are_left_alone_when_off(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
    settings: Any,
) -> None:
    switched_off = make_campaign(locmem, group, body=f"Sale: {LONG}")
    Campaign.objects.filter(pk=switched_off.pk).update(track_links=False)
    switched_off.refresh_from_db()
    materialise(sending(switched_off, marketer, approver))
    assert {m.body for m in switched_off.messages.all()} == {f"Sale: {LONG}"}
    settings.HERALD_LINK_BASE = ""
    unset = make_campaign(locmem, group, body=f"More: {LONG}")
    materialise(sending(unset, marketer, approver))
    assert {m.body for m in unset.messages.all()} == {f"More: {LONG}"}
    assert not Link.objects.exists()


def test_without_utm_the_destination_is_the_url_as_written(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> None:
    campaign = make_campaign(locmem, group, body="Two: https://a.example/x and http://b.example/")
    Campaign.objects.filter(pk=campaign.pk).update(link_utm=False)
    campaign.refresh_from_db()
    materialise(sending(campaign, marketer, approver))
    message = campaign.messages.filter(status=Message.Status.PENDING).first()
    assert message is not None
    assert len(SHORT.findall(message.body)) == 2
    assert sorted(Link.objects.filter(message=message).values_list("url", flat=True)) == [
        "http://b.example/",
        "https://a.example/x",
    ]


def test_following_a_link_redirects_and_counts_the_click(built: Campaign) -> None:
    message = built.messages.filter(status=Message.Status.PENDING).order_by("pk").first()
    assert message is not None
    code = code_of(message)
    client = Client()
    answer = client.get(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA)
    assert answer.status_code == 302
    assert answer["Location"] == Link.objects.get(code=code).url
    assert not answer.cookies  # no cookie, no session
    client.get(f"/r/{code}", HTTP_USER_AGENT=DESKTOP_UA)
    link = Link.objects.get(code=code)
    assert link.clicks == 2 and link.first_clicked_at and link.last_clicked_at
    assert link.first_clicked_at <= link.last_clicked_at
    assert sorted(Click.objects.values_list("agent", flat=True)) == ["desktop", "mobile"]
    assert counts.click_counts([built.pk])[built.pk] == {"unique": 1, "total": 2}
    assert sum(n for _, n in counts.clicks_by_hour(built.pk)) == 2
    other = built.messages.filter(status=Message.Status.PENDING).order_by("pk").last()
    assert other is not None
    client.get(f"/r/{code_of(other)}", HTTP_USER_AGENT=PHONE_UA)
    assert counts.click_counts([built.pk])[built.pk] == {"unique": 2, "total": 3}


def test_head_and_preview_fetchers_are_redirected_but_not_counted(built: Campaign) -> None:
    message = built.messages.filter(status=Message.Status.PENDING).first()
    assert message is not None
    code = code_of(message)
    client = Client()
    assert client.head(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA).status_code == 302
    for agent in PREVIEWERS:
        assert client.get(f"/r/{code}", HTTP_USER_AGENT=agent).status_code == 302, agent
    assert Link.objects.get(code=code).clicks == 0
    assert not Click.objects.exists()
    assert counts.click_counts([built.pk])[built.pk] == {"unique": 0, "total": 0}


@pytest.mark.parametrize("path", ["/r/AAAAAAAA", "/r/short", "/r/toolong123", "/r/%3Cscript%3E"])
def test_an_unknown_or_malformed_code_is_a_plain_404(built: Campaign, path: str) -> None:
    answer = Client().get(path)
    assert answer.status_code == 404
    page = answer.content.decode()
    assert "Link not found" in page and "<nav" not in page and "Sign in" not in page
    assert not answer.cookies


def test_only_get_and_head_are_answered(built: Campaign) -> None:
    message = built.messages.filter(status=Message.Status.PENDING).first()
    assert message is not None
    assert Client().post(f"/r/{code_of(message)}").status_code == 405


def test_one_recipient_counts_once_however_many_of_their_links_they_follow(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> None:
    campaign = make_campaign(locmem, group, body="See https://a.example/ or https://b.example/")
    materialise(sending(campaign, marketer, approver))
    message = campaign.messages.filter(status=Message.Status.PENDING).first()
    assert message is not None
    for code in SHORT.findall(message.body):
        Client().get(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA)
    assert counts.click_counts([campaign.pk])[campaign.pk] == {"unique": 1, "total": 2}


def test_links_work_after_the_campaign_ends_until_retention_purges_them(
    built: Campaign, locmem: ProviderAccount
) -> None:
    run_campaign(built)
    built.refresh_from_db()
    assert built.status == Campaign.Status.COMPLETED
    message = built.messages.exclude(status=Message.Status.SKIPPED).first()
    assert message is not None
    code = code_of(message)
    assert Client().get(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA).status_code == 302
    purge_content(built.messages.all())
    assert Client().get(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA).status_code == 404
    # The figures stay: they name no one.
    assert counts.click_counts([built.pk])[built.pk] == {"unique": 1, "total": 1}
    assert Link.objects.get(code=code).clicks == 1


def test_an_erased_persons_links_lead_nowhere(built: Campaign) -> None:
    message = built.messages.filter(status=Message.Status.PENDING).first()
    assert message is not None and message.contact_id is not None
    code = code_of(message)
    erase(contact_ids=[message.contact_id])
    assert Link.objects.get(code=code).url == ""
    assert Client().get(f"/r/{code}").status_code == 404


def test_a_test_send_has_working_links_that_count_for_no_campaign(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount, group: Group, marketer: User
) -> None:
    campaign = make_campaign(locmem, group, body=f"Try {LONG}")
    own_test_number(marketer, "+447911123456")
    message = send_test(campaign, "+447911123456", by=marketer)
    code = code_of(message)
    answer = Client().get(f"/r/{code}", HTTP_USER_AGENT=PHONE_UA)
    assert answer.status_code == 302 and answer["Location"].startswith(LONG)
    assert Link.objects.get(code=code).clicks == 1
    assert counts.click_counts([campaign.pk])[campaign.pk] == {"unique": 0, "total": 0}


def test_a_code_already_taken_is_drawn_again(
    built: Campaign,
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = draw_only_taken_codes(monkeypatch)
    campaign = make_campaign(locmem, group, body="Again: https://a.example/")
    materialise(sending(campaign, marketer, approver))
    mine = list(campaign.messages.filter(status=Message.Status.PENDING))
    codes = [code_of(m) for m in mine]
    assert len(set(codes)) == 3 and not set(codes) & set(taken)
    for message, code in zip(mine, codes, strict=True):
        assert Link.objects.get(code=code).message_id == message.pk


def test_urls_are_found_without_the_punctuation_after_them() -> None:
    text = "Go to https://a.example/x. Or (https://b.example/y), or https://c.example/(z)!"
    assert [text[s:e] for s, e in find_urls(text)] == [
        "https://a.example/x",
        "https://b.example/y",
        "https://c.example/(z)",
    ]
    assert find_urls("no https:// here, nor http://") == []


def test_utm_parameters_never_replace_the_urls_own() -> None:
    assert with_utm("https://a.example/?utm_source=flyer", "sms", "spring") == (
        "https://a.example/?utm_source=flyer&utm_campaign=spring"
    )
    assert with_utm("https://a.example/p#top", "sms", "spring") == (
        "https://a.example/p?utm_source=sms&utm_campaign=spring#top"
    )


def test_codes_are_48_random_bits_in_8_url_safe_characters() -> None:
    codes = new_codes(10_000)
    assert len(set(codes)) == 10_000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{8}", code) for code in codes)


def test_segments_find_who_clicked(built: Campaign, locmem: ProviderAccount) -> None:
    from campaigns.segments import Segment

    first, second, _ = built.messages.filter(status=Message.Status.PENDING).order_by("pk")
    Client().get(f"/r/{code_of(first)}", HTTP_USER_AGENT=PHONE_UA)
    Client().get(f"/r/{code_of(second)}", HTTP_USER_AGENT="WhatsApp/2.23.20.0 A")  # a preview

    def who(*rules: str) -> set[int]:
        return set(Segment(name="s", rules=list(rules)).contacts().values_list("pk", flat=True))

    assert who("clicked any") == {first.contact_id}
    assert who(f"clicked {built.pk} within 7") == {first.contact_id}
    assert who(f"clicked {built.pk + 1}") == set()
    everyone = set(Contact.objects.values_list("pk", flat=True))
    assert who("clicked != any within 30") == everyone - {first.contact_id}
    # Clicked, but not in the last N days.
    Link.objects.filter(message=first).update(last_clicked_at=timezone.now() - timedelta(days=10))
    assert who("clicked any within 7") == set() and who("clicked any") == {first.contact_id}


def test_the_campaign_page_and_its_csv_show_the_clicks(
    built: Campaign, marketer: User, client: Client
) -> None:
    run_campaign(built)
    built.messages.filter(status=Message.Status.SENT).record_report(
        Message.Status.DELIVERED, timezone.now(), "", ""
    )
    first = built.messages.filter(status=Message.Status.DELIVERED).order_by("pk").first()
    assert first is not None
    Client().get(f"/r/{code_of(first)}", HTTP_USER_AGENT=PHONE_UA)
    Client().get(f"/r/{code_of(first)}", HTTP_USER_AGENT=PHONE_UA)
    client.force_login(marketer)
    page = client.get(f"/campaigns/{built.pk}/").content.decode()
    figures = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    delivered = built.messages.filter(status=Message.Status.DELIVERED).count()
    rate = round(100 / delivered, 1)
    assert f"Unique clicks 1 : a click-through rate of {rate}% of {delivered} delivered" in figures
    assert "Clicks in all 2" in figures
    assert "2 clicks between" in figures
    export = client.get(f"/campaigns/{built.pk}/export.csv").getvalue().decode().splitlines()
    assert export[0].endswith(",clicked")
    clicked = [line for line in export[1:] if not line.endswith(",")]
    assert len(clicked) == 1 and clicked[0].startswith(first.phone)


def test_the_reports_show_clicks_per_campaign_and_per_day(
    built: Campaign, marketer: User, client: Client, settings: Any
) -> None:
    settings.HERALD_REPORT_SECONDS = 0
    run_campaign(built)
    built.messages.filter(status=Message.Status.SENT).record_report(
        Message.Status.DELIVERED, timezone.now(), "", ""
    )
    first, second, _ = built.messages.filter(status=Message.Status.DELIVERED).order_by("pk")
    for message in (first, first, second):
        Client().get(f"/r/{code_of(message)}", HTTP_USER_AGENT=PHONE_UA)
    client.force_login(marketer)
    page = client.get("/reports/").content.decode()
    row = " ".join(re.sub(r"<[^>]+>", " ", page.split('<th scope="row">Spring</th>')[1]).split())
    assert row.split("All 1 campaign")[0].strip().endswith("2 66.7%")  # of 3 delivered
    assert 'id="click-chart"' in page and "3 clicks from" in page
    today = timezone.localdate()
    assert f"{today:%a} {today.day} {today:%b %Y}" in page
    line = client.get("/reports/", {"format": "csv"}).getvalue().decode().splitlines()[1]
    assert line.endswith(",2,3,0.6667")


def test_the_cli_makes_campaigns_with_or_without_short_links_and_reports_clicks(
    built: Campaign, locmem: ProviderAccount, group: Group
) -> None:
    import io
    import json

    from django.core.management import call_command

    def cli(*args: str) -> str:
        out = io.StringIO()
        call_command("campaign", *args, stdout=out)
        return out.getvalue()

    plain = cli(
        "create",
        "--name",
        "Plain",
        "--provider",
        "mem",
        "--body",
        "x",
        "--group",
        "Customers",
        "--no-short-links",
        "--no-utm",
    )
    made = Campaign.objects.get(pk=int(plain))
    assert (made.track_links, made.link_utm) == (False, False)
    default = Campaign.objects.get(
        pk=int(
            cli("create", "--name", "D", "--provider", "mem", "--body", "x", "--group", "Customers")
        )
    )
    assert (default.track_links, default.link_utm) == (True, True)
    message = built.messages.filter(status=Message.Status.PENDING).first()
    assert message is not None
    for agent in (PHONE_UA, DESKTOP_UA):
        Client().get(f"/r/{code_of(message)}", HTTP_USER_AGENT=agent)
    summary = json.loads(cli("status", str(built.pk), "--json"))
    assert summary["clicks"] == {"unique": 1, "total": 2}
    assert "clicks: 1 unique" in cli("status", str(built.pk))


@pytest.mark.postgres
def test_a_links_code_is_indexed_once_on_postgresql() -> None:
    """Django adds a LIKE index to an indexed CharField on PostgreSQL: every link of a
    build paid for an entry in it, and no code is ever looked up by pattern."""
    from django.db import connection

    with connection.cursor() as cursor:
        table = Link._meta.db_table
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table])
        on_code = [row[0] for row in cursor.fetchall() if "(code" in row[0]]
    assert len(on_code) == 1 and "UNIQUE" in on_code[0], on_code
