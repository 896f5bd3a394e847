"""Home shows each panel only to those who may view its data; without a role, whom to ask."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from campaigns.models import Campaign
from messaging.models import ProviderAccount


@pytest.fixture
def world(simulator: ProviderAccount, marketer: User) -> Campaign:
    simulator.name = "northwind-sms"
    simulator.set_credentials({"token": "x"})
    simulator.save()
    return Campaign.objects.create(
        name="Winter sale",
        provider_account=simulator,
        body="Hi",
        status=Campaign.Status.SENDING,
        created_by=marketer,
    )


def signed_in(client: Client, user: User) -> str:
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("is_staff", [False, True])
def test_a_user_with_no_role_is_told_whom_to_ask_and_shown_no_data(
    client: Client, make_user: Callable[..., User], world: Campaign, is_staff: bool
) -> None:
    user = make_user("newcomer")
    User.objects.filter(pk=user.pk).update(is_staff=is_staff)

    page = signed_in(client, User.objects.get(pk=user.pk))

    assert "No access yet" in page and "Ask an administrator of Herald" in page
    assert "Provider accounts" not in page and "Credentials" not in page
    assert "northwind-sms" not in page
    assert "Winter sale" not in page and "Campaigns in flight" not in page
    for menu in ("/reports/", "/contacts/", "/approvals/", "/campaigns/new/"):
        assert f'href="{menu}"' not in page
    assert ('href="/admin/"' in page) == is_staff  # the menu's link; the admin shows nothing
    assert "may already see is in the" not in page


def test_the_contact_for_access_is_the_operators_to_set(
    client: Client, make_user: Callable[..., User], world: Campaign, settings: Any
) -> None:
    settings.HERALD_ACCESS_CONTACT = "the IT helpdesk (it-help@example.com)"
    page = signed_in(client, make_user("newcomer"))
    assert "Ask the IT helpdesk (it-help@example.com) to add you" in page


def test_an_auditor_is_sent_to_the_admin_where_the_audit_log_is(
    client: Client, make_user: Callable[..., User], world: Campaign
) -> None:
    page = signed_in(client, make_user("aud", "Auditors"))
    assert "No access yet" in page
    assert 'What your account may already see is in the <a href="/admin/">admin</a>' in page
    assert "Winter sale" not in page and "Provider accounts" not in page


def test_provider_accounts_are_listed_only_with_their_view_permission(
    client: Client, make_user: Callable[..., User], world: Campaign
) -> None:
    user = make_user("camila")
    user.user_permissions.add(Permission.objects.get(codename="view_campaign"))

    page = signed_in(client, user)

    assert "Winter sale" in page
    assert "Provider accounts" not in page and "Credentials" not in page
    assert "No access yet" not in page


def test_a_user_who_may_see_accounts_alone_gets_them_without_campaigns(
    client: Client, make_user: Callable[..., User], world: Campaign
) -> None:
    user = make_user("opal")
    user.user_permissions.add(Permission.objects.get(codename="view_provideraccount"))

    page = signed_in(client, user)

    assert "Provider accounts" in page and "<td>Set</td>" in page
    assert "Winter sale" not in page and "No access yet" not in page


def test_a_user_who_may_see_contacts_alone_is_pointed_to_the_menu(
    client: Client, make_user: Callable[..., User], world: Campaign
) -> None:
    user = make_user("vic")
    user.user_permissions.add(Permission.objects.get(codename="view_contact"))

    page = signed_in(client, user)

    assert "What your role may see is in the menu above." in page
    assert 'href="/contacts/"' in page and 'href="/reports/"' not in page
    assert "No access yet" not in page and "Provider accounts" not in page


@pytest.mark.parametrize("role", ["Marketers", "Approvers"])
def test_the_roles_herald_creates_still_get_every_panel_of_their_week(
    client: Client, make_user: Callable[..., User], world: Campaign, role: str
) -> None:
    page = signed_in(client, make_user("worker", role))
    assert "Winter sale" in page and "Provider accounts" in page
    assert "<td>Set</td>" in page and "No access yet" not in page
    for menu in ("/reports/", "/contacts/"):
        assert f'href="{menu}"' in page
        assert client.get(menu).status_code == 200
    assert client.get("/reports/", {"format": "csv"}).status_code == 200


def test_per_recipient_results_need_the_messages_view_permission_too(
    client: Client, make_user: Callable[..., User], world: Campaign
) -> None:
    """Every recipient's number and status: seeing the campaign is not enough."""
    user = make_user("viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    client.force_login(user)
    export = f"/campaigns/{world.pk}/export.csv"

    page = client.get(f"/campaigns/{world.pk}/").content.decode()
    assert "Winter sale" in page and export not in page
    assert client.get(export).status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="view_message"))
    user = User.objects.get(pk=user.pk)  # permissions are cached on the instance
    client.force_login(user)
    assert export in client.get(f"/campaigns/{world.pk}/").content.decode()
    assert client.get(export).status_code == 200


def test_the_approval_queue_needs_seeing_campaigns_as_well_as_approving(
    client: Client, make_user: Callable[..., User], world: Campaign
) -> None:
    user = make_user("approver-only")
    user.user_permissions.add(Permission.objects.get(codename="approve_campaign"))
    client.force_login(user)
    assert client.get("/approvals/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get("/approvals/").status_code == 200
