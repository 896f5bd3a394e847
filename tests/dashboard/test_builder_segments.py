"""The builder's audience of groups, tags and segments minus exclusions, and its frequency
cap: the live preview counts each part and the total, saving keeps every part, and only
those allowed to override the cap change it (test client, real contacts and messages)."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign, FrequencyCap
from campaigns.segments import Segment
from contacts.models import Contact, Group, Tag
from messaging.models import Message, ProviderAccount
from tests.dashboard.test_builder_and_approvals import form_data, signed_in

pytestmark = pytest.mark.django_db

MakeContacts = Callable[..., list[Contact]]


@pytest.fixture
def newsletter(make_contacts: MakeContacts) -> Group:
    """Six contacts: three in Leeds (one of them tagged VIP), three in York."""
    group = Group.objects.create(name="Newsletter")
    contacts = make_contacts(6, group)
    for i, contact in enumerate(contacts):
        contact.attributes = {"city": "Leeds" if i < 3 else "York"}
        contact.save()
    contacts[0].tags.add(Tag.objects.create(name="VIP"))
    return group


@pytest.fixture
def leeds(newsletter: Group) -> Segment:
    return Segment.objects.create(name="Leeds", rules=["attr.city = Leeds"])


@pytest.fixture
def vip(newsletter: Group) -> Tag:
    return Tag.objects.get(name="VIP")


@pytest.fixture
def both(make_user: Callable[..., User]) -> User:
    """A marketer who is also an approver: they may override the frequency cap."""
    return make_user("bo", "Marketers", "Approvers")


def preview(client: Client, data: dict[str, Any], campaign: Campaign | None = None) -> Any:
    url = reverse("dashboard:campaign_preview")
    if campaign is not None:
        url += f"?campaign={campaign.pk}"
    response = client.post(url, data)
    assert response.status_code == 200
    return response.json()


def previously_messaged(contacts: list[Contact], account: ProviderAccount, by: User) -> None:
    """One message each, sent today by another campaign."""
    other = Campaign.objects.create(
        name="Autumn", provider_account=account, body="Hi", created_by=by
    )
    for contact in contacts:
        Message.objects.create(
            campaign=other,
            contact=contact,
            provider_account=account,
            phone=contact.phone,
            body="Hi",
            client_ref=Message.new_client_ref(),
            status=Message.Status.SENT,
        )


# The live preview's parts.


def test_the_preview_sizes_a_segment_and_an_excluded_tag_and_totals_after_the_exclusion(
    marketer: User, locmem: ProviderAccount, newsletter: Group, leeds: Segment, vip: Tag
) -> None:
    data = form_data(locmem, newsletter, groups=[], segments=[leeds.pk], exclude_tags=[vip.pk])
    shown = preview(signed_in(marketer), data)
    assert [(p["kind"], p["name"], p["size"], p["excluded"]) for p in shown["parts"]] == [
        ("segment", "Leeds", 3, False),
        ("tag", "VIP", 1, True),
    ]
    assert [p["text"] for p in shown["parts"]] == ["Segment Leeds: 3", "Excluded: tag VIP: 1"]
    assert shown["audience"] == 2
    assert shown["total_text"] == "Total after exclusions: 2"
    assert [s["body"] for s in shown["samples"]] == [
        "Hi Name1, 20% off today.",
        "Hi Name2, 20% off today.",
    ]
    assert shown["warnings"] == []


def test_the_preview_takes_an_excluded_segment_off_a_group(
    marketer: User, locmem: ProviderAccount, newsletter: Group, leeds: Segment
) -> None:
    shown = preview(signed_in(marketer), form_data(locmem, newsletter, exclude_segments=[leeds.pk]))
    assert [p["text"] for p in shown["parts"]] == [
        "Group Newsletter: 6",
        "Excluded: segment Leeds: 3",
    ]
    assert (shown["audience"], shown["sendable"]) == (3, 3)


def test_the_preview_warns_of_a_segment_on_an_attribute_no_contact_has(
    marketer: User, locmem: ProviderAccount, newsletter: Group
) -> None:
    plan = Segment.objects.create(name="Gold", rules=["attr.plan = gold"])
    shown = preview(signed_in(marketer), form_data(locmem, newsletter, segments=[plan.pk]))
    assert [p["text"] for p in shown["parts"]] == ["Group Newsletter: 6", "Segment Gold: 0"]
    assert shown["audience"] == 6
    assert shown["warnings"] == [
        "No contact has the attribute 'plan': the rule 'attr.plan = gold' matches no one."
    ]


def test_the_preview_of_no_audience_has_no_parts_and_no_total(
    marketer: User, locmem: ProviderAccount, newsletter: Group
) -> None:
    shown = preview(signed_in(marketer), form_data(locmem, newsletter, groups=[]))
    assert (shown["parts"], shown["total_text"], shown["audience"]) == ([], "", 0)


# Saving.


def test_saving_keeps_segments_and_every_exclusion_and_counts_the_saver_as_author(
    marketer: User, locmem: ProviderAccount, newsletter: Group, leeds: Segment, vip: Tag
) -> None:
    york = Segment.objects.create(name="York", rules=["attr.city = York"])
    data = form_data(
        locmem,
        newsletter,
        segments=[leeds.pk],
        exclude_tags=[vip.pk],
        exclude_segments=[york.pk],
        action="submit",
    )
    response = signed_in(marketer).post(reverse("dashboard:campaign_new"), data)
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert list(campaign.segments.all()) == [leeds]
    assert list(campaign.exclude_tags.all()) == [vip]
    assert list(campaign.exclude_segments.all()) == [york]
    assert list(campaign.authors.all()) == [marketer]
    # Submitted: the estimate approvers see is frozen with its parts.
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    assert [(p["name"], p["size"]) for p in campaign.estimate["parts"]] == [
        ("Newsletter", 6),
        ("Leeds", 3),
        ("VIP", 1),
        ("York", 3),
    ]
    assert campaign.estimate["audience"] == 2  # Newsletter minus VIP minus York


def test_an_edit_that_drops_an_exclusion_saves_it_dropped(
    marketer: User, locmem: ProviderAccount, newsletter: Group, leeds: Segment, vip: Tag
) -> None:
    campaign = Campaign.objects.create(
        name="Spring", provider_account=locmem, body="Hi", created_by=marketer
    )
    campaign.groups.add(newsletter)
    campaign.exclude_segments.add(leeds)
    campaign.exclude_tags.add(vip)
    url = reverse("dashboard:campaign_edit", args=(campaign.pk,))
    page = signed_in(marketer).get(url).content.decode()
    assert f'name="exclude_segments" value="{leeds.pk}"' in page
    signed_in(marketer).post(url, form_data(locmem, newsletter, exclude_tags=[vip.pk]))
    assert not campaign.exclude_segments.exists()
    assert list(campaign.exclude_tags.all()) == [vip]


# The frequency cap.


def test_a_marketer_sees_the_cap_in_force_and_no_control_to_change_it(
    marketer: User, settings: Any
) -> None:
    settings.HERALD_FREQUENCY_CAP_MESSAGES = 2
    page = signed_in(marketer).get(reverse("dashboard:campaign_new")).content.decode()
    assert (
        '<p id="cap-in-force"><strong>In force:</strong> '
        "The house setting: at most 2 per contact in 7 days.</p>"
    ) in page
    assert 'name="frequency_cap"' not in page and 'name="cap_messages"' not in page


def test_one_allowed_to_override_sees_the_three_choices(both: User, settings: Any) -> None:
    settings.HERALD_FREQUENCY_CAP_MESSAGES = 2
    page = signed_in(both).get(reverse("dashboard:campaign_new")).content.decode()
    assert "The house setting (at most 2 per contact in 7 days)" in page
    for value in ("house", "own", "off"):
        assert f'name="frequency_cap" value="{value}"' in page
    assert 'id="cap-in-force"' not in page


def test_a_marketers_post_cannot_set_the_cap_on_a_new_campaign(
    marketer: User, locmem: ProviderAccount, newsletter: Group
) -> None:
    data = form_data(locmem, newsletter, frequency_cap="off", cap_messages="5", cap_days="1")
    signed_in(marketer).post(reverse("dashboard:campaign_new"), data)
    campaign = Campaign.objects.get()
    assert (campaign.frequency_cap, campaign.cap_messages, campaign.cap_days) == (
        FrequencyCap.HOUSE,
        None,
        None,
    )


def test_a_marketers_edit_keeps_the_cap_an_approver_gave(
    marketer: User, locmem: ProviderAccount, newsletter: Group
) -> None:
    campaign = Campaign.objects.create(
        name="Spring",
        provider_account=locmem,
        body="Hi",
        created_by=marketer,
        frequency_cap=FrequencyCap.OWN,
        cap_messages=3,
        cap_days=10,
    )
    campaign.groups.add(newsletter)
    url = reverse("dashboard:campaign_edit", args=(campaign.pk,))
    client = signed_in(marketer)
    assert "Its own cap: at most 3 per contact in 10 days." in client.get(url).content.decode()
    response = client.post(url, form_data(locmem, newsletter, body="New", frequency_cap="off"))
    campaign.refresh_from_db()
    assert response.status_code == 302
    assert campaign.body == "New"
    assert (campaign.frequency_cap, campaign.cap_messages, campaign.cap_days) == ("own", 3, 10)


def test_one_allowed_to_override_gives_a_campaign_its_own_cap(
    both: User, locmem: ProviderAccount, newsletter: Group
) -> None:
    data = form_data(locmem, newsletter, frequency_cap="own", cap_messages="1", cap_days="30")
    response = signed_in(both).post(reverse("dashboard:campaign_new"), data)
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert (campaign.frequency_cap, campaign.cap_messages, campaign.cap_days) == ("own", 1, 30)


def test_its_own_cap_needs_both_numbers(
    both: User, locmem: ProviderAccount, newsletter: Group
) -> None:
    data = form_data(locmem, newsletter, frequency_cap="own", cap_messages="1", cap_days="")
    response = signed_in(both).post(reverse("dashboard:campaign_new"), data)
    assert response.status_code == 200
    assert "Give its own cap both a number of messages and of days." in response.content.decode()
    assert not Campaign.objects.exists()


def test_the_preview_counts_those_over_an_overriders_own_cap(
    both: User, marketer: User, locmem: ProviderAccount, newsletter: Group
) -> None:
    previously_messaged(list(Contact.objects.order_by("pk")[:2]), locmem, marketer)
    data = form_data(locmem, newsletter, frequency_cap="own", cap_messages="1", cap_days="7")
    shown = preview(signed_in(both), data)
    assert shown["skipped"]["frequency_cap"] == 2
    assert shown["skipped_labels"]["frequency_cap"] == "Over the frequency cap"
    assert (shown["audience"], shown["sendable"]) == (6, 4)
    assert shown["cap"] == "Its own cap: at most 1 per contact in 7 days"
    assert [s["contact"] for s in shown["samples"]] == ["Name2", "Name3", "Name4"]
    # The same post from a marketer is counted with the house setting (off by default).
    as_marketer = preview(signed_in(marketer), data)
    assert as_marketer["skipped"]["frequency_cap"] == 0
    assert as_marketer["cap"] == "The house setting: off"


def test_a_marketers_preview_of_an_edit_counts_the_cap_the_campaign_has(
    marketer: User, locmem: ProviderAccount, newsletter: Group
) -> None:
    previously_messaged(list(Contact.objects.order_by("pk")[:3]), locmem, marketer)
    campaign = Campaign.objects.create(
        name="Spring",
        provider_account=locmem,
        body="Hi",
        created_by=marketer,
        frequency_cap=FrequencyCap.OWN,
        cap_messages=1,
        cap_days=7,
    )
    shown = preview(signed_in(marketer), form_data(locmem, newsletter), campaign)
    assert shown["skipped"]["frequency_cap"] == 3
    assert shown["cap"] == "Its own cap: at most 1 per contact in 7 days"


def test_the_house_cap_skips_in_a_marketers_preview(
    marketer: User, locmem: ProviderAccount, newsletter: Group, settings: Any
) -> None:
    settings.HERALD_FREQUENCY_CAP_MESSAGES = 1
    previously_messaged(list(Contact.objects.order_by("pk")[:1]), locmem, marketer)
    shown = preview(signed_in(marketer), form_data(locmem, newsletter))
    assert shown["skipped"]["frequency_cap"] == 1
    assert shown["cap"] == "The house setting: at most 1 per contact in 7 days"


# The campaign page and the approval queue.


def leeds_campaign(
    marketer: User, account: ProviderAccount, group: Group, leeds: Segment
) -> Campaign:
    """Newsletter minus Leeds, with its own cap of one message a week."""
    campaign = Campaign.objects.create(
        name="Spring",
        provider_account=account,
        body="Hi {{first_name}}",
        created_by=marketer,
        frequency_cap=FrequencyCap.OWN,
        cap_messages=1,
        cap_days=7,
    )
    campaign.groups.add(group)
    campaign.exclude_segments.add(leeds)
    return campaign


def test_a_drafts_page_shows_each_part_the_cap_and_who_it_skips(
    marketer: User, locmem: ProviderAccount, newsletter: Group, leeds: Segment
) -> None:
    york = list(Contact.objects.filter(attributes__city="York").order_by("pk"))
    previously_messaged(york[:1], locmem, marketer)
    campaign = leeds_campaign(marketer, locmem, newsletter, leeds)
    page = signed_in(marketer).get(reverse("dashboard:campaign", args=(campaign.pk,)))
    html = page.content.decode()
    assert (
        '<ul id="campaign-parts"><li>Group Newsletter: 6</li>'
        "<li>Excluded: segment Leeds: 3</li></ul>"
    ) in html
    assert "Each counted on its own; the audience below is the total after exclusions." in html
    assert '<dd id="campaign-cap">Its own cap: at most 1 per contact in 7 days</dd>' in html
    assert "<dt>Skipped: over the frequency cap</dt><dd>1</dd>" in html
    assert "<dt>Will be sent</dt><dd>2</dd>" in html


def test_a_page_whose_stored_estimate_predates_parts_names_them_without_sizes(
    marketer: User, locmem: ProviderAccount, newsletter: Group, leeds: Segment
) -> None:
    campaign = leeds_campaign(marketer, locmem, newsletter, leeds)
    campaign.submit(by=marketer)
    older = {k: v for k, v in campaign.estimate.items() if k not in ("parts", "warnings")}
    Campaign.objects.filter(pk=campaign.pk).update(estimate=older)
    html = (
        signed_in(marketer).get(reverse("dashboard:campaign", args=(campaign.pk,))).content.decode()
    )
    assert (
        '<ul id="campaign-parts"><li>Group Newsletter</li><li>Excluded: segment Leeds</li></ul>'
    ) in html
    assert "Their sizes were not stored with this estimate (it predates them)." in html
    assert "<dt>Audience</dt><dd>3</dd>" in html


def test_the_queue_shows_the_frozen_parts_the_cap_and_the_capped(
    approver: User, marketer: User, locmem: ProviderAccount, newsletter: Group, leeds: Segment
) -> None:
    york = list(Contact.objects.filter(attributes__city="York").order_by("pk"))
    previously_messaged(york[:2], locmem, marketer)
    campaign = leeds_campaign(marketer, locmem, newsletter, leeds)
    campaign.submit(by=marketer)
    Contact.objects.filter(attributes__city="York").update(attributes={"city": "Leeds"})
    html = signed_in(approver).get(reverse("dashboard:approvals")).content.decode()
    # As counted at submit, though everyone has moved to Leeds since.
    assert (
        f'<ul id="parts-{campaign.pk}"><li>Group Newsletter: 6</li>'
        "<li>Excluded: segment Leeds: 3</li></ul>"
    ) in html
    assert f'<dd id="cap-{campaign.pk}">Its own cap: at most 1 per contact in 7 days</dd>' in html
    skips = html[html.index(f'id="skips-{campaign.pk}"') :]
    assert "Over the frequency cap: 2" in skips
    assert f'id="queued-{campaign.pk}">1<' in html


def test_the_queue_names_the_parts_of_an_estimate_stored_before_them(
    approver: User, marketer: User, locmem: ProviderAccount, newsletter: Group, leeds: Segment
) -> None:
    campaign = leeds_campaign(marketer, locmem, newsletter, leeds)
    campaign.submit(by=marketer)
    older = {k: v for k, v in campaign.estimate.items() if k not in ("parts", "warnings")}
    Campaign.objects.filter(pk=campaign.pk).update(estimate=older)
    html = signed_in(approver).get(reverse("dashboard:approvals")).content.decode()
    assert (
        f'<ul id="parts-{campaign.pk}"><li>Group Newsletter</li>'
        "<li>Excluded: segment Leeds</li></ul>"
    ) in html
