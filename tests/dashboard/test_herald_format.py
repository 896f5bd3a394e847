"""One money format and one date format on every page (dashboard.templatetags.herald_format)."""

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.http import JsonResponse
from django.template import Context, Template
from django.test import Client, override_settings
from django.utils import timezone

from campaigns.models import Campaign
from contacts.models import Contact, Group, OptOut
from contacts.resources import ContactResource, OptOutResource
from dashboard.templatetags.herald_format import money, when
from messaging.models import ProviderAccount


def render(source: str, **context: object) -> str:
    return Template("{% load herald_format %}" + source).render(Context(context))


def test_money_is_the_amount_with_two_decimals_and_the_currency() -> None:
    assert money(Decimal("12.5"), "GBP") == "12.50 GBP"
    assert money(Decimal("0.03500"), "EUR") == "0.04 EUR"  # half a cent rounds up
    assert money("1234567.004", "USD") == "1,234,567.00 USD"
    assert money("0", "GBP") == "0.00 GBP"


def test_money_without_an_amount_is_a_dash_not_zero() -> None:
    assert money(None, "GBP") == "—"
    assert render("{{ cost|money:'GBP' }}", cost=None) == "—"


def test_money_in_a_template_takes_the_accounts_currency() -> None:
    assert render("{{ cost|money:currency }}", cost=Decimal("0.12000"), currency="TRY") == (
        "0.12 TRY"
    )


@override_settings(TIME_ZONE="Europe/London")
def test_when_names_the_day_in_words_and_the_site_zone() -> None:
    with timezone.override("Europe/London"):
        assert when(datetime(2026, 12, 3, 14, 5, tzinfo=UTC)) == "3 Dec 2026, 14:05 GMT"
        # Summer time: the clock and the zone's name both move.
        assert when(datetime(2026, 7, 3, 14, 5, tzinfo=UTC)) == "3 Jul 2026, 15:05 BST"


def test_when_of_a_day_or_nothing() -> None:
    assert when(date(2026, 12, 3)) == "3 Dec 2026"
    assert when(None) == ""


def test_when_time_wraps_the_words_in_a_time_element_with_iso_8601() -> None:
    moment = datetime(2026, 12, 3, 14, 5, 9, tzinfo=UTC)
    with timezone.override("Europe/Istanbul"):
        html = render("{% when_time moment %}", moment=moment)
    assert html == '<time datetime="2026-12-03T17:05:09+03:00">3 Dec 2026, 17:05 +03</time>'
    assert render("{% when_time moment %}", moment=None) == ""


def test_the_approvers_home_shows_when_a_campaign_was_submitted_in_the_one_format(
    client: Client,
    approver: User,
    marketer: User,
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
) -> None:
    group = Group.objects.create(name="Customers")
    make_contacts(2, group)
    campaign = make_campaign(simulator, group)
    campaign.submit(by=marketer)
    submitted_at = datetime(2026, 12, 3, 14, 5, tzinfo=UTC)
    Campaign.objects.filter(pk=campaign.pk).update(submitted_at=submitted_at)
    client.force_login(approver)
    page = client.get("/").content.decode()
    assert '<time datetime="2026-12-03T14:05:00+00:00">3 Dec 2026, 14:05 UTC</time>' in page


@pytest.mark.django_db
def test_contact_and_opt_out_exports_write_moments_as_iso_8601_with_their_offset() -> None:
    contact = Contact.objects.create(phone="+447911200001")
    opt_out = OptOut.objects.create(phone="+447911200001", channel="sms")
    for resource, stored in ((ContactResource(), contact), (OptOutResource(), opt_out)):
        dataset = resource.export()
        written = dict(zip(dataset.headers, dataset[0], strict=True))["created_at"]
        assert datetime.fromisoformat(written) == stored.created_at.replace(microsecond=0)
        assert "T" in written and written.endswith("+00:00")


def test_json_endpoints_write_moments_as_iso_8601() -> None:
    """Every JSON answer goes through Django's encoder, which writes ISO 8601."""
    moment = datetime(2026, 12, 3, 14, 5, 9, tzinfo=UTC)
    body = json.loads(JsonResponse({"at": moment}).content)
    assert datetime.fromisoformat(body["at"].replace("Z", "+00:00")) == moment
