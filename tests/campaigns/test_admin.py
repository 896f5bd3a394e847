"""The demo flow as people click it in the admin (Django test client)."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from campaigns import tasks
from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging import tasks as messaging_tasks
from messaging.models import Message, ProviderAccount

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def transition(client: Client, campaign: Campaign, action: str, note: str = "") -> str:
    url = f"/admin/campaigns/campaign/{campaign.pk}/transition/{action}/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"note": note}, follow=True)
    return response.content.decode()


def test_marketer_creates_and_submits_approver_approves_and_it_is_sent(
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="Newsletter")
    make_contacts(4, group)
    as_marketer, as_approver = logged_in(marketer), logged_in(approver)

    response = as_marketer.post(
        "/admin/campaigns/campaign/add/",
        {
            "name": "Launch",
            "channel": "sms",
            "provider_account": simulator.pk,
            "body": "Hello {{first_name}}",
            "groups": [group.pk],
            "transitions-TOTAL_FORMS": "0",
            "transitions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign = Campaign.objects.get(name="Launch")
    assert campaign.created_by == marketer

    change_page = as_marketer.get(
        f"/admin/campaigns/campaign/{campaign.pk}/change/"
    ).content.decode()
    assert "transition-submit" in change_page and "transition-approve" not in change_page
    assert "is now <strong>Pending approval</strong>" in transition(as_marketer, campaign, "submit")

    approver_page = as_approver.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert "transition-approve" in approver_page.content.decode()
    transition(as_approver, campaign, "approve", note="Looks good")

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    tasks.tick()
    messaging_tasks.poll_statuses()
    page = as_marketer.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "Delivered: <strong>4</strong>" in page
    assert "Looks good" in page  # the history inline shows the approver's note


def test_marketer_cannot_reach_the_approve_page(
    make_campaign: Callable[..., Campaign], simulator: ProviderAccount, marketer: User
) -> None:
    campaign = make_campaign(simulator, Group.objects.create(name="G"))
    response = logged_in(marketer).get(
        f"/admin/campaigns/campaign/{campaign.pk}/transition/approve/"
    )
    assert response.status_code == 403


def test_self_approval_shows_a_clear_message(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., Any],
    simulator: ProviderAccount,
    make_user: Callable[..., User],
) -> None:
    both = make_user("bea", "Marketers", "Approvers")
    group = Group.objects.create(name="G")
    make_contacts(1, group)
    campaign = make_campaign(simulator, group)
    client = logged_in(both)
    transition(client, campaign, "submit")
    page = transition(client, campaign, "approve")
    assert "cannot approve a campaign you submitted yourself" in page
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.PENDING_APPROVAL


def test_reject_without_reason_keeps_the_form_and_says_why(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., Any],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(1, group)
    campaign = make_campaign(simulator, group)
    campaign.submit(by=marketer)
    page = transition(logged_in(approver), campaign, "reject", note="")
    assert "Say why the campaign is rejected" in page
    transition(logged_in(approver), campaign, "reject", note="Wrong audience")
    marketer_view = logged_in(marketer).get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert "Rejected: Wrong audience" in marketer_view.content.decode()


def test_editing_a_submitted_campaign_sends_it_back_to_draft(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., Any],
    simulator: ProviderAccount,
    marketer: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(1, group)
    campaign = make_campaign(simulator, group)
    campaign.submit(by=marketer)
    form = {
        "name": campaign.name,
        "channel": "sms",
        "provider_account": simulator.pk,
        "body": "Changed text",
        "groups": [group.pk],
        "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0",
    }
    response = logged_in(marketer).post(
        f"/admin/campaigns/campaign/{campaign.pk}/change/", form, follow=True
    )
    assert "draft again" in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DRAFT


def test_messages_are_read_only_in_the_admin(
    admin_client: Client, simulator: ProviderAccount
) -> None:
    message = Message.objects.create(
        provider_account=simulator, phone="+447911123456", body="x", client_ref="r1"
    )
    page = admin_client.get(f"/admin/messaging/message/{message.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get("/admin/messaging/message/add/").status_code == 403
