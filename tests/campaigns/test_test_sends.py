"""Test sends reach only the sender's own test numbers, a limited number of times an hour,
each audited and marked as a test everywhere (issue 15, item 4).

The reproduction: 20 test sends of a draft to 20 arbitrary numbers all went out. Runs on
SQLite and PostgreSQL alike (DATABASE_URL).
"""

import csv
import io
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import messaging
from audit.models import AuditEvent
from campaigns.models import Campaign, TestNumber
from campaigns.sending import run_campaign
from campaigns.testsend import send_test
from contacts.erasure import erase
from contacts.models import Contact, ErasedNumber, Group, erasure_hash
from messaging.models import Message, ProviderAccount
from tests.conftest import own_test_number, phone

OWN = "+447911123456"
#: Numbers no one registered: the reproduction's twenty strangers.
STRANGERS = [f"+4479112{i:05d}" for i in range(500, 520)]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cli(*args: str) -> str:
    out = io.StringIO()
    call_command("campaign", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def group(make_contacts: Callable[..., list[Contact]]) -> Group:
    group = Group.objects.create(name="Customers")
    make_contacts(2, group)
    return group


@pytest.fixture
def draft(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount, group: Group
) -> Campaign:
    return make_campaign(locmem, group, body="Hi {{first_name}}, 20% off")


@pytest.fixture
def number_keeper(make_user: Callable[..., User]) -> User:
    """Staff who manage test numbers: the test number permissions, and no campaign role."""
    keeper = make_user("kit")
    keeper.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="campaigns", codename__endswith="number")
    )
    return User.objects.get(pk=keeper.pk)


# The reproduction, at every door.


@pytest.mark.django_db
def test_twenty_tests_to_twenty_arbitrary_numbers_are_refused_at_every_door(
    draft: Campaign, marketer: User
) -> None:
    own_test_number(marketer, OWN)
    dashboard = logged_in(marketer)
    dashboard_url = reverse("dashboard:campaign_test", args=(draft.pk,))
    admin_url = f"/admin/campaigns/campaign/{draft.pk}/test/"
    refusals = 0
    for number in STRANGERS:
        with pytest.raises(ValidationError, match="is not one of your test numbers"):
            send_test(draft, number, by=marketer)
        with pytest.raises(CommandError, match="is not one of your test numbers"):
            cli("test", str(draft.pk), "--as", "mia", "--to", number)
        # The pages offer a choice of one's own numbers: a typed one is no choice at all.
        for url in (dashboard_url, admin_url):
            page = dashboard.post(url, {"number": number, "phone": number}).content.decode()
            refusals += "Choose one of your own test numbers." in page
    assert refusals == 2 * len(STRANGERS)
    assert messaging.outbox == [] and not Message.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.TEST_SEND).exists()


@pytest.mark.django_db
def test_a_colleagues_test_number_is_not_ones_own(
    draft: Campaign, marketer: User, make_user: Callable[..., User]
) -> None:
    colleague = make_user("cy", "Marketers")
    theirs = own_test_number(colleague, OWN)
    own_test_number(marketer, phone(50))
    with pytest.raises(ValidationError, match="is not one of your test numbers"):
        send_test(draft, OWN, by=marketer)
    page = logged_in(marketer).post(
        reverse("dashboard:campaign_test", args=(draft.pk,)), {"number": theirs.pk}
    )
    assert "Choose one of your own test numbers." in page.content.decode()
    assert messaging.outbox == []


@pytest.mark.django_db
def test_test_sends_are_for_those_who_may_change_campaigns(draft: Campaign, approver: User) -> None:
    own_test_number(approver, OWN)
    with pytest.raises(PermissionDenied, match="Only marketers"):
        send_test(draft, OWN, by=approver)
    with pytest.raises(CommandError, match="Only marketers"):
        cli("test", str(draft.pk), "--as", "arno")
    assert messaging.outbox == []


# One's own numbers.


@pytest.mark.django_db
def test_a_test_to_ones_own_number_goes_and_is_audited_without_the_number(
    draft: Campaign, marketer: User
) -> None:
    own_test_number(marketer, OWN)
    message = send_test(draft, OWN, by=marketer)
    assert [m.phone for m in messaging.outbox] == [OWN]
    assert message.is_test and message.campaign_id is None and message.status == "sent"
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.TEST_SEND)
    assert (event.actor, event.object_type, event.object_id) == (
        marketer,
        "campaigns.campaign",
        str(draft.pk),
    )
    assert event.detail == {"message": message.pk, "to": "+44…56"}
    assert OWN not in str(event.detail) and OWN[3:] not in str(event.detail)


