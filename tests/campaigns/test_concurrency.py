"""Two sessions, two workers, one campaign: on PostgreSQL, with real concurrent connections."""

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

import messaging
from campaigns.models import Campaign, CampaignTransition, TransitionNotAllowed
from campaigns.sending import run_campaign
from contacts.models import Contact, Group
from messaging.models import Message, ProviderAccount
from tests.conftest import reschedule

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def in_threads(*jobs: Callable[[], Any]) -> list[BaseException | None]:
    """Run jobs at the same instant, each on its own database connection."""
    start = threading.Barrier(len(jobs))
    outcomes: list[BaseException | None] = [None] * len(jobs)

    def runner(index: int, job: Callable[[], Any]) -> None:
        try:
            start.wait()
            job()
        except BaseException as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_approvers_clicking_at_once_have_exactly_one_winner(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    make_user: Callable[..., User],
    settings: Any,
) -> None:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}  # approval only; no send here
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    campaign = make_campaign(locmem, group)
    campaign.submit(by=marketer)
    approvers = [make_user(f"approver{i}", "Approvers") for i in range(2)]

    for _round in range(5):
        outcomes = in_threads(
            *(lambda a=a: Campaign.objects.get(pk=campaign.pk).approve(by=a) for a in approvers)
        )
        assert sum(o is None for o in outcomes) == 1, outcomes
        assert [type(o) for o in outcomes if o is not None] == [TransitionNotAllowed]
        assert CampaignTransition.objects.filter(campaign=campaign, action="approve").count() == 1
        # Back to pending approval for another round.
        CampaignTransition.objects.filter(campaign=campaign, action="approve").delete()
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PENDING_APPROVAL)


def test_two_workers_sending_one_campaign_send_each_number_once(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    settings: Any,
    marketer: User,
    approver: User,
) -> None:
    settings.HERALD_DISPATCH_BATCH_SIZE = 25
    group = Group.objects.create(name="G")
    make_contacts(600, group)
    campaign = make_campaign(locmem, group)
    campaign.scheduled_at = timezone.now() + timedelta(hours=1)  # approved, not started yet
    campaign.save()
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    reschedule(campaign, timezone.now())

    outcomes = in_threads(
        *(lambda: run_campaign(Campaign.objects.get(pk=campaign.pk)) for _ in range(3))
    )

    assert outcomes == [None, None, None]
    sent = Counter(m.phone for m in messaging.outbox)
    assert len(sent) == 600 and set(sent.values()) == {1}
    assert Message.objects.filter(campaign=campaign).count() == 600
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.COMPLETED
    assert CampaignTransition.objects.filter(campaign=campaign, action="start").count() == 1
