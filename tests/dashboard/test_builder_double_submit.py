"""The builder never makes two campaigns of one page (a double click, the back button, two
posts at once), keeps what was typed when it refuses, and says before saving that an edit
sends a campaign awaiting approval back to draft."""

import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging.models import ProviderAccount
from tests.dashboard.test_builder_and_approvals import form_data, signed_in, texts

pytestmark = pytest.mark.django_db

NEW = "/campaigns/new/"


@pytest.fixture
def group(db: Any) -> Group:
    return Group.objects.create(name="Customers")


def token_of(client: Client) -> str:
    html = client.get(NEW).content.decode()
    found = re.search(r'name="form_token" value="([^"]+)"', html)
    assert found, "the new campaign page carries a one-time token"
    return found.group(1)


def test_posting_the_same_page_twice_makes_one_campaign(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    client = signed_in(marketer)
    data = form_data(locmem, group, form_token=token_of(client))
    first = client.post(NEW, data)
    second = client.post(NEW, data)
    campaign = Campaign.objects.get()
    page = reverse("dashboard:campaign", args=(campaign.pk,))
    assert first["Location"] == second["Location"] == page
    assert "already saved from this page, so no second campaign was made" in texts(second)[-1]


def test_submitting_twice_submits_one_campaign_once(
    marketer: User,
    locmem: ProviderAccount,
    group: Group,
    make_contacts: Callable[..., list[Contact]],
) -> None:
    make_contacts(2, group)
    client = signed_in(marketer)
    data = form_data(locmem, group, form_token=token_of(client), action="submit")
    client.post(NEW, data)
    client.post(NEW, data)
    campaign = Campaign.objects.get()
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    assert campaign.transitions.filter(action="submit").count() == 1


def test_coming_back_to_a_used_page_opens_the_campaign_it_made(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    client = signed_in(marketer)
    token = token_of(client)
    client.post(NEW, form_data(locmem, group, form_token=token))
    campaign = Campaign.objects.get()
    back = client.get(f"{NEW}?form={token}")  # builder.js keeps the token in the address
    assert back["Location"] == reverse("dashboard:campaign_edit", args=(campaign.pk,))
    client.post(NEW, form_data(locmem, group, form_token=token, name="Changed my mind"))
    assert Campaign.objects.count() == 1


def test_each_new_page_makes_its_own_campaign(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    client = signed_in(marketer)
    for _ in range(2):
        client.post(NEW, form_data(locmem, group, form_token=token_of(client)))
    assert Campaign.objects.count() == 2
    assert Campaign.objects.values("form_token").distinct().count() == 2


def test_another_users_token_finds_nothing_of_theirs(
    marketer: User, make_user: Callable[..., User], locmem: ProviderAccount, group: Group
) -> None:
    client = signed_in(marketer)
    token = token_of(client)
    client.post(NEW, form_data(locmem, group, form_token=token))
    other = signed_in(make_user("cy", "Marketers"))
    response = other.get(f"{NEW}?form={token}")
    assert response.status_code == 200 and "Spring sale" not in response.content.decode()
    assert token not in response.content.decode()
    answer = other.post(NEW, form_data(locmem, group, form_token=token, name="Cy's"))
    mine, theirs = Campaign.objects.order_by("pk")
    assert answer["Location"] == reverse("dashboard:campaign", args=(theirs.pk,))
    assert theirs.name == "Cy's" and theirs.form_token != mine.form_token


def test_a_refused_submit_keeps_the_page_on_the_campaign_it_saved(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    client = signed_in(marketer)
    data = form_data(locmem, group, form_token=token_of(client), action="submit", groups=[])
    response = client.post(NEW, data)  # no audience: saved as a draft, not submitted
    campaign = Campaign.objects.get()
    html = response.content.decode()
    assert "Saved as a draft, not submitted" in html
    assert f'action="{reverse("dashboard:campaign_edit", args=(campaign.pk,))}"' in html


def test_errors_keep_everything_typed(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    client = signed_in(marketer)
    data = form_data(
        locmem,
        group,
        form_token=token_of(client),
        name="",
        body="Hi {{first_name|there}}, see you in {{city|town}}",
        sender="Shop",
        scheduled_at_0="2030-07-01",
        scheduled_at_1="09:30",
        time_zone="Europe/Paris",
        window_start="09:00",
        window_end="20:00",
        brake_failure_rate="0.25",
        brake_window="150",
    )
    html = client.post(NEW, data).content.decode()
    assert not Campaign.objects.exists()
    assert "Hi {{first_name|there}}, see you in {{city|town}}</textarea>" in html
    for kept in (
        'value="Shop"',
        'value="2030-07-01"',
        'value="09:30"',
        'value="09:00"',
        'value="20:00"',
        'value="0.25"',
        'value="150"',
        f'value="{data["form_token"]}"',
        '<option value="Europe/Paris" selected>',
        f'<option value="{locmem.pk}" selected>',
    ):
        assert kept in html, kept
    assert re.search(f'name="groups" value="{group.pk}"[^>]* checked', html)


# Editing a campaign awaiting approval.


@pytest.fixture
def pending(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    group: Group,
) -> Campaign:
    make_contacts(2, group)
    campaign = make_campaign(locmem, group)
    campaign.submit(by=campaign.created_by)
    return campaign


def test_the_edit_page_of_a_pending_campaign_says_it_goes_back_to_draft(
    marketer: User, pending: Campaign
) -> None:
    html = signed_in(marketer).get(reverse("dashboard:campaign_edit", args=(pending.pk,)))
    page = html.content.decode()
    assert "Saving any change sends it back to draft" in page
    assert 'name="back_to_draft"' in page


def test_a_pending_campaign_is_not_changed_without_saying_so(
    marketer: User, pending: Campaign, locmem: ProviderAccount, group: Group
) -> None:
    url = reverse("dashboard:campaign_edit", args=(pending.pk,))
    response = signed_in(marketer).post(url, form_data(locmem, group, body="Changed"))
    pending.refresh_from_db()
    assert response.status_code == 409
    assert pending.status == Campaign.Status.PENDING_APPROVAL
    assert pending.body == "Hi {{first_name}}"
    html = response.content.decode()
    assert "saving sends it back to draft" in html and "Changed</textarea>" in html


def test_a_pending_campaign_edited_with_consent_goes_back_to_draft(
    marketer: User, pending: Campaign, locmem: ProviderAccount, group: Group
) -> None:
    url = reverse("dashboard:campaign_edit", args=(pending.pk,))
    data = form_data(locmem, group, body="Changed", back_to_draft="yes")
    signed_in(marketer).post(url, data)
    pending.refresh_from_db()
    assert pending.status == Campaign.Status.DRAFT and pending.body == "Changed"
    assert pending.content_hash == ""
    assert pending.transitions.filter(action="edit", by=marketer).exists()
    assert pending.authors.filter(pk=marketer.pk).exists()


def test_a_second_submit_of_an_unchanged_edit_page_changes_nothing(
    marketer: User, pending: Campaign, locmem: ProviderAccount, group: Group
) -> None:
    url = reverse("dashboard:campaign_edit", args=(pending.pk,))
    data = form_data(locmem, group, name=pending.name, body=pending.body, action="submit")
    response = signed_in(marketer).post(url, data)
    pending.refresh_from_db()
    assert pending.status == Campaign.Status.PENDING_APPROVAL
    assert pending.transitions.filter(action="submit").count() == 1
    assert "already submitted for approval" in texts(response)[-1]


def test_a_scheduled_campaign_cannot_be_edited(
    marketer: User, approver: User, pending: Campaign, locmem: ProviderAccount, group: Group
) -> None:
    Campaign.objects.filter(pk=pending.pk).update(status=Campaign.Status.SCHEDULED)
    url = reverse("dashboard:campaign_edit", args=(pending.pk,))
    response = signed_in(marketer).post(url, form_data(locmem, group, body="Changed"))
    pending.refresh_from_db()
    assert response["Location"] == reverse("dashboard:campaign", args=(pending.pk,))
    assert "only drafts (rejected ones too) and campaigns awaiting approval" in texts(response)[0]
    assert pending.body == "Hi {{first_name}}"


# Two posts of one page at the same instant, each on its own connection.


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_posts_of_one_page_at_once_make_one_campaign(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    for _round in range(5):
        client = signed_in(marketer)
        data = form_data(locmem, group, form_token=token_of(client))
        start = threading.Barrier(2)
        answers: list[Any] = []

        def post(
            data: dict[str, Any] = data,
            start: threading.Barrier = start,
            answers: list[Any] = answers,
        ) -> None:
            try:
                start.wait()
                answers.append(signed_in(marketer).post(NEW, data))
            finally:
                connection.close()

        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        made = Campaign.objects.get(form_token=data["form_token"])
        page = reverse("dashboard:campaign", args=(made.pk,))
        assert [a.status_code for a in answers] == [302, 302]
        assert {a["Location"] for a in answers} == {page}
    assert Campaign.objects.count() == 5