@pytest.mark.django_db
def test_the_cli_sends_to_the_users_only_number_or_the_one_named(
    draft: Campaign, marketer: User
) -> None:
    with pytest.raises(CommandError, match="mia has no test numbers"):
        cli("test", str(draft.pk), "--as", "mia")
    own_test_number(marketer, OWN, "work")
    assert (
        cli("test", str(draft.pk), "--as", "mia") == f"campaign {draft.pk}: test to +44…56 sent\n"
    )
    own_test_number(marketer, phone(51), "home")
    with pytest.raises(CommandError, match=r"say which test number with --to: home \+44…51"):
        cli("test", str(draft.pk), "--as", "mia")
    assert "+44…51 sent" in cli("test", str(draft.pk), "--as", "mia", "--to", "07911 200051")
    assert [m.phone for m in messaging.outbox] == [OWN, phone(51)]


# The hourly limit, counted in the database.


@pytest.mark.django_db
def test_the_hourly_limit_is_shared_by_every_door_and_frees_up_an_hour_later(
    draft: Campaign, marketer: User, settings: Any
) -> None:
    settings.HERALD_TEST_SENDS_PER_HOUR = 3
    number = own_test_number(marketer, OWN)
    client = logged_in(marketer)
    send_test(draft, OWN, by=marketer)
    cli("test", str(draft.pk), "--as", "mia")
    page = client.get(reverse("dashboard:campaign_test", args=(draft.pk,))).content.decode()
    assert "You may send 1 more test this hour." in page
    client.post(f"/admin/campaigns/campaign/{draft.pk}/test/", {"number": number.pk})
    assert len(messaging.outbox) == 3

    refused = "You have sent 3 test messages in the last hour, the most allowed"
    with pytest.raises(ValidationError, match=refused):
        send_test(draft, OWN, by=marketer)
    with pytest.raises(CommandError, match=refused):
        cli("test", str(draft.pk), "--as", "mia")
    url = reverse("dashboard:campaign_test", args=(draft.pk,))
    assert refused in client.post(url, {"number": number.pk}).content.decode()
    assert "No more tests this hour: the next can go at" in client.get(url).content.decode()
    assert len(messaging.outbox) == 3 and Message.objects.count() == 3

    # The oldest test turns an hour old: one more may go, and only one.
    oldest = AuditEvent.objects.filter(action=AuditEvent.Action.TEST_SEND).order_by("at").first()
    assert oldest is not None
    AuditEvent.objects.filter(pk=oldest.pk).update(at=timezone.now() - timedelta(minutes=61))
    send_test(draft, OWN, by=marketer)
    with pytest.raises(ValidationError, match=refused):
        send_test(draft, OWN, by=marketer)
    assert len(messaging.outbox) == 4


@pytest.mark.django_db
def test_the_limit_is_per_user(
    draft: Campaign, marketer: User, make_user: Callable[..., User], settings: Any
) -> None:
    settings.HERALD_TEST_SENDS_PER_HOUR = 1
    colleague = make_user("cy", "Marketers")
    own_test_number(marketer, OWN)
    own_test_number(colleague, phone(51))
    send_test(draft, OWN, by=marketer)
    send_test(draft, phone(51), by=colleague)
    with pytest.raises(ValidationError, match="You have sent 1 test message in the last hour"):
        send_test(draft, OWN, by=marketer)
    assert len(messaging.outbox) == 2


