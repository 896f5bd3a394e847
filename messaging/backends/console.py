"""Writes each message to a stream instead of sending it (development only).

Like Django's console e-mail backend this prints whole numbers and bodies: that
is its purpose. It is never used unless a ProviderAccount names it.
"""

import sys
from collections.abc import Sequence
from typing import TextIO

from contacts.models import Channel
from messaging.backends.base import BaseBackend, SendResult
from messaging.models import Message, ProviderAccount


class ConsoleBackend(BaseBackend):
    channels = frozenset({Channel.SMS, Channel.WHATSAPP})
    max_batch = 100

    def __init__(self, account: ProviderAccount, stream: TextIO | None = None) -> None:
        super().__init__(account)
        self.stream = stream or sys.stdout

    def build_payload(self, batch: Sequence[Message]) -> list[str]:
        return [
            f"[{m.channel}] from={m.sender or '-'} to={m.phone} ref={m.client_ref}\n{m.body}\n"
            for m in batch
        ]

    def post_to_provider(self, payload: list[str], batch: Sequence[Message]) -> None:
        self.stream.write("\n".join(payload))
        self.stream.flush()

    def parse_response(self, response: None, batch: Sequence[Message]) -> list[SendResult]:
        return [SendResult(m, provider_message_id=f"console-{m.client_ref}") for m in batch]
