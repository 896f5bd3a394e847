"""Sign-in lockout (django-axes), session expiry and the audit log of sign-ins."""

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import Group as Role
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from audit.lockout import cool_off
from audit.models import AuditEvent
from tests.security.clock import pass_time

A = AuditEvent.Action
HOME = "/"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
ATTACKER = "203.0.113.7"
OFFICE = "198.51.100.20"


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("sam", password="right-horse-battery", is_staff=True)


def sign_in(client: Client, password: str, *, url: str = LOGIN, ip: str = ATTACKER, **extra: Any):
    data = {"username": "sam", "password": password}
    return client.post(url, data, REMOTE_ADDR=ip, **extra)


def fail(client: Client, times: int, **kwargs: Any) -> list[int]:
    return [sign_in(client, "wrong", **kwargs).status_code for _ in range(times)]


def test_the_limits_and_the_cool_off_by_default() -> None:
    assert settings.HERALD_LOGIN_FAILURE_LIMIT == 5
    assert settings.HERALD_LOGIN_USERNAME_FAILURE_LIMIT == 10
    assert settings.HERALD_LOGIN_ADDRESS_FAILURE_LIMIT == 20
    assert settings.HERALD_LOGIN_COOLOFF_MINUTES == 15
    assert settings.HERALD_LOGIN_COOLOFF_MAX_MINUTES == 24 * 60
    assert settings.HERALD_LOGIN_KNOWN_ADDRESS_DAYS == 30
    assert cool_off() == timedelta(minutes=15)


def test_after_the_limit_even_the_right_password_is_refused_with_the_lockout_page(
    client: Client, staff: User
) -> None:
    assert fail(client, settings.HERALD_LOGIN_FAILURE_LIMIT) == [200, 200, 200, 200, 429]
    response = sign_in(client, "right-horse-battery")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Signing in is paused" in page and "15 minutes" in page
    assert 'href="/static/herald/dashboard.css"' in page  # the dashboard's look
    assert "_auth_user_id" not in client.session


