"""A/B variants (issue 20): two to four texts of one campaign, approved together, each
recipient given one for good; a split, or a test whose winner goes to the rest.

Runs on SQLite and PostgreSQL alike (DATABASE_URL).
"""

import io
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from campaigns import variants
from campaigns.models import ABMode, Campaign, WinnerBy
from campaigns.preview import estimate
from campaigns.sending import materialise, run_campaign
from contacts.models import Contact, Group
from messaging import counts
from messaging.models import Message, ProviderAccount

pytestmark = pytest.mark.django_db
S = Campaign.Status
M = Message.Status
SHORT = re.compile(r"https://hrl\.example/r/([A-Za-z0-9_-]{8})")
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"


@pytest.fixture
def group(make_contacts: Callable[..., list[Contact]]) -> Group:
    group = Group.objects.create(name="Customers")
    make_contacts(200, group)
    return group


def ab(
    make_campaign: Callable[..., Campaign],
    account: ProviderAccount,
    group: Group,
    *others: str,
    **fields: Any,
) -> Campaign:
    campaign = make_campaign(account, group, body="A: Hi {{first_name}}")
    Campaign.objects.filter(pk=campaign.pk).update(variant_bodies=list(others), **fields)
    campaign.refresh_from_db()
    campaign.full_clean(exclude=["created_by"])
    return campaign


def sending(campaign: Campaign, marketer: User, approver: User) -> Campaign:
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    campaign.refresh_from_db()
    if campaign.status == S.SCHEDULED:
        campaign.start()
        campaign.refresh_from_db()
    return campaign


def deliver_all(campaign: Campaign) -> None:
    campaign.messages.filter(status=M.SENT).record_report(M.DELIVERED, timezone.now(), "", "")


