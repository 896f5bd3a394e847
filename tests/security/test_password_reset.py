"""Password reset: rate limited per address and per client (in the database every web process
shares), one answer for every address, the mail sent by the worker and never printed."""

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage

from audit.models import AuditEvent, PasswordResetRequest
from tests.security.clock import pass_time
from tests.security.test_sign_in_limits import in_another_web_process

RESET = "/accounts/password_reset/"
DONE = "/accounts/password_reset/done/"
VICTIM = "sam@example.com"
CLIENT = "203.0.113.7"
A = AuditEvent.Action


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("sam", email=VICTIM, password="old-pw", is_staff=True)


def ask(client: Client, email: str = VICTIM, ip: str = CLIENT) -> Any:
    return client.post(RESET, {"email": email}, REMOTE_ADDR=ip)


def test_the_limits_by_default() -> None:
    assert settings.HERALD_PASSWORD_RESET_EMAIL_LIMIT == 3
    assert settings.HERALD_PASSWORD_RESET_CLIENT_LIMIT == 10
    assert settings.HERALD_PASSWORD_RESET_WINDOW_MINUTES == 60


def test_forty_one_requests_for_one_address_send_it_three_mails(
    client: Client, staff: User
) -> None:
    # From one client: it is told to wait after ten...
    answers = [ask(client).status_code for _ in range(41)]
    assert answers == [302] * 10 + [429] * 31
    assert len(mail.outbox) == settings.HERALD_PASSWORD_RESET_EMAIL_LIMIT
    # ...and from 41 clients, the address gets no more mails either.
    pass_time(minutes=61)
    mail.outbox.clear()
    answers = [ask(client, ip=f"192.0.2.{n}").status_code for n in range(41)]
    assert answers == [302] * 41
    assert len(mail.outbox) == settings.HERALD_PASSWORD_RESET_EMAIL_LIMIT
    assert {m.to[0] for m in mail.outbox} == {VICTIM}


def test_past_the_address_limit_the_page_is_the_same_and_no_mail_goes(
    client: Client, staff: User
) -> None:
    first = [ask(client, ip=f"192.0.2.{n}") for n in range(3)]
    fourth = ask(client, ip="192.0.2.9")
    assert {(r.status_code, r["Location"]) for r in [*first, fourth]} == {(302, DONE)}
    assert len(mail.outbox) == 3
    answers = PasswordResetRequest.objects.order_by("pk").values_list("answer", flat=True)
    assert list(answers) == ["queued"] * 3 + ["email_limited"]


def test_a_client_past_its_limit_is_told_to_wait_whatever_the_address(
    client: Client, db: Any
) -> None:
    limit = settings.HERALD_PASSWORD_RESET_CLIENT_LIMIT
    answers = [ask(client, email=f"user{n}@example.com").status_code for n in range(limit + 1)]
    assert answers == [302] * limit + [429]
    page = ask(client, email="someone-else@example.com")
    assert page.status_code == 429
    assert "Too many reset links were asked for from your address" in page.content.decode()
    assert ask(client, ip="198.51.100.20").status_code == 302  # another client is not held
    pass_time(minutes=settings.HERALD_PASSWORD_RESET_WINDOW_MINUTES + 1)
    assert ask(client).status_code == 302


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_limits_hold_across_web_processes(client: Client) -> None:
    User.objects.create_user("sam", email=VICTIM, password="old-pw")
    answers = in_another_web_process("reset", VICTIM, "192.0.2.1", "192.0.2.2", "192.0.2.3", "1")
    assert answers == ["302"] * 3
    assert ask(client).status_code == 302
    assert mail.outbox == []  # the other process sent three; this one sends no fourth
    assert PasswordResetRequest.objects.order_by("-pk").first().answer == "email_limited"  # type: ignore[union-attr]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_forty_one_requests_at_once_mail_the_address_no_more_than_three_times() -> None:
    User.objects.create_user("sam", email=VICTIM, password="old-pw")

    def ask_once(n: int) -> int:
        try:
            return ask(Client(), ip=f"192.0.2.{n}").status_code
        finally:
            connection.close()  # each thread's own connection

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask_once, range(41)))
    assert answers == [302] * 41
    # Never more than the limit, though requests written at the same instant each count
    # the others, and may all be refused (one by one, they get exactly three: above).
    assert len(mail.outbox) <= settings.HERALD_PASSWORD_RESET_EMAIL_LIMIT
    assert PasswordResetRequest.objects.count() == 41


