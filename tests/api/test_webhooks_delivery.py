"""Outgoing webhooks on their way: retries on the schedule, giving up after a day, turning
off a subscription that failed for a day, a success ending a run of failures, sending again,
secret rotation, the sender task and its nudge, claims that two workers never share, and the
log's pruning. Real HTTP to a receiver on loopback; the clock is moved by editing rows.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.utils import timezone
from django_q.models import Schedule

from api import tasks
from api.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    interest,
)
from api.outgoing import delivery
from api.outgoing.events import record
from campaigns.models import Campaign
from contacts.models import Group
from messaging.models import ProviderAccount, TaskLease
from tests.api.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

D = WebhookDelivery.Status
EVENT = "campaign.status_changed"


@pytest.fixture(autouse=True)
def _fresh_interest() -> Iterator[None]:
    interest.forget()
    yield
    interest.forget()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as endpoint:
        yield endpoint


def subscribe(receiver: Receiver, url: str = "") -> WebhookSubscription:
    subscription, secret = WebhookSubscription.objects.create_with_secret(
        url or receiver.url, [EVENT], description="CRM"
    )
    receiver.secrets.append(secret)
    return subscription


@pytest.fixture
def submitted(
    make_campaign: Callable[..., Campaign], simulator: ProviderAccount, marketer: User
) -> Callable[[], Campaign]:
    """submitted(): a campaign submitted for approval, its event written as the real
    source writes it."""

    def make() -> Campaign:
        group = Group.objects.create(name=f"Customers {Group.objects.count()}")
        campaign = make_campaign(simulator, group)
        campaign.submit(by=marketer)
        return campaign

    return make


def come_due(*rows: WebhookDelivery) -> None:
    """Move the clock on to each row's next try."""
    WebhookDelivery.objects.filter(pk__in=[r.pk for r in rows]).update(
        next_attempt_at=timezone.now()
    )


def test_a_failing_endpoint_is_tried_again_after_5s_30s_2min_10min_1h_then_hourly(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    receiver.status, receiver.answer = 500, b'{"error": "down for maintenance"}'
    subscription = subscribe(receiver)
    submitted()
    waits = []
    for _ in range(7):
        assert delivery.deliver_due() == 1
        row = WebhookDelivery.objects.get()
        assert row.last_attempt_at is not None
        waits.append(round((row.next_attempt_at - row.last_attempt_at).total_seconds()))
        come_due(row)

    assert waits == [5, 30, 120, 600, 3600, 3600, 3600]
    assert (row.status, row.attempts, row.last_response_code) == (D.PENDING, 7, 500)
    attempts = list(WebhookAttempt.objects.filter(delivery=row))
    assert len(attempts) == 7 == len(receiver.received)
    assert {(a.response_code, a.response_excerpt, a.error) for a in attempts} == {
        (500, '{"error": "down for maintenance"}', "")
    }
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # one event
    assert all(r.verified_with for r in receiver.received)
    subscription.refresh_from_db()
    assert subscription.health == "failing" and subscription.failing_since is not None


def test_a_delivery_is_given_up_a_day_after_its_first_try_and_its_subscription_turned_off(
    receiver: Receiver,
    submitted: Callable[[], Campaign],
    make_user: Callable[..., User],
    marketer: User,
    client: Any,
) -> None:
    receiver.status = 503
    subscription = subscribe(receiver)
    submitted()
    delivery.deliver_due()
    row = WebhookDelivery.objects.get()
    now = timezone.now()
    # 23 h 30 min of failing tries: the next hourly one would be past the day.
    WebhookDelivery.objects.filter(pk=row.pk).update(
        first_attempt_at=now - timedelta(hours=23, minutes=30), attempts=25, next_attempt_at=now
    )
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        failing_since=now - timedelta(hours=23, minutes=30)
    )
    delivery.deliver_due()
    row.refresh_from_db()
    subscription.refresh_from_db()
    assert (row.status, row.attempts) == (D.FAILED, 26)
    assert subscription.is_active  # failing for 23 h 30 min: not a day yet

    submitted()  # a second event, failing like the first; the run of failures is a day old
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        failing_since=now - timedelta(hours=24, minutes=1)
    )
    delivery.deliver_due()
    subscription.refresh_from_db()
    assert (subscription.is_active, subscription.health) == (False, "disabled")
    assert subscription.disabled_reason == "Every delivery to it failed for 24 hours."
    waiting = WebhookDelivery.objects.get(status=D.PENDING)
    come_due(waiting)
    assert delivery.deliver_due() == 0  # nothing goes to a subscription turned off

    boss = make_user("boss")
    User.objects.filter(pk=boss.pk).update(is_superuser=True)
    client.force_login(User.objects.get(pk=boss.pk))
    home = client.get("/").content.decode()
    assert "Webhook turned off" in home and "CRM" in home
    client.force_login(marketer)
    assert "Webhook turned off" not in client.get("/").content.decode()

    receiver.status = 200
    assert subscription.enable()
    assert (subscription.is_active, subscription.failing_since) == (True, None)
    assert delivery.deliver_due() == 1  # what waited goes now, with a day of retries again
    assert WebhookDelivery.objects.get(pk=waiting.pk).status == D.DELIVERED
    client.force_login(User.objects.get(pk=boss.pk))
    assert "Webhook turned off" not in client.get("/").content.decode()


