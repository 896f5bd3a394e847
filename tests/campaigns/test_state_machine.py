from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError

from campaigns.models import Campaign, CampaignTransition, TransitionNotAllowed
from contacts.models import Group
from messaging.models import Message, ProviderAccount

S = Campaign.Status

# Each action: the statuses it may start from and where it leads.
ALLOWED: dict[str, dict[str, str]] = {
    "submit": {S.DRAFT: S.PENDING_APPROVAL},
    "approve": {S.PENDING_APPROVAL: S.SCHEDULED},
    "reject": {S.PENDING_APPROVAL: S.DRAFT},
    "pause": {S.SENDING: S.PAUSED},
    "resume": {S.PAUSED: S.SENDING},
    "cancel": {
        S.DRAFT: S.CANCELLED,
        S.PENDING_APPROVAL: S.CANCELLED,
        S.SCHEDULED: S.CANCELLED,
        S.SENDING: S.CANCELLED,
        S.PAUSED: S.CANCELLED,
    },
}


def act(campaign: Campaign, action: str, marketer: User, approver: User) -> None:
    if action == "submit":
        campaign.submit(by=marketer)
    elif action == "approve":
        campaign.approve(by=approver)
    elif action == "reject":
        campaign.reject(by=approver, reason="Tone it down")
    else:
        getattr(campaign, action)(by=marketer)


@pytest.fixture
def campaign(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    make_contacts: Callable[..., Any],
) -> Campaign:
    group = Group.objects.create(name="All")
    make_contacts(3, group)
    return make_campaign(locmem, group)


def put_in(campaign: Campaign, status: str, submitter: User) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(status=status, submitted_by=submitter)
    campaign.refresh_from_db()
    return campaign


@pytest.mark.parametrize("action", list(ALLOWED))
@pytest.mark.parametrize("status", list(S))
def test_every_transition_is_allowed_or_refused_as_designed(
    campaign: Campaign, marketer: User, approver: User, action: str, status: str
) -> None:
    put_in(campaign, status, marketer)
    expected = ALLOWED[action].get(status)
    if expected is None:
        with pytest.raises(TransitionNotAllowed):
            act(campaign, action, marketer, approver)
        assert Campaign.objects.get(pk=campaign.pk).status == status
        assert not CampaignTransition.objects.exists()
        return
    act(campaign, action, marketer, approver)
    assert campaign.status == expected
    log = CampaignTransition.objects.get()
    assert (log.action, log.from_status, log.to_status) == (action, status, expected)


def test_submit_records_who_and_freezes_a_content_hash(campaign: Campaign, marketer: User) -> None:
    campaign.submit(by=marketer)
    assert campaign.submitted_by == marketer
    assert campaign.content_hash == campaign.compute_content_hash()


def test_submit_refuses_a_campaign_without_audience_or_body(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount, marketer: User
) -> None:
    empty = make_campaign(locmem, body="")
    with pytest.raises(ValidationError) as raised:
        empty.submit(by=marketer)
    assert "no message body" in str(raised.value)
    assert "no audience" in str(raised.value)
    assert Campaign.objects.get(pk=empty.pk).status == S.DRAFT


def test_submit_refuses_variables_no_contact_has(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount, marketer: User
) -> None:
    group = Group.objects.create(name="G")
    campaign = make_campaign(locmem, group, body="Hi {{nickname}}")
    with pytest.raises(ValidationError, match="nickname"):
        campaign.submit(by=marketer)


def test_self_approval_is_refused(campaign: Campaign, make_user: Callable[..., User]) -> None:
    both = make_user("bea", "Marketers", "Approvers")
    campaign.submit(by=both)
    with pytest.raises(PermissionDenied, match="submitted yourself"):
        campaign.approve(by=both)
    assert Campaign.objects.get(pk=campaign.pk).status == S.PENDING_APPROVAL


def test_marketers_cannot_approve_or_reject(
    campaign: Campaign, marketer: User, make_user: Callable[..., User]
) -> None:
    other_marketer = make_user("max", "Marketers")
    campaign.submit(by=marketer)
    with pytest.raises(PermissionDenied):
        campaign.approve(by=other_marketer)
    with pytest.raises(PermissionDenied):
        campaign.reject(by=other_marketer, reason="no")


def test_reject_needs_a_reason_and_shows_it_to_the_submitter(
    campaign: Campaign, marketer: User, approver: User
) -> None:
    campaign.submit(by=marketer)
    with pytest.raises(ValidationError):
        campaign.reject(by=approver, reason="  ")
    campaign.reject(by=approver, reason="Price is wrong")
    assert campaign.status == S.DRAFT
    assert campaign.rejection_reason == "Price is wrong"
    campaign.submit(by=marketer)
    assert campaign.rejection_reason == ""


def test_double_approve_from_two_sessions_has_exactly_one_winner(
    campaign: Campaign, marketer: User, approver: User, make_user: Callable[..., User]
) -> None:
    second_approver = make_user("ana", "Approvers")
    campaign.submit(by=marketer)
    first_view = Campaign.objects.get(pk=campaign.pk)
    second_view = Campaign.objects.get(pk=campaign.pk)
    first_view.approve(by=approver)
    with pytest.raises(TransitionNotAllowed):
        second_view.approve(by=second_approver)
    approvals = CampaignTransition.objects.filter(campaign=campaign, action="approve")
    assert [t.by for t in approvals] == [approver]


def test_editing_after_submit_returns_to_draft(
    campaign: Campaign, marketer: User, approver: User
) -> None:
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    campaign.return_to_draft(by=marketer)
    assert campaign.status == S.DRAFT
    assert campaign.approved_by is None
    assert campaign.content_hash == ""


def test_cancel_marks_unsent_messages_cancelled(
    campaign: Campaign, marketer: User, locmem: ProviderAccount
) -> None:
    put_in(campaign, S.PAUSED, marketer)
    Message.objects.create(
        campaign=campaign, provider_account=locmem, phone="+447911123456", body="x", client_ref="a"
    )
    campaign.cancel(by=marketer, reason="Wrong list")
    assert list(campaign.messages.values_list("status", flat=True)) == [Message.Status.CANCELLED]