def normalised(queries: list[dict[str, Any]]) -> list[str]:
    """The statements a request ran, without their values (an address, a time, an id)."""
    sql = [re.sub(r"'(?:[^']|'')*'", "?", q["sql"]) for q in queries]
    return [re.sub(r"\b\d+(\.\d+)?\b", "?", s) for s in sql]


def run_queued_tasks() -> list[str]:
    """What a worker does with the queue: take each task, run it; the tasks' names."""
    broker = get_broker()
    names = []
    while queued := broker.dequeue():  # a few at a time (Q_CLUSTER's bulk)
        for ack_id, payload in queued:
            task = SignedPackage.loads(payload)
            import_string(task["func"])(*task["args"], **task["kwargs"])
            broker.acknowledge(ack_id)
            names.append(task["func"])
    return names


def test_known_and_unknown_addresses_get_the_same_answer_and_the_same_work(
    client: Client, staff: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)  # the worker's queue, as in production
    answers, work = [], []
    for email in (VICTIM, "nobody@example.com"):
        with CaptureQueriesContext(connection) as queries:
            response = ask(client, email=email)
        answers.append((response.status_code, response["Location"], response.content))
        work.append(normalised(queries.captured_queries))
    assert answers[0] == answers[1] == (302, DONE, b"")
    assert work[0] == work[1]
    assert not any("auth_user" in statement for statement in work[0])  # no look-up of who
    # Nothing was mailed while answering: the worker does it.
    assert mail.outbox == []
    assert run_queued_tasks() == ["audit.tasks.send_password_reset"] * 2
    [sent] = mail.outbox
    assert sent.to == [VICTIM]
    # The link works, and the address typed is forgotten once mailed.
    link = re.search(r"https?://testserver(/accounts/reset/\S+/)", str(sent.body))
    assert link and "Set my password" in client.get(link.group(1), follow=True).content.decode()
    assert set(PasswordResetRequest.objects.values_list("email", flat=True)) == {""}


def test_requests_and_mails_are_audited_without_the_address(client: Client, staff: User) -> None:
    ask(client)
    ask(client, email="nobody@example.com")
    events = AuditEvent.objects.order_by("pk").values_list("action", "actor", "detail")
    assert list(events) == [
        (A.PASSWORD_RESET_REQUESTED, None, {"answer": "queued"}),
        (A.PASSWORD_RESET_SENT, staff.pk, {}),
        (A.PASSWORD_RESET_REQUESTED, None, {"answer": "queued"}),
    ]
    assert AuditEvent.objects.filter(action=A.PASSWORD_RESET_REQUESTED, ip=CLIENT).count() == 2
    assert "nobody@example.com" not in str(list(AuditEvent.objects.values()))


@override_settings(EMAIL_BACKEND="config.mail.UnconfiguredEmailBackend")
def test_production_without_email_url_prints_no_reset_link_and_says_why(
    client: Client,
    staff: User,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)
    assert ask(client).status_code == 302  # the same answer: the failure is the operator's
    # The worker's task fails (django-q records it as failed, with this message).
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL is not set"):
        run_queued_tasks()
    out, err = capfd.readouterr()
    assert "/accounts/reset/" not in out + err + caplog.text
    assert "EMAIL_URL is not set: 1 mail(s) not sent" in caplog.messages
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action=A.PASSWORD_RESET_SENT).exists()