@pytest.mark.django_db
def test_no_test_goes_when_the_limit_is_zero(
    draft: Campaign, marketer: User, settings: Any
) -> None:
    settings.HERALD_TEST_SENDS_PER_HOUR = 0
    own_test_number(marketer, OWN)
    with pytest.raises(ValidationError, match="Test sends are turned off"):
        send_test(draft, OWN, by=marketer)
    assert messaging.outbox == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_tests_racing_for_the_hours_last_send_get_it_once(
    draft: Campaign, marketer: User, settings: Any
) -> None:
    """Four requests at once (as from four web workers) for a limit of one: one goes."""
    settings.HERALD_TEST_SENDS_PER_HOUR = 1
    own_test_number(marketer, OWN)
    start, outcomes = threading.Barrier(4), []

    def one_request() -> None:
        try:
            start.wait()
            send_test(Campaign.objects.get(pk=draft.pk), OWN, by=marketer)
            outcomes.append("sent")
        except ValidationError as exc:
            outcomes.append(" ".join(exc.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=one_request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 4 and outcomes.count("sent") == 1, outcomes
    assert all("in the last hour" in o for o in outcomes if o != "sent")
    assert Message.objects.filter(is_test=True).count() == 1


# Marked as tests, and never part of the campaign.


@pytest.mark.django_db
def test_tests_are_marked_and_left_out_of_the_campaigns_counts_export_and_cost(
    draft: Campaign, marketer: User, approver: User
) -> None:
    own_test_number(marketer, OWN)
    send_test(draft, OWN, by=marketer)
    send_test(draft, OWN, by=marketer)
    draft.submit(by=marketer)
    draft.approve(by=approver)
    run_campaign(draft)
    draft.refresh_from_db()

    assert draft.status == Campaign.Status.COMPLETED
    assert sum(draft.final_counts.values()) == 2  # its two contacts, not the two tests
    assert draft.messages.count() == 2 and not draft.messages.filter(is_test=True).exists()
    client = logged_in(marketer)
    export = client.get(reverse("dashboard:campaign_export", args=(draft.pk,)))
    rows = list(csv.reader(io.StringIO(export.getvalue().decode())))
    assert len(rows) == 3 and OWN not in {row[0] for row in rows}
    progress = client.get(reverse("dashboard:campaign_progress", args=(draft.pk,))).json()
    assert progress["total"] == 2
    page = client.get(reverse("dashboard:campaign", args=(draft.pk,))).content.decode()
    [tests] = re.findall(r'<table id="test-sends">.*?</table>', page, re.S)
    assert tests.count('<span class="test-mark">Test</span>') == 2 and "+44…56" in tests
    assert "mia" in tests and "sent" in tests


@pytest.mark.django_db
def test_the_admin_message_list_filters_test_sends(
    draft: Campaign, marketer: User, admin_client: Client
) -> None:
    own_test_number(marketer, OWN)
    test = send_test(draft, OWN, by=marketer)
    other = Message.objects.create(
        provider_account=draft.provider_account, phone=phone(9), body="x", client_ref="other"
    )
    tests_only = admin_client.get("/admin/messaging/message/?is_test__exact=1").content.decode()
    assert test.client_ref in tests_only and other.client_ref not in tests_only
    others = admin_client.get("/admin/messaging/message/?is_test__exact=0").content.decode()
    assert other.client_ref in others and test.client_ref not in others


# Test numbers: kept by other staff, never by their owner.


@pytest.mark.django_db
def test_a_marketer_cannot_add_a_test_number_not_even_their_own(
    marketer: User, client: Client
) -> None:
    client.force_login(marketer)
    assert client.get("/admin/campaigns/testnumber/add/").status_code == 403
    client.post("/admin/campaigns/testnumber/add/", {"user": marketer.pk, "phone": OWN})
    assert not TestNumber.objects.exists()


@pytest.mark.django_db
def test_staff_who_keep_test_numbers_add_a_colleagues_not_their_own(
    marketer: User, number_keeper: User, admin_user: User
) -> None:
    keeper = logged_in(number_keeper)
    url = "/admin/campaigns/testnumber/add/"
    response = keeper.post(url, {"user": marketer.pk, "phone": "07911 123456", "label": "work"})
    assert response.status_code == 302
    number = TestNumber.objects.get()
    assert (number.user, number.phone, number.added_by) == (marketer, OWN, number_keeper)
    page = keeper.post(url, {"user": number_keeper.pk, "phone": OWN}).content.decode()
    assert "Your own test numbers are added by another member of staff." in page
    assert not TestNumber.objects.filter(user=number_keeper).exists()
    listing = keeper.get("/admin/campaigns/testnumber/").content.decode()
    assert "+44…56" in listing and OWN not in listing
    # A superuser is trusted with their own.
    response = logged_in(admin_user).post(url, {"user": admin_user.pk, "phone": OWN})
    assert response.status_code == 302


@pytest.mark.django_db
def test_an_erased_number_is_no_test_number(marketer: User, number_keeper: User) -> None:
    own_test_number(marketer, OWN)
    erase(phones=[OWN])
    assert not TestNumber.objects.exists()
    assert ErasedNumber.objects.filter(phone_hash=erasure_hash(OWN)).exists()
    page = logged_in(number_keeper).post(
        "/admin/campaigns/testnumber/add/", {"user": marketer.pk, "phone": OWN}
    )
    assert "This number was erased at its owner" in page.content.decode()
    assert not TestNumber.objects.exists()
