"""Opt-out lists come in like contact files: checked, previewed, confirmed, run by a worker.

Upload on the opt-out list's Import page (or `import_opt_outs` from the shell), a job of
its own kind: the same limits, reports and progress as a contact import.
"""

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from contacts import jobs
from contacts.erasure import erase
from contacts.models import Channel, Contact, ImportJob, OptOut
from tests.contacts.conftest import post_and_commit, uk
from tests.contacts.hostile_files import opt_out_xlsx

pytestmark = pytest.mark.django_db
S = ImportJob.Status
IMPORT = "/admin/contacts/optout/import/"


@pytest.fixture
def marketer_client(make_user: Callable[..., User], settings: Any, tmp_path: Path) -> Client:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    client = Client(raise_request_exception=False)
    client.force_login(make_user("mia", "Marketers"))
    return client


def upload(client: Client, name: str, content: bytes, channel: str = "") -> Any:
    data = {"file": SimpleUploadedFile(name, content), "channel": channel, "region": "GB"}
    return post_and_commit(client, IMPORT, data)


def confirm(client: Client, job: ImportJob) -> Any:
    return post_and_commit(client, f"/admin/contacts/importjob/{job.pk}/confirm/", {})


def test_an_opt_out_list_is_previewed_then_imported_on_confirmation(
    marketer_client: Client,
) -> None:
    OptOut.objects.create(phone=uk(3), channel=Channel.SMS, source=OptOut.Source.REPLY)
    content = (
        f"phone,channel,note\r\n07400 000001,sms,asked by phone\r\n{uk(2)},WhatsApp,\r\n"
        f"{uk(3)},sms,\r\nnot a number,sms,\r\n{uk(1)},SMS,again\r\n{uk(4)},fax,\r\n"
    ).encode()
    page = upload(marketer_client, "stop.csv", content).content.decode()
    job = ImportJob.objects.get()
    assert (job.kind, job.status) == (ImportJob.Kind.OPT_OUTS, S.VALIDATED)
    assert "New opt-outs" in page and "Already on the list" in page
    assert "invalid phone number" in page and "duplicate of line 2" in page
    assert "unknown channel &#x27;fax&#x27;: write sms or whatsapp" in page
    assert job.preview["counts"] | {"skipped": 0} == {
        "imported": 2,
        "updated": 0,
        "unchanged": 1,
        "duplicates": 1,
        "invalid": 2,
        "skipped": 0,
    }
    assert OptOut.objects.count() == 1  # nothing added before the confirmation

    done = confirm(marketer_client, job).content.decode()
    job.refresh_from_db()
    assert (job.status, job.imported, job.unchanged, job.invalid) == (S.COMPLETED, 2, 1, 2)
    assert "Added to the list" in done and 'name="rollback"' not in done
    assert set(OptOut.objects.values_list("phone", "channel", "source", "note")) == {
        (uk(1), "sms", "import", "asked by phone"),
        (uk(2), "whatsapp", "import", ""),
        (uk(3), "sms", "reply", ""),  # already there: left as it was
    }
    report = marketer_client.get(f"/admin/contacts/importjob/{job.pk}/errors.csv")
    lines = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode())))  # type: ignore[attr-defined]
    assert [line[:2] for line in lines[1:]] == [
        ["5", lines[1][1]],
        ["6", f"duplicate of line 2 ({uk(1)})"],
        ["7", "unknown channel 'fax': write sms or whatsapp"],
    ]


@pytest.mark.parametrize("name", ["stop.xlsx", "stop.csv"])
def test_a_list_without_a_channel_column_says_so_in_a_sentence_not_a_traceback(
    marketer_client: Client, tmp_path: Path, settings: Any, name: str
) -> None:
    assert not settings.DEBUG
    path = tmp_path / name
    if name.endswith(".xlsx"):
        opt_out_xlsx(path, rows=3, with_channel=False)
    else:
        path.write_text(f"phone\r\n{uk(1)}\r\n")
    page = upload(marketer_client, name, path.read_bytes()).content.decode()
    job = ImportJob.objects.get()
    assert job.status == S.FAILED
    assert job.failure_reason == (
        "no channel column: add one (sms or whatsapp on each row), or choose on the form "
        "the channel of rows that name none (found: phone)"
    )
    assert "no channel column" in page
    assert "Traceback" not in page and str(settings.BASE_DIR) not in page
    assert not OptOut.objects.exists()


def test_the_form_may_choose_the_channel_of_rows_that_name_none(marketer_client: Client) -> None:
    content = f"phone,channel\r\n{uk(1)},\r\n{uk(2)},sms\r\n".encode()
    job_page = upload(marketer_client, "stop.csv", content, channel="whatsapp")
    assert "rows that name no channel: WhatsApp" in job_page.content.decode()
    confirm(marketer_client, ImportJob.objects.get())
    assert set(OptOut.objects.values_list("phone", "channel")) == {
        (uk(1), "whatsapp"),
        (uk(2), "sms"),
    }


