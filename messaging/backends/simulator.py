"""An in-process gateway for the embedded default: accepts, delays, fails and delivers.

Every decision is drawn from a random generator seeded with the account's seed
and the message's client_ref, so a run can be replayed exactly and a status
lookup needs no stored state: the simulator "remembers" a message by
recomputing its fate. Account options (ProviderAccount.options):

    delivery_delay      seconds; each message is delivered between 0 and this after sending (3)
    failure_rate        share of messages whose delivery fails, 0..1 (0.0)
    reject_rate         share of messages refused at send as an invalid number, 0..1 (0.0)
    busy_rate           share of send attempts answered "try again later", 0..1 (0.0)
    account_error       when set, every send is refused for the account with this text
    seed                any text (herald)
"""

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from django.utils import timezone

from contacts.models import Channel
from messaging.backends.base import BaseBackend, SendResult, StatusUpdate
from messaging.exceptions import AccountError, RecipientError, RetryableError
from messaging.models import Message


class SimulatorBackend(BaseBackend):
    channels = frozenset({Channel.SMS, Channel.WHATSAPP})
    max_batch = 1000
    supports_status_lookup = True
    supports_reconcile = True
    option_keys: ClassVar[tuple[str, ...]] = (
        "delivery_delay",
        "failure_rate",
        "reject_rate",
        "busy_rate",
        "account_error",
        "seed",
    )

    def check(self) -> str:
        if self.account.options.get("account_error"):
            raise AccountError(str(self.account.options["account_error"]), code="ACCOUNT_REFUSED")
        return "simulated gateway; nothing leaves this process"

    def build_payload(self, batch: Sequence[Message]) -> list[tuple[str, int]]:
        return [(m.client_ref, m.attempts) for m in batch]

    def post_to_provider(self, payload: list[tuple[str, int]], batch: Sequence[Message]) -> None:
        if self.account.options.get("account_error"):
            raise AccountError(str(self.account.options["account_error"]), code="ACCOUNT_REFUSED")

    def parse_response(self, response: None, batch: Sequence[Message]) -> list[SendResult]:
        return [self._accept_or_refuse(m) for m in batch]

    def _accept_or_refuse(self, message: Message) -> SendResult:
        options = self.account.options
        if self._fate(message.client_ref).random() < float(options.get("reject_rate", 0.0)):
            refused = RecipientError("number refused (simulated)", code="INVALID_PHONE_NUMBER")
            return SendResult(message, error=refused)
        # A fresh draw each attempt, so a busy message gets through on a later try.
        attempt = self._fate(f"{message.client_ref}:{message.attempts}")
        if attempt.random() < float(options.get("busy_rate", 0.0)):
            busy = RetryableError("gateway busy (simulated)", code="RATE_LIMITED", retry_after=1)
            return SendResult(message, error=busy)
        return SendResult(message, provider_message_id=f"sim-{message.client_ref}")

    def find_sent(self, messages: Sequence[Message]) -> dict[int, str]:
        # The simulator "remembers" by recomputing: what it would have accepted, it has.
        return {
            m.pk: f"sim-{m.client_ref}" for m in messages if self._accept_or_refuse(m).error is None
        }

    def lookup_statuses(self, messages: Sequence[Message]) -> list[StatusUpdate]:
        now = timezone.now()
        updates = []
        for message in messages:
            if message.sent_at is None:
                continue
            fate = self._fate(f"{message.client_ref}:report")
            delivered_at = message.sent_at + timedelta(seconds=fate.uniform(0, self._delay))
            if delivered_at > now:
                continue
            updates.append(self._final_status(message, fate, delivered_at))
        return updates

    @property
    def _delay(self) -> float:
        return float(self.account.options.get("delivery_delay", 3))

    def _fate(self, client_ref: str) -> random.Random:
        return random.Random(f"{self.account.options.get('seed', 'herald')}:{client_ref}")

    def _final_status(self, message: Message, fate: random.Random, at: datetime) -> StatusUpdate:
        failed = fate.random() < float(self.account.options.get("failure_rate", 0.0))
        status = Message.Status.FAILED if failed else Message.Status.DELIVERED
        raw = {"id": message.provider_message_id, "status": status, "at": at.isoformat()}
        return StatusUpdate(
            message=message,
            status=status,
            event_id=f"{message.provider_message_id}:{status}",
            occurred_at=at,
            error_code="UNDELIVERABLE" if failed else "",
            error_message="handset did not acknowledge (simulated)" if failed else "",
            raw=raw,
        )
