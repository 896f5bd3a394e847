"""Duplicate, delete and edit from a campaign's page: the operations table (campaigns.actions.
OPERATIONS) says who may in which state, the model refuses the rest, every door asks it."""

import re
from collections.abc import Callable
from datetime import time, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from campaigns.actions import OPERATIONS
from campaigns.models import Campaign, CampaignTransition, FrequencyCap, TransitionNotAllowed
from campaigns.segments import Segment
from contacts.models import Contact, Group, Tag
from messaging.models import Message, ProviderAccount

S = Campaign.Status


@pytest.fixture
def campaign(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
) -> Campaign:
    customers, staff = Group.objects.create(name="Customers"), Group.objects.create(name="Staff")
    make_contacts(2, customers)
    campaign = make_campaign(simulator, customers, body="Hi {{first_name|there}}")
    campaign.tags.add(Tag.objects.create(name="vip"))
    campaign.exclude_groups.add(staff)
    Campaign.objects.filter(pk=campaign.pk).update(
        window_start=time(9), window_end=time(20), time_zone="Europe/Paris", sender="Shop"
    )
    campaign.refresh_from_db()
    return campaign


def in_status(campaign: Campaign, status: str) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    campaign.refresh_from_db()
    return campaign


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(user: User, campaign: Campaign) -> str:
    return logged_in(user).get(reverse("dashboard:campaign", args=(campaign.pk,))).content.decode()


def operations_on(page: str) -> list[str]:
    return re.findall(r'id="operation-(\w+)"', page)


# Duplicate.


@pytest.mark.parametrize("status", S.values)
def test_a_duplicate_is_a_new_draft_with_the_same_content_and_audience(
    campaign: Campaign, make_user: Callable[..., User], status: str
) -> None:
    colleague = make_user("cole", "Marketers")
    in_status(campaign, status)

    copy = campaign.duplicate(by=colleague)

    assert copy.pk != campaign.pk and copy.status == S.DRAFT
    assert copy.name == "Spring (copy)"
    assert copy.created_by == colleague and list(copy.authors.all()) == [colleague]
    for field in ("body", "channel", "provider_account", "sender", "time_zone", "window_start"):
        assert getattr(copy, field) == getattr(campaign, field), field
    assert list(copy.groups.all()) == list(campaign.groups.all())
    assert list(copy.tags.all()) == list(campaign.tags.all())
    assert list(copy.exclude_groups.all()) == list(campaign.exclude_groups.all())
    assert not copy.transitions.exists() and not copy.messages.exists()
    assert copy.estimate == {} and copy.submitted_by is None and copy.content_hash == ""
    event = AuditEvent.objects.get(action=AuditEvent.Action.CAMPAIGN_DUPLICATED)
    assert event.actor == colleague and event.object_id == str(copy.pk)
    assert event.detail == {"from": campaign.pk}


def test_a_duplicate_keeps_a_schedule_still_ahead_and_drops_a_past_one(
    campaign: Campaign, marketer: User
) -> None:
    ahead = timezone.now() + timedelta(days=2)
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=ahead, name="x" * 200)
    campaign.refresh_from_db()
    assert campaign.duplicate(by=marketer).scheduled_at == ahead
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now() - timedelta(1))
    campaign.refresh_from_db()
    copy = campaign.duplicate(by=marketer)
    assert copy.scheduled_at is None
    assert len(copy.name) == 200 and copy.name.endswith(" (copy)")


