"""django-q2 tasks: wake-ups that load by id and call one function. The rows are the truth."""

from django.db.models import Exists, OuterRef
from django_q.tasks import async_task

from campaigns import variants
from campaigns.models import Campaign
from campaigns.sending import run_campaign as run
from messaging import counts
from messaging.dispatch import mark_expired_leases_in_doubt, reconcile_in_doubt
from messaging.models import Message, WorkerHeartbeat


def run_campaign(campaign_id: int) -> None:
    campaign = Campaign.objects.filter(pk=campaign_id).select_related("provider_account").first()
    if campaign is not None and run(campaign):
        # It stopped for time with work left: carry on in a fresh task, not at the next tick.
        async_task("campaigns.tasks.run_campaign", campaign_id)


def tick() -> None:
    """Every minute: heartbeat, start due campaigns, pick up retries, recover, squash the
    kept counts' deltas, pick the winners of A/B tests whose time is up.

    Delivery reports are polled by their own schedule (messaging.tasks.poll_statuses).
    """
    WorkerHeartbeat.objects.beat()
    mark_expired_leases_in_doubt()
    reconcile_in_doubt()
    counts.squash()
    variants.decide_due()  # A/B tests whose time is up: the winner goes to the rest
    for campaign_id in campaigns_needing_a_run():
        async_task("campaigns.tasks.run_campaign", campaign_id)


def campaigns_needing_a_run() -> list[int]:
    due = set(Campaign.objects.due().values_list("pk", flat=True))
    sending = Campaign.objects.filter(status=Campaign.Status.SENDING)
    # Sending campaigns with rows due again (retries) or with nothing left (to complete).
    due_rows = Message.objects.due().filter(campaign=OuterRef("pk"))
    unfinished = Message.objects.unfinished().filter(campaign=OuterRef("pk"))
    with_due_rows = sending.filter(Exists(due_rows)).values_list("pk", flat=True)
    settled = sending.exclude(Exists(unfinished)).values_list("pk", flat=True)
    return sorted(due | set(with_due_rows) | set(settled))
