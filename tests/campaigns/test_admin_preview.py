"""The campaign page's preview, test send and live counts, and the approval queue (test client)."""

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

import messaging
from campaigns.models import Campaign, CampaignTransition, FrequencyCap
from campaigns.segments import Segment
from contacts.models import Contact, Group, OptOut, Tag
from messaging.models import Message, ProviderAccount
from tests.conftest import own_test_number, phone

pytestmark = pytest.mark.django_db

BODY = "Hi {{first_name|friend}}, our “spring” sale starts today"
QUEUE = "/admin/campaigns/pendingapproval/"


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def change_url(campaign: Campaign) -> str:
    return f"/admin/campaigns/campaign/{campaign.pk}/change/"


@pytest.fixture
def spring(
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    simulator: ProviderAccount,
) -> Campaign:
    """Five contacts, the first with no name (so "friend"), the last opted out."""
    group = Group.objects.create(name="Newsletter")
    contacts = make_contacts(5, group)
    Contact.objects.filter(pk=contacts[0].pk).update(first_name="")
    Contact.objects.filter(pk=contacts[1].pk).update(first_name="<b>Bo</b>")
    OptOut.objects.create(phone=contacts[4].phone, channel="sms")
    return make_campaign(simulator, group, body=BODY)


def decide(client: Client, campaign: Campaign, decision: str, reason: str = "") -> str:
    campaign.refresh_from_db()
    response = client.post(
        f"{QUEUE}{campaign.pk}/{decision}/",
        {"content_hash": campaign.content_hash, "reason": reason},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


# Preview


def test_draft_page_previews_audience_segments_cost_and_ucs2(
    spring: Campaign, marketer: User
) -> None:
    page = page_of(logged_in(marketer), change_url(spring))
    assert 'id="preview-audience">5<' in page
    assert 'id="preview-opted-out">1<' in page
    assert 'id="preview-sendable">4<' in page
    assert 'id="preview-segments">4<' in page
    assert "<strong>0.12 GBP</strong>" in page
    assert 'id="preview-ucs2">4' in page
    assert '<mark title="U+201C">“</mark>' in page
    assert "Hi friend, our <mark" in page  # the default stands in for the missing name
    assert "Hi &lt;b&gt;Bo&lt;/b&gt;, our" in page  # contact data is escaped, never markup
    assert "<b>Bo</b>" not in page
    assert page.count("UCS-2</td>") == 3  # three samples, each with its encoding


def test_submitted_campaign_shows_the_estimate_the_approver_approves(
    spring: Campaign,
    marketer: User,
    approver: User,
    make_contacts: Callable[..., list[Contact]],
) -> None:
    spring.submit(by=marketer)
    make_contacts(3, *spring.groups.all(), start=10)  # joined after submit
    page = page_of(logged_in(approver), change_url(spring))
    assert "as submitted for approval" in page
    assert 'id="preview-audience">5<' in page
    assert "<strong>0.12 GBP</strong>" in page


def test_schedule_is_entered_and_shown_in_the_campaigns_time_zone(
    spring: Campaign, marketer: User
) -> None:
    form = {
        "name": spring.name,
        "channel": "sms",
        "provider_account": spring.provider_account_id,
        "body": BODY,
        "groups": list(spring.groups.values_list("pk", flat=True)),
        "scheduled_at_0": "2031-07-01",
        "scheduled_at_1": "09:00:00",
        "time_zone": "America/New_York",
        "brake_failure_rate": "0.5",
        "brake_window": "200",
        "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0",
    }
    client = logged_in(marketer)
    response = client.post(change_url(spring), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    spring.refresh_from_db()
    assert spring.scheduled_at == dt.datetime(2031, 7, 1, 13, 0, tzinfo=dt.UTC)
    page = page_of(client, change_url(spring))
    assert 'value="09:00:00"' in page and "now America/New_York" in page

    skipped_by_clocks = {**form, "scheduled_at_0": "2031-03-09", "scheduled_at_1": "02:30:00"}
    page = client.post(change_url(spring), skipped_by_clocks).content.decode()
    assert "happens twice or not at all in America/New_York" in page


def test_frozen_schedule_is_read_only_and_shown_in_its_zone(
    spring: Campaign, marketer: User
) -> None:
    Campaign.objects.filter(pk=spring.pk).update(
        status=Campaign.Status.SENDING,
        time_zone="Asia/Tokyo",
        scheduled_at=dt.datetime(2031, 7, 1, 0, 0, tzinfo=dt.UTC),
    )
    page = page_of(logged_in(marketer), change_url(spring))
    assert "(Asia/Tokyo)" in page and "9 a.m." in page
    assert 'name="scheduled_at_0"' not in page and 'name="window_start"' not in page
    assert 'name="brake_window"' in page  # the brake may still be adjusted while sending


# Audience parts and the frequency cap


def edit_form(campaign: Campaign, **changes: Any) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "channel": "sms",
        "provider_account": campaign.provider_account_id,
        "body": BODY,
        "groups": list(campaign.groups.values_list("pk", flat=True)),
        "time_zone": "Europe/London",
        "brake_failure_rate": "0.5",
        "brake_window": "200",
        "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0",
        **changes,
    }


def test_the_preview_sizes_each_part_of_the_audience_and_names_the_cap(
    spring: Campaign, marketer: User
) -> None:
    first = Contact.objects.order_by("pk").first()
    assert first is not None
    Contact.objects.filter(pk=first.pk).update(attributes={"plan": "gold"})
    gold = Segment.objects.create(name="Gold", rules=["attr.plan = gold"])
    spring.exclude_segments.add(gold)
    spring.exclude_tags.add(Tag.objects.create(name="VIP"))
    page = page_of(logged_in(marketer), change_url(spring))
    assert (
        '<td id="preview-parts"><p>Group Newsletter: 5</p><p>Excluded: tag VIP: 0</p>'
        "<p>Excluded: segment Gold: 1</p></td>"
    ) in page
    assert 'id="preview-audience">4<' in page
    assert '<td id="preview-cap">The house setting: off</td>' in page


def test_the_audience_fieldset_offers_segments_and_every_exclusion(
    spring: Campaign, marketer: User
) -> None:
    page = page_of(logged_in(marketer), change_url(spring))
    for name in ("segments", "exclude_groups", "exclude_tags", "exclude_segments"):
        assert f'<select name="{name}"' in page and f'id="id_{name}"' in page


def test_a_marketer_sees_the_cap_read_only_and_cannot_post_another(
    spring: Campaign, marketer: User
) -> None:
    client = logged_in(marketer)
    page = page_of(client, change_url(spring))
    assert 'name="frequency_cap"' not in page and 'name="cap_messages"' not in page
    assert "The house setting: off" in page
    form = edit_form(spring, frequency_cap="off", cap_messages="1", cap_days="1", body="New")
    response = client.post(change_url(spring), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    spring.refresh_from_db()
    assert spring.body == "New"
    assert (spring.frequency_cap, spring.cap_messages, spring.cap_days) == ("house", None, None)


def test_one_allowed_to_override_gives_a_campaign_its_own_cap_in_the_admin(
    spring: Campaign, make_user: Callable[..., User]
) -> None:
    client = logged_in(make_user("bo", "Marketers", "Approvers"))
    page = page_of(client, change_url(spring))
    assert 'name="frequency_cap" value="own"' in page
    form = edit_form(spring, frequency_cap="own", cap_messages="2", cap_days="5")
    response = client.post(change_url(spring), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    spring.refresh_from_db()
    assert (spring.frequency_cap, spring.cap_messages, spring.cap_days) == (
        FrequencyCap.OWN,
        2,
        5,
    )
    assert "Its own cap: at most 2 per contact in 5 days" in page_of(client, change_url(spring))


# Test send


def test_test_send_goes_through_the_account_and_is_recorded(
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    marketer: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    campaign = make_campaign(locmem, group, body=BODY)
    number = own_test_number(marketer, "+447911123456")
    client = logged_in(marketer)
    assert "Send a test to me" in page_of(client, change_url(campaign))
    url = f"/admin/campaigns/campaign/{campaign.pk}/test/"
    form = page_of(client, url)
    assert "Hi Name0, our" in form and 'id="test-allowance">You may send 10 more' in form

    response = client.post(url, {"number": number.pk}, follow=True)
    page = response.content.decode()

    assert [m.phone for m in messaging.outbox] == ["+447911123456"]
    assert messaging.outbox[0].body == "Hi Name0, our “spring” sale starts today"
    assert 'id="test-status">Sent<' in page and "locmem-" in page
    assert '<span class="test-mark">Test</span> to +44…56' in page
    campaign.refresh_from_db()
    assert campaign.test_message is not None and campaign.test_message.campaign_id is None
    assert campaign.test_message.is_test
    assert campaign.test_sent_by == marketer and campaign.test_sent_at is not None
    log = CampaignTransition.objects.get(campaign=campaign, action="test")
    assert (log.from_status, log.to_status, log.by) == ("draft", "draft", marketer)
    assert log.note == "test sent to +44…56"
    assert "to +44…56: <strong>sent</strong>" in page_of(client, change_url(campaign))


def test_test_send_refuses_a_typed_number_or_anothers_and_sends_nothing(
    spring: Campaign, marketer: User, approver: User
) -> None:
    url = f"/admin/campaigns/campaign/{spring.pk}/test/"
    client = logged_in(marketer)
    assert 'id="no-test-numbers"' in page_of(client, url)
    own_test_number(marketer, "+447911000111")
    colleagues = own_test_number(approver, "+447911123456")
    page = client.post(url, {"phone": "+447911654321"}).content.decode()
    assert "This field is required." in page
    page = client.post(url, {"number": colleagues.pk}).content.decode()
    assert "Choose one of your own test numbers." in page
    assert not Message.objects.exists()
    assert Campaign.objects.get(pk=spring.pk).test_sent_at is None


def test_test_send_is_only_for_drafts_and_editors(
    spring: Campaign, marketer: User, approver: User
) -> None:
    url = f"/admin/campaigns/campaign/{spring.pk}/test/"
    assert logged_in(approver).get(url).status_code == 403
    spring.submit(by=marketer)
    client = logged_in(marketer)
    assert "Send a test to me" not in page_of(client, change_url(spring))
    number = own_test_number(marketer, "+447911123456")
    page = client.post(url, {"number": number.pk}).content.decode()
    assert "Tests are sent from drafts" in page
    assert not Message.objects.exists()


# Live counts


def test_progress_endpoint_returns_counts_per_status(spring: Campaign, approver: User) -> None:
    statuses = ["sent", "sent", "delivered", "failed", "pending"]
    for i, status in enumerate(statuses):
        Message.objects.create(
            campaign=spring,
            provider_account=spring.provider_account,
            phone=phone(i),
            body="x",
            client_ref=f"ref-{i}",
            status=status,
        )
    Campaign.objects.filter(pk=spring.pk).update(status=Campaign.Status.SENDING)
    url = f"/admin/campaigns/campaign/{spring.pk}/progress/"

    progress = logged_in(approver).get(url).json()

    assert progress["status"] == "sending" and progress["total"] == 5
    assert progress["counts"]["sent"] == 2 and progress["counts"]["pending"] == 1
    assert progress["counts"]["in_doubt"] == 0
    assert Client().get(url).status_code == 302  # to the login page
    page = page_of(logged_in(approver), change_url(spring))
    assert 'id="count-sent">2<' in page and "campaign_progress.js" in page


def test_completed_campaign_shows_final_counts_and_cost(spring: Campaign, marketer: User) -> None:
    Campaign.objects.filter(pk=spring.pk).update(
        status=Campaign.Status.COMPLETED,
        final_counts={"delivered": 3, "failed": 1, "skipped": 1},
        final_cost="0.12000",
    )
    page = page_of(logged_in(marketer), change_url(spring))
    assert "Delivered 3 · Failed 1 · Skipped 1" in page
    assert 'id="final-cost">0.12 GBP<' in page
    assert "campaign_progress.js" not in page  # nothing left to watch
    assert 'name="brake_window"' not in page


# Approval queue


def test_queue_lists_only_pending_campaigns_and_only_for_approvers(
    spring: Campaign,
    make_campaign: Callable[..., Campaign],
    marketer: User,
    approver: User,
) -> None:
    spring.submit(by=marketer)
    draft = make_campaign(spring.provider_account, *spring.groups.all())
    Campaign.objects.filter(pk=draft.pk).update(name="Still a draft")

    page = page_of(logged_in(approver), QUEUE)

    assert "Spring" in page and "Still a draft" not in page
    assert "0.12 GBP" in page and ">mia<" in page
    assert 'class="field-test_sent">no<' in page
    assert f'form="approve-{spring.pk}"' in page and f'id="approve-{spring.pk}"' in page
    assert "Approval queue" in page_of(logged_in(approver), "/admin/")
    assert logged_in(marketer).get(QUEUE).status_code == 403
    assert "Approval queue" not in page_of(logged_in(marketer), "/admin/")
    assert logged_in(approver).get(f"{QUEUE}add/").status_code == 403


def test_queue_shows_whether_a_test_was_sent(
    spring: Campaign, marketer: User, approver: User, locmem: ProviderAccount
) -> None:
    Campaign.objects.filter(pk=spring.pk).update(provider_account=locmem)
    number = own_test_number(marketer, phone(0))
    logged_in(marketer).post(f"/admin/campaigns/campaign/{spring.pk}/test/", {"number": number.pk})
    spring.submit(by=marketer)
    page = page_of(logged_in(approver), QUEUE)
    assert 'class="field-test_sent">yes, ' in page and "(sent)" in page


def test_approve_from_the_queue_in_one_click(
    spring: Campaign, marketer: User, approver: User
) -> None:
    spring.submit(by=marketer)
    page = decide(logged_in(approver), spring, "approve")
    assert "“Spring” approved" in page
    spring.refresh_from_db()
    assert spring.status == Campaign.Status.SCHEDULED and spring.approved_by == approver
    assert f'id="approve-{spring.pk}"' not in page  # gone from the queue


def test_self_approval_from_the_queue_is_refused_with_the_reason(
    spring: Campaign, make_user: Callable[..., User]
) -> None:
    both = make_user("bea", "Marketers", "Approvers")
    spring.submit(by=both)
    page = decide(logged_in(both), spring, "approve")
    assert "You cannot approve a campaign you submitted yourself." in page
    assert Campaign.objects.get(pk=spring.pk).status == Campaign.Status.PENDING_APPROVAL


def test_reject_needs_a_reason_which_the_submitter_then_sees(
    spring: Campaign, marketer: User, approver: User
) -> None:
    spring.submit(by=marketer)
    client = logged_in(approver)
    assert "Say why the campaign is rejected" in decide(client, spring, "reject", reason=" ")
    assert Campaign.objects.get(pk=spring.pk).status == Campaign.Status.PENDING_APPROVAL

    assert "rejected" in decide(client, spring, "reject", reason="Wrong audience")
    assert Campaign.objects.get(pk=spring.pk).status == Campaign.Status.DRAFT
    assert "Rejected: Wrong audience" in page_of(logged_in(marketer), change_url(spring))


def test_queue_does_not_approve_a_campaign_changed_since_it_was_shown(
    spring: Campaign, marketer: User, approver: User
) -> None:
    spring.submit(by=marketer)
    response = logged_in(approver).post(
        f"{QUEUE}{spring.pk}/approve/", {"content_hash": "what-was-shown-before"}, follow=True
    )
    assert "was changed after this page was loaded" in response.content.decode()
    assert Campaign.objects.get(pk=spring.pk).status == Campaign.Status.PENDING_APPROVAL


def test_queue_decisions_need_a_post_and_an_approver(
    spring: Campaign, marketer: User, approver: User
) -> None:
    spring.submit(by=marketer)
    assert logged_in(approver).get(f"{QUEUE}{spring.pk}/approve/").status_code == 405
    hash_shown: dict[str, Any] = {"content_hash": spring.content_hash}
    response = logged_in(marketer).post(f"{QUEUE}{spring.pk}/approve/", hash_shown)
    assert response.status_code == 403
    assert Campaign.objects.get(pk=spring.pk).status == Campaign.Status.PENDING_APPROVAL


def test_saving_an_edit_does_not_undo_a_transition_made_meanwhile(
    admin_client: Client, make_campaign: Any, locmem: ProviderAccount
) -> None:
    from django.db.models.signals import pre_save

    group = Group.objects.create(name="Saved")
    campaign = make_campaign(locmem, group)
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    data = {
        "name": "Renamed",
        "channel": "sms",
        "provider_account": locmem.pk,
        "body": campaign.body,
        "groups": [group.pk],
        "time_zone": "Europe/London",
        "brake_failure_rate": "0.5",
        "brake_window": "200",
        "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0",
    }

    def submitted_meanwhile(sender: Any, instance: Campaign, **kwargs: Any) -> None:
        # Between the page loading the row and saving the edit, someone else moves it.
        pre_save.disconnect(submitted_meanwhile, sender=Campaign)
        Campaign.objects.filter(pk=instance.pk).update(status=Campaign.Status.SCHEDULED)

    pre_save.connect(submitted_meanwhile, sender=Campaign)
    try:
        admin_client.post(url, data)
    finally:
        pre_save.disconnect(submitted_meanwhile, sender=Campaign)
    campaign.refresh_from_db()
    assert campaign.name == "Renamed"
    assert campaign.status == Campaign.Status.SCHEDULED