def test_a_duplicate_keeps_segments_and_exclusions_and_a_cap_only_its_maker_may_set(
    campaign: Campaign, marketer: User, make_user: Callable[..., User]
) -> None:
    segment = Segment.objects.create(name="Leeds", rules=["attr.city = Leeds"])
    dropped = Segment.objects.create(name="York", rules=["attr.city = York"])
    campaign.segments.add(segment)
    campaign.exclude_segments.add(dropped)
    campaign.exclude_tags.add(Tag.objects.create(name="staff"))
    Campaign.objects.filter(pk=campaign.pk).update(frequency_cap=FrequencyCap.OFF)
    campaign.refresh_from_db()
    lead = make_user("lead", "Marketers", "Approvers")  # may override the cap

    by_marketer = campaign.duplicate(by=marketer)
    by_lead = campaign.duplicate(by=lead)

    for copy in (by_marketer, by_lead):
        assert list(copy.segments.all()) == [segment]
        assert list(copy.exclude_segments.all()) == [dropped]
        assert list(copy.exclude_tags.values_list("name", flat=True)) == ["staff"]
    assert by_marketer.frequency_cap == FrequencyCap.HOUSE
    assert by_lead.frequency_cap == FrequencyCap.OFF


def test_only_marketers_may_duplicate(campaign: Campaign, approver: User) -> None:
    with pytest.raises(PermissionDenied):
        campaign.duplicate(by=approver)
    with pytest.raises(PermissionDenied):
        campaign.duplicate(by=None)
    assert Campaign.objects.count() == 1


def test_the_duplicate_button_makes_the_copy_and_opens_it(
    campaign: Campaign, marketer: User, approver: User
) -> None:
    url = reverse("dashboard:campaign_duplicate", args=(campaign.pk,))
    assert logged_in(approver).post(url).status_code == 302
    assert Campaign.objects.count() == 1  # refused, in the model's words
    response = logged_in(marketer).post(url, follow=True)

    copy = Campaign.objects.exclude(pk=campaign.pk).get()
    assert response.redirect_chain[-1][0] == reverse("dashboard:campaign", args=(copy.pk,))
    assert "“Spring (copy)” is a new draft" in response.content.decode()
    assert logged_in(marketer).get(url).status_code == 405


# Delete.


def test_a_draft_is_deleted_with_its_history_and_the_audit_log_says_who(
    campaign: Campaign, marketer: User, approver: User
) -> None:
    campaign.submit(by=marketer)
    campaign.reject(by=approver, reason="Say which shop")
    pk = campaign.pk

    campaign.delete_draft(by=marketer)

    assert not Campaign.objects.filter(pk=pk).exists()
    assert not CampaignTransition.objects.filter(campaign_id=pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.CAMPAIGN_DELETED)
    assert event.actor == marketer and event.object_id == str(pk)
    assert event.detail == {"name": "Spring", "status": "draft"}


@pytest.mark.parametrize("status", [s for s in S.values if s != S.DRAFT])
def test_only_drafts_can_be_deleted(campaign: Campaign, marketer: User, status: str) -> None:
    in_status(campaign, status)
    with pytest.raises(TransitionNotAllowed, match="Only drafts can be deleted"):
        campaign.delete_draft(by=marketer)
    assert Campaign.objects.filter(pk=campaign.pk).exists()


def test_a_draft_that_sent_messages_before_is_not_deleted(
    campaign: Campaign, marketer: User, simulator: ProviderAccount
) -> None:
    """Held for approval after it started, then rejected: its sent messages are records."""
    Message.objects.create(
        campaign=campaign,
        provider_account=simulator,
        phone="+447911200001",
        body="Hi",
        client_ref="sent-before",
        status=Message.Status.DELIVERED,
    )
    with pytest.raises(TransitionNotAllowed, match="cancel it instead"):
        campaign.delete_draft(by=marketer)
    assert Message.objects.filter(client_ref="sent-before").exists()


def test_a_draft_that_went_on_meanwhile_is_not_deleted(campaign: Campaign, marketer: User) -> None:
    stale = Campaign.objects.get(pk=campaign.pk)
    campaign.submit(by=marketer)  # another tab submitted it
    with pytest.raises(TransitionNotAllowed):
        stale.delete_draft(by=marketer)
    assert Campaign.objects.get(pk=campaign.pk).status == S.PENDING_APPROVAL


