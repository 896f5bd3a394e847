"""Retention: old content goes, every count, cost and chart stays."""

import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.privacy import daily_purge, purge
from contacts.models import Contact, Group, ImportJob
from dashboard.campaign_pages import counts_by_campaign, delivery_chart, failure_reasons
from dashboard.reports import build_report
from messaging import counts
from messaging.models import Message, ProviderAccount, StatusEvent, WebhookEvent
from messaging.privacy import purge_content
from tests.privacy.conftest import M, S, age, send

pytestmark = pytest.mark.django_db


def figures(campaign: Campaign, client: Client) -> dict[str, Any]:
    """Everything the campaign page and the reports show as numbers, read afresh."""
    cache.clear()
    today = timezone.localdate()
    report = build_report(today - timedelta(days=60), today)
    (row,) = [r for r in report.campaigns if r.campaign.pk == campaign.pk]
    campaign.refresh_from_db()
    csv_url = f"/reports/?from={today - timedelta(days=60)}&to={today}&format=csv"
    return {
        "counts": counts_by_campaign([campaign.pk])[campaign.pk],
        "failures": failure_reasons(campaign),
        "chart": delivery_chart(campaign),
        "report": vars(row.figures),
        "days": {day: vars(f) for day, f in report.days.items()},
        "accounts": [(a.account.pk, vars(a.figures)) for a in report.accounts],
        "final": (campaign.final_counts, campaign.final_cost),
        "report csv": client.get(csv_url).getvalue(),
        "export csv": client.get(f"/campaigns/{campaign.pk}/export.csv").getvalue(),
    }


