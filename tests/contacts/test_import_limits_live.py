"""The issue's hostile spreadsheets against the real web server, as a marketer uploads them.

gunicorn runs as in production (DEBUG off, config/gunicorn.conf.py, two workers) with a
django-q2 cluster beside it, on this run's database (SQLite or PostgreSQL). A signed-in
marketer uploads the one-cell bomb, the shared-strings bomb, the file of many rows, the
60,000-row opt-out list, an opt-out list without a channel column and a file past the
upload limit, through the admin's own forms. Meanwhile another user signs in again and
again and /healthz is asked, and every web worker's resident memory is read from /proc.

Done when: each file is refused, or handed to the worker, with a sentence on its page;
no web worker grows by 100 MB or more (its peak, VmHWM, included), none is replaced;
every sign-in and health check answers, and none says "database is locked".
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from contacts.models import ImportJob
from tests.campaigns.test_chaos import Cluster
from tests.config.test_production_multicluster import (
    Browser,
    Web,
    collect_static,
    csrf_token,
    production_env,
    production_password,
    signed_in,
)
from tests.contacts.hostile_files import (
    many_rows_xlsx,
    one_cell_bomb,
    opt_out_xlsx,
    shared_strings_bomb,
)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

MEGABYTE = 1024 * 1024
GROWTH_ALLOWED = 100 * MEGABYTE
UPLOAD_LIMIT = 2_000_000
WORKER_DEADLINE_SECONDS = 240.0


def database_url() -> str:
    """This run's test database, as the server's processes must open it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def server_env(static_root: Path, media_root: Path) -> dict[str, str]:
    return production_env(
        static_root,
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(media_root),
        Q_WORKERS="1",
        HERALD_IMPORT_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT),
    )


def worker_pids(web: Web) -> set[int]:
    master = web.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


class Uploader(Browser):
    """A signed-in browser that can send a file through a form, as multipart."""

    def upload(self, form_path: str, path: Path, **fields: str) -> requests.Response:
        form = self.get(form_path)
        assert form.status_code == 200, form.text[:500]
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        with path.open("rb") as file:
            answer = requests.post(
                self.url + form_path,
                data={"csrfmiddlewaretoken": csrf_token(form.text), "region": "GB", **fields},
                files={"file": (path.name, file)},
                headers={"Cookie": cookie},
                allow_redirects=False,
                timeout=60,
            )
        if answer.status_code == 302:
            return self.get(answer.headers["Location"])
        return answer


class Meanwhile(threading.Thread):
    """Asks /healthz and signs a colleague in, over and over, noting every bad answer;
    and samples each web worker's memory."""

    def __init__(self, web: Web, colleague: User, pids: set[int]) -> None:
        super().__init__(daemon=True)
        self.web, self.colleague, self.pids = web, colleague, pids
        self.problems: list[str] = []
        self.answers = 0
        self.peak_rss = dict.fromkeys(pids, 0)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                health = requests.get(f"{self.web.url}/healthz", timeout=30)
                if health.status_code != 200:
                    self.problems.append(f"/healthz {health.status_code}: {health.text[:200]}")
                signed_in(self.web, self.colleague)
                self.answers += 1
            except (AssertionError, requests.RequestException) as exc:
                self.problems.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            for pid in self.pids:
                self.peak_rss[pid] = max(self.peak_rss[pid], memory_of(pid)["VmRSS"])

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=60)


def job_of(page: requests.Response) -> ImportJob:
    found = re.search(r'data-progress-url="/admin/contacts/importjob/(\d+)/progress/"', page.text)
    assert found, page.text[:2000]
    return ImportJob.objects.get(pk=int(found.group(1)))


def wait_for_worker(browser: Uploader, job: ImportJob, cluster: Cluster, web: Web) -> ImportJob:
    """Polls the job's progress over HTTP, as its page does, until the worker is done."""
    deadline = time.monotonic() + WORKER_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        progress = browser.get(f"/admin/contacts/importjob/{job.pk}/progress/").json()
        if progress["status"] in ("validated", "failed"):
            job.refresh_from_db()
            return job
        assert cluster.running, cluster.log_tail()
        time.sleep(0.5)
    pytest.fail(f"the worker did not check job {job.pk} in time\n{cluster.log_tail()}")


