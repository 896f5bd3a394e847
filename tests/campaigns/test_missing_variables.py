"""Recipients missing a variable are counted per variable, in the database, and a fallback
(`{{city|there}}`) is what the preview, the test send and the engine's build all render."""

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import messaging
from campaigns.models import Campaign, MessageTemplate
from campaigns.preview import estimate, missing_text
from campaigns.testsend import send_test
from contacts.models import Contact, Group, OptOut
from messaging.models import Message, ProviderAccount
from messaging.rendering import Placeholder, fallbacks, parse, render
from tests.conftest import own_test_number, phone
from tests.dashboard.test_builder_and_approvals import form_data

pytestmark = pytest.mark.django_db

MakeCampaign = Callable[..., Campaign]


@pytest.fixture
def group(db: Any) -> Group:
    """Three contacts in Leeds, one with an empty city, one with none and no first name, and
    an opted-out one without a city (not a recipient, so not counted)."""
    group = Group.objects.create(name="Customers")
    people = [
        ("Ann", {"city": "Leeds"}),
        ("Bob", {"city": "Leeds"}),
        ("Cy", {"city": "Leeds"}),
        ("Di", {"city": ""}),
        ("", {}),
        ("Ed", {}),
    ]
    for i, (first_name, attributes) in enumerate(people):
        contact = Contact.objects.create(
            phone=phone(i), first_name=first_name, attributes=attributes
        )
        contact.groups.add(group)
    OptOut.objects.create(phone=phone(5), channel="sms")
    return group


def test_the_one_parser_reads_fallbacks() -> None:
    assert parse("Hi {{ first_name | there }} in {{city}}{{town|}}") == [
        Placeholder("first_name", "there"),
        Placeholder("city", None),
        Placeholder("town", ""),
    ]
    # A variable used once without a fallback is missing there, whatever its other uses say.
    assert fallbacks("{{city|here}} and {{city}}", "{{name|you}}") == {"city": None, "name": "you"}
    assert render("Hi {{first_name|there}}{{city}}.", {"first_name": ""}) == "Hi there."


def test_the_estimate_counts_recipients_missing_each_variable(
    make_campaign: MakeCampaign, locmem: ProviderAccount, group: Group
) -> None:
    campaign = make_campaign(locmem, group, body="Hi {{first_name|there}}, news from {{city}}")
    missing = estimate(campaign).as_json()["missing"]
    assert missing == [
        {"variable": "first_name", "recipients": 1, "fallback": "there"},
        {"variable": "city", "recipients": 2, "fallback": None},
    ]
    assert (
        missing_text(missing[0]) == "1 recipient has no {{first_name}}: they get “there” instead."
    )
    assert missing_text(missing[1]).startswith(
        "2 recipients have no {{city}}: it is left out of their message (they are still sent it)."
    )


def test_the_count_is_made_in_the_database_whatever_the_audience_size(
    make_campaign: MakeCampaign, locmem: ProviderAccount, group: Group
) -> None:
    campaign = make_campaign(locmem, group, body="Hi {{first_name|there}} in {{city}}")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            estimate(campaign, samples=0)
        return len(captured.captured_queries)

    before = queries()
    for i in range(100, 400):
        Contact.objects.create(phone=phone(i), attributes={"city": "York"}).groups.add(group)
    assert queries() == before
    assert estimate(campaign, samples=0).missing[0].recipients == 301  # first names


