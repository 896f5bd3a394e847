"""A marketer imports a contact file through the admin in Chromium."""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from contacts.models import Contact, ImportJob
from tests.contacts.conftest import csv_text, uk
from tests.e2e.test_admin_in_browser import SCREENSHOTS, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_upload_preview_confirm_and_download_rejected_rows(
    page: Any, live_server: Any, marketer: User, tmp_path: Path
) -> None:
    rows = [[uk(i), f"Name{i}", "Smith", f"n{i}@example.com", "gold"] for i in range(40)]
    rows.append(["not a number", "Bad", "", "", ""])
    upload = tmp_path / "spring.csv"
    upload.write_text(csv_text(rows))
    base = live_server.url

    log_in(page, base, marketer)
    page.goto(f"{base}/admin/contacts/contact/")
    page.click("a.import_link")
    page.set_input_files("#id_file", str(upload))
    page.fill("#id_new_groups", "Spring")
    page.click("input[name=_save]")

    page.wait_for_selector("#preview-counts")
    assert "Preview: nothing is saved" in page.inner_text("#content-main")
    assert "invalid phone number" in page.inner_text("#preview-errors")
    assert Contact.objects.count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "import-preview.png"), full_page=True)

    page.click("input[name=confirm]")
    page.wait_for_selector("#job-counts")
    assert page.inner_text("#job-status") == "Completed"
    assert page.inner_text("#job-counts tbody td:first-child") == "40"
    with page.expect_download() as download:
        page.click("#error-report")
    report = Path(download.value.path()).read_text()
    assert "not a number" in report and "invalid phone number" in report
    assert Contact.objects.filter(groups__name="Spring").count() == 40
    assert ImportJob.objects.get().status == ImportJob.Status.COMPLETED
