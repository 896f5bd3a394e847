"""Importing contacts from the dashboard: upload, preview, columns, confirm or discard, result."""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, TestCase

from contacts import jobs
from contacts.importing import ATTRIBUTE, IGNORE
from contacts.models import Contact, Group, ImportJob

FILE = (
    "mobile,given,surname,town\n"
    "07911 123456,Ann,Lee,Leeds\n"
    "07911 12,Bob,Short,York\n"
    "+44 7911 200001,Cat,Ray,Hull\n"
)


def upload(client: Client, content: str = FILE, **fields: Any) -> Any:
    """POST the upload as a browser would, its on-commit check run, and follow the redirect."""
    file = SimpleUploadedFile("people.csv", content.encode(), content_type="text/csv")
    data = {"file": file, "region": "GB", "new_groups": "Spring", **fields}
    return post(client, "/contacts/import/", data)


def post(client: Client, url: str, data: dict[str, Any] | None = None) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url, data or {})
    while response.status_code == 302:
        response = client.get(response["Location"])
    return response


@pytest.fixture
def signed_in(client: Client, marketer: User) -> Client:
    client.force_login(marketer)
    return client


def test_an_upload_shows_a_preview_and_imports_nothing_yet(signed_in: Client) -> None:
    page = upload(signed_in)
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.VALIDATED and not Contact.objects.exists()
    html = page.content.decode()
    assert page.context["counts"]["imported"] == 2 and page.context["counts"]["invalid"] == 1
    assert "Preview: nothing is saved until you confirm" in html
    assert "too short for a UK mobile number" in html  # the rejection, in words
    assert "Lee" in html and "+447911123456" in html  # the first rows
    assert "<td>town: Leeds; given: Ann</td>" in html  # custom columns, as attributes
    rows = {column["column"]: column["target"] for column in job.preview["columns"]}
    assert rows == {
        "mobile": "phone",
        "given": ATTRIBUTE,
        "surname": "last_name",
        "town": ATTRIBUTE,
    }


def test_a_changed_column_mapping_is_used_by_the_check_and_the_import(signed_in: Client) -> None:
    upload(signed_in)
    job = ImportJob.objects.get()
    mapping = {"column_0": "phone", "column_1": "first_name", "column_2": "last_name"}
    page = post(signed_in, f"/contacts/imports/{job.pk}/mapping/", {**mapping, "column_3": IGNORE})
    job.refresh_from_db()
    assert job.column_mapping == {"0": "phone", "1": "first_name", "2": "last_name", "3": IGNORE}
    assert job.status == ImportJob.Status.VALIDATED  # checked again, with the new columns
    assert "Columns changed" in page.content.decode()
    assert [c["becomes"] for c in job.preview["columns"]] == [
        "phone", "first name", "last name", "ignored"
    ]  # fmt: skip
    assert job.preview["samples"][0]["first_name"] == "Ann"
    assert job.preview["samples"][0]["attributes"] == ""  # "town" is ignored now
    post(signed_in, f"/contacts/imports/{job.pk}/confirm/")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.COMPLETED and job.imported == 2 and job.invalid == 1
    ann = Contact.objects.get(phone="+447911123456")
    assert (ann.first_name, ann.last_name, ann.attributes) == ("Ann", "Lee", {})
    assert list(ann.groups.values_list("name", flat=True)) == ["Spring"]


def test_a_mapping_without_a_phone_or_with_a_field_twice_is_refused(signed_in: Client) -> None:
    upload(signed_in)
    job = ImportJob.objects.get()
    url = f"/contacts/imports/{job.pk}/mapping/"
    no_phone = {
        "column_0": IGNORE,
        "column_1": "first_name",
        "column_2": IGNORE,
        "column_3": IGNORE,
    }
    page = post(signed_in, url, no_phone)
    assert "Choose the column that holds the phone numbers." in page.content.decode()
    twice = {
        "column_0": "phone",
        "column_1": "last_name",
        "column_2": "last_name",
        "column_3": IGNORE,
    }
    page = post(signed_in, url, twice)
    assert "Each field can come from one column only: last name." in page.content.decode()
    job.refresh_from_db()
    assert job.column_mapping == {} and job.status == ImportJob.Status.VALIDATED


