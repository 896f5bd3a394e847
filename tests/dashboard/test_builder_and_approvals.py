from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

import messaging
from campaigns.models import Campaign
from campaigns.testsend import send_test
from contacts.models import Contact, Group, OptOut
from messaging.models import Message, ProviderAccount
from tests.conftest import own_test_number

pytestmark = pytest.mark.django_db

MakeCampaign = Callable[..., Campaign]
MakeContacts = Callable[..., list[Contact]]


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(account: ProviderAccount, group: Group, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Spring sale",
        "channel": "sms",
        "provider_account": account.pk,
        "sender": "",
        "template": "",
        "body": "Hi {{first_name}}, 20% off today.",
        # Ticked, as the page shows them for a new campaign.
        "track_links": "on",
        "link_utm": "on",
        "groups": [group.pk],
        "scheduled_at_0": "",
        "scheduled_at_1": "",
        "time_zone": "Europe/London",
        "window_start": "",
        "window_end": "",
        "brake_failure_rate": "0.5",
        "brake_window": "200",
        "action": "save",
    }
    data.update(changes)
    return data


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def group(db: Any) -> Group:
    return Group.objects.create(name="Customers")


@pytest.fixture
def submitted(
    make_campaign: MakeCampaign, make_contacts: MakeContacts, locmem: ProviderAccount, group: Group
) -> Campaign:
    make_contacts(3, group)
    campaign = make_campaign(locmem, group)
    campaign.submit(by=campaign.created_by)
    return campaign


# Who may open the pages.


