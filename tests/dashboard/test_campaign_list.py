"""The campaign list at /campaigns/: filters with counts, mine, search, sort, pages, access."""

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from contacts.models import Group
from dashboard.campaign_list import PER_PAGE
from messaging.models import Message, ProviderAccount
from tests.conftest import phone

S = Campaign.Status
URL = "/campaigns/"


@pytest.fixture
def group(db: Any) -> Group:
    return Group.objects.create(name="Customers")


@pytest.fixture
def make(simulator: ProviderAccount, group: Group, marketer: User) -> Callable[..., Campaign]:
    """A campaign in `status`, changed `ago` before now (the list's sort key)."""

    def make(
        name: str,
        status: str = S.DRAFT,
        by: User | None = None,
        ago: timedelta = timedelta(0),
        **fields: Any,
    ) -> Campaign:
        campaign = Campaign.objects.create(
            name=name, provider_account=simulator, body="Hi", created_by=by or marketer
        )
        campaign.groups.add(group)
        changed = timezone.now() - ago
        Campaign.objects.filter(pk=campaign.pk).update(status=status, updated_at=changed, **fields)
        campaign.refresh_from_db()
        return campaign

    return make


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def names(response: Any) -> list[str]:
    table = response.content.decode()
    return re.findall(r'<td data-label="Campaign"><a href="/campaigns/\d+/">([^<]*)</a>', table)


def filter_counts(response: Any) -> dict[str, int]:
    return {f["label"]: f["count"] for f in response.context["filters"]}


def test_the_list_shows_every_campaign_newest_change_first(
    make: Callable[..., Campaign], marketer: User
) -> None:
    make("Old", ago=timedelta(days=3))
    make("Newest", S.COMPLETED)
    make("Middle", S.PENDING_APPROVAL, ago=timedelta(hours=1))

    response = logged_in(marketer).get(URL)

    assert response.status_code == 200
    assert names(response) == ["Newest", "Middle", "Old"]
    assert '<a href="/campaigns/" aria-current="page">Campaigns</a>' in response.content.decode()


def test_each_status_has_its_count_and_filters_the_list(
    make: Callable[..., Campaign], marketer: User
) -> None:
    make("Draft one")
    make("Draft two")
    make("Sent back", rejection_reason="Say which shop")
    make("Waiting", S.PENDING_APPROVAL)
    make("Done", S.COMPLETED)
    client = logged_in(marketer)

    counts = filter_counts(client.get(URL))
    drafts = client.get(URL, {"status": "draft"})
    rejected = client.get(URL, {"status": "rejected"})

    assert counts == {
        "All": 5,
        "Draft": 3,
        "Rejected": 1,
        "Pending approval": 1,
        "Scheduled": 0,
        "Sending": 0,
        "Paused": 0,
        "Completed": 1,
        "Cancelled": 0,
    }
    assert sorted(names(drafts)) == ["Draft one", "Draft two", "Sent back"]
    assert names(rejected) == ["Sent back"]
    assert "rejected</span>" in rejected.content.decode()
    assert names(client.get(URL, {"status": "nonsense"})) == names(client.get(URL))


def test_mine_and_search_narrow_the_list_and_its_counts(
    make: Callable[..., Campaign], marketer: User, make_user: Callable[..., User]
) -> None:
    colleague = make_user("cole", "Marketers")
    make("Spring sale")
    make("Spring reminder", by=colleague)
    make("Autumn sale", S.COMPLETED)
    client = logged_in(marketer)

    mine = client.get(URL, {"mine": "1"})
    spring = client.get(URL, {"q": "SPRING"})
    my_sales = client.get(URL, {"q": "sale", "mine": "1", "status": "draft"})

    assert sorted(names(mine)) == ["Autumn sale", "Spring sale"]
    assert filter_counts(mine)["Draft"] == 1
    assert sorted(names(spring)) == ["Spring reminder", "Spring sale"]
    assert filter_counts(spring)["Completed"] == 0
    assert names(my_sales) == ["Spring sale"]
    # The status links keep the search and "mine".
    draft_link = next(f["link"] for f in my_sales.context["filters"] if f["label"] == "Draft")
    assert draft_link == "?status=draft&mine=1&q=sale"


