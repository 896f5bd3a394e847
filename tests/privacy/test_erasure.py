"""GDPR erasure: no trace of the person in any table, and their number refused for good."""

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import models
from django.db.models.functions import Cast
from django.test import Client

import messaging
from campaigns.models import Campaign
from campaigns.sending import run_campaign
from campaigns.testsend import send_test
from contacts.erasure import erase
from contacts.models import (
    Contact,
    ErasedNumber,
    Group,
    ImportJob,
    ImportUndo,
    OptOut,
    Tag,
    erasure_hash,
)
from messaging.dispatch import send_claimed
from messaging.models import Message, ProviderAccount
from tests.conftest import own_test_number
from tests.privacy.conftest import M, S, report, send

pytestmark = pytest.mark.django_db

PHONE = "+447911209123"
NATIONAL = "07911 209123"
TRACES = ("7911209123", "Zebedee", "Quortle")


def traces() -> dict[str, int]:
    """Rows per `table.column` whose text (JSON as text) holds the number or the name.

    Every model in the project, every text-like column: a table added later is
    scanned without anyone remembering to add it here.
    """
    found = {}
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if not isinstance(field, models.CharField | models.TextField | models.JSONField):
                continue
            text = model._default_manager.annotate(_text=Cast(field.name, models.TextField()))
            mentions = models.Q()
            for needle in TRACES:
                mentions |= models.Q(_text__icontains=needle)
            hits = text.filter(mentions).count()
            if hits:
                found[f"{model._meta.db_table}.{field.column}"] = hits
    return found


@pytest.fixture
def zebedee(db: Any) -> Contact:
    """Created first, so every preview shows them among its samples."""
    contact = Contact.objects.create(
        phone=PHONE,
        first_name="Zebedee",
        last_name="Quortle",
        email="zeb@quortle.example",
        attributes={"nickname": "Zeb Quortle"},
    )
    contact.tags.add(Tag.objects.create(name="VIP"))
    return contact


@pytest.fixture
def everywhere(
    zebedee: Contact,
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
    admin_user: User,
) -> Campaign:
    """Zebedee's data in every place Herald keeps a person's data; returns the sent campaign."""
    group = Group.objects.create(name="Customers")
    zebedee.groups.add(group)
    make_contacts(3, group)
    OptOut.objects.create(phone=PHONE, channel="whatsapp", note="asked by e-mail")
    campaign = send(make_campaign(simulator, group), marketer, approver)
    for message in campaign.messages.all():
        report(message, M.DELIVERED)
    live = make_campaign(simulator, group, body="Still coming, {{first_name}}")
    live.submit(by=marketer)
    Campaign.objects.filter(pk=live.pk).update(status=S.SENDING)
    from campaigns.sending import materialise

    materialise(live)
    draft = make_campaign(simulator, group, body="Test for {{first_name}}")
    own_test_number(marketer, PHONE)
    send_test(draft, PHONE, by=marketer)
    job = ImportJob.objects.create(
        original_name="list.csv",
        region="GB",
        preview={
            "samples": [{"line": "2", "phone": PHONE, "first_name": "Zebedee"}],
            "errors": [{"line": "3", "error": f"duplicate of line 2 ({PHONE})"}],
        },
    )
    ImportUndo.objects.create(
        job=job, previous_values=[[zebedee.pk, {"first_name": "Zebedee"}]], added_tags=[]
    )
    LogEntry.objects.log_actions(admin_user.pk, [zebedee], CHANGE, change_message="Changed name.")
    return campaign


def test_erasure_leaves_no_trace_of_the_number_or_the_name_in_any_table(
    everywhere: Campaign, zebedee: Contact
) -> None:
    before = traces()
    # The scan sees them wherever they are (so it would see anything erasure missed).
    for place in (
        "contacts_contact.first_name",
        "contacts_optout.phone",
        "contacts_importjob.preview",
        "messaging_message.phone",
        "messaging_message.body",
        "messaging_statusevent.raw",
        "messaging_webhookevent.raw",
        "campaigns_campaign.estimate",
        "django_admin_log.object_repr",
    ):
        assert place in before, place
    counts = everywhere.messages.status_counts()

    changed = erase(contact_ids=[zebedee.pk])

    assert traces() == {}
    assert changed["contacts"] == 1 and changed["messages"] == 3  # sent, queued, test
    assert everywhere.messages.status_counts() == counts
    assert not ImportUndo.objects.get().previous_values
    assert ErasedNumber.objects.filter(phone_hash=erasure_hash(PHONE)).exists()
    # Everyone else is untouched.
    assert Contact.objects.count() == 3
    assert Group.objects.get().contacts.count() == 3
    assert Message.objects.filter(body__startswith="Hi Name").count() == 3


