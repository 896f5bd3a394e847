"""django-q2 tasks of the messaging layer: wake-ups that call one function."""

from messaging.dispatch import poll_statuses as poll


def poll_statuses() -> int:
    """Every minute: look up messages still waiting for a delivery report."""
    return poll()
