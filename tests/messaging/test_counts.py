"""Kept counts (messaging.counts): what the pages read instead of counting messages.

Every test of the suite already ends by checking, for each campaign, that the kept
counts equal a fresh count of its messages (tests/conftest.py). Here: what the keys
hold, squashing, recounting and its CLI, and a campaign sent through the engine with
failures, retries and reports.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from campaigns.models import Campaign, message_counts
from messaging import counts
from messaging.models import Message, MessageCount, ProviderAccount
from tests.conftest import phone

pytestmark = pytest.mark.django_db
M = Message.Status


@pytest.fixture
def campaign(make_campaign: Callable[..., Campaign], locmem: ProviderAccount) -> Campaign:
    return make_campaign(locmem)


def add(campaign: Campaign, n: int, **fields: Any) -> list[Message]:
    start = Message.objects.count()
    return [
        Message.objects.create(
            campaign=campaign,
            provider_account=campaign.provider_account,
            phone=phone(start + i),
            body="Hi",
            client_ref=Message.new_client_ref(),
            cost=Decimal("0.04000"),
            **fields,
        )
        for i in range(n)
    ]


def kept(campaign: Campaign) -> dict[str, int]:
    return counts.kept([campaign.pk])[campaign.pk]


def test_moves_keep_every_kind_of_count(campaign: Campaign) -> None:
    rows = add(campaign, 5)
    ids = Message.objects.filter(pk__in=[m.pk for m in rows])
    ids.mark_sending(uuid.uuid4(), timezone.now())
    sent_at = timezone.now()
    ids.filter(pk__in=[m.pk for m in rows[:4]]).mark_sent("batch-1", at=sent_at)
    ids.filter(pk=rows[4].pk).mark_failed("E21", "Unknown number")
    ids.filter(pk__in=[m.pk for m in rows[:2]]).record_report(M.DELIVERED, occurred_at=sent_at)
    ids.filter(pk=rows[2].pk).record_report(M.FAILED, sent_at, "30003", "Unreachable handset")

    day = counts.local_day(sent_at)
    account = campaign.provider_account_id
    assert message_counts([campaign.pk])[campaign.pk] == {
        **dict.fromkeys(M.values, 0),
        "sent": 1,
        "delivered": 2,
        "failed": 2,
    }
    have = kept(campaign)
    assert have[f"day:{day}:{account}:sent"] == 4  # handed over: the failed-at-send one not
    assert have[f"day:{day}:{account}:cost5"] == 4 * 4000
    assert have[f"day:{day}:{account}:delivered"] == 2
    assert have[f"day:{day}:{account}:failed"] == 2
    assert have[f"dlv:{counts.utc_minute(sent_at)}"] == 2
    assert counts.failure_counts(campaign.pk) == [
        {"error_code": "30003", "n": 1, "example": "Unreachable handset"},
        {"error_code": "E21", "n": 1, "example": "Unknown number"},
    ]
    assert counts.differences([campaign.pk]) == {}


def test_a_claim_and_a_release_move_the_status_keys_alone_even_on_a_retried_row(
    campaign: Campaign,
) -> None:
    """Claims and releases read back each row's campaign only (counts.status_only): so a
    row carrying a handed-over time or an old error must still count right."""
    sent_before = timezone.now() - timedelta(days=1)
    rows = add(campaign, 3, error_code="E5", sent_at=sent_before)
    claimed = Message.objects.filter(campaign=campaign).claim(10)
    assert len(claimed) == 3
    assert counts.status_only(M.PENDING, M.SENDING, {"claim_token": 1, "attempts": 1})
    Message.objects.filter(pk=rows[0].pk).release()
    Message.objects.filter(pk=rows[1].pk).mark_in_doubt("timeout", "no answer")

    have = kept(campaign)
    assert (have["status:pending"], have["status:sending"], have["status:in_doubt"]) == (1, 1, 1)
    day = counts.local_day(sent_before)
    assert have[f"day:{day}:{campaign.provider_account_id}:sent"] == 3
    assert counts.differences([campaign.pk]) == {}
    # A move into or out of a status counted in detail, or one that sets a counted time,
    # reads every counted field.
    assert not counts.status_only(M.SENDING, M.FAILED, {})
    assert not counts.status_only(M.IN_DOUBT, M.SENT, {"sent_at": sent_before})
    assert not counts.status_only(M.SKIPPED, M.PENDING, {})


def test_a_skip_counts_by_reason(campaign: Campaign) -> None:
    rows = add(campaign, 3)
    Message.objects.filter(pk=rows[0].pk).skip(Message.SkipReason.OPTED_OUT)
    skipped = counts.skip_counts(campaign.pk)
    assert skipped[Message.SkipReason.OPTED_OUT] == 1
    assert sum(skipped.values()) == 1
    assert message_counts([campaign.pk])[campaign.pk]["pending"] == 2


def test_squashing_folds_each_key_into_one_row_and_keeps_the_sums(campaign: Campaign) -> None:
    rows = add(campaign, 4)
    for row in rows:
        Message.objects.filter(pk=row.pk).cancel_unsent()
    before = kept(campaign)
    assert MessageCount.objects.filter(key="status:cancelled").count() == 4
    assert counts.squash() >= 2
    assert kept(campaign) == before
    assert MessageCount.objects.filter(key="status:cancelled").count() == 1
    # Pending went to zero: a key that sums to nothing keeps no row.
    assert not MessageCount.objects.filter(key="status:pending").exists()
    assert counts.squash() == 0


def test_recount_repairs_counts_changed_behind_the_engines_back(campaign: Campaign) -> None:
    rows = add(campaign, 3)
    Message.objects.filter(pk=rows[0].pk).update(status=M.CANCELLED)  # by hand, in SQL
    assert counts.differences([campaign.pk]) == {
        (campaign.pk, "status:pending"): (3, 2),
        (campaign.pk, "status:cancelled"): (0, 1),
    }
    out = io.StringIO()
    with pytest.raises(CommandError, match="differ for 1 campaign"):
        call_command("campaign", "recount", "--check", stdout=out)
    assert f"campaign {campaign.pk}: status:cancelled kept 0, counted 1" in out.getvalue()
    out = io.StringIO()
    call_command("campaign", "recount", str(campaign.pk), stdout=out)
    assert out.getvalue().endswith("recounted 1 of 1 campaign(s)\n")
    assert counts.differences([campaign.pk]) == {}
    out = io.StringIO()
    call_command("campaign", "recount", "--check", stdout=out)
    assert "kept counts agree" in out.getvalue()


def test_recount_of_an_unknown_campaign_is_refused() -> None:
    with pytest.raises(CommandError, match="no campaign with id 999"):
        call_command("campaign", "recount", "999", stdout=io.StringIO())


def test_a_test_send_or_a_reply_counts_for_no_campaign(locmem: ProviderAccount) -> None:
    Message.objects.create(
        provider_account=locmem, phone=phone(1), body="Hi", client_ref="t", status=M.SENT
    )
    assert not MessageCount.objects.exists()


def test_days_are_the_sites_local_days(campaign: Campaign) -> None:
    with override_settings(TIME_ZONE="Pacific/Auckland"):
        late = timezone.now().replace(hour=23, minute=30) - timedelta(days=1)
        add(campaign, 1, status=M.SENT, sent_at=late)
        local = timezone.localtime(late, timezone.get_default_timezone()).date()
        assert kept(campaign)[f"day:{local}:{campaign.provider_account_id}:sent"] == 1
        assert counts.differences([campaign.pk]) == {}
    # The days are the zone's: after changing TIME_ZONE, `campaign recount` redraws them.
    assert counts.differences([campaign.pk])
    counts.recount([campaign.pk])
