from collections.abc import Callable

import pytest

from contacts.models import Contact, Group, OptOut, Tag
from tests.conftest import phone

pytestmark = pytest.mark.django_db


def test_audience_is_groups_or_tags_minus_excluded_groups_each_contact_once(
    make_contacts: Callable[..., list[Contact]],
) -> None:
    a, b, staff = (Group.objects.create(name=n) for n in ("a", "b", "staff"))
    vip = Tag.objects.create(name="vip")
    in_both = make_contacts(2, a, b)
    only_tagged = make_contacts(1, start=5)[0]
    only_tagged.tags.add(vip)
    excluded = make_contacts(1, a, staff, start=8)[0]
    make_contacts(1, start=9)  # in nothing

    audience = Contact.objects.in_audience([a, b], [vip], exclude_groups=[staff])

    assert sorted(audience.values_list("phone", flat=True)) == sorted(
        [in_both[0].phone, in_both[1].phone, only_tagged.phone]
    )
    assert excluded not in audience


def test_no_groups_and_no_tags_is_nobody(make_contacts: Callable[..., list[Contact]]) -> None:
    make_contacts(2)
    assert not Contact.objects.in_audience().exists()


def test_sendable_leaves_out_numbers_suppressed_on_that_channel(
    make_contacts: Callable[..., list[Contact]],
) -> None:
    make_contacts(3)
    OptOut.objects.create(phone=phone(0), channel="sms")
    OptOut.objects.create(phone=phone(1), channel="whatsapp")
    assert sorted(Contact.objects.sendable("sms").values_list("phone", flat=True)) == [
        phone(1),
        phone(2),
    ]
    assert list(Contact.objects.opted_out("sms").values_list("phone", flat=True)) == [phone(0)]
