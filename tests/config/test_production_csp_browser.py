"""Under the Content-Security-Policy, the admin's and the dashboard's scripts still run.

Chromium reports every blocked script, style or request on its console; none may appear.
The admin's widgets and the import rollback's confirmation prove the scripts ran.
"""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from campaigns.models import Campaign
from contacts.models import Contact, Group, ImportJob
from messaging.models import ProviderAccount
from tests.contacts.conftest import csv_text, uk
from tests.e2e.conftest import page  # noqa: F401 (the fixture)
from tests.e2e.test_admin_in_browser import log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def watch_console(tab: Any) -> list[str]:
    """Everything the policy refused, and every uncaught script error, from now on."""
    problems: list[str] = []

    def note(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(message.text)

    tab.on("console", note)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_admin_and_dashboard_scripts_run_and_nothing_is_refused(
    page: Any,  # noqa: F811 (the fixture)
    live_server: Any,
    admin_user: User,
    locmem: ProviderAccount,
    make_campaign: Any,
) -> None:
    admin_user.set_password("pw-admin")
    admin_user.save()
    group = Group.objects.create(name="Everyone")
    campaign = make_campaign(locmem, group)
    problems = watch_console(page)
    base = live_server.url
    log_in(page, base, admin_user)

    # filter_horizontal is drawn by the admin's SelectFilter2.js.
    page.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/change/")
    page.wait_for_selector(".selector-available")
    for path in [
        "/admin/",
        "/admin/contacts/contact/",
        f"/admin/messaging/provideraccount/{locmem.pk}/change/",
        "/",
        f"/campaigns/{campaign.pk}/",
        "/campaigns/new/",
        "/approvals/",
        "/reports/",
    ]:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
    assert problems == []
    assert Campaign.objects.get().status == Campaign.Status.DRAFT


def test_the_import_rollback_asks_first_under_the_policy(
    page: Any,  # noqa: F811 (the fixture)
    live_server: Any,
    marketer: User,
    tmp_path: Path,
) -> None:
    problems = watch_console(page)
    upload = tmp_path / "few.csv"
    upload.write_text(csv_text([[uk(i), f"Name{i}", "Smith", "", ""] for i in range(3)]))
    base = live_server.url
    log_in(page, base, marketer)
    page.goto(f"{base}/admin/contacts/importjob/add/")
    page.set_input_files("#id_file", str(upload))
    page.click("input[name=_save]")
    page.click("input[name=confirm]")
    page.wait_for_selector("#job-counts")
    assert Contact.objects.count() == 3

    answers: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        answers.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    page.click("input[name=rollback]")
    page.wait_for_timeout(500)
    assert len(answers) == 1 and answers[0].startswith("Undo this import?")
    assert ImportJob.objects.get().status == ImportJob.Status.COMPLETED  # "no" kept it

    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    page.click("input[name=rollback]")
    page.wait_for_load_state("networkidle")
    assert len(answers) == 2
    assert ImportJob.objects.get().status == ImportJob.Status.ROLLED_BACK
    assert Contact.objects.count() == 0
    assert problems == []
