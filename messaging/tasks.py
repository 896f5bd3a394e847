"""django-q2 tasks of the messaging layer: wake-ups that call one function."""

from messaging.dispatch import poll_statuses as poll
from messaging.inbound import poll_accounts, send_due_replies


def poll_statuses() -> int:
    """Every minute: look up messages still waiting for a delivery report."""
    return poll()


def send_replies() -> int:
    """Queued when a reply is written (inbox, HELP); retries come with the inbound tick."""
    return send_due_replies()


def inbound_tick() -> dict[str, int]:
    """Every minute: read the polled gateways' replies, send replies that are due again."""
    stored = poll_accounts()
    send_due_replies()
    return stored
