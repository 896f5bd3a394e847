"""Production on one machine: gunicorn and two django-q2 clusters on PostgreSQL, at once.

The issue: "`make run-prod` (or a documented command pair) starting gunicorn + two
qclusters against PostgreSQL on this machine, used by a test that sends a campaign through
both clusters at once."

The processes run as Procfile.prod starts them (production settings, gunicorn with
config/gunicorn.conf.py, `manage.py qcluster`), against the test database. A marketer
builds and submits the campaign and an approver approves it through gunicorn over HTTP
(real sessions, CSRF tokens). The provider is the loopback fake gateway.

It runs once on each broker django-q2 offers Herald: the ORM broker (the queue in the
test database) and Redis (`Q_BROKER=redis`, a queue name of its own), with the issue's
faults at the gateway (5% 5xx, 2% 429, dropped connections and answers after the
client's timeout) and one cluster SIGKILLed mid-send and restarted; the fake's own
record must still show every recipient exactly once.

Which cluster sent what is seen by PostgreSQL itself: each process connects with its own
application_name (PGAPPNAME), and a trigger notes, for every message that becomes sent,
the application_name of the connection that recorded it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis
import requests
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.db import connection
from django_q.conf import Conf

from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging import counts
from messaging.models import Message, ProviderAccount
from tests.campaigns.test_chaos import FAULT_RATES, SEED, Cluster, Ticker, database_url
from tests.fakegateway import BULKSMSRATES, FakeGateway

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parents[2]
RECIPIENTS = 3000
RATE = 250  # sends a second, the account's (all workers together): ~12 s of sending
BATCH = 100  # rows a worker claims at a time, so the clusters take turns
DEADLINE_SECONDS = 150.0
READ_TIMEOUT = 1.0  # the account's; a "slow" answer comes later than this
LEASE_SECONDS = 8
RECONCILE_AFTER_SECONDS = 2
#: Short leases and task times, as in the chaos test, so a killed worker's claim is
#: handed on within seconds.
CHAOS_ENV = {
    "HERALD_SEND_LEASE_SECONDS": str(LEASE_SECONDS),
    "HERALD_RECONCILE_AFTER_SECONDS": str(RECONCILE_AFTER_SECONDS),
    "Q_TIMEOUT": "20",
    "Q_RETRY": "25",
}

NOTE_SENDS = """
CREATE TABLE herald_test_sent_by (phone text NOT NULL, app text NOT NULL);
CREATE FUNCTION herald_test_note_sent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'sent' AND OLD.status IS DISTINCT FROM 'sent' THEN
    INSERT INTO herald_test_sent_by VALUES (NEW.phone, current_setting('application_name'));
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER herald_test_note_sent AFTER UPDATE ON messaging_message
  FOR EACH ROW EXECUTE FUNCTION herald_test_note_sent();
"""
FORGET_SENDS = """
DROP TRIGGER IF EXISTS herald_test_note_sent ON messaging_message;
DROP FUNCTION IF EXISTS herald_test_note_sent();
DROP TABLE IF EXISTS herald_test_sent_by;
"""


def phone(i: int) -> str:
    return f"+4479{i:08d}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def production_env(static_root: Path, **extra: str) -> dict[str, str]:
    """What an operator would set (deploy/herald.env.example), pointed at the test database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "DEBUG": "False",
        "SECRET_KEY": settings.SECRET_KEY,
        "CREDENTIALS_KEYS": ",".join(settings.CREDENTIALS_KEYS),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "False",  # plain HTTP on loopback, as `make run-prod`
        "STATIC_ROOT": str(static_root),
        "Q_SYNC": "False",
        "Q_WORKERS": "2",
        "HERALD_DISPATCH_BATCH_SIZE": str(BATCH),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    env.pop("HERALD_REQUIRE_POSTGRES", None)
    env.pop("HERALD_TEST_DB_NAME", None)
    return env