def test_a_pair_lockout_does_not_lock_the_username_elsewhere(client: Client, staff: User) -> None:
    fail(client, settings.HERALD_LOGIN_FAILURE_LIMIT)
    assert sign_in(client, "right-horse-battery").status_code == 429
    # The same person from the office, not the attacker's address, still gets in (until the
    # username's own limit, over every address: tests/security/test_sign_in_limits.py).
    assert sign_in(client, "right-horse-battery", ip=OFFICE).status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_a_forged_forwarded_for_header_does_not_dodge_the_lockout(
    client: Client, staff: User
) -> None:
    for n in range(settings.HERALD_LOGIN_FAILURE_LIMIT):
        sign_in(client, "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    response = sign_in(client, "right-horse-battery", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert response.status_code == 429


def test_the_admin_sign_in_is_locked_by_the_same_count(client: Client, staff: User) -> None:
    fail(client, settings.HERALD_LOGIN_FAILURE_LIMIT - 1, url=ADMIN_LOGIN)
    sign_in(client, "wrong")  # the dashboard's form counts towards the same lock
    response = sign_in(client, "right-horse-battery", url=ADMIN_LOGIN)
    assert response.status_code == 429
    assert "Signing in is paused" in response.content.decode()


def test_a_success_before_the_limit_starts_the_count_again(client: Client, staff: User) -> None:
    fail(client, settings.HERALD_LOGIN_FAILURE_LIMIT - 1)
    assert sign_in(client, "right-horse-battery").status_code == 302
    client.logout()
    fail(client, settings.HERALD_LOGIN_FAILURE_LIMIT - 1)
    assert sign_in(client, "right-horse-battery").status_code == 302


def test_the_lock_lifts_after_the_cool_off(client: Client, staff: User) -> None:
    fail(client, settings.HERALD_LOGIN_FAILURE_LIMIT)
    assert sign_in(client, "right-horse-battery").status_code == 429
    pass_time(minutes=14)
    assert sign_in(client, "right-horse-battery").status_code == 429
    pass_time(minutes=2)
    assert sign_in(client, "right-horse-battery").status_code == 302


def test_failure_records_never_keep_the_password(client: Client, staff: User) -> None:
    sign_in(client, "hunter2-typed-wrong")
    [attempt] = AccessAttempt.objects.all()
    assert "hunter2-typed-wrong" not in attempt.post_data
    assert not AuditEvent.objects.filter(detail__icontains="hunter2").exists()


def test_sign_in_failures_sign_out_and_lockout_are_audited_with_the_address(
    client: Client, staff: User
) -> None:
    sign_in(client, "right-horse-battery", ip=OFFICE)
    client.post("/accounts/logout/", REMOTE_ADDR=OFFICE)
    fail(client, settings.HERALD_LOGIN_FAILURE_LIMIT)

    events = list(AuditEvent.objects.order_by("pk").values_list("action", "actor", "ip"))
    assert events[:2] == [(A.LOGIN, staff.pk, OFFICE), (A.LOGOUT, staff.pk, OFFICE)]
    failures = [e for e in events[2:] if e[0] == A.LOGIN_FAILED]
    assert failures == [(A.LOGIN_FAILED, staff.pk, ATTACKER)] * settings.HERALD_LOGIN_FAILURE_LIMIT
    assert (A.LOCKED_OUT, staff.pk, ATTACKER) in events


def test_a_failed_sign_in_as_nobody_keeps_no_trace_of_what_was_typed(
    client: Client, db: Any
) -> None:
    # People type their password into the username box.
    client.post(LOGIN, {"username": "MyS3cretPassw0rd", "password": "x"}, REMOTE_ADDR=ATTACKER)
    [event] = AuditEvent.objects.all()
    assert (event.action, event.actor, event.actor_name) == (A.LOGIN_FAILED, None, "")
    assert event.detail == {"known_user": False}
    assert "MyS3cretPassw0rd" not in str(AuditEvent.objects.values().get())


def test_a_session_ends_a_working_day_after_sign_in_and_with_the_browser(
    client: Client, staff: User
) -> None:
    response = sign_in(client, "right-horse-battery")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == "" and cookie["expires"] == ""  # gone when the browser closes
    session = Session.objects.get()
    lifetime = session.expire_date - timezone.now()
    assert timedelta(hours=7, minutes=59) < lifetime <= timedelta(hours=8)
    assert client.get(HOME).status_code == 200

    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get(HOME)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


@pytest.mark.parametrize(
    ("who", "may_read"),
    [("superuser", True), ("auditor", True), ("marketer", False), ("approver", False)],
)
def test_the_audit_log_is_read_only_and_only_for_superusers_and_auditors(
    client: Client, make_user: Any, who: str, may_read: bool
) -> None:
    roles = {"auditor": "Auditors", "marketer": "Marketers", "approver": "Approvers"}
    user = make_user(who, *([roles[who]] if who in roles else []))
    if who == "superuser":
        User.objects.filter(pk=user.pk).update(is_superuser=True)
    assert Role.objects.filter(name="Auditors").exists()
    event = AuditEvent.record(A.LOGIN, actor=user, ip=OFFICE)
    client.force_login(user)

    listing = client.get("/admin/audit/auditevent/")
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert (listing.status_code, detail.status_code) == ((200, 200) if may_read else (403, 403))
    if may_read:
        assert OFFICE in listing.content.decode()
        assert b'name="_save"' not in detail.content
    for url in ("add/", f"{event.pk}/delete/"):
        assert client.get(f"/admin/audit/auditevent/{url}").status_code == 403
    deleted = client.post(
        "/admin/audit/auditevent/", {"action": "delete_selected", "_selected_action": [event.pk]}
    )
    assert deleted.status_code in (200, 302, 403)
    assert AuditEvent.objects.filter(pk=event.pk).exists()
