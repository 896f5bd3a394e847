"""Pages and exports carry `Cache-Control: no-store`; static files and /healthz keep theirs."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign
from contacts.models import Contact, Group, ImportJob
from messaging.models import ProviderAccount


@pytest.fixture
def campaign(db: Any, simulator: ProviderAccount, marketer: User) -> Campaign:
    group = Group.objects.create(name="Customers")
    Contact.objects.create(phone="+447911200001", first_name="Ann").groups.add(group)
    made = Campaign.objects.create(
        name="Spring", provider_account=simulator, body="Hi", created_by=marketer
    )
    made.groups.add(group)
    return made


def cache_control(response: Any) -> str:
    return response.headers.get("Cache-Control", "")


def test_dashboard_and_admin_pages_are_never_stored(
    client: Client, campaign: Campaign, admin_user: User
) -> None:
    client.force_login(admin_user)
    pages = [
        "/",
        "/contacts/",
        "/reports/",
        "/approvals/",
        f"/campaigns/{campaign.pk}/",
        "/admin/",
        "/admin/contacts/contact/",
        f"/admin/contacts/contact/{Contact.objects.get().pk}/change/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in cache_control(response), url


def test_every_export_of_personal_data_is_never_stored(
    client: Client, campaign: Campaign, marketer: User, admin_user: User
) -> None:
    job = ImportJob.objects.create(original_name="people.csv", region="GB", created_by=marketer)
    job.error_report.save("errors.csv", ContentFile(b"line,error\n"))
    client.force_login(admin_user)
    today = timezone.localdate().isoformat()
    exports = {
        "campaign recipients": client.get(f"/campaigns/{campaign.pk}/export.csv"),
        "reports": client.get("/reports/", {"from": today, "to": today, "format": "csv"}),
        "contacts": client.post(
            "/admin/contacts/contact/export/",
            {"format": "0", "resource": "0", "contactresource_phone": "on"},
        ),
        "opt-outs": client.post(
            "/admin/contacts/optout/export/",
            {"format": "0", "resource": "0", "optoutresource_phone": "on"},
        ),
        "rejected rows": client.get(f"/admin/contacts/importjob/{job.pk}/errors.csv"),
    }
    for name, response in exports.items():
        assert response.status_code == 200, name
        assert "attachment" in response.headers.get("Content-Disposition", ""), name
        assert "no-store" in cache_control(response), name


def test_the_sign_in_pages_are_never_stored(client: Client, db: Any) -> None:
    for url in ("/accounts/login/", "/accounts/password_reset/", "/admin/login/"):
        assert "no-store" in cache_control(client.get(url)), url


def test_static_files_and_the_health_check_keep_their_own_caching(
    client: Client, db: Any, settings: Any
) -> None:
    settings.WHITENOISE_USE_FINDERS = True  # no collectstatic before tests
    static = client.get("/static/herald/dashboard.css")
    assert static.status_code == 200
    assert "no-store" not in cache_control(static)
    health = client.get("/healthz")
    assert cache_control(health) == "max-age=0, no-cache, no-store, must-revalidate, private"