class Web:
    """gunicorn as Procfile.prod starts it, on a port of its own."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log: IO[bytes] = (logs / "web.log").open("wb")
        self.logs = logs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
            cwd=ROOT,
            env={**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "2"},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_up(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_tail()
            # The socket is bound before a worker has loaded Django: on a busy machine the
            # first request may be accepted and not answered in time (a read timeout).
            with contextlib.suppress(requests.ConnectionError, requests.Timeout):
                if requests.get(f"{self.url}/healthz", timeout=5).status_code in (200, 503):
                    return
            time.sleep(0.2)
        pytest.fail(f"gunicorn did not answer within {seconds}s\n{self.log_tail()}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 15)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=5)
        self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        text = (self.logs / "web.log").read_text(errors="replace").splitlines()
        return "--- web.log\n" + "\n".join(text[-lines:])


class Browser:
    """Keeps cookies as a browser would. Production cookies are Secure, which `requests`
    never sends over plain HTTP; this client only ever talks to 127.0.0.1."""

    def __init__(self, web: Web) -> None:
        self.url = web.url
        self.cookies: dict[str, str] = {}

    def get(self, path: str) -> requests.Response:
        return self._request("GET", path)

    def post(self, path: str, data: dict[str, Any]) -> requests.Response:
        return self._request("POST", path, data=data)

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        answer = requests.request(
            method,
            self.url + path,
            headers={"Cookie": cookie},
            allow_redirects=False,
            timeout=30,
            **kwargs,
        )
        self.cookies.update({c.name: c.value for c in answer.cookies if c.value})
        return answer


def signed_in(web: Web, user: User) -> Browser:
    """A browser-like session: the login form, its CSRF token, the session cookie."""
    browser = Browser(web)
    form = browser.get("/accounts/login/")
    assert form.status_code == 200, form.text[:500]
    assert "script-src 'self'" in form.headers["Content-Security-Policy"]
    assert "Secure" in form.headers["Set-Cookie"]
    answer = browser.post(
        "/accounts/login/",
        {
            "username": user.username,
            "password": f"pw-{user.username}",
            "csrfmiddlewaretoken": csrf_token(form.text),
        },
    )
    assert answer.status_code == 302, answer.text[:500]
    return browser


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def build_and_submit(web: Web, marketer: User, account: ProviderAccount, group: Group) -> int:
    session = signed_in(web, marketer)
    form = session.get("/campaigns/new/")
    assert form.status_code == 200, form.text[:500]
    answer = session.post(
        "/campaigns/new/",
        {
            "csrfmiddlewaretoken": csrf_token(form.text),
            "name": "Production",
            "channel": "sms",
            "provider_account": account.pk,
            "sender": "",
            "template": "",
            "body": "Hi {{first_name}}, see you soon.",
            "groups": [group.pk],
            "scheduled_at_0": "",
            "scheduled_at_1": "",
            "time_zone": "Europe/London",
            "window_start": "",
            "window_end": "",
            "brake_failure_rate": "0.5",
            "brake_window": "200",
            "action": "submit",
        },
    )
    assert answer.status_code == 302, answer.text[:2000]
    found = re.fullmatch(r"/campaigns/(\d+)/", answer.headers["Location"])
    assert found, answer.headers["Location"]
    return int(found.group(1))


def approve(web: Web, approver: User, campaign_id: int) -> None:
    session = signed_in(web, approver)
    queue = session.get("/approvals/")
    action = f'action="/approvals/{campaign_id}/approve/"'
    assert action in queue.text, queue.text[:2000]
    form = queue.text[queue.text.index(action) :]
    content_hash = re.search(r'name="content_hash" value="([^"]+)"', form)
    assert content_hash
    answer = session.post(
        f"/approvals/{campaign_id}/approve/",
        {"csrfmiddlewaretoken": csrf_token(form), "content_hash": content_hash.group(1)},
    )
    assert answer.status_code == 302, answer.text[:2000]


def make_audience() -> Group:
    group = Group.objects.create(name="Production")
    contacts = Contact.objects.bulk_create(
        [Contact(phone=phone(i), first_name=f"Name{i}") for i in range(RECIPIENTS)],
        batch_size=5000,
    )
    membership = Contact.groups.through
    membership.objects.bulk_create(
        [membership(contact_id=c.pk, group_id=group.pk) for c in contacts], batch_size=5000
    )
    return group


@pytest.fixture
def sends_noted_by_postgres() -> Iterator[Callable[[], Counter[str]]]:
    """Counts of messages turned sent, by the application_name of the connection."""
    with connection.cursor() as cursor:
        cursor.execute(FORGET_SENDS + NOTE_SENDS)

    def noted() -> Counter[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT app, count(*) FROM herald_test_sent_by GROUP BY app")
            return Counter(dict(cursor.fetchall()))

    yield noted
    with connection.cursor() as cursor:
        cursor.execute(FORGET_SENDS)


def production_password(user: User) -> User:
    """The tests hash with MD5 for speed; gunicorn runs the production hashers."""
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(f"pw-{user.username}", hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    return user


def collect_static(static_root: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (static_root / "staticfiles.json").exists()


@pytest.fixture(params=["orm", "redis"])
def broker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The queue every process of the test shares, on the ORM broker (the test database) or
    on Redis (a queue name of its own, removed afterwards): the environment the processes
    get. This process (the ticker) is pointed at the same queue."""
    name = f"herald-test-{uuid.uuid4().hex[:12]}"
    env = {"Q_BROKER": request.param, "Q_NAME": name}
    monkeypatch.setattr(Conf, "PREFIX", name)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", name)
    if request.param == "redis":
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if not redis_answers(url):
            if os.environ.get("HERALD_REQUIRE_REDIS"):
                pytest.fail(f"HERALD_REQUIRE_REDIS is set and no Redis answers at {url}")
            pytest.skip(f"no Redis at {url}")
        env["REDIS_URL"] = url
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", url)
    # The ticker's wake-ups must go to the queue, not run inline (tests.settings).
    monkeypatch.setattr(Conf, "SYNC", False)
    yield env
    if request.param == "redis":
        connection_ = redis.from_url(env["REDIS_URL"])
        connection_.delete(*connection_.keys(f"django_q:{name}:*") or ["-"])


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def test_gunicorn_and_two_clusters_send_a_web_approved_campaign_once_to_everyone(
    broker: dict[str, str],
    gateway: FakeGateway,
    make_account: Callable[..., ProviderAccount],
    make_user: Callable[..., User],
    sends_noted_by_postgres: Callable[[], Counter[str]],
    settings: Any,
    tmp_path: Path,
) -> None:
    """On each broker: faults at the gateway (5xx, 429, dropped connections, answers after
    the timeout) and one cluster SIGKILLed a third of the way through and restarted."""
    # The ticker reconciles and frees expired leases here: the clusters' short times.
    settings.HERALD_SEND_LEASE_SECONDS = LEASE_SECONDS
    settings.HERALD_RECONCILE_AFTER_SECONDS = RECONCILE_AFTER_SECONDS
    gateway.bulk_rate = 100_000  # the account's own pace is the only limit
    group = make_audience()
    # One request at a time, so a claim is BATCH rows and the clusters take turns (one
    # worker sending concurrently claims about 15 s of the pace: all of this campaign).
    account = make_account(
        BULKSMSRATES, rate_limit=RATE, bulk=False, concurrency=1, read_timeout=READ_TIMEOUT
    )
    marketer = production_password(make_user("mia", "Marketers"))
    approver = production_password(make_user("arno", "Approvers"))
    static_root = tmp_path / "static"
    collect_static(static_root, production_env(static_root))
    faults = {**CHAOS_ENV, **broker}

    web = Web(production_env(static_root, PGAPPNAME="herald-web", **faults), tmp_path)
    clusters = [
        Cluster(name, production_env(static_root, PGAPPNAME=f"herald-{name}", **faults), tmp_path)
        for name in ("one", "two")
    ]
    ticker = Ticker(every=0.5)
    started = time.monotonic()
    killed = ""
    try:
        for cluster in clusters:
            cluster.start()
        web.wait_until_up()
        gateway.chaos(
            seed=SEED, rates=FAULT_RATES, paths=("/v1/sms/",), methods=("POST",), slow_seconds=1.5
        )
        campaign_id = build_and_submit(web, marketer, account, group)
        approve(web, approver, campaign_id)
        ticker.start()
        killed = kill_one_mid_send(gateway, clusters, web, started)
        campaign = wait_until_completed(campaign_id, gateway, clusters, web, started)
    finally:
        gateway.calm()
        if ticker.is_alive():
            ticker.stop()
        for cluster in clusters:
            cluster.kill()
        web.stop()
    duration = time.monotonic() - started
    met = Counter(r.fault for r in list(gateway.requests) if r.fault)

    received = Counter(m.to for m in list(gateway.messages.values()) if m.provider == BULKSMSRATES)
    noted = sends_noted_by_postgres()
    statuses = Counter(Message.objects.filter(campaign=campaign).values_list("status", flat=True))
    print(
        f"\nproduction ({broker['Q_BROKER']} broker): {RECIPIENTS} recipients in "
        f"{duration:.1f}s (from start-up); sent by {dict(noted)}; rows {dict(statuses)}; "
        f"faults met {dict(met)}; {killed}; ticks {ticker.ticks}"
    )
    assert met.total() > 0, "the gateway dealt no faults"
    everyone = {phone(i) for i in range(RECIPIENTS)}
    assert set(received) == everyone
    assert {n for n in received.values()} == {1}, "someone got a message twice"
    assert statuses == {Message.Status.SENT: RECIPIENTS}
    # Every send was recorded once: by one of the two clusters, each doing its share, or by
    # reconciliation, which the ticker runs in this process (no application_name): messages
    # left in doubt by a fault or the kill, then found at the gateway.
    assert noted.total() == RECIPIENTS
    assert set(noted) <= {"herald-one", "herald-two", ""}, noted
    assert min(noted["herald-one"], noted["herald-two"]) >= RECIPIENTS // 20, noted
    assert ticker.errors == []
    assert counts.differences([campaign.pk]) == {}  # the pages' counts, kept by both clusters
    assert gateway.rate_limited == 0