def test_the_builder_preview_names_each_missing_variable(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    client = Client()
    client.force_login(marketer)
    data = form_data(locmem, group, body="Hi {{first_name}}, news from {{city|your town}}")
    answer = client.post(reverse("dashboard:campaign_preview"), data).json()
    assert [m["text"] for m in answer["missing"]] == [
        "1 recipient has no {{first_name}}: it is left out of their message (they are still "
        "sent it). Give a fallback to say something else: {{first_name|…}}.",
        "2 recipients have no {{city}}: they get “your town” instead.",
    ]


def test_a_fallback_is_honoured_by_preview_test_send_and_the_real_send(
    make_campaign: MakeCampaign,
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    group = Group.objects.create(name="Nameless")
    for i, (first_name, attributes) in enumerate([("", {}), ("Ann", {"city": "Leeds"})]):
        contact = Contact.objects.create(
            phone=phone(i), first_name=first_name, attributes=attributes
        )
        contact.groups.add(group)
    campaign = make_campaign(locmem, group, body="Hi {{first_name|there}}, sale in {{city|town}}")
    expected = ["Hi there, sale in town", "Hi Ann, sale in Leeds"]

    assert [s.body for s in estimate(campaign).samples] == expected

    number = own_test_number(marketer, "+447911123456")
    send_test(campaign, number.phone, by=marketer)  # for the first recipient: the nameless one
    assert [m.body for m in messaging.outbox] == [expected[0]]

    messaging.outbox.clear()
    campaign.submit(by=marketer)
    with django_capture_on_commit_callbacks(execute=True):
        campaign.approve(by=approver)  # the test worker runs the engine once it commits
    sent = Message.objects.filter(campaign=campaign).order_by("contact_id")
    assert [m.body for m in sent] == expected
    assert sorted(m.body for m in messaging.outbox) == sorted(expected)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.COMPLETED


def test_whatsapp_parameters_take_fallbacks_too(
    make_campaign: MakeCampaign,
    marketer: User,
    approver: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    account = ProviderAccount.objects.create(name="wa", backend=ProviderAccount.Backend.LOCMEM)
    group = Group.objects.create(name="G")
    for i, first_name in enumerate(["", "Ann"]):
        Contact.objects.create(phone=phone(i), first_name=first_name).groups.add(group)
    template = MessageTemplate.objects.create(
        name="wa",
        channel="whatsapp",
        body="Hello {{first_name|friend}}",
        whatsapp_template_id="welcome_1",
        whatsapp_parameters=["first_name|friend"],
    )
    campaign = make_campaign(account, group, body="")
    campaign.channel, campaign.template = "whatsapp", template
    campaign.save()
    figures = estimate(campaign)
    assert [m.variable for m in figures.missing] == ["first_name"]
    assert figures.missing[0].fallback == "friend"

    campaign.submit(by=marketer)
    with django_capture_on_commit_callbacks(execute=True):
        campaign.approve(by=approver)
    sent = Message.objects.filter(campaign=campaign).order_by("contact_id")
    assert [m.template_params for m in sent] == [["friend"], ["Ann"]]


def test_a_changed_fallback_is_a_changed_message(
    make_campaign: MakeCampaign, locmem: ProviderAccount, group: Group
) -> None:
    """The approval binds the fallback: its hash and the approved renderings both change."""
    here = make_campaign(locmem, group, body="News from {{city|here}}")
    there = make_campaign(locmem, group, body="News from {{city|there}}")
    assert here.compute_content_hash() != there.compute_content_hash()
    assert estimate(here).renderings != estimate(there).renderings


def test_campaign_preview_on_the_command_line_counts_them_too(
    make_campaign: MakeCampaign, locmem: ProviderAccount, group: Group
) -> None:
    campaign = make_campaign(locmem, group, body="Hi {{first_name|there}} in {{city}}")
    out = io.StringIO()
    call_command("campaign", "preview", str(campaign.pk), stdout=out)
    assert "2 recipients have no {{city}}: it is left out" in out.getvalue()
    out = io.StringIO()
    call_command("campaign", "preview", str(campaign.pk), "--json", stdout=out)
    assert json.loads(out.getvalue())["missing"][1] == {
        "variable": "city",
        "recipients": 2,
        "fallback": None,
    }


def test_the_admins_test_send_page_shows_the_fallback(
    make_campaign: MakeCampaign, locmem: ProviderAccount, marketer: User
) -> None:
    group = Group.objects.create(name="Nameless")
    Contact.objects.create(phone=phone(0), first_name="").groups.add(group)
    campaign = make_campaign(locmem, group, body="Hi {{first_name|there}}")
    client = Client()
    client.force_login(marketer)
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/test/").content.decode()
    assert "Hi there" in page


def test_the_admins_campaign_page_counts_them(
    make_campaign: MakeCampaign, locmem: ProviderAccount, group: Group, make_user: Any
) -> None:
    campaign = make_campaign(locmem, group, body="Hi {{first_name}} in {{city|town}}")
    client = Client()
    client.force_login(make_user("su", "Marketers"))
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "1 recipient has no {{first_name}}" in page
    assert "2 recipients have no {{city}}: they get “town” instead." in page


def test_the_dashboards_campaign_page_counts_them(
    make_campaign: MakeCampaign, locmem: ProviderAccount, group: Group, make_user: Any
) -> None:
    campaign = make_campaign(locmem, group, body="Hi {{first_name}} in {{city|town}}")
    client = Client()
    client.force_login(make_user("mo", "Marketers"))
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    missing = page[page.index('id="campaign-missing"') :]
    assert "1 recipient has no {{first_name}}" in missing
    assert "2 recipients have no {{city}}: they get “town” instead." in missing
