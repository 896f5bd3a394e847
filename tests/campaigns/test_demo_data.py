from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from campaigns import tasks
from campaigns.models import Campaign
from campaigns.segments import Segment
from contacts.models import Contact, Group, OptOut
from messaging import tasks as messaging_tasks
from messaging.models import Message

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
        "queued": 118,
        "opted_out": 2,
        "erased": 0,
        "invalid_number": 0,
        "duplicate": 0,
        "frequency_cap": 0,
        "no_send_window": 0,
    }
    assert campaign.messages.filter(status=Message.Status.SENT).count() == 118
    opted_out = set(OptOut.objects.values_list("phone", flat=True))
    skipped = set(campaign.messages.filter(status="skipped").values_list("phone", flat=True))
    assert skipped == opted_out

    Message.objects.update(sent_at=timezone.now() - timedelta(hours=1))  # reports are due
    tasks.tick()
    messaging_tasks.poll_statuses()
    counts = campaign.messages.all().status_counts()
    assert counts["sent"] == 0
    assert counts["delivered"] + counts["failed"] == 118 and counts["failed"] > 0


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
