"""An audience read a chunk at a time (the build, the window and erasure scans) is the same
audience, and each chunk's subqueries are bounded by where the chunk starts: PostgreSQL
otherwise merges every membership from the first contact for each chunk, and a million-
recipient build's chunks cost ever more."""

import re
from collections.abc import Callable

import pytest

from campaigns.audience import AudienceDefinition
from campaigns.models import Campaign
from campaigns.segments import Segment
from contacts.models import Contact, Group, Tag
from messaging.models import Message, ProviderAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def definition(
    make_contacts: Callable[..., list[Contact]], locmem: ProviderAccount
) -> AudienceDefinition:
    a, b, staff = (Group.objects.create(name=name) for name in ("A", "B", "Staff"))
    vip, blocked = Tag.objects.create(name="vip"), Tag.objects.create(name="blocked")
    contacts = make_contacts(30, a)
    earlier = Campaign.objects.create(name="Earlier", provider_account=locmem, body="x")
    for i, contact in enumerate(contacts):
        if i % 3 == 0:
            contact.groups.add(b)
        if i % 4 == 0:
            contact.tags.add(vip)
        if i % 5 == 0:
            contact.groups.add(staff)
        if i % 7 == 0:
            contact.tags.add(blocked)
        if i % 2:
            Message.objects.create(
                contact=contact,
                phone=contact.phone,
                provider_account=locmem,
                campaign=earlier,
                status=Message.Status.DELIVERED,
                body="x",
                client_ref=f"ref-{i}",
            )
    in_b = Segment.objects.create(name="In B, messaged", rules=["group = B", "received any"])
    not_vip = Segment.objects.create(name="Not vip", rules=["tag != vip"])
    return AudienceDefinition(
        groups=[staff],
        tags=[vip],
        segments=[in_b],
        exclude_groups=[],
        exclude_tags=[blocked],
        exclude_segments=[not_vip],
    )


def test_every_chunk_of_the_audience_is_the_audience_past_its_start(
    definition: AudienceDefinition,
) -> None:
    whole = list(definition.contacts().order_by("pk").values_list("pk", flat=True))
    assert whole  # the definition leaves someone in

    for after in (0, whole[0], whole[len(whole) // 2], whole[-1]):
        chunk = definition.contacts(after).order_by("pk").values_list("pk", flat=True)
        assert list(chunk) == [pk for pk in whole if pk > after]


def test_each_subquery_of_a_chunk_starts_where_the_chunk_starts(
    definition: AudienceDefinition,
) -> None:
    sql = str(definition.contacts(after=123456).query)

    subqueries = sql.count("SELECT")
    bounded = len(re.findall(r'(?:"contact_id"|"id") > 123456', sql))
    assert subqueries > 1 and bounded >= subqueries
