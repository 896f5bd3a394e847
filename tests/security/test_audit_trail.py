"""The audit log of campaign transitions and exports, and spreadsheet-safe CSV exports."""

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from campaigns.models import Campaign, TransitionNotAllowed
from contacts.models import Contact, Group, ImportJob, OptOut
from messaging.models import ProviderAccount

A = AuditEvent.Action
FORMULA = '=HYPERLINK("http://evil.example","x")'
OFFICE = "198.51.100.20"


@pytest.fixture
def campaign(db: Any, simulator: ProviderAccount, marketer: User) -> Campaign:
    group = Group.objects.create(name="Customers")
    Contact.objects.create(phone="+447911200001", first_name=FORMULA).groups.add(group)
    made = Campaign.objects.create(
        name="Spring", provider_account=simulator, body="Hi", created_by=marketer
    )
    made.groups.add(group)
    return made


def transitions() -> list[tuple[Any, ...]]:
    rows = AuditEvent.objects.filter(action=A.CAMPAIGN_TRANSITION).order_by("pk")
    return [(e.actor_name, e.object_id, e.detail, e.ip) for e in rows]


def test_each_transition_is_audited_with_who_and_from_where(
    client: Client, campaign: Campaign, marketer: User, approver: User
) -> None:
    client.force_login(marketer)
    client.post(f"/campaigns/{campaign.pk}/action/submit/", REMOTE_ADDR=OFFICE)
    campaign.refresh_from_db()
    campaign.approve(by=approver)  # outside a request: no address
    pk = str(campaign.pk)
    submitted, approved = transitions()[:2]
    assert submitted == (
        "mia",
        pk,
        {"action": "submit", "from": "draft", "to": "pending_approval"},
        OFFICE,
    )
    # The approval also records the figures it approved (the audience rule's result).
    name, object_id, detail, address = approved
    assert (name, object_id, address) == ("arno", pk, None)
    assert detail.pop("approved")["queued"] == campaign.estimate["queued"]
    assert detail == {"action": "approve", "from": "pending_approval", "to": "scheduled"}
    # The engine's own moves (start, complete) are there too, with no one as actor.
    engine = [d for name, _, d, _ in transitions() if name == ""]
    assert {d["action"] for d in engine} <= {"start", "complete"}


def test_a_refused_transition_leaves_no_audit_record(
    campaign: Campaign, marketer: User, approver: User
) -> None:
    with pytest.raises(TransitionNotAllowed):
        campaign.approve(by=approver)  # still a draft
    with pytest.raises(PermissionDenied):
        campaign.approve(by=marketer)
    assert transitions() == []
    assert campaign.transitions.count() == 0


def test_every_export_is_audited(
    client: Client, campaign: Campaign, marketer: User, admin_user: User
) -> None:
    job = ImportJob.objects.create(original_name="people.csv", region="GB", created_by=marketer)
    job.error_report.save("errors.csv", ContentFile(b"line,error\n"))
    client.force_login(admin_user)
    today = timezone.localdate().isoformat()
    responses = [
        client.get(f"/campaigns/{campaign.pk}/export.csv", REMOTE_ADDR=OFFICE),
        client.get("/reports/", {"from": today, "to": today, "format": "csv"}),
        client.post(
            "/admin/contacts/contact/export/",
            {"format": "0", "resource": "0", "contactresource_phone": "on"},
        ),
        client.post(
            "/admin/contacts/optout/export/",
            {"format": "0", "resource": "0", "optoutresource_phone": "on"},
        ),
        client.get(f"/admin/contacts/importjob/{job.pk}/errors.csv"),
    ]
    assert [r.status_code for r in responses] == [200] * 5
    exports = AuditEvent.objects.filter(action=A.EXPORT).order_by("pk")
    assert [(e.actor_name, e.detail["export"]) for e in exports] == [
        ("admin", "campaign recipients"),
        ("admin", "campaign report"),
        ("admin", "contacts"),
        ("admin", "opt-outs"),
        ("admin", "rejected import rows"),
    ]
    assert exports[0].ip == OFFICE and exports[0].object_id == str(campaign.pk)


def csv_rows(response: Any) -> list[list[str]]:
    if response.streaming:
        text = b"".join(response.streaming_content).decode()
    else:
        text = response.content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_exports_never_hand_a_spreadsheet_a_formula(
    client: Client, campaign: Campaign, simulator: ProviderAccount, admin_user: User
) -> None:
    OptOut.objects.create(phone="+447911200002", note="@SUM(1+1)*cmd|' /C calc'!A0")
    ProviderAccount.objects.filter(pk=simulator.pk).update(name="-2+3+cmd|' /C calc'!A0")
    campaign.name = "+cmd"
    campaign.save()
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.COMPLETED, started_at=timezone.now()
    )
    client.force_login(admin_user)
    today = timezone.localdate().isoformat()
    contacts = client.post(
        "/admin/contacts/contact/export/",
        {"format": "0", "resource": "0", "contactresource_first_name": "on"},
    )
    opt_outs = client.post(
        "/admin/contacts/optout/export/",
        {"format": "0", "resource": "0", "optoutresource_note": "on"},
    )
    report = client.get("/reports/", {"from": today, "to": today, "format": "csv"})
    cells = [c for r in (contacts, opt_outs, report) for row in csv_rows(r)[1:] for c in row]
    assert "'" + FORMULA in cells
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in cells
    assert "'-2+3+cmd|' /C calc'!A0" in cells and "'+cmd" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
