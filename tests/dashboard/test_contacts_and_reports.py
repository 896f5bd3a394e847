import csv
import datetime
import io
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from campaigns.models import Campaign
from contacts.models import Contact, Group, ImportJob, OptOut
from messaging.models import Message, ProviderAccount
from tests.conftest import phone

S = Message.Status


@pytest.fixture
def viewer(make_user: Callable[..., User]) -> User:
    """A user who may see contacts and their imports, and nothing more."""
    user = make_user("vic")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_contact", "view_importjob"])
    )
    return user


@pytest.fixture
def viewer_client(client: Client, viewer: User) -> Client:
    client.force_login(viewer)
    return client


def started_campaign(
    make_campaign: Callable[..., Campaign], account: ProviderAccount, name: str, **changes: Any
) -> Campaign:
    campaign = make_campaign(account)
    changes = {"status": Campaign.Status.COMPLETED, "started_at": timezone.now(), **changes}
    Campaign.objects.filter(pk=campaign.pk).update(name=name, **changes)
    campaign.refresh_from_db()
    return campaign


def add_messages(
    campaign: Campaign, account: ProviderAccount, *statuses: str, handed_over: bool = True
) -> None:
    """One message per status; those handed to the provider cost 0.05 each."""
    now = timezone.now()
    handed_over_statuses = (S.SENT, S.DELIVERED, S.FAILED) if handed_over else ()
    for status in statuses:
        handed_over = status in handed_over_statuses
        Message.objects.create(
            campaign=campaign,
            provider_account=account,
            phone=phone(Message.objects.count()),
            body="Hi",
            client_ref=Message.new_client_ref(),
            status=status,
            sent_at=now if handed_over else None,
            cost=Decimal("0.05") if handed_over else None,
        )


@pytest.fixture
def second_account(db: Any) -> ProviderAccount:
    return ProviderAccount.objects.create(name="backup", backend=ProviderAccount.Backend.LOCMEM)


@pytest.fixture
def two_campaigns(
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
    second_account: ProviderAccount,
) -> tuple[Campaign, Campaign]:
    spring = started_campaign(make_campaign, simulator, "Spring")
    add_messages(spring, simulator, S.DELIVERED, S.DELIVERED, S.DELIVERED, S.FAILED)
    # Failed before it was ever handed over: counts as failed, not as sent, costs nothing.
    add_messages(spring, simulator, S.FAILED, handed_over=False)
    add_messages(spring, second_account, S.DELIVERED)
    summer = started_campaign(make_campaign, second_account, "Summer", status="sending")
    add_messages(summer, second_account, S.DELIVERED, S.SENT, S.PENDING)
    return spring, summer


@pytest.mark.parametrize("url", ["/contacts/", "/reports/"])
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: Any, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_contacts_page_is_refused_without_view_contact(
    client: Client, make_user: Callable[..., User]
) -> None:
    client.force_login(make_user("nobody"))
    assert client.get("/contacts/").status_code == 403


def test_contacts_page_leaves_out_imports_without_view_importjob(
    client: Client, make_user: Callable[..., User]
) -> None:
    ImportJob.objects.create(original_name="secret-list.csv", region="GB", status="completed")
    user = make_user("vic")
    user.user_permissions.add(Permission.objects.get(codename="view_contact"))
    client.force_login(user)
    page = client.get("/contacts/").content.decode()
    assert "Recent imports" not in page and "secret-list.csv" not in page


def test_contacts_page_shows_groups_with_their_sizes_and_totals(
    viewer_client: Client, make_contacts: Callable[..., list[Contact]]
) -> None:
    vip, newsletter = Group.objects.create(name="VIP"), Group.objects.create(name="Newsletter")
    Group.objects.create(name="Empty")
    make_contacts(3, vip, newsletter)
    make_contacts(2, newsletter, start=3)
    OptOut.objects.create(phone=phone(0))

    response = viewer_client.get("/contacts/")

    assert response.status_code == 200
    sizes = {group.name: group.size for group in response.context["groups"]}
    assert sizes == {"VIP": 3, "Newsletter": 5, "Empty": 0}
    assert response.context["total"].value == 5
    assert response.context["total"].exact
    assert response.context["opt_outs"] == 1
    assert b'<th scope="col" class="num">Contacts</th>' in response.content
    assert b"/admin/contacts/contact/" in response.content