@pytest.mark.parametrize(
    "url", ["/campaigns/new/", "/campaigns/1/edit/", "/campaigns/1/test/", "/approvals/"]
)
def test_anonymous_users_are_sent_to_the_login_page(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_approver_without_build_rights_cannot_use_the_builder(approver: User) -> None:
    client = signed_in(approver)
    assert client.get(reverse("dashboard:campaign_new")).status_code == 403
    assert client.post(reverse("dashboard:campaign_preview")).status_code == 403


def test_a_marketer_cannot_open_the_approval_queue(marketer: User, submitted: Campaign) -> None:
    client = signed_in(marketer)
    assert client.get(reverse("dashboard:approvals")).status_code == 403
    url = reverse("dashboard:approve", args=(submitted.pk,))
    assert client.post(url, {"content_hash": submitted.content_hash}).status_code == 403
    submitted.refresh_from_db()
    assert submitted.status == Campaign.Status.PENDING_APPROVAL


# The builder.


def test_the_builder_labels_every_field(marketer: User, locmem: ProviderAccount) -> None:
    response = signed_in(marketer).get(reverse("dashboard:campaign_new"))
    html = response.content.decode()
    assert response.status_code == 200
    for field_id in (
        "id_name",
        "id_body",
        "id_scheduled_at_0",
        "id_scheduled_at_1",
        "id_window_start",
    ):
        assert f'for="{field_id}"' in html
    assert "<legend>Audience</legend>" in html
    assert 'aria-live="polite"' in html


def test_a_marketer_creates_a_draft(marketer: User, locmem: ProviderAccount, group: Group) -> None:
    response = signed_in(marketer).post(
        reverse("dashboard:campaign_new"),
        form_data(locmem, group, scheduled_at_0="2030-07-01", scheduled_at_1="09:30"),
    )
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:campaign", args=(campaign.pk,))
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.created_by == marketer
    assert list(campaign.groups.all()) == [group]
    # 09:30 in London in July is 08:30 UTC.
    assert campaign.scheduled_at is not None
    assert campaign.scheduled_at.isoformat() == "2030-07-01T08:30:00+00:00"


def test_invalid_fields_are_shown_linked_to_their_errors(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    response = signed_in(marketer).post(
        reverse("dashboard:campaign_new"), form_data(locmem, group, name="")
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_name_error"' in html
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="id_name_error"' in html
    assert not Campaign.objects.exists()


def test_a_marketer_edits_a_draft(
    marketer: User, make_campaign: MakeCampaign, locmem: ProviderAccount, group: Group
) -> None:
    campaign = make_campaign(locmem, group)
    url = reverse("dashboard:campaign_edit", args=(campaign.pk,))
    client = signed_in(marketer)
    assert client.get(url).status_code == 200
    response = client.post(url, form_data(locmem, group, body="Hello {{first_name|friend}}"))
    campaign.refresh_from_db()
    assert response.status_code == 302
    assert campaign.body == "Hello {{first_name|friend}}"


def test_submit_saves_then_sends_the_campaign_for_approval(
    marketer: User, locmem: ProviderAccount, group: Group, make_contacts: MakeContacts
) -> None:
    make_contacts(2, group)
    response = signed_in(marketer).post(
        reverse("dashboard:campaign_new"), form_data(locmem, group, action="submit")
    )
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    assert campaign.submitted_by == marketer
    assert campaign.estimate["sendable"] == 2


def test_a_refused_submit_is_explained_on_the_form(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    data = form_data(locmem, group, action="submit")
    data["groups"] = []
    response = signed_in(marketer).post(reverse("dashboard:campaign_new"), data)
    assert response.status_code == 200
    assert "it has no audience" in response.content.decode()
    assert Campaign.objects.get().status == Campaign.Status.DRAFT


# The live preview.


def preview(user: User, data: dict[str, Any]) -> dict[str, Any]:
    response = signed_in(user).post(reverse("dashboard:campaign_preview"), data)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_the_preview_counts_the_audience_and_its_segments(
    marketer: User, locmem: ProviderAccount, group: Group, make_contacts: MakeContacts
) -> None:
    contacts = make_contacts(4, group)
    OptOut.objects.create(phone=contacts[0].phone, channel="sms")
    locmem.price_per_segment = "0.04000"
    locmem.save()
    data = preview(marketer, form_data(locmem, group, name=""))
    assert (data["audience"], data["opted_out"], data["sendable"]) == (4, 1, 3)
    assert data["segments"] == 3
    assert data["cost"] == "0.12 GBP"
    assert data["encoding"] == "gsm7"
    assert [s["body"] for s in data["samples"]] == [
        "Hi Name1, 20% off today.",
        "Hi Name2, 20% off today.",
        "Hi Name3, 20% off today.",
    ]
    assert data["errors"] == []


def test_the_preview_names_the_characters_that_force_ucs2(
    marketer: User, locmem: ProviderAccount, group: Group, make_contacts: MakeContacts
) -> None:
    make_contacts(1, group)
    data = preview(marketer, form_data(locmem, group, body="Our “best” offer"))
    assert data["encoding"] == "ucs2"
    assert [c["character"] for c in data["ucs2_characters"]] == ["“", "”"]
    assert data["ucs2_characters"][0]["code_point"] == "U+201C"
    assert data["samples"][0]["encoding"] == "ucs2"
    assert data["samples"][0]["ucs2_characters"] == ["“", "”"]


def test_the_preview_reports_unknown_variables(
    marketer: User, locmem: ProviderAccount, group: Group, make_contacts: MakeContacts
) -> None:
    make_contacts(1, group)
    data = preview(marketer, form_data(locmem, group, body="Hi {{nickname}}"))
    assert any("{{nickname}}" in error for error in data["errors"])


def test_the_preview_refuses_get(marketer: User) -> None:
    assert signed_in(marketer).get(reverse("dashboard:campaign_preview")).status_code == 405


# Test send.


def test_a_test_send_goes_through_the_campaigns_account(
    marketer: User, make_campaign: MakeCampaign, locmem: ProviderAccount, group: Group
) -> None:
    campaign = make_campaign(locmem, group, body="Hi {{first_name|there}}")
    number = own_test_number(marketer, "+447911123456", "work mobile")
    url = reverse("dashboard:campaign_test", args=(campaign.pk,))
    client = signed_in(marketer)
    page = client.get(url).content.decode()
    assert 'type="radio" name="number"' in page and "work mobile +44…56" in page
    assert "You may send 10 more tests this hour." in page
    response = client.post(url, {"number": number.pk})
    campaign.refresh_from_db()
    assert response.status_code == 200
    assert [m.phone for m in messaging.outbox] == ["+447911123456"]
    assert campaign.test_sent_at is not None
    assert campaign.test_sent_by == marketer
    html = response.content.decode()
    assert "Hi there" in html and '<span class="badge test-mark">Test</span> to +44…56' in html


def test_a_test_send_offers_no_number_to_type_and_refuses_anothers(
    marketer: User,
    make_user: Callable[..., User],
    make_campaign: MakeCampaign,
    locmem: ProviderAccount,
    group: Group,
) -> None:
    campaign = make_campaign(locmem, group)
    url = reverse("dashboard:campaign_test", args=(campaign.pk,))
    client = signed_in(marketer)
    page = client.get(url).content.decode()
    assert 'id="no-test-numbers"' in page and 'name="number"' not in page
    colleagues = own_test_number(make_user("cy", "Marketers"), "+447911123456")
    for forged in ({"phone": "+447911654321"}, {"number": colleagues.pk}):
        client.post(url, forged)
    own_test_number(marketer, "+447911000111")
    response = client.post(url, {"number": colleagues.pk})
    assert "Choose one of your own test numbers." in response.content.decode()
    assert messaging.outbox == [] and not Message.objects.exists()


def test_save_and_test_send_goes_to_the_test_page(
    marketer: User, locmem: ProviderAccount, group: Group
) -> None:
    response = signed_in(marketer).post(
        reverse("dashboard:campaign_new"), form_data(locmem, group, action="test")
    )
    campaign = Campaign.objects.get()
    assert response["Location"] == reverse("dashboard:campaign_test", args=(campaign.pk,))


# The approval queue.


def test_the_queue_shows_rendered_samples_never_the_raw_template(
    approver: User, submitted: Campaign
) -> None:
    response = signed_in(approver).get(reverse("dashboard:approvals"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Spring" in html
    assert "Hi Name0" in html and "Hi Name2" in html
    assert "{{" not in html
    assert submitted.content_hash in html
    assert 'for="reason-' in html


def test_the_queue_shows_skips_by_reason_cost_missing_variables_and_the_test(
    approver: User,
    marketer: User,
    make_campaign: MakeCampaign,
    make_contacts: MakeContacts,
    locmem: ProviderAccount,
    group: Group,
) -> None:
    contacts = make_contacts(4, group)
    OptOut.objects.create(phone=contacts[0].phone, channel="sms")
    Contact.objects.filter(pk=contacts[1].pk).update(phone="+44123")  # not a number
    Contact.objects.filter(pk=contacts[2].pk).update(first_name="")
    locmem.price_per_segment = "0.04000"
    locmem.save()
    campaign = make_campaign(locmem, group, body="Hi {{first_name}}, 20% off")
    own_test_number(marketer, "+447911123456")
    send_test(campaign, "+447911123456", by=marketer)
    campaign.submit(by=marketer)
    html = signed_in(approver).get(reverse("dashboard:approvals")).content.decode()
    skips = html[html.index(f'id="skips-{campaign.pk}"') :]
    assert "Opted out: 1" in skips and "Invalid number: 1" in skips
    assert f'id="queued-{campaign.pk}">2<' in html
    assert f'id="cost-{campaign.pk}">0.08 GBP<' in html
    assert "1 recipient has no {{first_name}}" in html
    test = html[html.index(f'id="test-{campaign.pk}"') :]
    assert test.startswith(f'id="test-{campaign.pk}">Sent by mia, <time')
    assert "Hi Name3, 20% off" in html


def test_the_queue_shows_no_approve_button_on_ones_own_campaign_and_says_why(
    make_user: Callable[..., User],
    approver: User,
    make_contacts: MakeContacts,
    locmem: ProviderAccount,
    group: Group,
) -> None:
    both = make_user("bo", "Marketers", "Approvers")
    make_contacts(1, group)
    campaign = Campaign.objects.create(
        name="Own", provider_account=locmem, body="Hi", created_by=both
    )
    campaign.groups.add(group)
    campaign.submit(by=both)
    own = signed_in(both).get(reverse("dashboard:approvals")).content.decode()
    assert f'action="{reverse("dashboard:approve", args=(campaign.pk,))}"' not in own
    assert (
        f'No Approve button: <span id="withheld-{campaign.pk}">'
        "You cannot approve a campaign you submitted yourself.</span>"
    ) in own
    assert f'action="{reverse("dashboard:reject", args=(campaign.pk,))}"' in own
    others = signed_in(approver).get(reverse("dashboard:approvals")).content.decode()
    assert f'action="{reverse("dashboard:approve", args=(campaign.pk,))}"' in others


def test_an_approver_approves_in_one_click(approver: User, submitted: Campaign) -> None:
    response = signed_in(approver).post(
        reverse("dashboard:approve", args=(submitted.pk,)),
        {"content_hash": submitted.content_hash},
    )
    submitted.refresh_from_db()
    assert response["Location"] == reverse("dashboard:approvals")
    assert submitted.status in ("scheduled", "sending", "completed")
    assert submitted.approved_by == approver
    assert "approved" in texts(response)[0]


def test_approving_ones_own_campaign_is_refused(
    make_user: Callable[..., User],
    make_contacts: MakeContacts,
    locmem: ProviderAccount,
    group: Group,
) -> None:
    both = make_user("bo", "Marketers", "Approvers")
    make_contacts(1, group)
    campaign = Campaign.objects.create(
        name="Own", provider_account=locmem, body="Hi", created_by=both
    )
    campaign.groups.add(group)
    campaign.submit(by=both)
    response = signed_in(both).post(
        reverse("dashboard:approve", args=(campaign.pk,)), {"content_hash": campaign.content_hash}
    )
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    assert texts(response) == ["You cannot approve a campaign you submitted yourself."]


def test_rejecting_needs_a_reason(approver: User, submitted: Campaign) -> None:
    client = signed_in(approver)
    url = reverse("dashboard:reject", args=(submitted.pk,))
    response = client.post(url, {"content_hash": submitted.content_hash, "reason": " "})
    submitted.refresh_from_db()
    assert submitted.status == Campaign.Status.PENDING_APPROVAL
    assert "Say why" in texts(response)[0]
    client.post(url, {"content_hash": submitted.content_hash, "reason": "Too pushy"})
    submitted.refresh_from_db()
    assert submitted.status == Campaign.Status.DRAFT
    assert submitted.rejection_reason == "Too pushy"


def test_a_campaign_changed_since_the_queue_was_shown_is_not_decided(
    approver: User, submitted: Campaign
) -> None:
    stale = submitted.content_hash
    Campaign.objects.filter(pk=submitted.pk).update(content_hash="0" * 64)
    response = signed_in(approver).post(
        reverse("dashboard:approve", args=(submitted.pk,)), {"content_hash": stale}
    )
    submitted.refresh_from_db()
    assert submitted.status == Campaign.Status.PENDING_APPROVAL
    assert "changed after this page was loaded" in texts(response)[0]


def test_the_queue_page_takes_a_bounded_number_of_queries(
    approver: User,
    marketer: User,
    locmem: ProviderAccount,
    group: Group,
    make_contacts: MakeContacts,
    django_assert_max_num_queries: Any,
) -> None:
    make_contacts(2, group)
    for i in range(10):
        campaign = Campaign.objects.create(
            name=f"C{i}", provider_account=locmem, body="Hi", created_by=marketer
        )
        campaign.groups.add(group)
        campaign.submit(by=marketer)
    client = signed_in(approver)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("dashboard:approvals"))
    assert response.content.decode().count('<li class="card" aria-labelledby="queue-') == 10


# A rejection's reason, where the marketer looks.


def test_a_rejections_reason_shows_on_the_marketers_home_and_campaign_page(
    marketer: User, approver: User, submitted: Campaign, make_user: Callable[..., User]
) -> None:
    submitted.reject(by=approver, reason="Say which sale it is")
    client = signed_in(marketer)
    home = client.get(reverse("dashboard:home")).content.decode()
    assert "Rejected: back to you" in home and "Say which sale it is" in home
    assert reverse("dashboard:campaign_edit", args=(submitted.pk,)) in home
    page = client.get(reverse("dashboard:campaign", args=(submitted.pk,))).content.decode()
    assert "Rejected by the approver:</strong> Say which sale it is" in page
    edit = client.get(reverse("dashboard:campaign_edit", args=(submitted.pk,))).content.decode()
    assert "Say which sale it is" in edit
    # Another marketer's home lists only their own rejections.
    other = signed_in(make_user("cy", "Marketers")).get(reverse("dashboard:home"))
    assert "Say which sale it is" not in other.content.decode()


def test_a_resubmitted_campaign_no_longer_shows_its_old_rejection(
    marketer: User, approver: User, submitted: Campaign
) -> None:
    submitted.reject(by=approver, reason="Say which sale it is")
    submitted.submit(by=marketer)
    home = signed_in(marketer).get(reverse("dashboard:home")).content.decode()
    assert "Say which sale it is" not in home
