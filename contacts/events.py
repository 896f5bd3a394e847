"""What the lower layers announce, for whoever follows it (the API's outgoing webhooks).

contacts, messaging and campaigns never import the apps above them, so they announce
what happened on an Announcement: a Django Signal that first asks its followers whether
anyone wants it now. A sender builds what it would send (reads ids back, looks rows up)
only when `wanted()` says so, and pays one function call otherwise. Followers answer
`wanted` from memory, never with a query: the sending path pays nothing while nobody
listens.

An announcement is sent inside the transaction that made the change, so what a follower
writes (an outbox row) commits, or rolls back, with it.

Each app keeps its own announcements (contacts here, `messaging.events`,
`campaigns.events`), named as the event types integrations subscribe to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

Interest = Callable[[str], bool]


class Announcement(Signal):
    """A Signal named for the event it carries, sent only when a follower wants it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self._interests: list[Interest] = []

    def follow(self, receiver: Callable[..., Any], interest: Interest) -> None:
        """Have `receiver` called with this announcement whenever `interest(name)` holds."""
        self.connect(receiver, weak=False, dispatch_uid=f"{receiver.__module__}.{self.name}")
        if interest not in self._interests:
            self._interests.append(interest)

    def wanted(self) -> bool:
        return any(interest(self.name) for interest in self._interests)


#: A number went on a channel's suppression list; sent with `entries`, a list of
#: (phone, channel, source, created_at), by the model (any ORM insert) and by imports.
opted_out = Announcement("opt_out")
