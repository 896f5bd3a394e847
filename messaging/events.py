"""What messaging announces (contacts.events explains how): message status moves,
replies received, short links followed."""

from __future__ import annotations

from contacts.events import Announcement

#: A message moved to sent, delivered or failed; sent with `rows`, each the values of
#: MESSAGE_FIELDS as the move read them back (times as text, booleans as the driver gives).
message_sent = Announcement("message.sent")
message_delivered = Announcement("message.delivered")
message_failed = Announcement("message.failed")
#: A reply or other message reached us; sent with `inbound` (the stored InboundMessage).
inbound_received = Announcement("inbound.message")
#: A short link was followed and counted; sent with `code`, `clicked_at` and `agent`.
link_clicked = Announcement("link.clicked")

#: What a move reads back of each row it moved, when its status is announced.
MESSAGE_FIELDS = (
    "id",
    "campaign",
    "contact",
    "phone",
    "channel",
    "provider_message_id",
    "error_code",
    "is_test",
)

_MOVES = {"sent": message_sent, "delivered": message_delivered, "failed": message_failed}


def on_move_to(status: str) -> Announcement | None:
    """The announcement of a message's move to `status`, if that move has one."""
    return _MOVES.get(status)
