"""Short links and A/B variants in Chromium: a marketer writes two variants with a link
and watches the live preview count the short link and each variant's share; a
recipient's phone follows their link to the shop, and the campaign page counts it."""

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign
from campaigns.sending import run_campaign
from contacts.models import Contact, Group
from messaging.models import Link, Message, ProviderAccount
from tests.e2e.test_campaign_in_browser import log_in, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_marketer_previews_variants_with_short_links_and_a_click_is_counted(
    page: Any,
    live_server: Any,
    settings: Any,
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    settings.HERALD_LINK_BASE = f"{live_server.url}/"
    group = Group.objects.create(name="Newsletter")
    make_contacts(40, group)
    base = live_server.url
    # The shop: a page of the same server, so the phone's browser really lands there.
    long = f"{base}/healthz?ref=newsletter&items=" + "x" * 100
    log_in(page, base, marketer)

    page.goto(f"{base}/campaigns/new/")
    page.fill("#id_name", "Spring AB")
    page.select_option("#id_provider_account", label="mem")
    page.fill("#id_body", f"A: sale {long}")
    page.check(f"input[name=groups][value='{group.pk}']")
    expect(page.locator("#links-on")).to_contain_text("r/ and eight characters")
    sample = page.locator("#preview-samples blockquote").first
    expect(sample).to_have_text(f"A: sale {base}/r/xxxxxxxx")  # the short link, counted
    page.fill("#id_variant_bodies_0", f"B: our spring sale {long}")
    page.fill("#id_ab_split", "50,50")
    rows = page.locator("#preview-variants tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1).locator("th")).to_have_text("B")
    expect(rows.nth(1).locator("td").last).to_have_text(f"B: our spring sale {base}/r/xxxxxxxx")
    screenshot(page, "builder-variants")
    page.click("button[value=save]")
    page.wait_for_selector("#campaign-parts")
    campaign = Campaign.objects.get(name="Spring AB")
    assert campaign.variant_bodies == [f"B: our spring sale {long}"]

    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    campaign.refresh_from_db()
    campaign.start()
    run_campaign(Campaign.objects.get(pk=campaign.pk))
    campaign.messages.filter(status=Message.Status.SENT).record_report(
        Message.Status.DELIVERED, timezone.now(), "", ""
    )
    message = campaign.messages.filter(variant="B").first()
    assert message is not None
    found = re.search(r"/r/([A-Za-z0-9_-]{8})", message.body)
    assert found is not None
    # The recipient's phone follows the link and lands on the shop, UTM added.
    phone = page.context.browser.new_page(
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
    )
    phone.goto(f"{base}/r/{found[1]}")
    assert phone.url == long + "&utm_source=sms&utm_campaign=spring-ab"
    assert Link.objects.get(code=found[1]).clicks == 1

    page.goto(f"{base}/campaigns/{campaign.pk}/")
    expect(page.locator("#campaign-clicks [data-figure=unique_clicks]")).to_have_text("1")
    expect(page.locator("#ab-variants tbody tr")).to_have_count(2)
    screenshot(page, "campaign-variants-clicks")
