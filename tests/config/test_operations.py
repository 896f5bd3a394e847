import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.test import Client
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.tasks import async_task

from campaigns import tasks
from config import views as config_views
from messaging import tasks as messaging_tasks

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "False",
    "SECRET_KEY": "x7Qm2vR9tL4pZ8kW1nB6cY3hJ5dF0gS-aE_uI9oP2lK7jH4gF6dS8aQ1wE3rT5yU",
    "ALLOWED_HOSTS": "herald.example.com",
    "CREDENTIALS_KEYS": "Sd7vUuLgmZnv2dDGB0YbcCjnpQvLTrEtCTtqcwOdvr0=",
    "HERALD_ERASURE_KEY": "c2Vjb25kLXJhbmRvbS1zdHJpbmctZm9yLWVyYXN1cmU",
    "EMAIL_URL": "smtp+tls://herald:mail-pw@smtp.example.com:587",
}


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python("manage.py", *args, **env)


def run_python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Only what the operator would set: nothing from this test process leaks in.
    leaks = {*PRODUCTION_ENV, "DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL", "EMAIL_URL"}
    clean = {k: v for k, v in os.environ.items() if k not in leaks}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_in_production_settings() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_when_credentials_have_no_key_of_their_own() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "CREDENTIALS_KEYS"}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode != 0
    assert "herald.W001" in result.stderr


@pytest.mark.parametrize(
    "key",
    [
        None,  # not set at all
        "",
        "django-insecure-herald-development-only-key",  # the public development key
        "django-insecure-" + "k" * 60,
        "change-me-to-50-random-characters",  # the env example's placeholder: too short
        "a" * 64,  # long, but hardly random
    ],
)
@pytest.mark.parametrize("command", [["manage.py", "check"], ["-c", "import config.wsgi"]])
def test_production_refuses_to_start_without_a_real_secret_key(
    key: str | None, command: list[str]
) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in ("SECRET_KEY", "CREDENTIALS_KEYS")}
    if key is not None:
        env["SECRET_KEY"] = key
    result = run_python(*command, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is missing, the development key, or too weak" in (
        result.stderr
    )


def test_development_still_starts_on_the_development_key() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = run_manage("check", **{**env, "DEBUG": "True"})
    assert result.returncode == 0, result.stderr


def test_check_deploy_fails_when_production_has_nowhere_to_send_mail() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "EMAIL_URL"}
    result = run_manage("check", "--deploy", **env)
    assert result.returncode != 0
    assert "herald.E020" in result.stderr and "EMAIL_URL is not set" in result.stderr


@pytest.mark.parametrize("url", ["consolemail://", "dummymail://", "memorymail://"])
def test_printing_or_dropping_mail_in_production_must_be_chosen_and_is_warned_about(
    url: str,
) -> None:
    chosen = run_manage("check", "--deploy", **{**PRODUCTION_ENV, "EMAIL_URL": url})
    assert chosen.returncode == 0, chosen.stderr  # chosen, so allowed...
    assert "herald.W021" in chosen.stderr  # ...and said out loud
    strict = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert strict.returncode == 0, strict.stderr  # a real mail server: no warning


SHOW_MAIL = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.EMAIL_BACKEND, hasattr(settings, 'EMAIL_URL'))"
)


def test_mail_is_printed_in_development_and_refused_in_production_unless_configured() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "EMAIL_URL"}
    development = run_python("-c", SHOW_MAIL, **{**env, "DEBUG": "True"})
    assert development.stdout.split() == ["django.core.mail.backends.console.EmailBackend", "False"]
    production = run_python("-c", SHOW_MAIL, **env)
    assert production.stdout.split() == ["config.mail.UnconfiguredEmailBackend", "False"]
    configured = run_python("-c", SHOW_MAIL, **PRODUCTION_ENV)
    # The URL (with its password) is no setting, so no error page can show it.
    assert configured.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", "False"]


@pytest.mark.django_db
def test_every_model_change_has_its_migration() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_healthz_reports_database_and_worker(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert response.json()["worker"]["status"] == "never_seen"
    assert response.json()["status"] == "degraded"

    tasks.tick()  # what the worker runs every minute

    messaging_tasks.poll_statuses()
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["worker"]["alive"] == 1
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.fixture
def fresh_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """healthz keeps its broker per process: each of these tests makes its own."""
    monkeypatch.setattr(config_views, "_broker", None)


@pytest.mark.django_db
def test_healthz_reports_the_orm_broker_and_what_waits_in_it(
    client: Client, fresh_broker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/healthz").json()["broker"] == {"kind": "orm", "status": "ok", "queued": 0}
    monkeypatch.setattr(Conf, "SYNC", False)  # queued for a worker, not run here
    async_task("messaging.tasks.poll_statuses")
    assert client.get("/healthz").json()["broker"]["queued"] == 1


@pytest.mark.django_db
def test_healthz_reports_the_redis_broker(
    client: Client, fresh_broker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not redis_answers(url):
        if os.environ.get("HERALD_REQUIRE_REDIS"):
            pytest.fail(f"HERALD_REQUIRE_REDIS is set and no Redis answers at {url}")
        pytest.skip(f"no Redis at {url}")
    name = f"herald-test-{uuid.uuid4().hex}"
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", name)
    monkeypatch.setattr(Conf, "SYNC", False)
    try:
        assert client.get("/healthz").json()["broker"] == {
            "kind": "redis",
            "status": "ok",
            "queued": 0,
        }
        async_task("messaging.tasks.poll_statuses")
        assert client.get("/healthz").json()["broker"]["queued"] == 1
    finally:
        get_broker(name).delete_queue()


@pytest.mark.django_db
def test_healthz_is_degraded_when_the_broker_does_not_answer(
    client: Client, fresh_broker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks.tick()  # a live worker: only the broker is wrong
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 200  # the web node itself still serves
    assert response.json()["status"] == "degraded"
    assert response.json()["broker"] == {"kind": "redis", "status": "unreachable"}


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.django_db
def test_healthz_answers_plain_http_in_production(client: Client, settings: object) -> None:
    settings.SECURE_SSL_REDIRECT = True  # type: ignore[attr-defined]
    assert client.get("/healthz").status_code == 200
    assert client.get("/admin/").status_code == 301