def test_a_message_not_sent_yet_is_skipped_as_erased(everywhere: Campaign) -> None:
    erase(phones=[PHONE])
    live = Campaign.objects.get(status=S.SENDING)
    erased = live.messages.get(phone__startswith="erased")
    assert (erased.status, erased.skip_reason) == (M.SKIPPED, Message.SkipReason.ERASED)
    assert live.messages.filter(status=M.PENDING).count() == 3


def test_erasing_twice_is_harmless(everywhere: Campaign, zebedee: Contact) -> None:
    erase(contact_ids=[zebedee.pk])
    assert erase(phones=[PHONE]) == {}
    assert ErasedNumber.objects.count() == 1


def test_the_hash_is_keyed_so_it_cannot_be_rebuilt_from_the_number_alone(settings: Any) -> None:
    settings.HERALD_ERASURE_KEY = "one key"
    first = erasure_hash(PHONE)
    assert first != hashlib.sha256(PHONE.encode()).hexdigest()
    settings.HERALD_ERASURE_KEY = "another key"
    assert erasure_hash(PHONE) != first
    settings.HERALD_ERASURE_KEY = ""
    assert erasure_hash(PHONE) != first and len(erasure_hash(PHONE)) == 64


def test_a_deploy_check_warns_while_the_key_comes_from_secret_key(settings: Any) -> None:
    settings.HERALD_ERASURE_KEY = ""
    assert "herald.W010" in {m.id for m in run_checks(include_deployment_checks=True)}
    settings.HERALD_ERASURE_KEY = "a long random string"
    assert "herald.W010" not in {m.id for m in run_checks(include_deployment_checks=True)}


# Refused on every way back in.


@pytest.fixture
def erased(zebedee: Contact) -> str:
    erase(contact_ids=[zebedee.pk])
    return PHONE


def test_an_erased_number_is_refused_when_imported_again(erased: str, tmp_path: Path) -> None:
    path = tmp_path / "again.csv"
    path.write_text(f"phone,first_name\n{NATIONAL},Zebedee\n07911 209124,Other\n")
    errors = tmp_path / "errors.csv"
    out = io.StringIO()
    call_command(
        "import_contacts", str(path), "--errors-out", str(errors), stdout=out, stderr=io.StringIO()
    )
    assert out.getvalue().strip().splitlines()[-1] == "imported=1 updated=0 skipped=0 invalid=1"
    assert list(Contact.objects.values_list("phone", flat=True)) == ["+447911209124"]
    report_text = errors.read_text()
    assert "erased" in report_text and "209123" not in report_text and "Zebedee" not in report_text


def test_an_erased_number_is_refused_in_the_admin(erased: str, admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/contacts/contact/add/", {"phone": NATIONAL, "first_name": "Zebedee"}
    )
    assert response.status_code == 200
    assert "erased at its owner" in response.content.decode()
    assert not Contact.objects.exists()
    response = admin_client.post(
        "/admin/contacts/optout/add/", {"phone": PHONE, "channel": "sms", "source": "manual"}
    )
    assert "erased at its owner" in response.content.decode()
    assert not OptOut.objects.exists()


