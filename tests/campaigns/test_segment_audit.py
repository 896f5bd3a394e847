"""Saving and deleting a segment is audited at every door, and an edit that changes what
submitted or approved campaigns were approved for says so."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from campaigns.models import Campaign
from campaigns.segments import Segment, SegmentInUse, waiting_text
from contacts.models import Contact
from messaging.models import ProviderAccount

pytestmark = pytest.mark.django_db


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def test_a_new_segment_and_its_edit_are_audited_with_their_rules(marketer: User) -> None:
    segment = Segment(name="Leeds", rules=["attr.city = Leeds"])
    segment.full_clean()

    assert segment.save_by(marketer) == 0
    segment.rules = ["attr.city = Leeds", "country = GB"]
    segment.save_by(marketer)

    saved = events(AuditEvent.Action.SEGMENT_SAVED)
    assert [e.detail["created"] for e in saved] == [True, False]
    assert saved[1].detail["rules"] == ["attr.city = Leeds", "country = GB"]
    assert {e.actor for e in saved} == {marketer}
    assert Segment.objects.get().created_by == marketer


def test_an_edit_counts_the_submitted_campaigns_that_must_be_approved_again(
    marketer: User, approver: User, locmem: ProviderAccount
) -> None:
    Contact.objects.create(phone="+447400123456", attributes={"city": "Leeds"})
    segment = Segment(name="Leeds", rules=["attr.city = Leeds"])
    segment.save_by(marketer)
    campaign = Campaign.objects.create(name="C", provider_account=locmem, body="Hi")
    campaign.segments.add(segment)
    campaign.submit(by=marketer)

    segment.name = "Leeds (renamed)"  # the name binds nothing
    assert segment.save_by(approver) == 0
    segment.rules = ["attr.city = York"]
    waiting = segment.save_by(approver)

    assert waiting == 1
    assert waiting_text(waiting).startswith("1 submitted or approved campaign uses this segment")
    assert approver in Campaign.objects.get().authors.all()


def test_deleting_is_audited_and_a_segment_in_use_is_kept_without_an_event(
    marketer: User, locmem: ProviderAccount
) -> None:
    used = Segment.objects.create(name="Used", rules=["country = GB"])
    unused = Segment.objects.create(name="Unused", rules=["country = FR"])
    Campaign.objects.create(name="C", provider_account=locmem, body="Hi").exclude_segments.add(used)

    unused.delete_by(marketer)
    with pytest.raises(SegmentInUse):
        used.delete_by(marketer)

    assert list(Segment.objects.values_list("name", flat=True)) == ["Used"]
    deleted = events(AuditEvent.Action.SEGMENT_DELETED)
    assert [e.detail["name"] for e in deleted] == ["Unused"]
    assert isinstance(SegmentInUse("x"), ValidationError)
