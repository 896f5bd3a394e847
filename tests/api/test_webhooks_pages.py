"""Outgoing webhooks' doors: the dashboard's pages (the list with health, making one with its
secret shown once, changing, pausing, rotating, turning back on, deleting, the delivery log
and Send again) and the admin (changing and turning on; deliveries read-only, sent again by
an action), for whoever may manage webhooks alone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from api.models import WebhookAttempt, WebhookDelivery, WebhookSubscription, interest
from api.outgoing import delivery
from api.outgoing.events import record
from tests.api.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

D = WebhookDelivery.Status
SECRET = re.compile(r'value="(whsec_[A-Za-z0-9+/=]+)"')


@pytest.fixture(autouse=True)
def _fresh_interest() -> Iterator[None]:
    interest.forget()
    yield
    interest.forget()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as endpoint:
        yield endpoint


@pytest.fixture
def boss(make_user: Callable[..., User]) -> Client:
    user = make_user("boss")
    User.objects.filter(pk=user.pk).update(is_superuser=True)
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))
    return client


def form(url: str, *events: str, active: bool = True, description: str = "CRM") -> dict[str, Any]:
    data: dict[str, Any] = {"url": url, "events": list(events), "description": description}
    return data | ({"is_active": "on"} if active else {})


def test_a_new_webhooks_secret_is_shown_once_and_signs_its_deliveries(
    boss: Client, receiver: Receiver
) -> None:
    answer = boss.post("/outgoing-webhooks/new/", form(receiver.url, "opt_out", "inbound.message"))
    subscription = WebhookSubscription.objects.get()
    assert answer["Location"] == f"/outgoing-webhooks/{subscription.pk}/"
    assert subscription.events == ["inbound.message", "opt_out"]  # in the types' own order

    page = boss.get(answer["Location"]).content.decode()
    (secret,) = SECRET.findall(page)
    assert "will not be shown again" in page
    again = boss.get(answer["Location"]).content.decode()
    assert "whsec_" not in again and secret not in again

    receiver.secrets.append(secret)
    record("opt_out", [{"phone": "+447911200001"}])
    delivery.deliver_due()
    assert receiver.received[0].verified_with == secret


def test_a_webhook_is_refused_without_events_or_with_a_url_that_is_not_http(
    boss: Client,
) -> None:
    page = boss.post("/outgoing-webhooks/new/", form("ftp://crm.example/hooks")).content.decode()
    assert "Tick at least one event." in page and "Enter a valid URL." in page
    assert not WebhookSubscription.objects.exists()


def test_changing_pausing_and_turning_a_webhook_back_on(boss: Client, receiver: Receiver) -> None:
    subscription, _secret = WebhookSubscription.objects.create_with_secret(
        receiver.url, ["opt_out"]
    )
    url = f"/outgoing-webhooks/{subscription.pk}/"
    boss.post(url, form(receiver.url + "/v2", "link.clicked", active=False, description="Shop"))
    subscription.refresh_from_db()
    assert (subscription.url, subscription.events) == (receiver.url + "/v2", ["link.clicked"])
    assert (subscription.description, subscription.health) == ("Shop", "paused")

    record("link.clicked", [{"n": 1}])  # paused: nothing is recorded for it
    assert not WebhookDelivery.objects.exists()
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        disabled_at=timezone.now(), disabled_reason="Every delivery to it failed for 24 hours."
    )
    assert "Turn it back on" in boss.get(url).content.decode()
    boss.post(f"{url}enable/")
    subscription.refresh_from_db()
    assert (subscription.is_active, subscription.disabled_at, subscription.health) == (
        True,
        None,
        "unused",
    )


def test_rotating_shows_the_new_secret_once(boss: Client, receiver: Receiver) -> None:
    subscription, first = WebhookSubscription.objects.create_with_secret(receiver.url, ["opt_out"])
    answer = boss.post(f"/outgoing-webhooks/{subscription.pk}/rotate/")
    (shown,) = SECRET.findall(boss.get(answer["Location"]).content.decode())
    assert shown != first
    subscription.refresh_from_db()
    assert subscription.signing_secrets(timezone.now()) == [shown, first]
    assert "whsec_" not in boss.get(answer["Location"]).content.decode()


def test_deleting_asks_first_then_takes_the_log_with_it(boss: Client, receiver: Receiver) -> None:
    subscription, _secret = WebhookSubscription.objects.create_with_secret(
        receiver.url, ["opt_out"]
    )
    record("opt_out", [{"n": 1}])
    url = f"/outgoing-webhooks/{subscription.pk}/delete/"
    assert "Yes, delete this webhook" in boss.get(url).content.decode()
    boss.post(url, {})
    assert WebhookSubscription.objects.exists()
    assert boss.post(url, {"confirm": "yes"})["Location"] == "/outgoing-webhooks/"
    assert not WebhookSubscription.objects.exists() and not WebhookDelivery.objects.exists()


def test_the_delivery_log_filters_and_shows_each_answer_and_sends_again(
    boss: Client, receiver: Receiver
) -> None:
    receiver.status = lambda n: 500 if n == 1 else 200
    receiver.answer = b"maintenance"
    subscription, _secret = WebhookSubscription.objects.create_with_secret(
        receiver.url, ["opt_out", "link.clicked"]
    )
    record("opt_out", [{"n": 1}])
    record("link.clicked", [{"n": 2}])
    delivery.deliver_due()  # the first try answered 500, the second 200
    failing = WebhookDelivery.objects.get(last_response_code=500)

    log = boss.get("/outgoing-webhooks/deliveries/", {"answer": "5xx"}).content.decode()
    assert f"/outgoing-webhooks/deliveries/{failing.pk}/" in log and "<code>500</code>" in log
    assert log.count('data-status="') == 1
    log = boss.get(
        "/outgoing-webhooks/deliveries/",
        {"subscription": str(subscription.pk), "status": "delivered"},
    ).content.decode()
    assert log.count('data-status="delivered"') == 1 and 'data-status="pending"' not in log

    page = boss.get(f"/outgoing-webhooks/deliveries/{failing.pk}/").content.decode()
    assert "maintenance" in page and failing.event_id in page
    boss.post(f"/outgoing-webhooks/deliveries/{failing.pk}/send-again/")
    failing.refresh_from_db()
    assert failing.next_attempt_at <= timezone.now() and failing.attempts == 0
    delivery.deliver_due()
    failing.refresh_from_db()
    assert (failing.status, WebhookAttempt.objects.filter(delivery=failing).count()) == (
        D.DELIVERED,
        2,
    )


def test_the_list_shows_each_webhooks_health(boss: Client, receiver: Receiver) -> None:
    healthy, _ = WebhookSubscription.objects.create_with_secret(receiver.url, ["opt_out"])
    failing, _ = WebhookSubscription.objects.create_with_secret(receiver.url, ["opt_out"])
    WebhookSubscription.objects.filter(pk=healthy.pk).update(last_success_at=timezone.now())
    WebhookSubscription.objects.filter(pk=failing.pk).update(failing_since=timezone.now())
    page = boss.get("/outgoing-webhooks/").content.decode()
    assert f'id="webhook-{healthy.pk}" data-health="healthy"' in page
    assert f'id="webhook-{failing.pk}" data-health="failing"' in page


def test_only_whoever_may_manage_webhooks_sees_them(
    make_user: Callable[..., User], marketer: User, receiver: Receiver
) -> None:
    subscription, _ = WebhookSubscription.objects.create_with_secret(receiver.url, ["opt_out"])
    client = Client()
    client.force_login(marketer)
    assert client.get("/outgoing-webhooks/").status_code == 403
    assert "Webhooks" not in client.get("/").content.decode()
    assert client.post(f"/outgoing-webhooks/{subscription.pk}/rotate/").status_code == 403

    integrator = make_user("ivy")
    integrator.user_permissions.add(Permission.objects.get(codename="manage_webhooks"))
    client.force_login(User.objects.get(pk=integrator.pk))
    assert client.get("/outgoing-webhooks/").status_code == 200


def test_the_admin_changes_subscriptions_and_sends_deliveries_again_read_only(
    boss: Client, receiver: Receiver
) -> None:
    subscription, secret = WebhookSubscription.objects.create_with_secret(receiver.url, ["opt_out"])
    record("opt_out", [{"n": 1}])
    row = WebhookDelivery.objects.get()
    page = boss.get(f"/admin/api/webhooksubscription/{subscription.pk}/change/").content.decode()
    assert receiver.url in page and secret not in page and "encrypted" not in page
    assert boss.get("/admin/api/webhooksubscription/add/").status_code == 403
    assert boss.get(f"/admin/api/webhookdelivery/{row.pk}/change/").status_code == 200

    delivery.deliver_due()
    answer = boss.post(
        "/admin/api/webhookdelivery/",
        {"action": "send_again", "_selected_action": [str(row.pk)]},
    )
    assert answer.status_code == 302
    row.refresh_from_db()
    assert (row.status, row.attempts) == (D.PENDING, 0)


def test_each_change_to_a_webhook_is_audited_without_its_path_or_secret(
    boss: Client, receiver: Receiver
) -> None:
    from audit.models import AuditEvent

    secret_url = receiver.url + "/hooks?key=s3cr3t"
    boss.post("/outgoing-webhooks/new/", form(secret_url, "opt_out"))
    subscription = WebhookSubscription.objects.get()
    url = f"/outgoing-webhooks/{subscription.pk}/"
    boss.post(url, form(secret_url, "opt_out", "link.clicked", active=False))
    boss.post(f"{url}rotate/")
    boss.post(f"{url}enable/")
    boss.post(f"{url}delete/", {"confirm": "yes"})
    events = AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_CHANGED).order_by("pk")
    assert [e.detail["change"] for e in events] == [
        "created",
        "changed",
        "secret_rotated",
        "enabled",
        "deleted",
    ]
    assert {e.actor_name for e in events} == {"boss"}
    assert set(events[1].detail["events"]) == {"opt_out", "link.clicked"}
    written = " ".join(str(e.detail) for e in events)
    assert "s3cr3t" not in written and "/hooks" not in written and "whsec_" not in written
    assert events[0].detail["host"] == "127.0.0.1"