def test_the_list_is_paginated_and_pages_keep_the_filters(
    make: Callable[..., Campaign], marketer: User
) -> None:
    for i in range(PER_PAGE + 3):
        make(f"Sale {i:02}", ago=timedelta(minutes=i))
    client = logged_in(marketer)

    first = client.get(URL, {"q": "sale"})
    second = client.get(URL, {"q": "sale", "page": "2"})
    beyond = client.get(URL, {"q": "sale", "page": "99"})

    assert names(first) == [f"Sale {i:02}" for i in range(PER_PAGE)]
    assert first.context["next_link"] == "?q=sale&page=2"
    assert names(second) == [f"Sale {i:02}" for i in range(PER_PAGE, PER_PAGE + 3)]
    assert second.context["previous_link"] == "?q=sale&page=1"
    assert names(beyond) == names(second)  # past the end: the last page


def test_rows_show_channel_audience_progress_rate_cost_owner_and_change(
    make: Callable[..., Campaign], marketer: User, simulator: ProviderAccount
) -> None:
    estimate = {"audience": 4, "cost": "0.12", "currency": "GBP"}
    sending = make("Sending one", S.SENDING, estimate=estimate, started_at=timezone.now())
    done = make("Done one", S.COMPLETED, final_cost="1.50", started_at=timezone.now())
    make("Unsent draft")
    for i, status in enumerate(["delivered", "failed", "pending", "delivered"]):
        for campaign in (sending, done):
            Message.objects.create(
                campaign=campaign,
                provider_account=simulator,
                phone=phone(i),
                body="Hi",
                client_ref=Message.new_client_ref(),
                status=status if campaign == sending or status != "pending" else "sent",
            )

    response = logged_in(marketer).get(URL)
    rows = {row["campaign"].name: row for row in response.context["rows"]}
    page = " ".join(response.content.decode().split())

    assert rows["Sending one"]["percent_done"] == 75.0
    assert rows["Sending one"]["audience"] == 4
    assert rows["Done one"]["rate"] == 50.0  # 2 delivered of 4 that reached the provider
    assert "75.0% done" in page and "50.0% delivered" in page
    assert "0.12 GBP" in page and "est." in page and "1.50" in page
    assert rows["Unsent draft"]["rate"] is None and rows["Unsent draft"]["audience"] is None
    assert "Customers" in page and "SMS" in page and ">mia<" in page
    assert "<time datetime=" in page


def test_the_list_asks_the_same_few_queries_however_many_campaigns(
    make: Callable[..., Campaign], marketer: User
) -> None:
    client = logged_in(marketer)
    make("One", S.SENDING, started_at=timezone.now())
    client.get(URL)  # the session and the permissions are read once
    with CaptureQueriesContext(connection) as few:
        client.get(URL)
    for i in range(12):
        make(f"More {i}", S.SENDING if i % 2 else S.COMPLETED, started_at=timezone.now())
    with CaptureQueriesContext(connection) as many:
        client.get(URL)

    assert len(many) == len(few)
    grouped = [q["sql"] for q in many if "GROUP BY" in q["sql"]]
    # One GROUP BY over campaigns for the counts, one over the page's messages.
    assert len(grouped) == 2


def test_only_those_who_may_view_campaigns_see_the_list(
    make: Callable[..., Campaign], make_user: Callable[..., User], approver: User
) -> None:
    make("Secret plans")
    nobody = make_user("stan")

    assert logged_in(nobody).get(URL).status_code == 403
    assert Client().get(URL).status_code == 302
    assert names(logged_in(approver).get(URL)) == ["Secret plans"]
    menu = logged_in(nobody).get(reverse("dashboard:home")).content.decode()
    assert 'href="/campaigns/"' not in menu