def kill_one_mid_send(
    gateway: FakeGateway, clusters: list[Cluster], web: Web, started: float
) -> str:
    """SIGKILL cluster one (its whole process group) once a third has reached the gateway,
    and start it again: what it had claimed waits out its lease, then is reconciled."""
    while len(gateway.messages) < RECIPIENTS // 3:
        if time.monotonic() - started > DEADLINE_SECONDS:
            pytest.fail(
                f"a third never went out; fake accepted {len(gateway.messages)}\n"
                + "\n".join(c.log_tail() for c in clusters)
                + "\n"
                + web.log_tail()
            )
        time.sleep(0.05)
    clusters[0].kill()
    at = len(gateway.messages)
    time.sleep(0.5)
    clusters[0].start()
    return f"cluster one killed at {at} accepted"


def wait_until_completed(
    campaign_id: int, gateway: FakeGateway, clusters: list[Cluster], web: Web, started: float
) -> Campaign:
    while True:
        campaign = Campaign.objects.get(pk=campaign_id)
        if campaign.status == Campaign.Status.COMPLETED:
            return campaign
        dead = [c.name for c in clusters if not c.running]
        if dead or time.monotonic() - started > DEADLINE_SECONDS:
            counts = Counter(
                Message.objects.filter(campaign=campaign).values_list("status", flat=True)
            )
            pytest.fail(
                f"{'clusters died: ' + ', '.join(dead) if dead else 'out of time'}; campaign "
                f"{campaign.status} {campaign.pause_reason!r}; rows {dict(counts)}; fake "
                f"accepted {len(gateway.messages)}\n"
                + "\n".join(c.log_tail() for c in clusters)
                + "\n"
                + web.log_tail()
            )
        time.sleep(0.5)
