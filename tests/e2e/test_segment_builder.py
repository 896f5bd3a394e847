"""The segment builder in Chromium: rows added and removed, the live count following each
change without a reload, a bad rule's error beside its row, a warning, then saved and
listed with its size."""

from typing import Any

import pytest
from django.contrib.auth.models import User

from campaigns.segments import Segment
from contacts.models import Contact
from tests.conftest import phone
from tests.e2e.test_dashboard_walk import shot, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

NO_COUNT = "\u2013"  # an en dash: no count while a rule is wrong
PEOPLE = [  # city, plan
    ("Leeds", "gold"),
    ("Leeds", "gold"),
    ("leeds", "silver"),
    ("York", "gold"),
    ("York", "bronze"),
]


def count_becomes(page: Any, text: str) -> None:
    page.wait_for_function(
        "text => document.getElementById('segment-count-value').textContent === text", arg=text
    )


def test_a_marketer_builds_a_segment_watching_its_live_count_and_finds_it_in_the_list(
    page: Any, live_server: Any, marketer: User
) -> None:
    for i, (city, plan) in enumerate(PEOPLE):
        Contact.objects.create(
            phone=phone(i), first_name=f"Name{i}", attributes={"city": city, "plan": plan}
        )
    base = live_server.url
    sign_in(page, base, marketer)
    page.click("nav >> text=Segments")
    page.wait_for_url("**/segments/")
    page.click("#new-segment")
    page.wait_for_url("**/segments/new/")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    page.fill("#id_name", "Gold in Leeds")
    page.select_option("#rule-1-field", "attr.city")
    assert page.get_attribute("#rule-1-value", "list")  # the city's common values
    page.fill("#rule-1-value", "Leeds")
    count_becomes(page, "3")
    assert page.inner_text("#segment-count-label") == "contacts match"
    samples = page.locator("#segment-samples li").all_inner_texts()
    assert samples == ["Name0 · +44…00", "Name1 · +44…01", "Name2 · +44…02"]

    page.click("#add-rule")
    assert page.evaluate("document.activeElement.id") == "rule-2-field"
    page.select_option("#rule-2-field", "attr.plan")
    page.select_option("#rule-2-op", ">=")  # numbers only: wrong for a plan
    page.fill("#rule-2-value", "gold")
    page.wait_for_selector("#rule-2-error:has-text('compares numbers')")
    count_becomes(page, NO_COUNT)
    assert page.inner_text("#rule-1-error") == ""
    page.select_option("#rule-2-op", "=")
    count_becomes(page, "2")
    assert page.inner_text("#rule-2-error") == ""

    page.check("#match-any")
    count_becomes(page, "4")  # three in Leeds, and gold in York
    page.check("#match-all")
    count_becomes(page, "2")

    page.fill("#id_rules_text", "attr.shoe = 42")
    page.wait_for_selector("#segment-warnings li")
    assert "No contact has the attribute 'shoe'" in page.inner_text("#segment-warnings")
    count_becomes(page, "0")
    page.fill("#id_rules_text", "")
    count_becomes(page, "2")

    page.click("#rule-rows li:nth-child(2) .remove-rule")
    count_becomes(page, "3")
    assert page.locator(".rule-row").count() == 1
    page.click("#add-rule")
    page.select_option("#rule-2-field", "attr.plan")
    assert page.get_attribute("#rule-2-value", "aria-describedby") is None
    page.fill("#rule-2-value", "gold")
    count_becomes(page, "2")
    assert page.evaluate("window.sameDocument") is True
    shot(page, "segment-builder")

    page.click("#segment-actions button[type=submit]")
    page.wait_for_url("**/segments/")
    assert "Segment “Gold in Leeds” saved." in page.inner_text("ul.messages")
    row = page.locator("#segment-table tbody tr", has_text="Gold in Leeds")
    assert row.locator("td[data-label=Size]").inner_text() == "2"
    assert "attr.plan = gold" in row.inner_text()
    saved = Segment.objects.get()
    assert saved.rules == ["attr.city = Leeds", "attr.plan = gold"]
    assert saved.match_any is False
