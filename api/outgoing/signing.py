"""The headers of one delivery try, as Standard Webhooks describes them.

`webhook-id` is the event's id (the same on every try, so receivers can drop repeats),
`webhook-timestamp` the try's own time in Unix seconds (receivers refuse old ones), and
`webhook-signature` one `v1,<base64 HMAC-SHA256 of id.timestamp.body>` per secret in use,
separated by spaces: two for a day after a rotation, so receivers can switch over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

USER_AGENT = "Herald-Webhooks/1"


def signers(secrets: Sequence[str]) -> list[Webhook]:
    """One signer per secret (each decodes its key once, not on every try)."""
    return [Webhook(secret) for secret in secrets]


def headers(event_id: str, at: datetime, body: bytes, by: Sequence[Webhook]) -> dict[str, str]:
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signer.sign(event_id, at, body) for signer in by),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
