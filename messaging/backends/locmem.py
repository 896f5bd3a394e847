"""Keeps sent messages in `messaging.outbox`, for tests (like Django's locmem mail backend)."""

from collections.abc import Sequence

import messaging
from contacts.models import Channel
from messaging.backends.base import BaseBackend, SendResult
from messaging.models import Message


class LocmemBackend(BaseBackend):
    channels = frozenset({Channel.SMS, Channel.WHATSAPP})
    max_batch = 1000

    def build_payload(self, batch: Sequence[Message]) -> list[Message]:
        return list(batch)

    def post_to_provider(self, payload: list[Message], batch: Sequence[Message]) -> list[str]:
        messaging.outbox.extend(payload)
        return [f"locmem-{message.client_ref}" for message in payload]

    def parse_response(self, response: list[str], batch: Sequence[Message]) -> list[SendResult]:
        return [
            SendResult(m, provider_message_id=pid) for m, pid in zip(batch, response, strict=True)
        ]
