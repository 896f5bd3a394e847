"""Import jobs: the admin's upload -> preview -> confirm path, failure, resume and roll back."""

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from contacts import jobs
from contacts.importing import FileProblem
from contacts.models import Contact, Group, ImportJob, Tag
from contacts.resources import ContactResource
from tests.contacts.conftest import csv_text, post_and_commit, uk

pytestmark = pytest.mark.django_db
S = ImportJob.Status


def cli_job(path: Path, *groups: Group) -> ImportJob:
    job = ImportJob.objects.create(
        origin=ImportJob.Origin.CLI,
        source_path=str(path),
        original_name=path.name,
        region="GB",
        status=S.QUEUED,
    )
    job.groups.set(groups)
    return job


def test_a_broken_file_fails_where_it_broke_and_resumes_after_the_fix(
    write_file: Callable[..., Path],
) -> None:
    rows = [[uk(i), f"N{i}", "", "", ""] for i in range(12_000)]
    good = csv_text(rows)
    lines = good.split("\r\n")
    huge = "x" * 200_000  # past the csv module's field limit: the reader gives up here
    lines[11_000] = f'{uk(10_999)},"{huge}",,,'
    path = write_file("broken.csv", "\r\n".join(lines))
    job = cli_job(path, Group.objects.create(name="G"))

    with pytest.raises(FileProblem, match="CSV broken near line"):
        jobs.run(job)
    job.refresh_from_db()
    assert job.status == S.FAILED
    assert job.resume_line == 10_001  # two chunks of 5,000 rows committed, header is line 1
    assert "stopped after line 10001" in job.failure_reason
    assert Contact.objects.count() == 10_000 == job.imported

    path.write_text(good)  # the operator fixes the file
    assert jobs.resume(job)
    job.refresh_from_db()
    jobs.run(job)
    job.refresh_from_db()
    assert (job.status, job.imported, job.unchanged) == (S.COMPLETED, 12_000, 0)
    assert Contact.objects.count() == 12_000
    assert Group.objects.get(name="G").contacts.count() == 12_000


def test_roll_back_restores_changed_contacts_and_deletes_created_ones(
    write_file: Callable[..., Path],
) -> None:
    old_group, new_group = Group.objects.create(name="Old"), Group.objects.create(name="New")
    existing = Contact.objects.create(phone=uk(1), first_name="Old name", attributes={"a": "1"})
    existing.groups.add(old_group)
    untouched = Contact.objects.create(phone=uk(9), first_name="Other")
    path = write_file(
        "c.csv",
        csv_text([[uk(1), "New name", "", "", "gold"], [uk(2), "Fresh", "", "", ""]]),
    )
    job = cli_job(path, new_group)
    jobs.run(job)
    existing.refresh_from_db()
    assert existing.first_name == "New name"
    assert set(existing.groups.values_list("name", flat=True)) == {"Old", "New"}

    assert jobs.roll_back(job)
    existing.refresh_from_db()
    assert existing.first_name == "Old name"
    assert existing.attributes == {"a": "1"}
    assert list(existing.groups.values_list("name", flat=True)) == ["Old"]
    assert set(Contact.objects.values_list("pk", flat=True)) == {existing.pk, untouched.pk}
    assert ImportJob.objects.get().status == S.ROLLED_BACK
    assert not jobs.roll_back(job)  # twice is refused


def test_resource_import_data_speaks_import_exports_api() -> None:
    import tablib

    dataset = tablib.Dataset(headers=["Mobile", "Name"])
    dataset.append([uk(1), "Ada"])
    dataset.append(["nope", "Bad"])
    result = ContactResource(groups=[Group.objects.create(name="G")]).import_data(dataset)
    assert result.totals["new"] == 1 and result.totals["invalid"] == 1
    assert result.invalid_rows[0].number == 3
    assert Group.objects.get(name="G").contacts.get().first_name == "Ada"


# The admin path.


