"""The cheap look at the attributes' stored JSON text that SQLite makes before reading the
JSON (campaigns.segments.StoredJsonMayHold) changes no answer, on SQLite and PostgreSQL."""

from typing import Any

import pytest

from campaigns.segments import Segment
from contacts.models import Contact

pytestmark = pytest.mark.django_db


def person(name: str, **attributes: Any) -> Contact:
    phone = f"+44740012{Contact.objects.count():04d}"
    return Contact.objects.create(phone=phone, first_name=name, attributes=attributes)


def matching(*rules: str) -> set[str]:
    segment = Segment(name="s", rules=list(rules))
    return set(segment.contacts().values_list("first_name", flat=True))


def test_an_attribute_equal_to_a_word_matches_in_any_case_and_only_under_its_own_name() -> None:
    person("Shouting", city="LEEDS")
    person("Plain", city="Leeds")
    person("Fan", city="London", club="Leeds United")
    person("Suburb", city="Leeds Bradford")
    person("Nowhere")
    assert matching("attr.city = leeds") == {"Shouting", "Plain"}


def test_a_list_of_words_with_spaces_and_punctuation_matches_each() -> None:
    person("Yorker", city="New York")
    person("Lynn", city="King's Lynn")
    person("Stoke", city="Stoke-on-Trent")
    person("Leeds", city="Leeds")
    assert matching("attr.city in new york,KING'S LYNN,stoke-on-trent") == {
        "Yorker",
        "Lynn",
        "Stoke",
    }


def test_values_the_text_cannot_show_as_written_still_match() -> None:
    person("Zurich", city="Zürich")  # stored as "Z\\u00fcrich"
    person("Number", age=18)
    person("Text", age="18")
    person("Tab", note="a\tb")  # stored as "a\\tb"
    assert matching("attr.city = Zürich") == {"Zurich"}
    assert matching("attr.age = 18") == {"Number", "Text"}
    assert matching("attr.note = a\tb") == {"Tab"}


def test_a_word_elsewhere_in_the_json_does_not_make_a_missing_attribute_match() -> None:
    person("Plan in the name", plan_note="gold")
    person("Gold", plan="gold")
    assert matching("attr.plan in gold,silver") == {"Gold"}
    assert matching("attr.plan != gold") == {"Plan in the name"}