def test_a_campaign_never_messages_an_erased_number(
    erased: str,
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    # Written straight to the table (no form, no import), as a bug or a script might.
    Contact.objects.create(phone=erased).groups.add(group)
    campaign = send(make_campaign(locmem, group), marketer, approver)
    assert erased not in [m.phone for m in messaging.outbox] and len(messaging.outbox) == 2
    skipped = campaign.messages.get(phone=erased)
    assert (skipped.status, skipped.skip_reason) == (M.SKIPPED, Message.SkipReason.ERASED)
    assert campaign.audience_stats["erased"] == 1


def test_a_row_already_queued_for_an_erased_number_is_dropped_at_the_moment_of_sending(
    erased: str, locmem: ProviderAccount
) -> None:
    Message.objects.create(
        provider_account=locmem, phone=erased, body="hi", client_ref=Message.new_client_ref()
    )
    send_claimed(Message.objects.all().claim(1))
    assert messaging.outbox == []
    assert Message.objects.get().status == M.SKIPPED


def test_test_sends_refuse_an_erased_number(
    erased: str, make_campaign: Callable[..., Campaign], locmem: ProviderAccount, marketer: User
) -> None:
    with pytest.raises(ValidationError, match="erased"):
        send_test(make_campaign(locmem), erased, by=marketer)
    with pytest.raises(CommandError, match="erased"):
        call_command(
            "provider", "send-test", "mem", "--to", NATIONAL, "--body", "hi", stdout=io.StringIO()
        )
    assert not Message.objects.exists() and messaging.outbox == []


# The ways staff ask for it.


def test_the_command_asks_for_yes_then_erases_by_id(zebedee: Contact) -> None:
    with pytest.raises(CommandError, match="add --yes"):
        call_command("contact", "erase", str(zebedee.pk), stdout=io.StringIO())
    assert Contact.objects.exists() and not ErasedNumber.objects.exists()
    out = io.StringIO()
    call_command("contact", "erase", str(zebedee.pk), "--yes", stdout=out)
    assert out.getvalue().startswith(f"erased contact #{zebedee.pk} (+44…23): ")
    assert "209123" not in out.getvalue()
    assert not Contact.objects.exists() and ErasedNumber.objects.count() == 1


def test_the_command_erases_a_number_nobody_has_any_more(db: Any) -> None:
    out = io.StringIO()
    call_command("contact", "erase", NATIONAL, "--yes", stdout=out)
    assert "nothing held it" in out.getvalue()
    assert ErasedNumber.objects.includes(PHONE)


def test_the_command_explains_a_target_it_cannot_read(db: Any) -> None:
    with pytest.raises(CommandError, match="neither a contact id nor a phone number"):
        call_command("contact", "erase", "not-a-number", "--yes", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no contact with id 42"):
        call_command("contact", "erase", "42", "--yes", stdout=io.StringIO())


def test_the_admin_action_asks_first_then_erases(zebedee: Contact, admin_client: Client) -> None:
    form = {"action": "erase_contacts", "_selected_action": [zebedee.pk]}
    response = admin_client.post("/admin/contacts/contact/", form)
    page = response.content.decode()
    assert response.status_code == 200 and "cannot be undone" in page
    assert "+44…23" in page and PHONE not in page
    assert Contact.objects.exists()

    response = admin_client.post("/admin/contacts/contact/", {**form, "confirm": "yes"})
    assert response.status_code == 302
    assert not Contact.objects.exists() and ErasedNumber.objects.includes(PHONE)


def test_the_admin_action_needs_the_delete_permission(
    zebedee: Contact, make_user: Callable[..., User], client: Client
) -> None:
    from django.contrib.auth.models import Permission

    user = make_user("viewer")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_contact", "change_contact"])
    )
    client.force_login(user)
    form = {"action": "erase_contacts", "_selected_action": [zebedee.pk], "confirm": "yes"}
    client.post("/admin/contacts/contact/", form)
    assert Contact.objects.exists() and not ErasedNumber.objects.exists()


def test_erasure_keeps_a_campaigns_test_send_row_without_the_number(
    zebedee: Contact,
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    marketer: User,
) -> None:
    draft = make_campaign(locmem)
    own_test_number(marketer, PHONE)
    message = send_test(draft, PHONE, by=marketer)
    erase(contact_ids=[zebedee.pk])
    message.refresh_from_db()
    assert message.phone == f"erased{message.pk}" and message.body == ""
    assert message.status == M.SENT
    run_campaign(draft)  # a draft: nothing happens, nothing breaks


def test_many_erased_numbers_are_looked_up_in_the_database_instead_of_in_memory(
    erased: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contacts.models

    monkeypatch.setattr(contacts.models, "ERASED_IN_MEMORY", 0)
    assert ErasedNumber.objects.among([erased, "+447911209124"]) == {erased}
    assert OptOut.objects.phones("sms", [erased, "+447911209124"]) == {erased}