@pytest.fixture
def marketer_client(make_user: Callable[..., User]) -> Client:
    client = Client()
    client.force_login(make_user("mia", "Marketers"))
    return client


def upload_form(content: str, **fields: Any) -> dict[str, Any]:
    return {
        "file": SimpleUploadedFile("list.csv", content.encode(), content_type="text/csv"),
        "region": "GB",
        "new_groups": "Spring list",
        **fields,
    }


def upload(client: Client, content: str, **fields: Any) -> Any:
    return post_and_commit(client, "/admin/contacts/importjob/add/", upload_form(content, **fields))


def test_marketer_uploads_previews_confirms_and_downloads_the_rejected_rows(
    marketer_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    vip = Tag.objects.create(name="vip")
    Contact.objects.create(phone=uk(1), first_name="Old")
    content = csv_text(
        [
            [uk(1), "Ada", "", "", ""],
            [uk(2), "Ben", "", "", '=HYPERLINK("http://evil")'],
            ["+44 7700 900123", "Drama", "", "", ""],
            [uk(2), "Twice", "", "", ""],
        ]
    )
    page = upload(marketer_client, content, tags=[vip.pk]).content.decode()
    job = ImportJob.objects.get()
    assert job.status == S.VALIDATED
    assert "Preview: nothing is saved until you confirm" in page
    assert "invalid phone number" in page and "duplicate of line 3" in page
    assert job.preview["counts"] == {
        "imported": 1,
        "updated": 1,
        "unchanged": 0,
        "duplicates": 1,
        "invalid": 1,
        "skipped": 1,
    }
    assert Contact.objects.count() == 1  # nothing written yet

    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(f"/admin/contacts/importjob/{job.pk}/confirm/")
    job.refresh_from_db()
    assert (job.status, job.imported, job.updated, job.invalid) == (S.COMPLETED, 1, 1, 1)
    ben = Contact.objects.get(phone=uk(2))
    assert list(ben.groups.values_list("name", flat=True)) == ["Spring list"]
    assert list(ben.tags.all()) == [vip]

    report = marketer_client.get(f"/admin/contacts/importjob/{job.pk}/errors.csv")
    rows = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode())))  # type: ignore[attr-defined]
    assert [r[:2] for r in rows[1:]] == [
        ["4", rows[1][1]],
        ["5", "duplicate of line 3 (" + uk(2) + ")"],
    ]
    progress = marketer_client.get(f"/admin/contacts/importjob/{job.pk}/progress/").json()
    assert progress["status"] == "completed" and progress["imported"] == 1


