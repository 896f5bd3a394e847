import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging.models import Message, ProviderAccount
from tests.conftest import phone

S = Campaign.Status
M = Message.Status


@pytest.fixture
def group(db: Any) -> Group:
    return Group.objects.create(name="Customers")


@pytest.fixture
def draft(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    group: Group,
) -> Campaign:
    make_contacts(3, group)
    return make_campaign(simulator, group)


@pytest.fixture
def submitted(draft: Campaign, marketer: User) -> Campaign:
    draft.submit(by=marketer)
    return draft


def add_messages(campaign: Campaign, *statuses: str, **fields: Any) -> list[Message]:
    start = Message.objects.count()
    return [
        Message.objects.create(
            campaign=campaign,
            provider_account=campaign.provider_account,
            phone=phone(start + i),
            body="Hi",
            client_ref=Message.new_client_ref(),
            status=status,
            **fields,
        )
        for i, status in enumerate(statuses)
    ]


def in_status(campaign: Campaign, status: str) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    campaign.refresh_from_db()
    return campaign


def act(client: Client, campaign: Campaign, action: str, **data: str) -> Any:
    url = reverse("dashboard:campaign_action", args=(campaign.pk, action))
    return client.post(url, data, follow=True)


def shown_messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_anonymous_visitors_are_sent_to_the_login_page(client: Client, draft: Campaign) -> None:
    for url in (
        reverse("dashboard:home"),
        reverse("dashboard:campaign", args=(draft.pk,)),
        reverse("dashboard:campaign_progress", args=(draft.pk,)),
        reverse("dashboard:campaign_export", args=(draft.pk,)),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_users_without_view_permission_get_403(
    client: Client, make_user: Callable[..., User], draft: Campaign
) -> None:
    client.force_login(make_user("nobody"))
    assert client.get(reverse("dashboard:campaign", args=(draft.pk,))).status_code == 403
    assert client.get(reverse("dashboard:campaign_progress", args=(draft.pk,))).status_code == 403
    assert act(client, draft, "cancel", confirm="yes").status_code == 403
    assert client.get(reverse("dashboard:home")).status_code == 200


def test_marketer_sees_a_sending_campaigns_progress_on_home(
    client: Client, marketer: User, draft: Campaign
) -> None:
    sending = in_status(draft, S.SENDING)
    add_messages(sending, M.SENT, M.DELIVERED, M.DELIVERED, M.FAILED, M.PENDING)
    client.force_login(marketer)
    response = client.get(reverse("dashboard:home"))
    [row] = response.context["in_flight"]
    assert row["progress"]["counts"]["delivered"] == 2
    assert row["progress"]["percent_done"] == 80.0
    html = response.content.decode()
    assert reverse("dashboard:campaign_progress", args=(sending.pk,)) in html
    assert 'aria-live="polite"' in html


def test_approval_section_only_for_approvers_and_never_their_own_submissions(
    client: Client,
    marketer: User,
    approver: User,
    make_user: Callable[..., User],
    make_campaign: Callable[..., Campaign],
    submitted: Campaign,
    simulator: ProviderAccount,
    group: Group,
) -> None:
    other = make_user("olga", "Approvers", "Marketers")
    own = make_campaign(simulator, group)
    own.name = "Olga's own"
    own.save()
    own.submit(by=other)

    client.force_login(marketer)
    response = client.get(reverse("dashboard:home"))
    assert "Awaiting your approval" not in response.content.decode()

    client.force_login(approver)
    assert {c.pk for c in client.get(reverse("dashboard:home")).context["awaiting"]} == {
        submitted.pk,
        own.pk,
    }
    client.force_login(other)
    response = client.get(reverse("dashboard:home"))
    assert [c.pk for c in response.context["awaiting"]] == [submitted.pk]
    assert "Awaiting your approval" in response.content.decode()


def test_recent_completions_show_delivery_rate(
    client: Client, marketer: User, draft: Campaign
) -> None:
    done = in_status(draft, S.COMPLETED)
    add_messages(done, M.DELIVERED, M.DELIVERED, M.DELIVERED, M.FAILED, M.SKIPPED)
    client.force_login(marketer)
    [row] = client.get(reverse("dashboard:home")).context["completed"]
    assert row["rate"] == 75.0


def test_home_queries_do_not_grow_with_campaigns(
    client: Client,
    approver: User,
    marketer: User,
    simulator: ProviderAccount,
    django_assert_max_num_queries: Any,
) -> None:
    statuses = [S.SENDING, S.PAUSED, S.SCHEDULED, S.COMPLETED, S.PENDING_APPROVAL] * 2
    for i, status in enumerate(statuses):
        campaign = Campaign.objects.create(
            name=f"C{i}", provider_account=simulator, body="Hi", status=status
        )
        campaign.submitted_by = marketer
        campaign.save()
        add_messages(campaign, M.SENT, M.DELIVERED, M.FAILED)
    client.force_login(approver)
    # The page's own, and the menu's unread replies (one COUNT, shared for a few seconds).
    with django_assert_max_num_queries(10):
        response = client.get(reverse("dashboard:home"))
    assert len(response.context["in_flight"]) == 6
    assert len(response.context["awaiting"]) == 2


def test_campaign_page_shows_frozen_preview_and_history(
    client: Client, marketer: User, submitted: Campaign
) -> None:
    client.force_login(marketer)
    response = client.get(reverse("dashboard:campaign", args=(submitted.pk,)))
    preview = response.context["preview"]
    assert preview["frozen"] is True
    assert (preview["audience"], preview["sendable"], preview["segments"]) == (3, 3, 3)
    assert preview["cost"] == "0.09000"
    html = response.content.decode()
    assert "Hi Name0" in html
    assert "Draft → Pending approval" in html
    assert "mia" in html


def test_draft_preview_is_worked_out_live(client: Client, marketer: User, draft: Campaign) -> None:
    client.force_login(marketer)
    preview = client.get(reverse("dashboard:campaign", args=(draft.pk,))).context["preview"]
    assert preview["frozen"] is False
    assert preview["sendable"] == 3


def test_marketer_can_submit(client: Client, marketer: User, draft: Campaign) -> None:
    client.force_login(marketer)
    response = act(client, draft, "submit")
    draft.refresh_from_db()
    assert draft.status == S.PENDING_APPROVAL
    assert "“Spring” is now pending approval." in shown_messages(response)


def test_marketer_approve_is_refused_in_the_models_words(
    client: Client, marketer: User, make_user: Callable[..., User], submitted: Campaign
) -> None:
    client.force_login(make_user("max", "Marketers"))
    response = act(client, submitted, "approve")
    submitted.refresh_from_db()
    assert submitted.status == S.PENDING_APPROVAL
    assert shown_messages(response) == ["Only approvers may approve or reject campaigns."]


def test_approver_can_approve(client: Client, approver: User, submitted: Campaign) -> None:
    client.force_login(approver)
    act(client, submitted, "approve", note="Looks good")
    submitted.refresh_from_db()
    assert submitted.status == S.SCHEDULED
    assert submitted.transitions.last().note == "Looks good"  # type: ignore[union-attr]


def test_self_approval_is_refused(
    client: Client, make_user: Callable[..., User], draft: Campaign
) -> None:
    both = make_user("bo", "Marketers", "Approvers")
    draft.submit(by=both)
    client.force_login(both)
    page = client.get(reverse("dashboard:campaign", args=(draft.pk,)))
    assert "approve" not in [a.name for a in page.context["actions"]]
    response = act(client, draft, "approve")
    draft.refresh_from_db()
    assert draft.status == S.PENDING_APPROVAL
    assert shown_messages(response) == ["You cannot approve a campaign you submitted yourself."]


def test_reject_needs_confirmation_and_a_reason(
    client: Client, approver: User, submitted: Campaign
) -> None:
    client.force_login(approver)
    unconfirmed = act(client, submitted, "reject", note="Typo")
    assert unconfirmed.status_code == 400
    assert "Tick the box to confirm" in unconfirmed.content.decode()
    no_reason = act(client, submitted, "reject", confirm="yes", note=" ")
    submitted.refresh_from_db()
    assert submitted.status == S.PENDING_APPROVAL
    assert shown_messages(no_reason) == [
        "Say why the campaign is rejected, so the submitter can fix it."
    ]
    act(client, submitted, "reject", confirm="yes", note="Typo in the body")
    submitted.refresh_from_db()
    assert submitted.status == S.DRAFT
    assert submitted.rejection_reason == "Typo in the body"


def test_cancel_needs_confirmation(client: Client, marketer: User, draft: Campaign) -> None:
    client.force_login(marketer)
    confirm_page = client.get(reverse("dashboard:campaign_action", args=(draft.pk, "cancel")))
    assert 'name="confirm"' in confirm_page.content.decode()
    assert act(client, draft, "cancel").status_code == 400
    draft.refresh_from_db()
    assert draft.status == S.DRAFT
    act(client, draft, "cancel", confirm="yes")
    draft.refresh_from_db()
    assert draft.status == S.CANCELLED


def test_approver_cannot_pause(client: Client, approver: User, draft: Campaign) -> None:
    sending = in_status(draft, S.SENDING)
    client.force_login(approver)
    response = act(client, sending, "pause")
    sending.refresh_from_db()
    assert sending.status == S.SENDING
    assert shown_messages(response) == ["Only marketers may change campaigns."]


def test_progress_json(client: Client, marketer: User, draft: Campaign) -> None:
    sending = in_status(draft, S.SENDING)
    add_messages(sending, M.PENDING, M.SENT, M.DELIVERED, M.FAILED)
    client.force_login(marketer)
    data = client.get(reverse("dashboard:campaign_progress", args=(sending.pk,))).json()
    assert data["status"] == "sending"
    assert data["status_label"] == "Sending"
    assert data["total"] == 4
    assert data["percent_done"] == 75.0
    assert data["counts"]["delivered"] == 1
    assert data["counts"]["in_doubt"] == 0


def test_watchers_of_a_campaign_share_one_count_for_a_moment(
    client: Client,
    marketer: User,
    draft: Campaign,
    settings: Any,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.HERALD_LIVE_COUNTS_SECONDS = 60
    sending = in_status(draft, S.SENDING)
    add_messages(sending, M.SENT)
    client.force_login(marketer)
    url = reverse("dashboard:campaign_progress", args=(sending.pk,))
    assert client.get(url).json()["total"] == 1
    add_messages(sending, M.SENT)
    # Served from the shared count, not recounted.
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).json()["total"] == 1
    assert not [q for q in queries.captured_queries if "messaging_message" in q["sql"]]


def test_csv_export_lists_each_recipient_and_neutralises_formulas(
    client: Client, marketer: User, draft: Campaign
) -> None:
    delivered_at = timezone.now()
    [ok] = add_messages(draft, M.DELIVERED, provider_message_id="abc", delivered_at=delivered_at)
    add_messages(draft, M.FAILED, error_code='=HYPERLINK("http://x")')
    client.force_login(marketer)
    response = client.get(reverse("dashboard:campaign_export", args=(draft.pk,)))
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(response.getvalue().decode())))
    assert rows[0] == [
        "phone",
        "status",
        "skip_reason",
        "error_code",
        "provider_message_id",
        "sent_at",
        "delivered_at",
        "clicked",
    ]
    assert rows[1] == [str(ok.phone), "delivered", "", "", "abc", "", delivered_at.isoformat(), ""]
    assert rows[2][3] == '\'=HYPERLINK("http://x")'
    assert len(rows) == 3