def test_hostile_spreadsheets_leave_the_web_server_small_and_answering(
    make_user: Callable[..., User], tmp_path: Path
) -> None:
    marketer = production_password(make_user("mia", "Marketers"))
    colleague = production_password(make_user("arno", "Approvers"))
    files = {
        "one cell": one_cell_bomb(tmp_path / "one-cell.xlsx"),
        "shared strings": shared_strings_bomb(tmp_path / "shared-strings.xlsx"),
        "many rows": many_rows_xlsx(tmp_path / "many-rows.xlsx", rows=120_000),
        "opt-outs": opt_out_xlsx(tmp_path / "stop.xlsx", rows=60_000),
        "no channel": opt_out_xlsx(tmp_path / "no-channel.xlsx", rows=50, with_channel=False),
    }
    too_big = tmp_path / "too-big.csv"
    too_big.write_bytes(b"phone\r\n" + b"07400000001\r\n" * 250_000)  # 3.2 MB
    static_root, media_root = tmp_path / "static", tmp_path / "media"
    env = server_env(static_root, media_root)
    collect_static(static_root, env)
    web, cluster = Web(env, tmp_path), Cluster("worker", env, tmp_path)
    try:
        cluster.start()
        web.wait_until_up()
        browser = Uploader(web)
        browser.cookies = signed_in(web, marketer).cookies
        for _ in range(6):  # every worker has served the admin's pages once
            assert browser.get("/admin/contacts/importjob/add/").status_code == 200
        pids = worker_pids(web)
        assert len(pids) == 2
        started = {pid: memory_of(pid) for pid in pids}
        meanwhile = Meanwhile(web, colleague, pids)
        meanwhile.start()
        pages = upload_everything(browser, files, too_big)
        checked = {
            name: wait_for_worker(browser, job_of(pages[name]), cluster, web)
            for name in ("many rows", "opt-outs")
        }
        time.sleep(2)  # a few more sign-ins after the worker is done
        meanwhile.stop()
        ended = {pid: memory_of(pid) for pid in pids}
        still = worker_pids(web)
    finally:
        cluster.kill()
        web.stop()

    for name, page in pages.items():
        assert page.status_code == 200, f"{name}: {page.status_code} {page.text[:500]}"
        assert "Traceback" not in page.text and str(settings.BASE_DIR) not in page.text
    text = {name: " ".join(page.text.split()) for name, page in pages.items()}
    assert "the spreadsheet unpacks to 262 MB, more than the 200 MB allowed" in text["one cell"]
    assert (
        "the spreadsheet unpacks to 340 MB, more than the 200 MB allowed" in text["shared strings"]
    )
    assert "no channel column: add one (sms or whatsapp on each row)" in text["no channel"]
    assert "The file is more than 2.0 MB, the most an upload may be" in text["too big"]
    assert ImportJob.objects.filter(original_name="too-big.csv").count() == 0
    for name in ("many rows", "opt-outs"):
        assert 'id="job-progress"' in pages[name].text, f"{name} was checked in the request"
        assert checked[name].status == ImportJob.Status.VALIDATED, checked[name].failure_reason
    assert checked["many rows"].preview["counts"]["imported"] == 120_000
    assert checked["opt-outs"].preview["counts"]["imported"] == 60_000

    assert still == pids, "a web worker was replaced (killed by its timeout?)\n" + web.log_tail()
    assert "WORKER TIMEOUT" not in (tmp_path / "web.log").read_text()
    assert meanwhile.problems == [], meanwhile.problems[:5]
    assert meanwhile.answers >= 3
    print(f"\n{meanwhile.answers} sign-ins and health checks answered meanwhile")
    for pid in pids:
        grew = max(meanwhile.peak_rss[pid], ended[pid]["VmRSS"]) - started[pid]["VmRSS"]
        peak_grew = ended[pid]["VmHWM"] - started[pid]["VmHWM"]
        print(
            f"\nweb worker {pid}: {started[pid]['VmRSS'] / MEGABYTE:.0f} MB at the start, "
            f"{ended[pid]['VmRSS'] / MEGABYTE:.0f} MB at the end, grew at most "
            f"{grew / MEGABYTE:.1f} MB (peak {peak_grew / MEGABYTE:.1f} MB)"
        )
        assert grew < GROWTH_ALLOWED and peak_grew < GROWTH_ALLOWED


def upload_everything(
    browser: Uploader, files: dict[str, Path], too_big: Path
) -> dict[str, requests.Response]:
    contacts, opt_outs = "/admin/contacts/importjob/add/", "/admin/contacts/optout/import/"
    pages = {name: browser.upload(contacts, files[name]) for name in ("one cell", "shared strings")}
    pages["many rows"] = browser.upload(contacts, files["many rows"])
    pages["opt-outs"] = browser.upload(opt_outs, files["opt-outs"], channel="")
    pages["no channel"] = browser.upload(opt_outs, files["no channel"], channel="")
    pages["too big"] = browser.upload(contacts, too_big)
    return pages
