"""Every spreadsheet Herald writes quotes a formula, also one behind blanks or control characters.

The review's reproduction: " =HYPERLINK(...)" (a leading space) survived in the rejected-rows
CSV and in the reports CSV as a campaign name. Each door Herald writes a CSV or XLSX through
is read back here, cell by cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from import_export.formats.base_formats import XLSX
from openpyxl import load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from campaigns.models import Campaign
from contacts.models import Contact
from contacts.resources import ContactResource
from contacts.spreadsheets import runs_as_formula
from messaging.models import Message, ProviderAccount
from tests.conftest import phone

pytestmark = pytest.mark.django_db

DISGUISED = [
    ' =HYPERLINK("http://evil.example","x")',
    "\t=1+1",
    "\u00a0@SUM(A1)",
    "\u200b+cmd|' /C calc'!A0",
    "\r-2+3",
    "\x01=1",  # a control character, which XLSX cannot even hold
]


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    return client


def unquoted(cells: list[str]) -> list[str]:
    return [cell for cell in cells if runs_as_formula(cell) and not cell.startswith("'")]


def test_the_reports_csv_quotes_a_campaign_name_behind_blanks(
    admin_client: Client, make_campaign: Callable[..., Campaign], simulator: ProviderAccount
) -> None:
    for name in DISGUISED:
        campaign = make_campaign(simulator)
        Campaign.objects.filter(pk=campaign.pk).update(
            name=name, status=Campaign.Status.COMPLETED, started_at=timezone.now()
        )
    today = timezone.localdate().isoformat()

    response = admin_client.get("/reports/", {"from": today, "to": today, "format": "csv"})

    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    names = [row[0] for row in csv.reader(io.StringIO(text))][1:]
    assert sorted(names) == sorted("'" + name for name in DISGUISED)
    assert unquoted(names) == []


def test_the_campaign_export_quotes_provider_text_behind_blanks(
    admin_client: Client, make_campaign: Callable[..., Campaign], simulator: ProviderAccount
) -> None:
    campaign = make_campaign(simulator)
    for i, text in enumerate(DISGUISED):
        Message.objects.create(
            campaign=campaign,
            provider_account=simulator,
            phone=phone(i),
            body="Hi",
            client_ref=Message.new_client_ref(),
            status=Message.Status.FAILED,
            error_code=text[:32],
            provider_message_id=text[:64],
        )

    response = admin_client.get(f"/campaigns/{campaign.pk}/export.csv")

    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(text)))[1:]
    cells = [cell for row in rows for cell in row]
    assert len(rows) == len(DISGUISED)
    assert unquoted(cells) == []
    assert {row[3] for row in rows} == {"'" + text[:32] for text in DISGUISED}


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_contact_export_quotes_names_behind_blanks(file_format: str) -> None:
    for i, name in enumerate(DISGUISED):
        Contact.objects.create(phone=phone(i), first_name=name, attributes={"note": name})

    dataset = ContactResource().export()

    if file_format == "csv":
        rows = list(csv.reader(io.StringIO(dataset.csv)))
        expected = DISGUISED
    else:  # as the admin's export writes it: characters XLSX cannot hold become U+FFFD
        exported = XLSX().export_data(dataset)
        sheet = load_workbook(io.BytesIO(exported), read_only=True).worksheets[0]
        rows = [
            ["" if c is None else str(c) for c in row] for row in sheet.iter_rows(values_only=True)
        ]
        # (and XML reads a carriage return back as a line feed)
        held = [ILLEGAL_CHARACTERS_RE.sub("\N{REPLACEMENT CHARACTER}", n) for n in DISGUISED]
        expected = [name.replace("\r", "\n") for name in held]
    cells = [cell for row in rows[1:] for cell in row]
    assert unquoted(cells) == []
    names = [row[rows[0].index("first_name")] for row in rows[1:]]
    assert sorted(names) == sorted("'" + name for name in expected)
