"""A large build writes its chunks through writers of their own: one on SQLite, two at
once on PostgreSQL (one sends a chunk's rows while the server still makes the chunk
before's links and commits it). Whatever the writers, every recipient gets one message
and one link of their own, the mark only moves in order, and two builds of one
campaign at once (two workers) still write each message once."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction

from campaigns import sending
from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging import counts
from messaging.models import Link, Message, ProviderAccount
from tests.campaigns.test_concurrency import in_threads
from tests.messaging.test_short_links import BASE
from tests.messaging.test_short_links import sending as started

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BODY = "Hi {{first_name}}, the sale is on: https://shop.example/sale"


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[str]:
    """Builds of 6 or more in chunks of 5, written as a large build's are; the names of
    the threads that wrote each chunk."""
    settings.HERALD_LINK_BASE = BASE
    monkeypatch.setattr(sending, "PIPELINE_FROM", 6)
    monkeypatch.setattr(sending, "MATERIALISE_CHUNK", 5)
    seen: list[str] = []
    write = sending._write_chunk

    def writing(*args: Any, **kwargs: Any) -> bool:
        seen.append(threading.current_thread().name)
        return write(*args, **kwargs)

    monkeypatch.setattr(sending, "_write_chunk", writing)
    return seen


@pytest.fixture
def campaign(
    small_chunks: list[str],  # first: the link base is part of what is approved
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> Campaign:
    group = Group.objects.create(name="Many")
    make_contacts(23, group)
    return started(make_campaign(locmem, group, body=BODY), marketer, approver)


def assert_built_once(campaign: Campaign, recipients: int) -> None:
    campaign.refresh_from_db()
    assert campaign.materialised_at is not None
    messages = Message.objects.filter(campaign=campaign)
    phones = list(messages.values_list("phone", flat=True))
    assert len(phones) == recipients and len(set(phones)) == recipients
    links = Link.objects.filter(message__campaign=campaign).select_related("message")
    assert links.count() == recipients
    assert all(f"{BASE}r/{link.code}" in link.message.body for link in links)
    assert campaign.audience_stats["queued"] == recipients
    assert campaign.audience_stats["after"] == Contact.objects.order_by("pk").last().pk  # type: ignore[union-attr]
    assert counts.differences([campaign.pk]) == {}


def test_a_large_build_writes_each_recipient_once_with_a_link_of_their_own(
    campaign: Campaign, small_chunks: list[str]
) -> None:
    sending.materialise(campaign)

    assert_built_once(campaign, 23)
    assert len(small_chunks) == 5
    assert len(set(small_chunks)) == (2 if connection.vendor == "postgresql" else 1)


@pytest.mark.postgres
def test_two_large_builds_of_one_campaign_at_once_write_each_recipient_once(
    campaign: Campaign, small_chunks: list[str]
) -> None:
    outcomes = in_threads(
        *(lambda: sending.materialise(Campaign.objects.get(pk=campaign.pk)) for _ in range(2))
    )

    assert outcomes == [None, None]
    assert_built_once(campaign, 23)


@contextmanager
def another_build_holds(
    campaign: Campaign, contact: Contact, meanwhile: Callable[[], Any]
) -> Iterator[list[BaseException]]:
    """While the block runs, on another connection: an uncommitted message of `campaign`
    for `contact` (as a second build's writer holds its rows), then `meanwhile()`, then
    a rollback. Yields what that connection raised, if anything."""
    holding = threading.Event()
    outcome: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                Message.objects.create(
                    campaign=campaign,
                    contact=contact,
                    provider_account=campaign.provider_account,
                    phone=contact.phone,
                    body="held",
                )
                holding.set()
                meanwhile()
                transaction.set_rollback(True)
        except BaseException as error:  # a deadlock's other side may be this one
            outcome.append(error)
        finally:
            holding.set()
            connection.close()

    other = threading.Thread(target=hold)
    other.start()
    assert holding.wait(10)
    try:
        yield outcome
    finally:
        other.join(10)
        assert not other.is_alive()


def waiting_for_a_lock() -> None:
    """Until another connection of this database waits for a lock (10 s at most)."""
    for _ in range(500):
        with connection.cursor() as cursor:
            # Within a transaction the statistics views hold still unless told not to.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("nothing waited for a lock")


@pytest.mark.postgres
def test_a_writer_kept_waiting_undoes_its_chunk_and_the_build_goes_on_from_the_mark(
    campaign: Campaign,
    small_chunks: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another connection holds an uncommitted message for a contact of the second chunk
    (as a second build would): its writer stops waiting, and the build starts again from
    the mark once the other lets go."""
    monkeypatch.setattr(sending, "LOCK_WAIT", "200ms")
    eighth = Contact.objects.order_by("pk")[7]

    with (
        another_build_holds(campaign, eighth, lambda: time.sleep(1.5)) as outcome,
        caplog.at_level(logging.INFO, logger="campaigns.sending"),
    ):
        sending.materialise(campaign)

    assert outcome == []
    assert "waited too long for a lock" in caplog.text
    assert_built_once(campaign, 23)


@pytest.mark.postgres
def test_a_chunk_in_a_deadlock_is_undone_and_the_build_goes_on_from_the_mark(
    campaign: Campaign, small_chunks: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection holds an uncommitted message for a contact of the first chunk,
    then asks for the campaign's lock, which that chunk's writer holds while it waits
    for the row (as a second build's writer would): PostgreSQL fails one of the two,
    and the build starts again from the mark."""
    third = Contact.objects.order_by("pk")[2]

    def then_lock_the_campaign() -> None:
        waiting_for_a_lock()  # the build's first chunk, for the held row
        Campaign.objects.select_for_update().get(pk=campaign.pk)
        time.sleep(0.3)

    with (
        another_build_holds(campaign, third, then_lock_the_campaign) as outcome,
        caplog.at_level(logging.INFO, logger="campaigns.sending"),
    ):
        sending.materialise(campaign)

    assert outcome == []  # the build's side gave way: it began waiting first
    assert "was in a deadlock" in caplog.text
    assert_built_once(campaign, 23)
