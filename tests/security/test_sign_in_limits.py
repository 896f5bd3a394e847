"""Guessing at sign-in: limits per username across addresses and per address across usernames,
a cool-off that grows, and counts every web process shares (the database's)."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client

from audit.models import AuditEvent, Lockout
from tests.security.clock import pass_time

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/accounts/login/"
PASSWORD = "right-horse-battery"
ATTACKERS = ["203.0.113.7", "203.0.113.8", "203.0.113.9"]
FOURTH = "203.0.113.10"
OFFICE = "198.51.100.20"


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("sam", password=PASSWORD, is_staff=True)


def sign_in(client: Client, password: str, ip: str, username: str = "sam") -> int:
    data = {"username": username, "password": password}
    response = client.post(LOGIN, data, REMOTE_ADDR=ip)
    if response.status_code == 302:
        client.logout()
    return response.status_code


def test_six_wrong_passwords_from_each_of_three_addresses_lock_the_username_at_a_fourth(
    client: Client, staff: User
) -> None:
    for ip in ATTACKERS:
        for _ in range(6):
            sign_in(client, "wrong", ip)
    response = client.post(LOGIN, {"username": "sam", "password": PASSWORD}, REMOTE_ADDR=FOURTH)
    assert response.status_code == 429
    assert "Signing in is paused" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another account is not held by sam's count.
    User.objects.create_user("ann", password=PASSWORD, is_staff=True)
    assert sign_in(client, PASSWORD, FOURTH, username="ann") == 302


def test_the_username_limit_is_reached_across_addresses_before_any_pair_limit(
    client: Client, staff: User
) -> None:
    # Two failures from each of five addresses: no pair near its limit of 5, the username at 10.
    answers = [sign_in(client, "wrong", f"192.0.2.{n}") for n in range(5) for _ in range(2)]
    assert answers == [200] * 9 + [429]
    assert sign_in(client, PASSWORD, FOURTH) == 429


def test_four_guesses_against_each_of_six_users_from_one_address_lock_that_address(
    client: Client, db: Any
) -> None:
    users = [User.objects.create_user(f"user{n}", password=PASSWORD) for n in range(7)]
    answers = [
        sign_in(client, "wrong", ATTACKERS[0], username=user.username)
        for user in users[:6]
        for _ in range(4)
    ]
    assert answers[: settings.HERALD_LOGIN_ADDRESS_FAILURE_LIMIT - 1].count(429) == 0
    assert answers[settings.HERALD_LOGIN_ADDRESS_FAILURE_LIMIT - 1 :] == [429] * 5
    # The address is held for everyone, even a right password for an untried user...
    assert sign_in(client, PASSWORD, ATTACKERS[0], username="user6") == 429
    # ...and only that address: those users sign in from anywhere else.
    assert sign_in(client, PASSWORD, OFFICE, username="user0") == 302


def test_a_stranger_cannot_lock_a_user_out_of_an_address_they_signed_in_from_lately(
    client: Client, staff: User
) -> None:
    assert sign_in(client, PASSWORD, OFFICE) == 302
    pass_time(minutes=60 * 24 * 3)  # three days ago
    for ip in ATTACKERS:
        for _ in range(6):
            sign_in(client, "wrong", ip)
    assert sign_in(client, PASSWORD, FOURTH) == 429  # a new address: held
    assert sign_in(client, PASSWORD, OFFICE) == 302  # the user's own: not
    # Signing in there did not forgive the guesses at the account from elsewhere.
    assert sign_in(client, PASSWORD, FOURTH) == 429


def test_an_address_the_user_last_signed_in_from_long_ago_is_held_like_any_other(
    client: Client, staff: User
) -> None:
    assert sign_in(client, PASSWORD, OFFICE) == 302
    pass_time(minutes=60 * 24 * (settings.HERALD_LOGIN_KNOWN_ADDRESS_DAYS + 1))
    for ip in ATTACKERS[:2]:
        for _ in range(5):
            sign_in(client, "wrong", ip)
    assert sign_in(client, PASSWORD, OFFICE) == 429


def test_signing_in_with_ones_own_account_does_not_clear_the_addresss_count(
    client: Client, staff: User
) -> None:
    User.objects.create_user("insider", password="insider-pw", is_staff=True)
    targets = [User.objects.create_user(f"target{n}", password=PASSWORD) for n in range(5)]
    limit = settings.HERALD_LOGIN_ADDRESS_FAILURE_LIMIT
    for n in range(limit - 1):
        sign_in(client, "wrong", ATTACKERS[0], username=targets[n % 5].username)
    assert sign_in(client, "insider-pw", ATTACKERS[0], username="insider") == 302
    assert sign_in(client, "wrong", ATTACKERS[0], username="target0") == 429
    assert sign_in(client, PASSWORD, ATTACKERS[0], username="target1") == 429


def lock_pair(client: Client) -> str:
    for _ in range(settings.HERALD_LOGIN_FAILURE_LIMIT):
        response = client.post(LOGIN, {"username": "sam", "password": "x"}, REMOTE_ADDR=OFFICE)
    assert response.status_code == 429
    return response.content.decode()


def test_each_lockout_within_a_day_lasts_twice_as_long_as_the_one_before(
    client: Client, staff: User
) -> None:
    assert "for 15 minutes" in lock_pair(client)
    pass_time(minutes=16)
    assert "for 30 minutes" in lock_pair(client)
    pass_time(minutes=29)
    assert sign_in(client, PASSWORD, OFFICE) == 429
    pass_time(minutes=2)
    assert "for 60 minutes" in lock_pair(client)
    pass_time(minutes=61)
    assert sign_in(client, PASSWORD, OFFICE) == 302
    # A day without a lockout, and the next one is short again.
    assert Lockout.objects.count() == 3
    pass_time(minutes=60 * 24)
    assert "for 15 minutes" in lock_pair(client)


def test_the_cool_off_stops_growing_at_its_maximum(
    client: Client, staff: User, settings: Any
) -> None:
    settings.HERALD_LOGIN_COOLOFF_MAX_MINUTES = 40
    assert "for 15 minutes" in lock_pair(client)
    pass_time(minutes=16)
    assert "for 30 minutes" in lock_pair(client)
    pass_time(minutes=31)
    assert "for 40 minutes" in lock_pair(client)
    pass_time(minutes=41)
    assert "for 40 minutes" in lock_pair(client)


def test_hammering_during_a_pause_neither_counts_nor_lengthens_it(
    client: Client, staff: User
) -> None:
    lock_pair(client)
    counted = sum(AccessAttempt.objects.values_list("failures_since_start", flat=True))
    for _ in range(10):
        pass_time(minutes=1)
        assert sign_in(client, "wrong", OFFICE) == 429
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == counted
    pass_time(minutes=6)
    assert sign_in(client, PASSWORD, OFFICE) == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOCKED_OUT).count() == 11


def test_an_administrator_lifts_a_username_or_address_lock_from_the_command_line(
    client: Client, staff: User
) -> None:
    for ip in ATTACKERS[:2]:
        for _ in range(5):
            sign_in(client, "wrong", ip)
    assert sign_in(client, PASSWORD, FOURTH) == 429
    call_command("axes_reset_username", "sam")
    assert sign_in(client, PASSWORD, FOURTH) == 302


def database_url() -> str:
    """The test database, as another process opens it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def in_another_web_process(*args: str) -> list[str]:
    """Run tests/security/web_process.py: sign-ins or reset requests from its own Django."""
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.security.web_process", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


# Committed, so the other process sees what this one wrote; the rows the suite keeps (content
# types, roles) are put back afterwards.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_failures_in_another_web_process_count_here(client: Client) -> None:
    User.objects.create_user("sam", password=PASSWORD, is_staff=True)
    answers = in_another_web_process("sign-in", "sam", "wrong", *ATTACKERS[:2], "5")
    assert answers == ["200"] * 4 + ["429"] + ["200"] * 4 + ["429"]
    assert sign_in(client, PASSWORD, FOURTH) == 429