def test_confirming_imports_and_the_result_offers_the_rejected_rows(signed_in: Client) -> None:
    upload(signed_in)
    job = ImportJob.objects.get()
    page = post(signed_in, f"/contacts/imports/{job.pk}/confirm/")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.COMPLETED
    assert Contact.objects.count() == 2
    html = page.content.decode()
    assert "Download the rejected rows" in html
    assert Contact.objects.get(phone="+447911123456").attributes == {
        "given": "Ann",
        "town": "Leeds",
    }
    report = signed_in.get(f"/contacts/imports/{job.pk}/errors.csv")
    text = report.getvalue().decode()
    assert "07911 12" in text and "too short for a UK mobile number" in text
    progress = signed_in.get(f"/contacts/imports/{job.pk}/progress/").json()
    assert progress["status"] == "completed" and progress["imported"] == 2
    # Confirming again does nothing more.
    assert (
        "Cannot confirm" in post(signed_in, f"/contacts/imports/{job.pk}/confirm/").content.decode()
    )


def test_discarding_deletes_the_job_and_its_files(signed_in: Client) -> None:
    upload(signed_in)
    job = ImportJob.objects.get()
    files = [Path(job.file.path), Path(job.error_report.path)]
    assert all(f.exists() for f in files)
    page = post(signed_in, f"/contacts/imports/{job.pk}/discard/")
    assert "discarded" in page.content.decode()
    assert not ImportJob.objects.exists() and not Contact.objects.exists()
    assert not any(f.exists() for f in files)


def test_a_confirmed_import_cannot_be_discarded(signed_in: Client) -> None:
    upload(signed_in)
    job = ImportJob.objects.get()
    post(signed_in, f"/contacts/imports/{job.pk}/confirm/")
    assert not jobs.discard(job)
    page = post(signed_in, f"/contacts/imports/{job.pk}/discard/")
    assert "Cannot discard" in page.content.decode() and ImportJob.objects.filter(pk=job.pk)


def test_a_file_without_a_phone_column_says_so(signed_in: Client) -> None:
    page = upload(signed_in, "name,town\nAnn,Leeds\n")
    assert "no phone column" in page.content.decode()
    assert ImportJob.objects.get().status == ImportJob.Status.FAILED
    assert "Discard" in page.content.decode()


def test_an_oversized_upload_is_refused_and_never_stored(signed_in: Client, settings: Any) -> None:
    settings.HERALD_IMPORT_MAX_UPLOAD_BYTES = 50
    page = upload(signed_in, FILE * 3)
    assert "the most an upload may be" in page.content.decode()
    assert not ImportJob.objects.exists()


def test_only_importers_upload_and_confirm(client: Client, approver: User, marketer: User) -> None:
    client.force_login(approver)
    assert client.get("/contacts/import/").status_code == 403
    client.force_login(marketer)
    upload(client)
    job = ImportJob.objects.get()
    client.force_login(approver)
    assert client.get(f"/contacts/imports/{job.pk}/").status_code == 200  # may look
    assert client.post(f"/contacts/imports/{job.pk}/confirm/").status_code == 403
    assert client.post(f"/contacts/imports/{job.pk}/discard/").status_code == 403
    assert client.post(f"/contacts/imports/{job.pk}/mapping/", {}).status_code == 403
    job.refresh_from_db()
    assert job.status == ImportJob.Status.VALIDATED and not Group.objects.filter(
        contacts__isnull=False
    )


def test_a_file_whose_phone_column_has_another_name_is_mapped_after_its_check_failed(
    signed_in: Client,
) -> None:
    page = upload(signed_in, "handy,vorname\n07911 123456,Ann\n07911 12,Bob\n")
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED and job.header == ["handy", "vorname"]
    assert "How the columns are read" in page.content.decode()
    mapping = {"column_0": "phone", "column_1": "first_name"}
    page = post(signed_in, f"/contacts/imports/{job.pk}/mapping/", mapping)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.VALIDATED and job.failure_reason == ""
    assert job.preview["counts"]["imported"] == 1
    assert "too short for a UK mobile number" in page.content.decode()
    post(signed_in, f"/contacts/imports/{job.pk}/confirm/")
    assert Contact.objects.get().first_name == "Ann"
