"""Four eyes means not an author: whoever changed a campaign's content since its last
approval may not approve it, at any door, even holding both roles (issue 15, item 5).

The reproduction: Bo, a marketer and an approver, edits Mia's draft; Mia submits it;
Bo tries to approve it. Runs on SQLite and PostgreSQL alike (DATABASE_URL).
"""

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from campaigns.actions import ACTIONS
from campaigns.models import Campaign, MessageTemplate
from contacts.models import Contact, Group
from messaging.models import ProviderAccount

pytestmark = pytest.mark.django_db

S = Campaign.Status
EDITED_IT = ACTIONS["approve"].author_refusal


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def bo(make_user: Callable[..., User]) -> User:
    return make_user("bo", "Marketers", "Approvers")


@pytest.fixture
def group(make_contacts: Callable[..., list[Contact]]) -> Group:
    group = Group.objects.create(name="Customers")
    make_contacts(2, group)
    return group


@pytest.fixture
def draft(marketer: User, simulator: ProviderAccount, group: Group) -> Campaign:
    """Mia's draft, written in the builder like any other."""
    response = logged_in(marketer).post(
        reverse("dashboard:campaign_new"), builder_form(simulator, group, "Hi {{first_name}}")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return Campaign.objects.get()


def builder_form(account: ProviderAccount, group: Group, body: str, **more: Any) -> dict[str, Any]:
    return {
        "name": "Spring sale",
        "channel": "sms",
        "provider_account": account.pk,
        "sender": "",
        "template": "",
        "body": body,
        "groups": [group.pk],
        "scheduled_at_0": "",
        "scheduled_at_1": "",
        "time_zone": "Europe/London",
        "window_start": "",
        "window_end": "",
        "brake_failure_rate": "0.5",
        "brake_window": "200",
        "action": "save",
        **more,
    }


def admin_form(campaign: Campaign, **changes: Any) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "channel": campaign.channel,
        "provider_account": campaign.provider_account_id,
        "body": campaign.body,
        "groups": list(campaign.groups.values_list("pk", flat=True)),
        "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0",
        **changes,
    }


def edit_in_builder(user: User, campaign: Campaign, group: Group, body: str) -> None:
    url = reverse("dashboard:campaign_edit", args=(campaign.pk,))
    form = builder_form(campaign.provider_account, group, body)
    assert logged_in(user).post(url, form).status_code == 302


def edit_in_admin(user: User, campaign: Campaign, **changes: Any) -> None:
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    response = logged_in(user).post(url, admin_form(campaign, **changes))
    assert response.status_code == 302, response.content.decode()[:2000]


