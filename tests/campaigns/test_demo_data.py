from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from campaigns import tasks
from campaigns.models import Campaign
from campaigns.segments import Segment
from contacts.models import Contact, Group, OptOut
from messaging import counts as kept_counts
from messaging import tasks as messaging_tasks
from messaging.inbound import poll_accounts
from messaging.models import InboundMessage, Message

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_demo_data_loads_twice_without_duplicating_and_prints_working_logins(
    capsys: pytest.CaptureFixture[str],
) -> None:
    call_command("load_demo")
    call_command("load_demo")
    out = capsys.readouterr().out
    assert Contact.objects.count() == 200
    assert set(Group.objects.values_list("name", flat=True)) == {"Newsletter", "Customers"}
    assert Campaign.objects.get().status == Campaign.Status.DRAFT
    last_logins = out.strip().splitlines()[-3:]
    for line in last_logins:
        _role, username, _slash, password = line.split()
        assert User.objects.get(username=username).check_password(password)


def test_the_demo_campaign_goes_from_draft_to_completed() -> None:
    call_command("load_demo")
    campaign = Campaign.objects.get()
    campaign.submit(by=User.objects.get(username="marketer"))
    campaign.approve(by=User.objects.get(username="approver"))
    campaign.refresh_from_db()

    assert campaign.status == Campaign.Status.COMPLETED
    assert campaign.audience_stats | {"after": 0} == {
        "after": 0,
        "audience": 120,
        "queued": 117,
        "opted_out": 3,  # two by staff, one by the demo's "Arrêt" reply
        "erased": 0,
        "invalid_number": 0,
        "duplicate": 0,
        "frequency_cap": 0,
        "no_send_window": 0,
    }
    assert campaign.messages.filter(status=Message.Status.SENT).count() == 117
    opted_out = set(OptOut.objects.values_list("phone", flat=True))
    skipped = set(campaign.messages.filter(status="skipped").values_list("phone", flat=True))
    assert skipped == opted_out

    hour_ago = timezone.now() - timedelta(hours=1)
    Message.objects.filter(sent_at__isnull=False).update(sent_at=hour_ago)  # reports are due
    kept_counts.recount([campaign.pk])  # the clock moved behind the engine's back
    tasks.tick()
    messaging_tasks.poll_statuses()
    counts = campaign.messages.all().status_counts()
    assert counts["sent"] == 0
    assert counts["delivered"] + counts["failed"] == 117 and counts["failed"] > 0

    # The simulator answers about a tenth of what it delivered, each reply put down to it.
    Message.objects.filter(sent_at__isnull=False).update(sent_at=hour_ago)
    kept_counts.recount([campaign.pk])
    stored = poll_accounts()["simulator"]
    assert 3 <= stored <= 30
    assert InboundMessage.objects.filter(campaign=campaign).count() == stored
    assert poll_accounts()["simulator"] == 0


def test_the_demo_inbox_has_a_reply_of_each_kind() -> None:
    call_command("load_demo")
    call_command("load_demo")  # not twice
    replies = InboundMessage.objects.order_by("pk")
    assert [(r.action, r.possible_opt_out, r.contact_id is None) for r in replies] == [
        ("none", False, False),
        ("opt_out", False, False),
        ("help", False, False),
        ("none", True, False),
        ("none", False, True),
    ]
    assert OptOut.objects.filter(source=OptOut.Source.REPLY).count() == 1


def test_the_demo_has_a_segment_of_gold_customers_in_leeds() -> None:
    call_command("load_demo")
    call_command("load_demo")  # still one

    segment = Segment.objects.get()

    expected = [
        c.pk
        for c in Contact.objects.filter(groups__name="Customers")
        if c.attributes == {"city": "Leeds", "plan": "gold"}
    ]
    assert segment.name == "Gold customers in Leeds"
    assert sorted(segment.contacts().values_list("pk", flat=True)) == sorted(expected)
    assert expected