def test_approvers_may_not_delete(campaign: Campaign, approver: User) -> None:
    with pytest.raises(PermissionDenied):
        campaign.delete_draft(by=approver)
    url = reverse("dashboard:campaign_delete", args=(campaign.pk,))
    client = logged_in(approver)
    assert client.get(url).status_code == 403
    refused = client.post(url, {"confirm": "yes"}, follow=True).content.decode()
    assert "Only marketers may change campaigns." in refused
    assert Campaign.objects.filter(pk=campaign.pk).exists()


def test_the_delete_button_asks_first_then_deletes_and_goes_to_the_list(
    campaign: Campaign, marketer: User
) -> None:
    client = logged_in(marketer)
    url = reverse("dashboard:campaign_delete", args=(campaign.pk,))

    asked = client.get(url).content.decode()
    unticked = client.post(url)
    assert OPERATIONS["delete"].confirmation in asked
    assert unticked.status_code == 400 and Campaign.objects.filter(pk=campaign.pk).exists()
    deleted = client.post(url, {"confirm": "yes"}, follow=True)

    assert deleted.redirect_chain[-1][0] == reverse("dashboard:campaigns")
    assert "The draft “Spring” was deleted." in deleted.content.decode()
    assert not Campaign.objects.filter(pk=campaign.pk).exists()


def test_deleting_a_pending_campaign_from_its_page_says_why_not(
    campaign: Campaign, marketer: User
) -> None:
    campaign.submit(by=marketer)
    url = reverse("dashboard:campaign_delete", args=(campaign.pk,))
    response = logged_in(marketer).post(url, {"confirm": "yes"}, follow=True)
    assert "Only drafts can be deleted; cancel it instead." in response.content.decode()
    assert Campaign.objects.filter(pk=campaign.pk).exists()


# What the page offers, by status and role.


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (S.DRAFT, ["edit", "duplicate", "delete", "test"]),
        (S.PENDING_APPROVAL, ["edit", "duplicate"]),
        (S.SCHEDULED, ["duplicate"]),
        (S.SENDING, ["duplicate"]),
        (S.COMPLETED, ["duplicate"]),
        (S.CANCELLED, ["duplicate"]),
    ],
)
def test_the_page_offers_the_operations_the_table_allows_in_each_state(
    campaign: Campaign, marketer: User, approver: User, status: str, expected: list[str]
) -> None:
    in_status(campaign, status)
    page = page_of(marketer, campaign)
    assert operations_on(page) == expected
    assert operations_on(page_of(approver, campaign)) == []
    warned = OPERATIONS["edit"].confirmation in page
    assert warned == (status == S.PENDING_APPROVAL)


def test_edit_links_to_the_builder_and_test_to_the_test_page(
    campaign: Campaign, marketer: User
) -> None:
    page = page_of(marketer, campaign)
    assert f'href="/campaigns/{campaign.pk}/edit/"' in page
    assert f'href="/campaigns/{campaign.pk}/test/"' in page


def test_the_admin_duplicates_selected_campaigns_as_new_drafts(
    campaign: Campaign, marketer: User, approver: User
) -> None:
    in_status(campaign, S.COMPLETED)
    data = {"action": "duplicate_selected", "_selected_action": [str(campaign.pk)]}

    done = logged_in(marketer).post("/admin/campaigns/campaign/", data, follow=True)

    assert "New drafts: Spring (copy)." in done.content.decode()
    copy = Campaign.objects.exclude(pk=campaign.pk).get()
    assert (copy.status, copy.created_by, copy.body) == (S.DRAFT, marketer, campaign.body)
    assert set(copy.groups.all()) == set(campaign.groups.all())
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CAMPAIGN_DUPLICATED).count() == 1
    # Approvers build nothing: the action is not theirs.
    logged_in(approver).post("/admin/campaigns/campaign/", data)
    assert Campaign.objects.count() == 2
