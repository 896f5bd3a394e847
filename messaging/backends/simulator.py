"""An in-process gateway for the embedded default: accepts, delays, fails and delivers.

Every decision is drawn from a random generator seeded with the account's seed
and the message's client_ref, so a run can be replayed exactly and a status
lookup needs no stored state: the simulator "remembers" a message by
recomputing its fate. Account options (ProviderAccount.options):

    delivery_delay      seconds; each message is delivered between 0 and this after sending (3)
    failure_rate        share of messages whose delivery fails, 0..1 (0.0)
    reject_rate         share of messages refused at send as an invalid number, 0..1 (0.0)
    busy_rate           share of send attempts answered "try again later", 0..1 (0.0)
    reply_rate          share of delivered messages that get a reply, 0..1 (0.0)
    account_error       when set, every send is refused for the account with this text
    seed                any text (herald)

Replies (reply_rate): the simulator is polled like a gateway with a message list. A
delivered message's reply is decided by its fate too (one of REPLIES: opt-outs in
several languages, questions, a HELP, a "please stop texting me"), received a few
seconds after its delivery; the cursor is the id of the last message looked at.
"""

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.utils import timezone

from contacts.models import Channel
from messaging.backends.base import BaseBackend, SendResult, StatusUpdate
from messaging.exceptions import AccountError, RecipientError, RetryableError
from messaging.models import Message

if TYPE_CHECKING:
    from messaging.inbound import Incoming

#: What simulated recipients answer: some opt out (in several languages), some ask.
REPLIES = (
    "STOP",
    "Stop!",
    "Arrêt",
    "stopp",
    "BAJA",
    "退订",
    "please stop texting me",
    "HELP",
    "What time do you open on Saturday?",
    "Is the offer valid in the Leeds shop?",
    "Thanks, see you soon",
    "👍",
)
#: Messages looked at per page of the page budget.
REPLY_PAGE = 200


class SimulatorBackend(BaseBackend):
    channels = frozenset({Channel.SMS, Channel.WHATSAPP})
    max_batch = 1000
    supports_status_lookup = True
    supports_reconcile = True
    supports_inbound_polling = True
    option_keys: ClassVar[tuple[str, ...]] = (
        "delivery_delay",
        "failure_rate",
        "reject_rate",
        "busy_rate",
        "reply_rate",
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

    def fetch_inbound(
        self, cursor: dict[str, Any], page_budget: int
    ) -> tuple[list["Incoming"], dict[str, Any]]:
        from messaging.inbound import Incoming

        rate = float(self.account.options.get("reply_rate", 0.0))
        after = int(cursor.get("after", 0))
        if rate <= 0:
            return [], cursor
        now = timezone.now()
        rows = (
            Message.objects.filter(provider_account=self.account, pk__gt=after, is_test=False)
            .order_by("pk")
            .values_list("pk", "status", "sent_at", "phone", "client_ref", "channel", "sender")
        )[: REPLY_PAGE * max(page_budget, 1)]
        replies = []
        for pk, status, sent_at, phone, client_ref, channel, sender in rows:
            if status in (Message.Status.SENDING, Message.Status.SENT, Message.Status.IN_DOUBT):
                break  # on its way: looked at again next time (a pending one is passed over)
            after = pk
            fate = self._fate(f"{client_ref}:reply")
            if status != Message.Status.DELIVERED or sent_at is None or fate.random() >= rate:
                continue
            received_at = sent_at + timedelta(seconds=self._delay + fate.uniform(1, 30))
            if received_at > now:
                after = pk - 1
                break
            replies.append(
                Incoming(
                    channel=channel,
                    phone=phone,
                    body=fate.choice(REPLIES),
                    provider_message_id=f"sim-reply-{client_ref}",
                    to=sender,
                    received_at=received_at,
                )
            )
        return replies, {"after": after}