def test_failure_reasons_are_grouped_by_error_code(
    client: Client, marketer: User, draft: Campaign
) -> None:
    add_messages(draft, M.FAILED, M.FAILED, error_code="E21", error_message="Unknown number")
    add_messages(draft, M.FAILED, error_code="E7", error_message="Blocked")
    add_messages(draft, M.DELIVERED)
    client.force_login(marketer)
    response = client.get(reverse("dashboard:campaign", args=(draft.pk,)))
    failures = [(f["error_code"], f["n"]) for f in response.context["failures"]]
    assert failures == [("E21", 2), ("E7", 1)]


def test_failure_reasons_are_live_with_one_example_each(
    client: Client, marketer: User, draft: Campaign
) -> None:
    client.force_login(marketer)
    url = reverse("dashboard:campaign", args=(draft.pk,))
    assert client.get(url).context["failures"] == []
    add_messages(draft, M.FAILED, error_code="E21", error_message="Unknown number")
    assert [f["n"] for f in client.get(url).context["failures"]] == [1]
    add_messages(draft, M.FAILED, M.FAILED, error_code="E21", error_message="Unknown number")
    add_messages(draft, M.FAILED, error_code="E30", error_message="Carrier down")
    failures = client.get(url).context["failures"]
    assert [(f["error_code"], f["n"], f["example"]) for f in failures] == [
        ("E21", 3, "Unknown number"),
        ("E30", 1, "Carrier down"),
    ]