def test_a_split_gives_each_recipient_one_variant_for_good(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> None:
    campaign = ab(make_campaign, locmem, group, "B: Hello {{first_name}}", ab_split=[30, 70])
    campaign = sending(campaign, marketer, approver)
    run_campaign(campaign)
    campaign.refresh_from_db()
    assert campaign.status == S.COMPLETED
    messages = list(campaign.messages.select_related("contact"))
    assert len(messages) == 200
    assigner = variants.Assigner.of(campaign)
    for message in messages:
        assert message.contact is not None and message.contact_id is not None
        assert message.variant == assigner.variant(message.contact_id)
        name = message.contact.first_name
        expected = f"A: Hi {name}" if message.variant == "A" else f"B: Hello {name}"
        assert message.body == expected
    share = Counter(m.variant for m in messages)
    assert 40 <= share["A"] <= 80 and share["A"] + share["B"] == 200  # about 30 %
    # The same ids always fall the same way, whatever else changes.
    again = variants.Assigner.of(Campaign.objects.get(pk=campaign.pk))
    assert [again.variant(m.contact_id or 0) for m in messages] == [m.variant for m in messages]
    per_variant = variants.figures(campaign)
    assert per_variant["A"]["counts"]["sent"] == share["A"]
    assert per_variant["B"]["counts"]["sent"] == share["B"]


def test_all_variants_are_previewed_and_bound_by_the_approval(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> None:
    long_b = "B: " + "x" * 200  # two segments
    campaign = ab(make_campaign, locmem, group, long_b, "C: Hi {{first_name}} (C)")
    figures = estimate(campaign)
    assert [v.variant for v in figures.variants] == ["A", "B", "C"]
    assert [round(v.share) for v in figures.variants] == [33, 33, 33]
    shares = {v.variant: v for v in figures.variants}
    assert shares["B"].segments == pytest.approx(2 * shares["A"].segments, rel=0.02)
    assert figures.segments == sum(v.segments for v in figures.variants)
    assert shares["C"].sample == "C: Hi Name0 (C)"
    # Editing a variant after approval holds the campaign for approval again.
    campaign = sending(campaign, marketer, approver)
    Campaign.objects.filter(pk=campaign.pk).update(variant_bodies=[long_b, "C: changed"])
    campaign.refresh_from_db()
    materialise(campaign)
    campaign.refresh_from_db()
    assert campaign.status == S.PENDING_APPROVAL
    assert not campaign.messages.exists()


def test_a_test_sends_to_the_test_share_then_the_winner_to_the_rest(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
    settings: Any,
) -> None:
    settings.HERALD_LINK_BASE = "https://hrl.example/"
    campaign = ab(
        make_campaign,
        locmem,
        group,
        "B: Hello {{first_name}} https://shop.example/b",
        ab_mode=ABMode.TEST,
        ab_test_share=30,
        ab_test_hours=4,
        ab_winner_by=WinnerBy.CLICKS,
    )
    Campaign.objects.filter(pk=campaign.pk).update(
        body="A: Hi {{first_name}} https://shop.example/a"
    )
    campaign.refresh_from_db()
    campaign = sending(campaign, marketer, approver)
    run_campaign(campaign)
    campaign.refresh_from_db()
    test_share = list(campaign.messages.all())
    assert 30 <= len(test_share) <= 90  # about 30 % of 200
    assert {m.variant for m in test_share} == {"A", "B"}
    # The test share went out; the rest waits for the winner, so it is not complete.
    assert campaign.status == S.SENDING and campaign.waiting_for_winner
    ends = campaign.ab_test_ends_at
    assert ends is not None and ends - timezone.now() > timedelta(hours=3, minutes=59)
    assert variants.decide_due() == []  # not yet
    deliver_all(campaign)
    for message in [m for m in test_share if m.variant == "B"][:3]:
        found = SHORT.search(message.body)
        assert found is not None
        Client().get(f"/r/{found[1]}", HTTP_USER_AGENT=PHONE_UA)
    Campaign.objects.filter(pk=campaign.pk).update(ab_test_ends_at=timezone.now())
    assert variants.decide_due() == [campaign.pk]
    campaign.refresh_from_db()
    assert campaign.ab_winner == "B"
    decision = campaign.ab_decision
    assert decision["variants"]["B"]["clicks"]["unique"] == 3
    assert decision["variants"]["A"]["click_through_rate"] == 0
    assert "highest click-through rate" in decision["why"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.AB_DECIDED).count() == 1
    run_campaign(campaign)  # the wake-up: the rest is built with B and sent
    campaign.refresh_from_db()
    assert campaign.status == S.COMPLETED
    everyone = list(campaign.messages.all())
    assert len(everyone) == 200 and len({m.contact_id for m in everyone}) == 200
    rest = [m for m in everyone if m.pk not in {t.pk for t in test_share}]
    assert {m.variant for m in rest} == {"B"}
    assert all(m.body.startswith("B: Hello") for m in rest)
    assert variants.decide_due() == []  # decided once


def test_a_tie_goes_to_a_and_delivery_can_decide(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
) -> None:
    campaign = ab(
        make_campaign,
        locmem,
        group,
        "B: Hello",
        ab_mode=ABMode.TEST,
        ab_test_share=50,
        ab_winner_by=WinnerBy.DELIVERY,
    )
    campaign = sending(campaign, marketer, approver)
    run_campaign(campaign)
    deliver_all(campaign)  # every test message delivered: 100 % each, a tie
    assert variants.decide(campaign) == "A"
    campaign.refresh_from_db()
    assert (
        "a tie on delivery rate (100.0%) between A, B: it goes to A" in campaign.ab_decision["why"]
    )


def test_bad_variants_are_refused(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount, group: Group
) -> None:
    with pytest.raises(ValidationError, match="At most 4 variants"):
        ab(make_campaign, locmem, group, "B", "C", "D", "E")
    with pytest.raises(ValidationError, match="adding up to 100"):
        ab(make_campaign, locmem, group, "B", ab_split=[50, 40])
    with pytest.raises(ValidationError, match="Variant B has no text"):
        ab(make_campaign, locmem, group, " ")
    with pytest.raises(ValidationError, match="No variant has a link"):
        ab(make_campaign, locmem, group, "B", ab_mode=ABMode.TEST)
    with pytest.raises(ValidationError, match="No contact has"):
        ab(make_campaign, locmem, group, "B: {{shoe_size}}")


def cli(*args: str) -> str:
    out = io.StringIO()
    call_command("campaign", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_cli_makes_ab_campaigns_and_reports_each_variant(
    locmem: ProviderAccount, group: Group, marketer: User, approver: User
) -> None:
    base = ["create", "--name", "AB", "--provider", "mem", "--group", "Customers"]
    made = int(cli(*base, "--variant", "A text", "--variant", "B text", "--split", "60,40"))
    split = Campaign.objects.get(pk=made)
    assert (split.body, split.variant_bodies, split.ab_mode, split.ab_split) == (
        "A text",
        ["B text"],
        "split",
        [60, 40],
    )
    tested = Campaign.objects.get(
        pk=int(
            cli(
                *base,
                "--body",
                "A",
                "--variant",
                "B",
                "--variant",
                "C",
                "--test-share",
                "20",
                "--test-hours",
                "6",
                "--winner-by",
                "delivery",
            )
        )
    )
    assert tested.variant_bodies == ["B", "C"] and tested.ab_mode == "test"
    assert (tested.ab_test_share, tested.ab_test_hours, tested.ab_winner_by) == (20, 6, "delivery")
    with pytest.raises(CommandError, match="2 to 4 variants"):
        cli(*base, "--variant", "only one")
    with pytest.raises(CommandError, match="adding up to 100"):
        cli(*base, "--variant", "A", "--variant", "B", "--split", "50,20")
    with pytest.raises(CommandError, match="--split and --test-share need"):
        cli(*base, "--body", "x", "--split", "100")
    sending(split, marketer, approver)
    run_campaign(Campaign.objects.get(pk=made))
    summary = json.loads(cli("status", str(made), "--json"))
    assert [v["variant"] for v in summary["variants"]] == ["A", "B"]
    assert sum(v["counts"]["sent"] for v in summary["variants"]) == summary["counts"]["sent"] == 200
    assert all(v["clicks"] == {"unique": 0, "total": 0} for v in summary["variants"])
    plain = int(cli(*base, "--body", "x"))
    assert "variants" not in json.loads(cli("status", str(plain), "--json"))
    assert counts.kept([made], counts.VARIANT)[made]


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_builder_makes_an_ab_campaign_and_previews_every_variant(
    locmem: ProviderAccount, group: Group, marketer: User
) -> None:
    from tests.dashboard.test_builder_and_approvals import form_data

    data = form_data(
        locmem,
        group,
        body="A: Hi {{first_name}}",
        variant_bodies_0="B: Hello {{first_name}}",
        variant_bodies_1="C: Hey",
        variant_bodies_2="",
        ab_mode="split",
        ab_split="50,30,20",
        ab_test_share="20",
        ab_test_hours="4",
        ab_winner_by="delivery",
    )
    client = signed_in(marketer)
    page = client.get("/campaigns/new/").content.decode()
    assert 'id="ab-test"' in page and "variant_bodies_0" in page
    preview = client.post("/campaigns/preview/", data).json()
    assert [(v["variant"], v["share"]) for v in preview["variants"]] == [
        ("A", 50),
        ("B", 30),
        ("C", 20),
    ]
    assert preview["variants"][2]["sample"] == "C: Hey"
    client.post("/campaigns/new/", data)
    made = Campaign.objects.get(name="Spring sale")
    assert made.variant_bodies == ["B: Hello {{first_name}}", "C: Hey"]
    assert made.ab_split == [50, 30, 20]
    refused = client.post("/campaigns/new/", {**data, "name": "Bad", "ab_split": "50,50"})
    assert "adding up to 100" in refused.content.decode()
    # A post without the A/B fields (a script from before them) leaves them as they were.
    edit = {k: v for k, v in data.items() if not k.startswith(("variant_bodies", "ab_"))}
    client.post(f"/campaigns/{made.pk}/edit/", {**edit, "body": "A: changed"})
    made.refresh_from_db()
    assert made.body == "A: changed" and made.variant_bodies == [
        "B: Hello {{first_name}}",
        "C: Hey",
    ]


def test_the_pages_show_each_variant_and_the_decision(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    approver: User,
    admin_user: User,
) -> None:
    campaign = ab(
        make_campaign,
        locmem,
        group,
        "B: Hello",
        ab_mode=ABMode.TEST,
        ab_test_share=50,
        ab_winner_by=WinnerBy.DELIVERY,
    )
    campaign.submit(by=marketer)
    queue = signed_in(approver).get("/approvals/").content.decode()
    assert f'id="variants-{campaign.pk}"' in queue and "B: Hello" in queue
    campaign.approve(by=approver)
    campaign.refresh_from_db()
    campaign.start()
    run_campaign(Campaign.objects.get(pk=campaign.pk))
    deliver_all(campaign)
    page = signed_in(marketer).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert 'id="ab-variants"' in page and "the rest of the audience waits" in page
    variants.decide(Campaign.objects.get(pk=campaign.pk))
    page = signed_in(marketer).get(f"/campaigns/{campaign.pk}/").content.decode()
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Variant A won" in text and "it goes to A" in text
    assert "A (winner)" in text
    admin_page = signed_in(admin_user).get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert "Winner A: a tie on delivery rate" in admin_page.content.decode()


def test_a_test_send_sends_the_variant_chosen_at_every_door(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    group: Group,
    marketer: User,
    admin_user: User,
) -> None:
    from campaigns.testsend import send_test
    from tests.conftest import own_test_number

    campaign = ab(make_campaign, locmem, group, "B: Hello {{first_name}}", "C: Hey")
    own_test_number(marketer, "+447911123456")
    own_test_number(admin_user, "+447911123457")
    assert send_test(campaign, "+447911123456", by=marketer).body == "A: Hi Name0"
    assert send_test(campaign, "+447911123456", by=marketer, variant="C").body == "C: Hey"
    with pytest.raises(ValidationError, match="no variant D: it has A, B, C"):
        send_test(campaign, "+447911123456", by=marketer, variant="D")
    out = cli("test", str(campaign.pk), "--as", "mia", "--variant", "B")
    assert "test of variant B to" in out
    latest = Message.objects.filter(is_test=True).order_by("-pk")
    assert latest[0].body == "B: Hello Name0"
    page = signed_in(marketer).post(
        f"/campaigns/{campaign.pk}/test/",
        {"number": marketer.test_numbers.get().pk, "variant": "C"},  # type: ignore[attr-defined]
    )
    assert page.status_code == 200 and latest[0].body == "C: Hey"
    assert (
        'value="B"' in signed_in(marketer).get(f"/campaigns/{campaign.pk}/test/").content.decode()
    )
    admin = signed_in(admin_user)
    admin.post(
        f"/admin/campaigns/campaign/{campaign.pk}/test/",
        {"number": admin_user.test_numbers.get().pk, "variant": "B", "send": "1"},  # type: ignore[attr-defined]
    )
    assert latest[0].body == "B: Hello Name0" and latest[0].phone == "+447911123457"
    audit = AuditEvent.objects.filter(action=AuditEvent.Action.TEST_SEND).order_by("-pk")[0]
    assert audit.detail["variant"] == "B"