def cli(*args: str) -> str:
    out = io.StringIO()
    call_command("campaign", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def still_pending(campaign: Campaign) -> bool:
    campaign.refresh_from_db()
    return campaign.status == S.PENDING_APPROVAL and campaign.approved_by is None


# The reproduction, at every door.


def test_an_approver_who_edited_a_colleagues_draft_cannot_approve_it_anywhere(
    draft: Campaign, marketer: User, bo: User, group: Group
) -> None:
    edit_in_builder(bo, draft, group, "Hi {{first_name}}, 20% off today")
    draft.refresh_from_db()
    draft.submit(by=marketer)
    client = logged_in(bo)
    seen = {"content_hash": draft.content_hash}

    with pytest.raises(PermissionDenied, match=re.escape(EDITED_IT)):
        draft.approve(by=bo)
    with pytest.raises(PermissionDenied, match=re.escape(EDITED_IT)):
        draft.act("approve", bo)
    with pytest.raises(CommandError, match=re.escape(EDITED_IT)):
        cli("approve", str(draft.pk), "--as", "bo")
    response = client.post(reverse("dashboard:approve", args=(draft.pk,)), seen, follow=True)
    assert EDITED_IT in response.content.decode()
    client.post(reverse("dashboard:campaign_action", args=(draft.pk, "approve")))
    page = client.post(
        f"/admin/campaigns/pendingapproval/{draft.pk}/approve/", seen, follow=True
    ).content.decode()
    assert EDITED_IT in page
    page = client.post(
        f"/admin/campaigns/campaign/{draft.pk}/transition/approve/", {"note": ""}, follow=True
    ).content.decode()
    assert EDITED_IT in page
    bulk = {"action": "approve_selected", "_selected_action": [draft.pk]}
    page = client.post("/admin/campaigns/campaign/", bulk, follow=True).content.decode()
    assert EDITED_IT in page

    assert still_pending(draft)


def test_the_author_is_told_why_where_the_approve_button_would_be(
    draft: Campaign, marketer: User, bo: User, group: Group
) -> None:
    edit_in_admin(bo, draft, body="Hi {{first_name}}, last day")
    draft.refresh_from_db()
    draft.submit(by=marketer)
    client = logged_in(bo)

    campaign_page = client.get(reverse("dashboard:campaign", args=(draft.pk,))).content.decode()
    queue = client.get(reverse("dashboard:approvals")).content.decode()
    admin_page = client.get(f"/admin/campaigns/campaign/{draft.pk}/change/").content.decode()
    admin_queue = client.get("/admin/campaigns/pendingapproval/").content.decode()

    assert f'id="withheld-approve">{EDITED_IT}<' in campaign_page
    assert "/action/approve/" not in campaign_page and "/action/reject/" in campaign_page
    assert f'id="withheld-{draft.pk}">{EDITED_IT}<' in queue
    assert reverse("dashboard:approve", args=(draft.pk,)) not in queue
    assert f'id="withheld-approve">{EDITED_IT}<' in admin_page
    assert "transition-approve" not in admin_page and "transition-reject" in admin_page
    assert f'<span class="withheld">{EDITED_IT}</span>' in admin_queue
    assert f'form="approve-{draft.pk}"' not in admin_queue.split("</table>")[0]


def test_another_approver_still_approves_it(
    draft: Campaign, marketer: User, bo: User, approver: User, group: Group
) -> None:
    edit_in_builder(bo, draft, group, "Hi {{first_name}}, 20% off today")
    draft.refresh_from_db()
    draft.submit(by=marketer)
    queue = logged_in(approver).get(reverse("dashboard:approvals")).content.decode()
    assert reverse("dashboard:approve", args=(draft.pk,)) in queue and EDITED_IT not in queue
    draft.approve(by=approver)
    assert draft.approved_by == approver


# Who counts as an author.


def test_whoever_creates_a_campaign_at_any_door_is_one_of_its_authors(
    draft: Campaign,
    marketer: User,
    bo: User,
    simulator: ProviderAccount,
    group: Group,
) -> None:
    assert set(draft.authors.all()) == {marketer}  # the dashboard builder
    response = logged_in(bo).post("/admin/campaigns/campaign/add/", admin_form(draft))
    assert response.status_code == 302
    in_admin = Campaign.objects.exclude(pk=draft.pk).get()
    assert set(in_admin.authors.all()) == {bo}
    made = cli("create", "--name", "N", "--provider", "sim", "--body", "Hi", "--as", "bo")
    assert set(Campaign.objects.get(pk=int(made)).authors.all()) == {bo}


def test_an_edit_that_leaves_the_approved_content_alone_makes_no_author(
    draft: Campaign, marketer: User, bo: User, approver: User
) -> None:
    edit_in_admin(bo, draft, name="Spring sale (renamed)", brake_window="300")
    assert set(draft.authors.all()) == {marketer}
    draft.submit(by=marketer)
    draft.approve(by=bo)  # Bo changed nothing an approval binds
    assert draft.approved_by == bo


def test_editing_the_campaigns_message_template_makes_an_author(
    marketer: User, bo: User, simulator: ProviderAccount, group: Group
) -> None:
    template = MessageTemplate.objects.create(name="Sale", body="Hi {{first_name}}")
    campaign = Campaign.objects.create(
        name="From template", provider_account=simulator, template=template, created_by=marketer
    )
    campaign.groups.add(group)
    campaign.submit(by=marketer)
    form = {"name": "Sale", "channel": "sms", "body": "Hi {{first_name}}, all of it must go"}
    response = logged_in(bo).post(f"/admin/campaigns/messagetemplate/{template.pk}/change/", form)
    assert response.status_code == 302
    assert set(campaign.authors.all()) == {bo}
    with pytest.raises(PermissionDenied, match=re.escape(EDITED_IT)):
        campaign.approve(by=bo)
    assert still_pending(campaign)


def test_an_approval_clears_the_authors_so_a_later_round_counts_only_its_own(
    draft: Campaign, marketer: User, bo: User, approver: User, group: Group
) -> None:
    edit_in_builder(bo, draft, group, "Hi {{first_name}}, 20% off today")
    draft.refresh_from_db()
    draft.submit(by=marketer)
    draft.approve(by=approver)
    assert not draft.authors.exists()
    # Mia edits the approved campaign: a draft again, and hers alone this round.
    Campaign.objects.filter(pk=draft.pk).update(scheduled_at=None)
    edit_in_admin(marketer, draft, body="Hi {{first_name}}, 25% off today")
    draft.refresh_from_db()
    assert draft.status == S.DRAFT and set(draft.authors.all()) == {marketer}
    draft.submit(by=marketer)
    draft.approve(by=bo)  # Bo edited the last round, not this one
    assert draft.status != S.PENDING_APPROVAL and draft.approved_by == bo


def test_a_rejection_keeps_the_authors(
    draft: Campaign, marketer: User, bo: User, approver: User, group: Group
) -> None:
    edit_in_builder(bo, draft, group, "Hi {{first_name}}, 20% off today")
    draft.refresh_from_db()
    draft.submit(by=marketer)
    draft.reject(by=approver, reason="Too pushy")
    draft.submit(by=marketer)
    with pytest.raises(PermissionDenied, match=re.escape(EDITED_IT)):
        draft.approve(by=bo)