def test_delivery_chart_buckets_by_minute(client: Client, marketer: User, draft: Campaign) -> None:
    start = timezone.now().replace(second=0, microsecond=0)
    Campaign.objects.filter(pk=draft.pk).update(started_at=start)
    for minute, count in ((0, 2), (1, 1), (5, 3)):
        at = start + timedelta(minutes=minute, seconds=10)
        add_messages(draft, *[M.DELIVERED] * count, delivered_at=at)
    client.force_login(marketer)
    response = client.get(reverse("dashboard:campaign", args=(draft.pk,)))
    chart = response.context["chart"]
    assert chart["unit"] == "minute"
    assert [bar["n"] for bar in chart["bars"]] == [2, 1, 3]
    html = response.content.decode()
    assert "<svg" in html and "6 delivered between" in html


def test_delivery_chart_cuts_days_in_the_campaigns_own_time_zone(
    client: Client, marketer: User, draft: Campaign
) -> None:
    # 20:00 and 23:00 UTC on 1 March are 01:30 and 04:30 on 2 March in Kolkata: one day
    # there, while 02:00 UTC on 1 March (07:30 Kolkata) is the day before.
    first = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    Campaign.objects.filter(pk=draft.pk).update(
        time_zone="Asia/Kolkata", started_at=first, completed_at=first + timedelta(days=5)
    )
    add_messages(draft, M.DELIVERED, delivered_at=first)
    add_messages(draft, M.DELIVERED, delivered_at=datetime(2026, 3, 1, 20, 0, tzinfo=UTC))
    add_messages(draft, M.DELIVERED, delivered_at=datetime(2026, 3, 1, 23, 0, tzinfo=UTC))
    client.force_login(marketer)
    response = client.get(reverse("dashboard:campaign", args=(draft.pk,)))
    chart = response.context["chart"]
    assert chart["unit"] == "day"
    kolkata = ZoneInfo("Asia/Kolkata")
    assert [(bar["at"].astimezone(kolkata).date(), bar["n"]) for bar in chart["bars"]] == [
        (date(2026, 3, 1), 1),
        (date(2026, 3, 2), 2),
    ]
    assert "Asia/Kolkata" in response.content.decode()


def test_campaign_page_queries_do_not_grow_with_messages(
    client: Client,
    marketer: User,
    submitted: Campaign,
    django_assert_max_num_queries: Any,
) -> None:
    sending = in_status(submitted, S.SENDING)
    now = timezone.now()
    for i in range(3):
        add_messages(sending, M.DELIVERED, M.FAILED, delivered_at=now + timedelta(minutes=i))
    client.force_login(marketer)
    # 9, the replies put down to it, and the menu's unread replies.
    with django_assert_max_num_queries(11):
        client.get(reverse("dashboard:campaign", args=(sending.pk,)))
    add_messages(sending, *[M.DELIVERED] * 20, delivered_at=now)
    with django_assert_max_num_queries(11):
        client.get(reverse("dashboard:campaign", args=(sending.pk,)))