def test_a_60_000_row_list_is_checked_by_the_worker_and_its_pages_stay_small(
    marketer_client: Client, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    path = opt_out_xlsx(tmp_path / "stop.xlsx", rows=60_000)  # 0.7 MB, 6.5 MB unpacked
    data = {"file": SimpleUploadedFile("stop.xlsx", path.read_bytes()), "region": "GB"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        answer = marketer_client.post(IMPORT, {**data, "channel": ""})
    job = ImportJob.objects.get()
    assert answer.status_code == 302 and job.status == S.UPLOADED  # nothing parsed yet
    waiting = marketer_client.get(answer["Location"]).content.decode()
    assert "import_progress.js" in waiting
    for callback in callbacks:
        callback()  # queues the check; django-q2 runs it at once in the tests (sync)
    job.refresh_from_db()
    assert job.status == S.VALIDATED, job.failure_reason
    assert job.preview["counts"]["imported"] == 60_000
    preview = marketer_client.get(answer["Location"]).content
    assert len(preview) < 30_000 and preview.count(b"<tr>") < 30  # 20 sample rows

    confirm(marketer_client, job)
    job.refresh_from_db()
    assert (job.status, job.imported) == (S.COMPLETED, 60_000)
    assert OptOut.objects.filter(channel=Channel.SMS).count() == 60_000


def test_an_erased_number_is_not_put_back_on_the_list_in_clear(marketer_client: Client) -> None:
    Contact.objects.create(phone=uk(1))
    erase(contact_ids=list(Contact.objects.values_list("pk", flat=True)))
    page = upload(marketer_client, "stop.csv", f"phone,channel\r\n{uk(1)},sms\r\n".encode())
    assert "erased at its owner" in page.content.decode()
    assert ImportJob.objects.get().preview["counts"]["invalid"] == 1
    assert not OptOut.objects.filter(phone=uk(1)).exists()


def test_an_opt_out_import_is_never_rolled_back(marketer_client: Client) -> None:
    upload(marketer_client, "stop.csv", f"phone,channel\r\n{uk(1)},sms\r\n".encode())
    job = ImportJob.objects.get()
    confirm(marketer_client, job)
    answer = post_and_commit(marketer_client, f"/admin/contacts/importjob/{job.pk}/rollback/", {})
    assert "never rolled back" in answer.content.decode()
    assert not jobs.roll_back(job)
    assert OptOut.objects.filter(phone=uk(1)).exists()


def test_approvers_may_neither_upload_nor_confirm_opt_outs(
    make_user: Callable[..., User], marketer_client: Client
) -> None:
    upload(marketer_client, "stop.csv", f"phone,channel\r\n{uk(1)},sms\r\n".encode())
    approver = Client()
    approver.force_login(make_user("arno", "Approvers"))
    assert approver.get(IMPORT).status_code == 403
    job = ImportJob.objects.get()
    assert approver.post(f"/admin/contacts/importjob/{job.pk}/confirm/").status_code == 403
    assert not OptOut.objects.exists()


# The shell's door.


def run_cli(*args: str) -> str:
    out = io.StringIO()
    call_command("import_opt_outs", *args, stdout=out)
    return out.getvalue()


def test_import_opt_outs_imports_a_list_and_ends_with_its_summary(tmp_path: Path) -> None:
    path = tmp_path / "stop.csv"
    path.write_text(f"phone,channel\r\n{uk(1)},sms\r\n{uk(2)},\r\n{uk(1)},sms\r\nnope,sms\r\n")
    assert run_cli(str(path), "--dry-run").splitlines()[-1] == "imported=1 skipped=1 invalid=2"
    assert not OptOut.objects.exists()
    out = run_cli(str(path), "--channel", "whatsapp")
    assert out.splitlines()[-1] == "imported=2 skipped=1 invalid=1"
    assert set(OptOut.objects.values_list("phone", "channel")) == {
        (uk(1), "sms"),
        (uk(2), "whatsapp"),
    }
    job = ImportJob.objects.get()
    assert (job.kind, job.origin, job.status) == ("opt_outs", "cli", S.COMPLETED)


def test_import_opt_outs_refuses_a_list_without_a_channel_on_one_line(tmp_path: Path) -> None:
    path = opt_out_xlsx(tmp_path / "stop.xlsx", rows=3, with_channel=False)
    with pytest.raises(CommandError) as refused:
        run_cli(str(path))
    assert str(refused.value).startswith("stop.xlsx: no channel column")
    assert "\n" not in str(refused.value)
    assert not OptOut.objects.exists()