def test_confirming_twice_imports_once(
    marketer_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    upload(marketer_client, csv_text([[uk(1), "Ada", "", "", ""]]))
    job = ImportJob.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(f"/admin/contacts/importjob/{job.pk}/confirm/")
        second = marketer_client.post(f"/admin/contacts/importjob/{job.pk}/confirm/", follow=True)
    assert "Cannot confirm an import that is queued" in second.content.decode()
    assert ImportJob.objects.get().imported == 1


def test_a_large_upload_is_checked_by_a_worker(
    marketer_client: Client, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.HERALD_IMPORT_INLINE_CHECK_BYTES = 10
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        form = upload_form(csv_text([[uk(1), "Ada", "", "", ""]]))
        marketer_client.post("/admin/contacts/importjob/add/", form)
    assert ImportJob.objects.get().status == S.UPLOADED
    page = marketer_client.get(f"/admin/contacts/importjob/{ImportJob.objects.get().pk}/change/")
    assert "import_progress.js" in page.content.decode()  # the page polls for progress
    for callback in callbacks:
        callback()  # the worker picks the job up
    assert ImportJob.objects.get().status == S.VALIDATED


def test_an_unusable_upload_says_why(marketer_client: Client) -> None:
    page = upload(marketer_client, "name,email\r\nAda,a@example.com\r\n").content.decode()
    assert ImportJob.objects.get().status == S.FAILED
    assert "no phone column" in page


def test_the_upload_form_refuses_an_unknown_region(marketer_client: Client) -> None:
    page = upload(marketer_client, csv_text([[uk(1), "", "", "", ""]]), region="XX")
    assert "two-letter country code" in page.content.decode()
    assert not ImportJob.objects.exists()


def test_approvers_cannot_start_imports(make_user: Callable[..., User]) -> None:
    client = Client()
    client.force_login(make_user("arno", "Approvers"))
    assert client.get("/admin/contacts/importjob/add/").status_code == 403


def test_an_import_whose_worker_died_is_taken_over_by_the_retried_task(
    write_file: Callable[..., Path],
) -> None:
    rows = [[uk(i), f"N{i}", "", "", ""] for i in range(6_000)]
    job = cli_job(write_file("c.csv", csv_text(rows)))
    jobs.run(job)  # imports everything; now pretend the worker died after the first chunk
    Contact.objects.filter(phone__gt=uk(4_999)).delete()
    ImportJob.objects.filter(pk=job.pk).update(
        status=S.RUNNING, resume_line=5_001, imported=5_000, updated_at="2000-01-01T00:00:00Z"
    )
    job.refresh_from_db()
    assert job.is_stalled

    jobs.run(job)  # what django-q2 does when the lost task's retry comes round
    job.refresh_from_db()
    assert (job.status, job.imported) == (S.COMPLETED, 6_000)
    assert Contact.objects.count() == 6_000


def test_a_running_import_that_is_alive_is_not_taken_over(write_file: Callable[..., Path]) -> None:
    job = cli_job(write_file("c.csv", csv_text([[uk(1), "", "", "", ""]])))
    ImportJob.objects.filter(pk=job.pk).update(status=S.RUNNING)
    job.refresh_from_db()
    assert not job.is_stalled
    assert not jobs.resume(job)
    jobs.run(job)
    assert ImportJob.objects.get().status == S.RUNNING and not Contact.objects.exists()


def test_roll_back_and_resume_buttons_in_the_admin(
    marketer_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    upload(marketer_client, csv_text([[uk(1), "Ada", "", "", ""]]))
    job = ImportJob.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(f"/admin/contacts/importjob/{job.pk}/confirm/")
    page = marketer_client.get(f"/admin/contacts/importjob/{job.pk}/change/").content.decode()
    assert 'name="rollback"' in page and 'name="resume"' not in page

    done = marketer_client.post(f"/admin/contacts/importjob/{job.pk}/rollback/", follow=True)
    assert "Import rolled back." in done.content.decode()
    assert not Contact.objects.exists()
    again = marketer_client.post(f"/admin/contacts/importjob/{job.pk}/resume/", follow=True)
    assert "Cannot resume an import that is rolled back" in again.content.decode()
    assert marketer_client.get(f"/admin/contacts/importjob/{job.pk}/rollback/").status_code == 403


def test_a_job_that_failed_its_check_is_checked_again_never_imported_unseen(
    marketer_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    upload(marketer_client, csv_text([[uk(1), "Ada", "", "", ""]]))
    job = ImportJob.objects.get()
    # As a check that broke on the server leaves it: failed, never previewed.
    ImportJob.objects.filter(pk=job.pk).update(
        status=S.FAILED, preview={}, failure_reason="the check stopped: OSError"
    )
    page = marketer_client.get(f"/admin/contacts/importjob/{job.pk}/change/").content.decode()
    assert 'value="Check the file again"' in page

    with django_capture_on_commit_callbacks(execute=True):
        done = marketer_client.post(f"/admin/contacts/importjob/{job.pk}/resume/", follow=True)

    assert "Checking the file again." in done.content.decode()
    job.refresh_from_db()
    assert job.status == S.VALIDATED and job.preview["counts"]["imported"] == 1
    assert not Contact.objects.exists()  # waits for the marketer's confirm, as at first