def test_a_success_ends_a_subscriptions_run_of_failures(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    receiver.status = lambda n: 500 if n == 1 else 204
    subscription = subscribe(receiver)
    submitted()
    delivery.deliver_due()
    subscription.refresh_from_db()
    assert subscription.health == "failing"

    come_due(*WebhookDelivery.objects.all())
    delivery.deliver_due()
    subscription.refresh_from_db()
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts, row.last_response_code) == (D.DELIVERED, 2, 204)
    assert row.delivered_at is not None
    assert (subscription.health, subscription.failing_since) == ("healthy", None)


def test_send_again_delivers_once_more_under_the_same_webhook_id(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    subscribe(receiver)
    submitted()
    delivery.deliver_due()
    assert WebhookDelivery.objects.get().status == D.DELIVERED

    assert WebhookDelivery.objects.all().send_again() == 1
    assert delivery.deliver_due() == 1
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body and second.verified_with
    assert WebhookDelivery.objects.get().status == D.DELIVERED
    assert WebhookAttempt.objects.count() == 2


def test_a_refused_connection_and_a_redirect_are_failures_that_say_why(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    subscribe(receiver, url=f"http://127.0.0.1:{closed_port}/hooks")
    receiver.status = 302
    subscribe(receiver)
    submitted()
    delivery.deliver_due()

    outcomes = dict(WebhookAttempt.objects.values_list("response_code", "error"))
    assert outcomes == {
        None: "connection refused",
        302: "redirected elsewhere: redirects are not followed",
    }
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {D.PENDING}


def test_a_claimed_delivery_is_taken_by_no_one_else_until_its_lease_runs_out(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    subscribe(receiver)
    submitted()
    lease = timedelta(minutes=3)
    (held,) = WebhookDelivery.objects.claim(10, lease)
    assert WebhookDelivery.objects.claim(10, lease) == []

    come_due(held)  # its worker vanished: the lease ran out
    (again,) = WebhookDelivery.objects.claim(10, lease)
    assert again.pk == held.pk and again.claim_token != held.claim_token
    delivery.record(delivery.post_all([held]))  # the first worker's late answer
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts) == (D.PENDING, 0)  # not its to write any more
    delivery.record(delivery.post_all([again]))
    row.refresh_from_db()
    assert (row.status, row.attempts) == (D.DELIVERED, 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_delivering_at_once_never_post_the_same_delivery(
    receiver: Receiver,
) -> None:
    subscription = subscribe(receiver)
    # The nudge as these commit finds the sender's lease held: the two workers alone post.
    assert TaskLease.objects.take(delivery.LEASE, "the sender elsewhere", 60)
    record(EVENT, [{"n": n} for n in range(600)])
    assert subscription.deliveries.count() == 600
    start = threading.Barrier(2)
    tried: list[int] = []

    def worker() -> None:
        try:
            start.wait()
            tried.append(delivery.deliver_due(limit=None))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    # Any that did not arrive say why (their attempts' errors).
    errors = Counter(WebhookAttempt.objects.exclude(error="").values_list("error", flat=True))
    assert len(ids) == 600 and set(ids.values()) == {1}, errors
    assert sum(tried) == 600 and all(tried)  # both took a share
    assert set(subscription.deliveries.values_list("status", flat=True)) == {D.DELIVERED}


def test_rotating_the_secret_signs_with_both_for_a_day_then_the_new_one_alone(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    subscription = subscribe(receiver)
    (old,) = receiver.secrets
    new = subscription.rotate_secret()
    assert new != old and new.startswith("whsec_")
    receiver.secrets = [old]
    submitted()
    delivery.deliver_due()
    assert receiver.received[-1].verified_with == old  # receivers not switched yet
    assert len(receiver.received[-1].headers["webhook-signature"].split(" ")) == 2

    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    submitted()
    delivery.deliver_due()
    assert receiver.received[-1].verified_with is None
    receiver.secrets = [new]
    WebhookDelivery.objects.all().send_again()
    delivery.deliver_due()
    assert all(r.verified_with == new for r in receiver.received[-2:])


def test_the_secret_is_kept_encrypted(receiver: Receiver) -> None:
    subscription = subscribe(receiver)
    (secret,) = receiver.secrets
    row = WebhookSubscription.objects.filter(pk=subscription.pk).values().get()
    assert not any(secret in str(value) for value in row.values())
    assert secret[len("whsec_") :] not in row["encrypted_secret"]


def test_the_sender_task_delivers_what_is_due_unless_another_holds_its_lease(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    subscribe(receiver)
    submitted()
    assert TaskLease.objects.take(delivery.LEASE, "another worker", 60)
    assert tasks.deliver_webhooks() == 0
    assert not receiver.received

    TaskLease.objects.release(delivery.LEASE, "another worker")
    assert tasks.deliver_webhooks() == 1
    assert len(receiver.received) == 1
    assert Schedule.objects.filter(name="herald-webhooks", func="api.tasks.webhooks_tick").exists()


def test_outbox_rows_nudge_the_sender_once_they_commit(
    receiver: Receiver,
    submitted: Callable[[], Campaign],
    django_capture_on_commit_callbacks: Any,
) -> None:
    subscribe(receiver)
    delivery._nudged_at = float("-inf")
    with django_capture_on_commit_callbacks(execute=True):
        submitted()
    # django-q2 runs tasks inline in the tests: the nudge's task has posted it.
    assert [r.event_type for r in receiver.received] == [EVENT]
    assert WebhookDelivery.objects.get().status == D.DELIVERED


def test_the_minute_tick_forgets_settled_deliveries_after_thirty_days(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    subscribe(receiver)
    submitted()
    submitted()
    delivery.deliver_due()
    old, recent = WebhookDelivery.objects.order_by("pk")
    submitted()  # waiting, however old: kept
    waiting = WebhookDelivery.objects.get(status=D.PENDING)
    month_ago = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.filter(pk__in=[old.pk, waiting.pk]).update(created_at=month_ago)
    WebhookDelivery.objects.filter(pk=waiting.pk).update(
        next_attempt_at=timezone.now() + timedelta(hours=1)
    )

    tasks.webhooks_tick()
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
    assert not WebhookAttempt.objects.filter(delivery_id=old.pk).exists()


@pytest.mark.postgres
def test_a_webhook_whose_log_outnumbers_postgresqls_parameters_is_deleted_whole(
    receiver: Receiver,
) -> None:
    """Django deletes a row's dependants by listing their ids, one parameter each: more than
    65,535 deliveries in one DELETE would be refused."""
    subscription = subscribe(receiver)
    record(EVENT, [{"n": n} for n in range(66_000)])
    delivery.deliver_due(limit=10)  # some with tries, which go with them

    subscription.delete()
    assert not WebhookDelivery.objects.exists() and not WebhookAttempt.objects.exists()


def test_a_sender_past_its_time_claims_nothing_more_and_hands_over(
    receiver: Receiver, submitted: Callable[[], Campaign]
) -> None:
    """A stream of events must not keep one task past django-q2's timeout."""
    subscribe(receiver)
    submitted()
    assert delivery.deliver_due(until=time.monotonic()) == 0
    assert WebhookDelivery.objects.get().status == D.PENDING
    assert delivery.deliver_due(until=time.monotonic() + 60) == 1
