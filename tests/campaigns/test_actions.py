"""The action table (campaigns.actions) is what every door offers: the dashboard's buttons,
the admin's buttons and bulk actions, and the CLI's subcommands, for each status and role."""

import io
import re
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from campaigns.actions import ACTIONS, OPERATIONS, Action
from campaigns.management.commands.campaign import Command as CampaignCommand
from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging.models import ProviderAccount

S = Campaign.Status
#: Who acts; a submitting approver acts on campaigns they submitted themselves.
ROLES = ("marketer", "approver", "submitting approver")
SELF_APPROVAL = "You cannot approve a campaign you submitted yourself."


@pytest.fixture
def world(
    make_user: Callable[..., User],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
) -> dict[str, Any]:
    group = Group.objects.create(name="Customers")
    make_contacts(2, group)
    return {
        "group": group,
        "account": simulator,
        "marketer": make_user("mia", "Marketers"),
        "approver": make_user("arno", "Approvers"),
        "submitting approver": make_user("bo", "Marketers", "Approvers"),
    }


def actor(world: dict[str, Any], role: str) -> tuple[User, User]:
    """The user acting in `role`, and whoever submitted the campaigns they act on."""
    user = world[role]
    return user, user if role == "submitting approver" else world["marketer"]


def campaign_in(world: dict[str, Any], status: str, submitter: User) -> Campaign:
    campaign = Campaign.objects.create(
        name=f"In {status}",
        provider_account=world["account"],
        body="Hi {{first_name}}",
        created_by=submitter,
    )
    campaign.groups.add(world["group"])
    if status != S.DRAFT:
        campaign.submit(by=submitter)
        Campaign.objects.filter(pk=campaign.pk).update(status=status)
        campaign.refresh_from_db()
    return campaign


def table_says(status: str, user: User, submitted: bool) -> list[str]:
    """The actions the table offers `user` on a campaign in `status`, in its order."""
    return [
        a.name
        for a in ACTIONS.values()
        if status in a.from_statuses
        and user.has_perm(a.permission)
        and (a.for_submitter or not submitted)
    ]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# The table itself.


def test_the_table_names_real_statuses_and_permissions() -> None:
    for a in ACTIONS.values():
        assert {*a.from_statuses, a.to_status} <= set(S.values), a.name
        assert a.permission in ("campaigns.change_campaign", "campaigns.approve_campaign")
        assert bool(a.reason_label) == a.takes_reason == bool(a.reason_help), a.name
        assert bool(a.reason_missing) == a.reason_required, a.name


def test_the_table_moves_as_the_design_draws_them() -> None:
    moves = {(a.name, f, a.to_status) for a in ACTIONS.values() for f in a.from_statuses}
    live = (S.DRAFT, S.PENDING_APPROVAL, S.SCHEDULED, S.SENDING, S.PAUSED)
    assert moves == {
        ("submit", S.DRAFT, S.PENDING_APPROVAL),
        ("approve", S.PENDING_APPROVAL, S.SCHEDULED),
        ("reject", S.PENDING_APPROVAL, S.DRAFT),
        ("pause", S.SENDING, S.PAUSED),
        ("resume", S.PAUSED, S.SENDING),
        *(("cancel", status, S.CANCELLED) for status in live),
    }
    assert [a.name for a in ACTIONS.values() if a.confirmation] == ["reject", "cancel"]
    assert [a.name for a in ACTIONS.values() if a.reason_required] == ["reject"]


# The doors, for every status and role.


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("status", S.values)
def test_dashboard_and_admin_buttons_are_the_tables(
    world: dict[str, Any], role: str, status: str
) -> None:
    user, submitter = actor(world, role)
    campaign = campaign_in(world, status, submitter)
    expected = table_says(status, user, submitted=user == submitter)
    client = logged_in(user)

    dashboard = client.get(reverse("dashboard:campaign", args=(campaign.pk,))).content.decode()
    admin = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()

    action_url = re.escape(f"/campaigns/{campaign.pk}/action/")
    assert re.findall(rf'action="{action_url}(\w+)/"', dashboard) == expected
    assert re.findall(r'class="transition-(\w+)"', admin) == expected


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("status", S.values)
def test_the_cli_takes_exactly_what_the_table_allows(
    world: dict[str, Any], role: str, status: str
) -> None:
    user, submitter = actor(world, role)
    submitted = user == submitter
    allowed = table_says(status, user, submitted)
    for chosen in ACTIONS.values():
        campaign = campaign_in(world, status, submitter)
        args = [chosen.name, str(campaign.pk), "--as", user.username]
        if chosen.takes_reason:
            args += ["--reason", "because"]
        if chosen.name in allowed:
            assert cli(*args) == f"campaign {campaign.pk}: {status} -> {chosen.to_status}\n"
            continue
        with pytest.raises(CommandError) as refused:
            cli(*args)
        assert str(refused.value) in refusals(chosen, status, user, submitted), chosen.name
        assert Campaign.objects.get(pk=campaign.pk).status == status


