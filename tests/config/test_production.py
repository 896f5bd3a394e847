"""The production settings path: `check --deploy`, the CSP header, the task queue's broker."""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django_q.brokers import get_broker
from django_q.conf import Conf

from campaigns.models import Campaign
from contacts.models import Group
from messaging.models import ProviderAccount

ROOT = Path(__file__).resolve().parents[2]

#: A realistic production environment (deploy/herald.env.example, filled in).
PRODUCTION_ENV = {
    "DEBUG": "False",
    "SECRET_KEY": "p9Vd2xK7qL4mZ8tR1wB6nY3hJ5cF0gS-aE_uI9oP2lK7jH4gF6dS8aQ1wE3rT5yU",
    "ALLOWED_HOSTS": "herald.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://herald.example.com",
    "DATABASE_URL": "postgres://herald:pw@db.example.com:5432/herald",
    "CREDENTIALS_KEYS": "Sd7vUuLgmZnv2dDGB0YbcCjnpQvLTrEtCTtqcwOdvr0=",
    "HERALD_ERASURE_KEY": "Jm3kQ9sX2vB7nL5pR8tY1wZ4cF6hD0gA",
    "BEHIND_PROXY": "True",
    "EMAIL_URL": "smtp+tls://herald:mail-pw@smtp.example.com:587",
}


def run_python(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh process with only what an operator would set (nothing from this one leaks)."""
    leaks = {*PRODUCTION_ENV, "DATABASE_URL", "Q_BROKER", "REDIS_URL", "SENTRY_DSN", "EMAIL_URL"}
    clean = {k: v for k, v in os.environ.items() if k not in leaks}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_check_deploy_is_clean_with_a_realistic_production_environment(broker: str) -> None:
    env = {**PRODUCTION_ENV, "Q_BROKER": broker, "REDIS_URL": "redis://cache.example.com:6379/0"}
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert result.stderr == ""


def test_check_deploy_fails_with_debug_left_on() -> None:
    env = {**PRODUCTION_ENV, "DEBUG": "True"}
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)
    assert result.returncode != 0
    assert "security.W018" in result.stderr


SHOW_BROKER = (
    "import django; django.setup(); from django_q.brokers import get_broker; "
    "from django_q.conf import Conf; b = get_broker(); print(type(b).__name__, Conf.REDIS or '-')"
)


def test_the_queue_is_the_database_by_default_and_redis_when_asked() -> None:
    # The ORM broker opens no connection of its own: any database will do for this.
    local = {**PRODUCTION_ENV, "DATABASE_URL": "sqlite:///:memory:"}
    default = run_python(["-c", SHOW_BROKER], **local)
    assert default.stdout.split() == ["ORM", "-"], default.stderr
    redis = run_python(["-c", SHOW_BROKER], **local, Q_BROKER="redis", REDIS_URL="redis://r:6379/2")
    assert redis.stdout.split() == ["Redis", "redis://r:6379/2"], redis.stderr


# Tasks are enqueued on commit: with Redis as the queue, a rolled-back transaction's task
# would otherwise be in Redis already (the ORM queue would roll back with it).


@pytest.fixture
def redis_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], int]]:
    """A real redis-server on a port of its own, as django-q2's broker; yields its length."""
    server = shutil.which("redis-server")
    if not server:
        pytest.skip("no redis-server on this machine (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{port}/0")
        monkeypatch.setattr(Conf, "SYNC", False)
        broker = get_broker()
        deadline = time.monotonic() + 10
        while not answers(broker):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield broker.queue_size
    finally:
        process.terminate()
        process.wait(timeout=10)


def answers(broker: Any) -> bool:
    try:
        return bool(broker.ping())
    except redis.ConnectionError:
        return False


class Rollback(Exception):
    pass


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_task_enqueued_in_a_rolled_back_transaction_is_never_queued(
    redis_queue: Callable[[], int],
    locmem: ProviderAccount,
    make_campaign: Callable[..., Campaign],
    approver: User,
    marketer: User,
) -> None:
    campaign = make_campaign(locmem, Group.objects.create(name="Everyone"))
    campaign.submit(by=marketer)
    with contextlib.suppress(Rollback), transaction.atomic():
        campaign.approve(by=approver)  # its wake-up task waits for the commit...
        assert redis_queue() == 0
        raise Rollback  # ...which never comes
    assert redis_queue() == 0
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    campaign.approve(by=approver)
    assert redis_queue() == 1


# Content-Security-Policy: scripts only from our static files, nothing inline.

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>")
EVENT_ATTRIBUTE = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def inline_code(html: str) -> list[str]:
    found = INLINE_SCRIPT.findall(html) + EVENT_ATTRIBUTE.findall(html) + JS_URL.findall(html)
    return [snippet[:120] for snippet in found]


def test_no_template_of_ours_has_inline_script_or_event_handlers() -> None:
    offenders = {
        str(path.relative_to(ROOT)): inline_code(path.read_text())
        for path in (ROOT / "templates").rglob("*.html")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_inline_code_is_recognised() -> None:
    assert inline_code('<form onsubmit="return confirm(1)">')
    assert inline_code("<script>alert(1)</script>")
    assert inline_code('<a href="javascript:go()">')
    assert not inline_code('<script src="/static/x.js" defer></script>')
    assert not inline_code('<script id="c" type="application/json">{}</script>')


@pytest.mark.django_db
def test_every_page_carries_the_policy_and_runs_no_inline_code(
    admin_client: Client,
    locmem: ProviderAccount,
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., Any],
) -> None:
    group = Group.objects.create(name="Everyone")
    make_contacts(3, group)
    campaign = make_campaign(locmem, group)
    pages = [
        "/accounts/login/",
        reverse("admin:index"),
        reverse("admin:campaigns_campaign_changelist"),
        reverse("admin:campaigns_campaign_add"),
        reverse("admin:campaigns_campaign_change", args=(campaign.pk,)),
        reverse("admin:contacts_contact_changelist"),
        reverse("admin:contacts_importjob_add"),
        # django-import-export's own page wires "Select all" inline: ours does not.
        reverse("admin:contacts_contact_export"),
        reverse("admin:contacts_optout_export"),
        reverse("admin:messaging_provideraccount_change", args=(locmem.pk,)),
        reverse("dashboard:home"),
        reverse("dashboard:campaign", args=(campaign.pk,)),
        reverse("dashboard:campaign_new"),
        reverse("dashboard:approvals"),
        reverse("dashboard:reports"),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, url
        assert "'unsafe-inline'" not in policy.split("style-src-attr")[0], url
        assert inline_code(response.content.decode()) == [], url
