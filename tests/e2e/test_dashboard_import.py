"""A marketer imports a contact file from the dashboard in Chromium: upload, change how a
column is read, confirm, watch the worker's progress live, download the rejected rows."""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django_q.conf import Conf

from contacts.models import Contact, ImportJob
from contacts.tasks import run_import
from tests.contacts.conftest import uk
from tests.e2e.test_admin_in_browser import SCREENSHOTS, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_upload_change_a_column_confirm_watch_progress_and_download_rejected_rows(
    page: Any, live_server: Any, marketer: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Confirming queues the import for a worker, as in production (not run in the request).
    monkeypatch.setattr(Conf, "SYNC", False)
    lines = ["mobile,given,surname,town"]
    lines += [f"{uk(i)},Name{i},Smith,Leeds" for i in range(40)]
    lines.append("07911 12,Bob,Short,York")
    upload = tmp_path / "spring.csv"
    upload.write_text("\n".join(lines) + "\n")
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    log_in(page, base, marketer)
    page.goto(f"{base}/contacts/")
    page.click("text=Import contacts")
    page.set_input_files("#id_file", str(upload))
    page.fill("#id_new_groups", "Spring")
    page.click("button:has-text('Upload and check')")

    page.wait_for_selector("#preview-counts")
    assert "too short for a UK mobile number" in page.inner_text("#preview-errors")
    # "given" is no known name: it becomes an attribute, until the mapping says otherwise.
    assert "given: Name0" in page.inner_text("#preview-samples")
    page.select_option("#id_column_1", "first_name")
    page.click("button:has-text('Change the columns')")
    page.wait_for_selector("#preview-samples")
    samples = page.inner_text("#preview-samples")
    assert "Name0" in samples and "given:" not in samples
    assert Contact.objects.count() == 0
    page.screenshot(path=str(SCREENSHOTS / "dashboard-import-preview.png"), full_page=True)

    page.click("#confirm-import")
    page.wait_for_selector("#job-progress")
    assert page.inner_text("#job-status") == "Queued"
    job = ImportJob.objects.get()
    run_import(job.pk)  # the worker picks it up while the page watches
    page.wait_for_selector("#job-status:text-is('Completed')")  # no reload by the test
    assert "40" in page.inner_text("#job-result")
    page.screenshot(path=str(SCREENSHOTS / "dashboard-import-done.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#error-report")
    report = Path(download.value.path()).read_text()
    assert "07911 12" in report and "too short for a UK mobile number" in report
    assert Contact.objects.filter(groups__name="Spring", first_name="Name0").count() == 1
    assert Contact.objects.filter(groups__name="Spring").count() == 40
