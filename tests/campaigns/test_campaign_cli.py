"""`manage.py campaign`: create, the approval transitions and status, as scripts use them."""

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from campaigns.models import Campaign, MessageTemplate
from contacts.models import Contact, Group, OptOut, Tag
from messaging import tasks as messaging_tasks
from messaging.models import ProviderAccount
from tests.conftest import phone

S = Campaign.Status
COUNT_KEYS = ["pending", "sending", "sent", "delivered", "failed", "skipped", "in_doubt"]


def campaign_cli(*args: str) -> str:
    out = io.StringIO()
    call_command("campaign", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def create(account: ProviderAccount, *args: str) -> Campaign:
    out = campaign_cli("create", "--name", "Spring", "--provider", account.name, *args)
    return Campaign.objects.get(pk=int(out))


def refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as excinfo:
        campaign_cli(*args)
    assert excinfo.value.returncode == 1
    return excinfo.value


def status_json(campaign: Campaign) -> dict[str, Any]:
    out = campaign_cli("status", str(campaign.pk), "--json")
    assert out.count("\n") == 1
    summary: dict[str, Any] = json.loads(out)
    return summary


def set_status(campaign: Campaign, status: str) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=status)


@pytest.fixture
def draft(simulator: ProviderAccount, marketer: User) -> Campaign:
    Group.objects.create(name="Newsletter")
    return create(simulator, "--body", "Hi {{first_name}}", "--group", "Newsletter")


# create


def test_create_prints_only_the_new_id_and_makes_a_draft_with_its_audience(
    simulator: ProviderAccount, marketer: User
) -> None:
    Group.objects.create(name="Newsletter")
    Group.objects.create(name="VIP")
    Tag.objects.create(name="spring")

    out = campaign_cli(
        "create",
        "--name",
        "Spring",
        "--provider",
        "sim",
        "--body",
        "Hi {{first_name}}",
        "--group",
        "Newsletter",
        "--group",
        "VIP",
        "--tag",
        "spring",
        "--sender",
        "Shop",
        "--as",
        "mia",
    )

    assert out.strip().isdigit() and out.endswith("\n") and out.count("\n") == 1
    campaign = Campaign.objects.get(pk=int(out))
    assert (campaign.name, campaign.body, campaign.sender, campaign.channel) == (
        "Spring",
        "Hi {{first_name}}",
        "Shop",
        "sms",
    )
    assert (campaign.status, campaign.provider_account, campaign.created_by) == (
        S.DRAFT,
        simulator,
        marketer,
    )
    assert sorted(campaign.groups.values_list("name", flat=True)) == ["Newsletter", "VIP"]
    assert list(campaign.tags.values_list("name", flat=True)) == ["spring"]
    assert campaign.template is None


def test_create_without_as_leaves_created_by_empty(simulator: ProviderAccount) -> None:
    campaign = create(simulator, "--body", "Hi")

    assert campaign.created_by is None


def test_create_refuses_an_unknown_provider_and_lists_the_known_ones(
    simulator: ProviderAccount, locmem: ProviderAccount
) -> None:
    error = refused("create", "--name", "N", "--provider", "nope", "--body", "Hi")

    assert str(error) == "no provider account named 'nope' (known: mem, sim)"
    assert not Campaign.objects.exists()


def test_create_refuses_unknown_groups_and_tags_and_creates_none(
    simulator: ProviderAccount,
) -> None:
    Group.objects.create(name="Newsletter")
    args = ["create", "--name", "N", "--provider", "sim", "--body", "Hi"]

    groups_error = refused(*args, "--group", "Newsletter", "--group", "Ghosts", "--group", "Nope")
    tag_error = refused(*args, "--group", "Newsletter", "--tag", "vip")

    assert str(groups_error) == "no groups named 'Ghosts', 'Nope'"
    assert str(tag_error) == "no tag named 'vip'"
    assert list(Group.objects.values_list("name", flat=True)) == ["Newsletter"]
    assert not Tag.objects.exists()
    assert not Campaign.objects.exists()


def test_create_refuses_an_unknown_creator(simulator: ProviderAccount) -> None:
    error = refused("create", "--name", "N", "--provider", "sim", "--body", "Hi", "--as", "ghost")

    assert str(error) == "no user named 'ghost'"


def test_create_whatsapp_makes_a_template_once_and_reuses_it(simulator: ProviderAccount) -> None:
    args = ["--body", "Hi {{first_name}}", "--channel", "whatsapp", "--template", "spring_2025"]

    first = create(simulator, *args)
    second = create(simulator, *args)

    template = MessageTemplate.objects.get()
    assert (template.channel, template.whatsapp_template_id) == ("whatsapp", "spring_2025")
    assert first.template == second.template == template
    assert first.channel == "whatsapp"


def test_create_refuses_a_template_for_sms_and_whatsapp_without_one(
    simulator: ProviderAccount,
) -> None:
    args = ["create", "--name", "N", "--provider", "sim", "--body", "Hi"]

    sms_error = refused(*args, "--template", "spring_2025")
    whatsapp_error = refused(*args, "--channel", "whatsapp")

    assert str(sms_error) == "--template is for WhatsApp campaigns (--channel whatsapp)"
    assert "needs --template" in str(whatsapp_error)
    assert not MessageTemplate.objects.exists()