@pytest.fixture
def staff_client(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def test_purge_blanks_old_content_and_leaves_every_page_figure_unchanged(
    sent_campaign: Campaign, staff_client: Client
) -> None:
    # Failed before it was handed over: reports date it by its last change.
    Message.objects.create(
        campaign=sent_campaign,
        provider_account=sent_campaign.provider_account,
        phone="+447911999003",
        body="Hi",
        status=M.FAILED,
        error_code="REJECTED",
        client_ref=Message.new_client_ref(),
    )
    age(sent_campaign, days=40)
    before = figures(sent_campaign, staff_client)
    assert before["counts"][M.DELIVERED] == 2 and before["failures"][0]["n"] == 1
    assert before["chart"] is not None and before["report"]["cost"] > 0
    assert b"Spring" in before["report csv"] and before["export csv"].count(b"\n") == 6

    result = purge(30)

    assert result.counts["campaigns"] == 1 and result.counts["messages"] == 5
    assert figures(sent_campaign, staff_client) == before
    assert not sent_campaign.messages.exclude(body="").exists()
    assert not StatusEvent.objects.exists() and not WebhookEvent.objects.exists()
    sent_campaign.refresh_from_db()
    assert sent_campaign.content_purged_at is not None


def test_purge_leaves_recent_campaigns_and_events_alone(sent_campaign: Campaign) -> None:
    age(sent_campaign, days=10)
    result = purge(30)
    assert result.counts["campaigns"] == 0 and result.counts["messages"] == 0
    assert not sent_campaign.messages.filter(body="").exists()
    assert StatusEvent.objects.count() == 3 and WebhookEvent.objects.count() == 3


@pytest.mark.parametrize("status", [S.SENDING, S.PAUSED, S.SCHEDULED])
def test_purge_never_touches_a_campaign_that_is_not_finished(
    sent_campaign: Campaign, status: str
) -> None:
    age(sent_campaign, days=40)
    Campaign.objects.filter(pk=sent_campaign.pk).update(status=status)
    assert purge(30).counts["messages"] == 0
    assert not sent_campaign.messages.filter(body="").exists()


def test_purge_waits_for_a_cancelled_campaigns_messages_in_doubt(
    sent_campaign: Campaign,
) -> None:
    age(sent_campaign, days=40)
    Campaign.objects.filter(pk=sent_campaign.pk).update(status=S.CANCELLED)
    doubtful = sent_campaign.messages.filter(status=M.SENT).get()
    Message.objects.filter(pk=doubtful.pk).update(status=M.IN_DOUBT)
    assert purge(30).counts["messages"] == 0

    Message.objects.filter(pk=doubtful.pk).update(status=M.FAILED)
    assert purge(30).counts["messages"] == 4
    counts.recount([sent_campaign.pk])  # the statuses were set behind the engine's back


def test_a_cancelled_campaign_has_its_counts_and_cost_frozen_before_its_purge(
    sent_campaign: Campaign,
) -> None:
    Campaign.objects.filter(pk=sent_campaign.pk).update(
        status=S.CANCELLED, final_counts={}, final_cost=None
    )
    age(sent_campaign, days=40)
    live = sent_campaign.messages.status_counts()
    purge(30)
    sent_campaign.refresh_from_db()
    assert sent_campaign.final_counts == live
    assert sent_campaign.final_cost == sum(m.cost or 0 for m in sent_campaign.messages.all())


def test_purge_goes_in_batches_and_picks_up_where_an_interrupted_run_stopped(
    sent_campaign: Campaign,
) -> None:
    age(sent_campaign, days=40)
    first = sent_campaign.messages.order_by("pk")[:1]
    # An earlier run that stopped after its first batch.
    assert purge_content(Message.objects.filter(pk__in=first), batch=1) == 1

    with CaptureQueriesContext(connection) as queries:
        result = purge(30, batch=2)

    blanking = [q for q in queries if q["sql"].startswith('UPDATE "messaging_message"')]
    assert len(blanking) == 2  # 3 rows left, 2 a statement
    assert result.counts["messages"] == 3
    assert not sent_campaign.messages.exclude(body="").exists()
    again = purge(30)
    assert again.counts["campaigns"] == 0 and again.counts["messages"] == 0


def test_a_dry_run_counts_and_changes_nothing(sent_campaign: Campaign) -> None:
    age(sent_campaign, days=40)
    out = io.StringIO()
    call_command("retention", "purge", "--days", "30", "--dry-run", stdout=out)
    line = out.getvalue().strip().splitlines()[-1]
    assert line.startswith("would purge before ")
    assert "campaigns=1" in line and "messages=4" in line and "status_events=3" in line
    assert not sent_campaign.messages.filter(body="").exists()
    assert StatusEvent.objects.count() == 3
    sent_campaign.refresh_from_db()
    assert sent_campaign.content_purged_at is None


def test_the_command_refuses_to_run_without_a_retention_period(settings: Any) -> None:
    settings.HERALD_RETENTION_DAYS = 0
    with pytest.raises(CommandError, match="retention is off"):
        call_command("retention", "purge", stdout=io.StringIO())


def test_the_daily_schedule_follows_the_setting(sent_campaign: Campaign, settings: Any) -> None:
    from django_q.models import Schedule

    assert Schedule.objects.get(name="herald-retention-purge").func == (
        "campaigns.privacy.daily_purge"
    )
    age(sent_campaign, days=40)
    settings.HERALD_RETENTION_DAYS = 0
    assert "off" in daily_purge()
    assert not sent_campaign.messages.filter(body="").exists()
    settings.HERALD_RETENTION_DAYS = 30
    assert "campaigns=1" in daily_purge()
    assert not sent_campaign.messages.exclude(body="").exists()


def test_old_test_sends_lose_their_content_too(
    simulator: ProviderAccount, sent_campaign: Campaign
) -> None:
    test = Message.objects.create(
        provider_account=simulator,
        phone="+447911999001",
        body="Test: hello",
        status=M.DELIVERED,
        client_ref=Message.new_client_ref(),
    )
    age(sent_campaign, days=40)
    assert purge(30).counts["test messages"] == 1
    test.refresh_from_db()
    assert test.body == "" and test.status == M.DELIVERED


def test_files_of_old_imports_are_deleted_and_their_counts_kept(
    settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = tmp_path
    job = ImportJob.objects.create(
        original_name="list.csv",
        region="GB",
        status=ImportJob.Status.COMPLETED,
        imported=2,
        finished_at=timezone.now() - timedelta(days=40),
        preview={"counts": {"imported": 2}, "samples": [{"phone": "+447911999002"}], "errors": []},
    )
    job.file.save("list.csv", ContentFile(b"phone\n+447911999002\n"))
    job.error_report.save("errors.csv", ContentFile(b"line,error\n"))
    stored = [job.file.path, job.error_report.path]

    assert purge(30).counts["import files"] == 1

    job.refresh_from_db()
    assert not job.file and not job.error_report and job.imported == 2
    assert job.preview == {"counts": {"imported": 2}}
    assert not any((tmp_path / p).exists() for p in stored)
    assert purge(30).counts["import files"] == 0


def test_purge_is_refused_below_one_day(db: Any) -> None:
    with pytest.raises(ValueError, match="at least 1 day"):
        purge(0)


def test_a_contact_list_is_untouched_by_retention(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    campaign = send(make_campaign(simulator, group), marketer, approver)
    age(campaign, days=40)
    purge(30)
    assert Contact.objects.count() == 2 and group.contacts.count() == 2
