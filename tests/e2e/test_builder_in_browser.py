"""The builder in Chromium: a double click on submit, and the back button after it, make one
campaign."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging.models import ProviderAccount
from tests.e2e.test_campaign_in_browser import log_in, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_double_click_on_submit_and_the_back_button_make_one_campaign(
    page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
) -> None:
    group = Group.objects.create(name="Newsletter")
    leeds = make_contacts(3, group)[0]
    Contact.objects.filter(pk=leeds.pk).update(attributes={"city": "Leeds"})
    base = live_server.url
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    log_in(page, base, marketer)
    posts.clear()

    page.goto(f"{base}/campaigns/new/")
    page.wait_for_url("**/campaigns/new/?form=*")  # builder.js keeps the token in the address
    page.fill("#id_name", "Spring sale")
    page.select_option("#id_provider_account", label="sim")
    page.fill("#id_body", "Hi {{first_name|friend}}, sale in {{city|town}}")
    page.check(f"input[name=groups][value='{group.pk}']")
    page.wait_for_selector("#preview-missing li")
    assert "2 recipients have no {{city}}: they get “town” instead." in page.inner_text(
        "#preview-missing"
    )
    # Two clicks as an impatient hand makes them: the second while the first is on its way.
    # (Chromium folds a quicker double click into one post by itself.)
    submit = page.locator("button[value=submit]")
    submit.scroll_into_view_if_needed()
    box = submit.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    page.wait_for_timeout(20)
    page.mouse.click(x, y)
    page.wait_for_selector("#campaign-status")
    screenshot(page, "builder-double-click")
    assert len([url for url in posts if url.endswith("/campaigns/new/")]) == 2
    assert Campaign.objects.count() == 1
    campaign = Campaign.objects.get()
    assert campaign.status == Campaign.Status.PENDING_APPROVAL

    page.go_back()  # the builder again, as the browser remembers it: its campaign, not a blank
    page.wait_for_url(f"**/campaigns/{campaign.pk}/edit/")
    assert "already" in page.inner_text("ul.messages")
    assert page.input_value("#id_name") == "Spring sale"
    assert page.is_visible("#pending-warning")
    page.click("button[value=submit]")
    page.wait_for_selector("#campaign-status")
    assert Campaign.objects.count() == 1