def refusals(chosen: Action, status: str, user: User, submitted: bool) -> set[str]:
    """What the model may answer an action the table does not offer here."""
    if not user.has_perm(chosen.permission):
        return {chosen.refusal}
    label = S(status).label.lower()
    answers = {f"Cannot {chosen.name} a campaign that is {label}."}
    if submitted and not chosen.for_submitter:
        answers.add(SELF_APPROVAL)
    return answers


def cli(*args: str) -> str:
    out = io.StringIO()
    call_command("campaign", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def cli_help(*args: str) -> str:
    parser = CampaignCommand().create_parser("manage.py", "campaign")
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        parser.parse_args([*args, "--help"])
    return " ".join(out.getvalue().split())


def test_the_cli_has_a_subcommand_per_action_with_reason_where_the_table_has_one() -> None:
    [subcommands] = set(re.findall(r"\{(create,[\w,]+)\}", cli_help()))
    assert f",{','.join(ACTIONS)}," in f",{subcommands},"
    for chosen in ACTIONS.values():
        usage = cli_help(chosen.name)
        assert ("--reason" in usage) == chosen.takes_reason, chosen.name
        if chosen.takes_reason:
            assert " ".join(chosen.reason_help.split()) in usage


def test_the_cli_refuses_a_missing_reason_in_the_tables_words(
    world: dict[str, Any],
) -> None:
    campaign = campaign_in(world, S.PENDING_APPROVAL, world["marketer"])

    with pytest.raises(CommandError) as refused:
        cli("reject", str(campaign.pk), "--as", "arno", "--reason", " ")

    assert str(refused.value) == f"reject needs --reason: {ACTIONS['reject'].reason_missing}"


# What each button asks first.


def test_the_dashboard_asks_for_the_tables_reasons_and_confirmations(
    world: dict[str, Any],
) -> None:
    marketer, approver = world["marketer"], world["approver"]
    pending = campaign_in(world, S.PENDING_APPROVAL, marketer)
    sending = campaign_in(world, S.SENDING, marketer)
    pages = {
        "approve": (approver, pending),
        "reject": (approver, pending),
        "pause": (marketer, sending),
        "cancel": (marketer, sending),
    }
    for name, (user, campaign) in pages.items():
        chosen = ACTIONS[name]
        page = logged_in(user).get(reverse("dashboard:campaign", args=(campaign.pk,)))
        url = reverse("dashboard:campaign_action", args=(campaign.pk, name))
        [form] = re.findall(rf'<form [^>]*action="{url}".*?</form>', page.content.decode(), re.S)
        assert f'<label for="note-{name}">{chosen.field_label}</label>' in form
        required = re.search(r"<textarea [^>]*\brequired\b", form) is not None
        assert required == chosen.reason_required, name
        asks = re.findall(r'name="confirm" value="yes" required> ([^<]*)</label>', form)
        assert asks == ([chosen.confirmation] if chosen.confirmation else []), name


def test_the_dashboard_confirms_only_what_the_table_says_to(world: dict[str, Any]) -> None:
    marketer = world["marketer"]
    client = logged_in(marketer)
    for chosen in ACTIONS.values():
        campaign = campaign_in(world, chosen.from_statuses[0], marketer)
        url = reverse("dashboard:campaign_action", args=(campaign.pk, chosen.name))
        response = client.get(url)
        if chosen.confirmation:
            assert response.status_code == 200 and chosen.confirmation in response.content.decode()
        else:
            assert response.status_code == 405, chosen.name


def test_the_admin_confirm_page_asks_for_the_tables_reason(world: dict[str, Any]) -> None:
    marketer, approver = world["marketer"], world["approver"]
    for chosen in ACTIONS.values():
        user = approver if chosen.permission == "campaigns.approve_campaign" else marketer
        campaign = campaign_in(world, chosen.from_statuses[0], marketer)
        url = f"/admin/campaigns/campaign/{campaign.pk}/transition/{chosen.name}/"
        page = logged_in(user).get(url).content.decode()
        assert (f"{chosen.field_label}:</label>" in page) == chosen.takes_reason, chosen.name
        warnings = re.findall(r'<p class="warning">([^<]*)</p>', page)
        assert warnings == ([chosen.confirmation] if chosen.confirmation else []), chosen.name


@pytest.mark.parametrize("role", ["marketer", "approver"])
def test_the_admin_bulk_actions_are_the_tables_that_ask_nothing_first(
    world: dict[str, Any], role: str
) -> None:
    user = world[role]
    campaign_in(world, S.DRAFT, world["marketer"])  # the list offers no action when empty
    page = logged_in(user).get("/admin/campaigns/campaign/").content.decode()

    offered = re.findall(r'<option value="(\w+)_selected"', page)

    moves = [
        a.name
        for a in ACTIONS.values()
        if user.has_perm(a.permission) and not (a.reason_required or a.confirmation)
    ]
    # Besides the moves, builders may duplicate (an operation, not a change of state).
    builds = ["duplicate"] if user.has_perms(OPERATIONS["duplicate"].permissions) else []
    assert offered == moves + builds