def analyze_contact_tables() -> None:
    """What every import ends with: fresh planner statistics (PostgreSQL only)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ("contacts_contact", "contacts_contact_groups"):
                cursor.execute(f"ANALYZE {table}")


def test_contacts_total_beyond_the_cap_is_estimated_where_the_database_can(
    viewer_client: Client, make_contacts: Callable[..., list[Contact]], monkeypatch: Any
) -> None:
    monkeypatch.setattr("dashboard.contacts_overview.EXACT_COUNT_CAP", 2)
    make_contacts(4)
    analyze_contact_tables()

    response = viewer_client.get("/contacts/")

    total = response.context["total"]
    if connection.vendor == "postgresql":  # the planner's row estimate, marked as such
        assert not total.exact
        assert total.value == 4
        assert b"about 4" in response.content
    else:  # SQLite keeps no estimates: counted
        assert total.exact
        assert total.value == 4
        assert b"about" not in response.content


def test_a_group_beyond_the_cap_shows_the_planners_estimate_of_its_size(
    viewer_client: Client, make_contacts: Callable[..., list[Contact]], monkeypatch: Any
) -> None:
    monkeypatch.setattr("dashboard.contacts_overview.EXACT_COUNT_CAP", 2)
    big, small = Group.objects.create(name="Big"), Group.objects.create(name="Small")
    make_contacts(2, small)
    make_contacts(5, big, start=2)
    analyze_contact_tables()

    response = viewer_client.get("/contacts/")

    groups = {group.name: group for group in response.context["groups"]}
    assert (groups["Small"].size, groups["Small"].size_exact) == (2, True)
    assert groups["Big"].size == 5
    page = response.content.decode()
    if connection.vendor == "postgresql":  # counted only up to the cap, then estimated
        assert not groups["Big"].size_exact
        assert re.search(r"<td class=\"num\">about 5</td>", page)
    else:
        assert groups["Big"].size_exact
        assert re.search(r"<td class=\"num\">5</td>", page)


def test_recent_imports_are_listed_with_a_link_to_their_rejected_rows(
    viewer_client: Client,
) -> None:
    clean = ImportJob.objects.create(
        original_name="clean.csv", region="GB", status="completed", imported=10
    )
    rejected = ImportJob.objects.create(
        original_name="messy.csv", region="GB", status="completed", imported=7, invalid=3
    )
    rejected.error_report.name = "imports/errors/messy-errors.csv"
    rejected.save()

    page = viewer_client.get("/contacts/").content.decode()

    assert "clean.csv" in page and "messy.csv" in page
    assert f"/contacts/imports/{rejected.pk}/errors.csv" in page  # the dashboard's own
    assert f"/contacts/imports/{clean.pk}/errors.csv" not in page
    assert page.index("messy.csv") < page.index("clean.csv")  # newest first


def test_recent_imports_say_which_were_opt_out_lists(viewer_client: Client) -> None:
    ImportJob.objects.create(original_name="people.csv", region="GB", status="completed")
    ImportJob.objects.create(
        original_name="stops.csv", region="GB", status="completed", kind=ImportJob.Kind.OPT_OUTS
    )
    page = viewer_client.get("/contacts/").content.decode()
    rows = {name: row for row in page.split("<tr>") for name in ("people.csv", "stops.csv")
            if name in row}  # fmt: skip
    assert "<td>Contacts</td>" in rows["people.csv"] and "<td>Opt-outs</td>" in rows["stops.csv"]


def test_contacts_page_queries_are_bounded(
    viewer_client: Client,
    make_contacts: Callable[..., list[Contact]],
    django_assert_max_num_queries: Any,
) -> None:
    groups = [Group.objects.create(name=f"Group {n}") for n in range(10)]
    make_contacts(5, *groups)
    for n in range(10):
        ImportJob.objects.create(original_name=f"{n}.csv", region="GB", invalid=n)

    with django_assert_max_num_queries(10):
        response = viewer_client.get("/contacts/")

    assert len(response.context["groups"]) == 10


def with_permissions(make_user: Callable[..., User], *codenames: str) -> User:
    user = make_user("rita")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.mark.parametrize(
    "codenames",
    [
        (),
        ("view_campaign",),  # not the provider accounts the report names
        ("view_provideraccount",),  # not the campaigns
        ("view_contact", "view_message", "view_auditevent"),
    ],
)
def test_reports_and_their_csv_are_refused_without_both_view_permissions(
    client: Client,
    make_user: Callable[..., User],
    two_campaigns: tuple[Campaign, Campaign],
    codenames: tuple[str, ...],
) -> None:
    client.force_login(with_permissions(make_user, *codenames))
    today = timezone.localdate().isoformat()

    page = client.get("/reports/")
    csv_export = client.get("/reports/", {"from": today, "to": today, "format": "csv"})

    assert (page.status_code, csv_export.status_code) == (403, 403)
    assert b"Spring" not in page.content + csv_export.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).exists()
    assert b'href="/reports/"' not in client.get("/").content  # not offered in the menu


def test_reports_need_only_the_campaign_and_provider_account_view_permissions(
    client: Client, make_user: Callable[..., User], two_campaigns: tuple[Campaign, Campaign]
) -> None:
    client.force_login(with_permissions(make_user, "view_campaign", "view_provideraccount"))
    assert client.get("/reports/").status_code == 200
    assert client.get("/reports/", {"format": "csv"}).status_code == 200
    assert b'href="/reports/"' in client.get("/").content


def test_reports_count_sent_delivered_failed_and_cost_per_campaign(
    client: Client, marketer: User, two_campaigns: tuple[Campaign, Campaign]
) -> None:
    client.force_login(marketer)

    response = client.get("/reports/")

    assert response.status_code == 200
    rows = {row.campaign.name: row.figures for row in response.context["report"].campaigns}
    spring, summer = rows["Spring"], rows["Summer"]
    assert (spring.sent, spring.delivered, spring.failed) == (5, 4, 2)
    assert spring.cost == Decimal("0.25")
    assert spring.delivery_rate == pytest.approx(0.8)
    assert (summer.sent, summer.delivered, summer.failed) == (2, 1, 0)
    assert summer.cost == Decimal("0.10")
    assert b"80.0%" in response.content


def test_reports_count_per_provider_account(
    client: Client, marketer: User, two_campaigns: tuple[Campaign, Campaign]
) -> None:
    client.force_login(marketer)

    report = client.get("/reports/").context["report"]

    rows = {row.account.name: row.figures for row in report.accounts}
    assert (rows["sim"].sent, rows["sim"].delivered, rows["sim"].failed) == (4, 3, 2)
    assert rows["sim"].cost == Decimal("0.20")
    assert (rows["backup"].sent, rows["backup"].delivered, rows["backup"].failed) == (3, 2, 0)
    assert rows["backup"].cost == Decimal("0.15")


def test_reports_chart_shows_todays_delivered_and_failed_with_a_text_alternative(
    client: Client, marketer: User, two_campaigns: tuple[Campaign, Campaign]
) -> None:
    client.force_login(marketer)

    response = client.get("/reports/")

    today = response.context["report"].days[timezone.localdate()]
    assert (today.delivered, today.failed) == (5, 2)
    page = response.content.decode()
    assert "<svg" in page and "<title id=" in page and "<desc id=" in page
    assert 'class="delivered"' in page and 'class="failed"' in page
    assert "Messages per day as a table" in page


def test_reports_leave_out_campaigns_started_outside_the_range_or_not_yet_sending(
    client: Client,
    marketer: User,
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
) -> None:
    long_ago = timezone.now() - datetime.timedelta(days=90)
    started_campaign(make_campaign, simulator, "Old", started_at=long_ago)
    started_campaign(make_campaign, simulator, "Paused", status=Campaign.Status.PAUSED)
    started_campaign(make_campaign, simulator, "Current")
    client.force_login(marketer)

    report = client.get("/reports/").context["report"]

    assert [row.campaign.name for row in report.campaigns] == ["Current"]
    old_range = {"from": (long_ago - datetime.timedelta(days=1)).date().isoformat()}
    old_range["to"] = (long_ago + datetime.timedelta(days=1)).date().isoformat()
    report = client.get("/reports/", old_range).context["report"]
    assert [row.campaign.name for row in report.campaigns] == ["Old"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "yesterday", "to": "2025-01-31"}, "Enter a valid date."),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "must not be before the start date"),
        ({"from": "2023-01-01", "to": "2025-01-01"}, "at most 366 days"),
        ({"from": "2025-01-01"}, "This field is required."),
    ],
)
def test_reports_show_form_errors_for_bad_dates(
    client: Client, marketer: User, query: dict[str, str], message: str
) -> None:
    client.force_login(marketer)

    response = client.get("/reports/", query)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["report"] is None
    assert client.get("/reports/", {**query, "format": "csv"}).status_code == 400


def test_reports_export_the_campaign_table_as_streamed_csv(
    client: Client, marketer: User, two_campaigns: tuple[Campaign, Campaign]
) -> None:
    Campaign.objects.filter(name="Summer").update(name="=HYPERLINK(1)")
    client.force_login(marketer)
    today = timezone.localdate().isoformat()

    response = client.get("/reports/", {"from": today, "to": today, "format": "csv"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = {row["campaign"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows["Spring"]["sent"] == "5" and rows["Spring"]["delivered"] == "4"
    assert rows["Spring"]["failed"] == "2" and rows["Spring"]["cost"] == "0.25000"
    assert rows["Spring"]["delivery_rate"] == "0.8000"
    assert "'=HYPERLINK(1)" in rows  # never run as a formula by a spreadsheet


def test_reports_page_queries_are_bounded(
    client: Client,
    marketer: User,
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
    second_account: ProviderAccount,
    django_assert_max_num_queries: Any,
) -> None:
    for n in range(10):
        campaign = started_campaign(make_campaign, simulator, f"Campaign {n}")
        add_messages(campaign, simulator if n % 2 else second_account, S.DELIVERED, S.FAILED)
    client.force_login(marketer)

    with django_assert_max_num_queries(10):
        response = client.get("/reports/")

    assert len(response.context["report"].campaigns) == 10
    assert len(response.context["report"].accounts) == 2


def test_a_report_is_shared_for_its_window_says_when_it_was_counted_and_csv_is_fresh(
    client: Client,
    marketer: User,
    two_campaigns: tuple[Campaign, Campaign],
    simulator: ProviderAccount,
    settings: Any,
) -> None:
    settings.HERALD_REPORT_SECONDS = 60
    spring, _ = two_campaigns
    client.force_login(marketer)
    today = timezone.localdate().isoformat()
    first = client.get("/reports/", {"from": today, "to": today})
    counted_at = first.context["report"].counted_at
    assert f'Counted at <time datetime="{counted_at.isoformat()}' in first.content.decode()
    assert "and again after 60 seconds" in first.content.decode()

    add_messages(spring, simulator, S.DELIVERED)  # a delivery report comes in meanwhile

    shared = client.get("/reports/", {"from": today, "to": today})
    assert shared.context["report"].counted_at == counted_at
    row = next(r for r in shared.context["report"].campaigns if r.campaign.pk == spring.pk)
    assert row.figures.delivered == 4  # as counted, until the window ends
    csv_text = b"".join(
        client.get("/reports/", {"from": today, "to": today, "format": "csv"}).streaming_content  # type: ignore[attr-defined]
    ).decode()
    assert {r["campaign"]: r for r in csv.DictReader(io.StringIO(csv_text))}["Spring"][
        "delivered"
    ] == "5"  # an export is always counted afresh

    settings.HERALD_REPORT_SECONDS = 0
    fresh = client.get("/reports/", {"from": today, "to": today})
    row = next(r for r in fresh.context["report"].campaigns if r.campaign.pk == spring.pk)
    assert row.figures.delivered == 5
    assert "and again after" not in fresh.content.decode()
