"""The builder in Chromium: a marketer picks a segment and an exclusion and watches each
part's size and the total after exclusions change, then saves the campaign with them."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from campaigns.models import Campaign
from campaigns.segments import Segment
from contacts.models import Contact, Group, Tag
from messaging.models import ProviderAccount
from tests.e2e.test_campaign_in_browser import log_in, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_marketer_sees_part_sizes_change_as_a_segment_and_an_exclusion_are_picked(
    page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
) -> None:
    group = Group.objects.create(name="Newsletter")
    contacts = make_contacts(5, group)
    for contact in contacts[:3]:
        contact.attributes = {"plan": "gold"}
        contact.save()
    vip = Tag.objects.create(name="VIP")
    contacts[0].tags.add(vip)
    gold = Segment.objects.create(name="Gold plan", rules=["attr.plan = gold"])
    make_contacts(2, start=10)  # gold is not all there is: two more contacts in no group
    base = live_server.url
    log_in(page, base, marketer)

    page.goto(f"{base}/campaigns/new/")
    page.fill("#id_name", "Gold offer")
    page.select_option("#id_provider_account", label="sim")
    page.fill("#id_body", "Hi {{first_name}}")
    page.check(f"input[name=segments][value='{gold.pk}']")
    parts = page.locator("#preview-parts li")
    expect(parts).to_have_text(["Segment Gold plan: 3"])  # waits for the live preview
    expect(page.locator("#preview-total")).to_have_text("Total after exclusions: 3")

    page.check(f"input[name=exclude_tags][value='{vip.pk}']")
    expect(parts).to_have_text(["Segment Gold plan: 3", "Excluded: tag VIP: 1"])
    expect(page.locator("#preview-total")).to_have_text("Total after exclusions: 2")
    expect(page.locator("#preview-sendable")).to_have_text("2")

    page.check(f"input[name=groups][value='{group.pk}']")
    expect(parts).to_have_text(
        ["Group Newsletter: 5", "Segment Gold plan: 3", "Excluded: tag VIP: 1"]
    )
    expect(page.locator("#preview-total")).to_have_text("Total after exclusions: 4")
    # A marketer may not override the frequency cap: it is shown, not offered.
    assert "The house setting: off" in page.inner_text("#cap-in-force")
    assert page.locator("input[name=frequency_cap]").count() == 0
    screenshot(page, "builder-segments")

    page.click("button[value=save]")
    page.wait_for_selector("#campaign-parts")
    campaign = Campaign.objects.get()
    assert list(campaign.segments.all()) == [gold]
    assert list(campaign.exclude_tags.all()) == [vip]
    expect(page.locator("#campaign-parts li")).to_have_text(
        ["Group Newsletter: 5", "Segment Gold plan: 3", "Excluded: tag VIP: 1"]
    )