def test_create_refuses_a_channel_the_provider_cannot_send(db: Any) -> None:
    ProviderAccount.objects.create(name="bwat", backend=ProviderAccount.Backend.BWATMESAJ)

    error = refused(
        "create",
        *("--name", "N", "--provider", "bwat", "--body", "Hi"),
        *("--channel", "whatsapp", "--template", "t1"),
    )

    assert str(error) == "bwat (bwatmesaj) cannot send whatsapp messages"
    assert not MessageTemplate.objects.exists()


# the whole flow


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_create_submit_approve_sends_and_status_reports_the_counts(
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    newsletter = Group.objects.create(name="Newsletter")
    make_contacts(3, newsletter)
    OptOut.objects.create(phone=phone(1), channel="sms")
    campaign = create(simulator, "--body", "Hi {{first_name}}", "--group", "Newsletter")

    submitted = campaign_cli("submit", str(campaign.pk), "--as", "mia")
    # In sync mode the approval's wake-up runs the engine inline.
    approved = campaign_cli("approve", str(campaign.pk), "--as", "arno", "--reason", "fine")

    assert submitted == f"campaign {campaign.pk}: draft -> pending_approval\n"
    assert approved == f"campaign {campaign.pk}: pending_approval -> scheduled\n"
    summary = status_json(campaign)
    assert list(summary) == ["id", "status", "counts", "clicks"]
    assert list(summary["counts"]) == COUNT_KEYS
    assert summary == {
        "id": campaign.pk,
        "status": "completed",
        "counts": {
            "pending": 0,
            "sending": 0,
            "sent": 2,
            "delivered": 0,
            "failed": 0,
            "skipped": 1,
            "in_doubt": 0,
        },
        "clicks": {"unique": 0, "total": 0},
    }

    messaging_tasks.poll_statuses()  # the simulator delivers at once (delivery_delay 0)

    assert status_json(campaign)["counts"] == dict.fromkeys(COUNT_KEYS, 0) | {
        "delivered": 2,
        "skipped": 1,
    }
    assert campaign.transitions.get(action="approve").note == "fine"


def test_status_without_json_is_a_short_aligned_summary(draft: Campaign) -> None:
    out = campaign_cli("status", str(draft.pk))

    assert out.splitlines() == [
        f"campaign {draft.pk}: Spring",
        "status: draft",
        "  pending    0",
        "  sending    0",
        "  sent       0",
        "  delivered  0",
        "  failed     0",
        "  skipped    0",
        "  in_doubt   0",
    ]


def test_status_shows_why_a_paused_campaign_is_paused(draft: Campaign) -> None:
    set_status(draft, S.SENDING)
    campaign_cli("pause", str(draft.pk), "--as", "mia", "--reason", "wrong link")

    assert "status: paused (wrong link)" in campaign_cli("status", str(draft.pk))
    assert status_json(draft)["status"] == "paused"


# approval rules


def test_the_submitter_cannot_approve_their_own_campaign(
    draft: Campaign, make_user: Callable[..., User]
) -> None:
    make_user("both", "Marketers", "Approvers")
    campaign_cli("submit", str(draft.pk), "--as", "both")

    error = refused("approve", str(draft.pk), "--as", "both")

    assert str(error) == "You cannot approve a campaign you submitted yourself."
    draft.refresh_from_db()
    assert draft.status == S.PENDING_APPROVAL


def test_a_marketer_cannot_approve(draft: Campaign, make_user: Callable[..., User]) -> None:
    make_user("max", "Marketers")
    campaign_cli("submit", str(draft.pk), "--as", "mia")

    error = refused("approve", str(draft.pk), "--as", "max")

    assert str(error) == "Only approvers may approve or reject campaigns."


def test_submit_reports_why_the_campaign_is_not_ready(
    simulator: ProviderAccount, marketer: User
) -> None:
    campaign = create(simulator, "--body", "Hi")

    error = refused("submit", str(campaign.pk), "--as", "mia")

    assert str(error) == (
        "Cannot submit: it has no audience (choose at least one group, tag or segment)."
    )


def test_reject_without_a_reason_is_refused(draft: Campaign, approver: User) -> None:
    campaign_cli("submit", str(draft.pk), "--as", "mia")

    error = refused("reject", str(draft.pk), "--as", "arno")
    blank_error = refused("reject", str(draft.pk), "--as", "arno", "--reason", "  ")

    assert str(error) == str(blank_error)
    assert "needs --reason" in str(error)
    draft.refresh_from_db()
    assert draft.status == S.PENDING_APPROVAL


def test_reject_with_a_reason_returns_the_campaign_to_draft(
    draft: Campaign, approver: User
) -> None:
    campaign_cli("submit", str(draft.pk), "--as", "mia")

    out = campaign_cli("reject", str(draft.pk), "--as", "arno", "--reason", "Tone it down")

    assert out == f"campaign {draft.pk}: pending_approval -> draft\n"
    draft.refresh_from_db()
    assert (draft.status, draft.rejection_reason) == (S.DRAFT, "Tone it down")


# pause, resume, cancel


def test_pause_resume_and_cancel_print_each_move(draft: Campaign) -> None:
    set_status(draft, S.SENDING)
    pk = str(draft.pk)

    paused = campaign_cli("pause", pk, "--as", "mia", "--reason", "wrong link")
    resumed = campaign_cli("resume", pk, "--as", "mia")
    cancelled = campaign_cli("cancel", pk, "--as", "mia", "--reason", "sale called off")

    assert [paused, resumed, cancelled] == [
        f"campaign {pk}: sending -> paused\n",
        f"campaign {pk}: paused -> sending\n",
        f"campaign {pk}: sending -> cancelled\n",
    ]
    assert [(t.action, t.note) for t in draft.transitions.all()] == [
        ("pause", "wrong link"),
        ("resume", ""),
        ("cancel", "sale called off"),
    ]


def test_a_transition_from_the_wrong_state_is_refused(draft: Campaign) -> None:
    error = refused("pause", str(draft.pk), "--as", "mia")

    assert str(error) == "Cannot pause a campaign that is draft."


# lookups


def test_an_unknown_user_is_refused(draft: Campaign) -> None:
    error = refused("submit", str(draft.pk), "--as", "ghost")

    assert str(error) == "no user named 'ghost'"
    draft.refresh_from_db()
    assert draft.status == S.DRAFT


def test_an_inactive_user_is_refused(draft: Campaign, marketer: User) -> None:
    User.objects.filter(pk=marketer.pk).update(is_active=False)

    error = refused("submit", str(draft.pk), "--as", "mia")

    assert str(error) == "user 'mia' is inactive"


@pytest.mark.parametrize(
    "args",
    [
        ("status", "999"),
        ("status", "999", "--json"),
        ("submit", "999", "--as", "mia"),
        ("cancel", "999", "--as", "mia"),
    ],
)
def test_an_unknown_campaign_id_is_refused(args: tuple[str, ...], marketer: User) -> None:
    error = refused(*args)

    assert str(error) == "no campaign with id 999"


# list, duplicate, usage


def test_list_json_is_one_object_a_campaign_newest_change_first_with_its_counts(
    draft: Campaign, simulator: ProviderAccount, marketer: User
) -> None:
    other = create(simulator, "--body", "Hello", "--as", "mia")
    set_status(other, S.SENDING)
    for i, status in enumerate(["delivered", "delivered", "failed", "pending"]):
        other.messages.create(
            provider_account=simulator, phone=phone(i), body="Hi", client_ref=f"r{i}", status=status
        )

    lines = [json.loads(line) for line in campaign_cli("list", "--json").splitlines()]

    assert [line["id"] for line in lines] == [other.pk, draft.pk]
    assert lines[0] == {
        "id": other.pk,
        "name": "Spring",
        "status": "sending",
        "channel": "sms",
        "owner": "mia",
        "counts": {**dict.fromkeys(COUNT_KEYS, 0), "delivered": 2, "failed": 1, "pending": 1},
    }
    assert lines[1]["owner"] is None and lines[1]["counts"] == dict.fromkeys(COUNT_KEYS, 0)


def test_list_filters_by_status_and_refuses_an_unknown_one(
    draft: Campaign, simulator: ProviderAccount
) -> None:
    done = create(simulator, "--body", "Hello")
    set_status(done, S.COMPLETED)

    completed = campaign_cli("list", "--status", "completed", "--json").splitlines()
    text = campaign_cli("list")

    assert [json.loads(line)["id"] for line in completed] == [done.pk]
    assert len(text.splitlines()) == 2 and "completed" in text and "draft" in text
    with pytest.raises(CommandError, match="invalid choice"):
        campaign_cli("list", "--status", "finished")


def test_duplicate_prints_the_new_drafts_id(draft: Campaign, marketer: User) -> None:
    set_status(draft, S.COMPLETED)

    out = campaign_cli("duplicate", str(draft.pk), "--as", "mia")

    copy = Campaign.objects.get(pk=int(out))
    assert out == f"{copy.pk}\n"
    assert copy.status == S.DRAFT and copy.name == "Spring (copy)" and copy.created_by == marketer
    assert list(copy.groups.values_list("name", flat=True)) == ["Newsletter"]


def test_duplicate_is_refused_to_those_who_may_not_build(draft: Campaign, approver: User) -> None:
    error = refused("duplicate", str(draft.pk), "--as", "arno")
    assert str(error) == "Only marketers may change campaigns."
    assert Campaign.objects.count() == 1
    assert "no campaign with id 999" in str(refused("duplicate", "999", "--as", "arno"))


def test_no_subcommand_prints_the_usage_not_a_traceback() -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("campaign", stdout=out, stderr=io.StringIO())
    assert excinfo.value.returncode == 2
    usage = out.getvalue()
    assert usage.startswith("usage: ") and "list" in usage and "duplicate" in usage
